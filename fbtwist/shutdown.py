"""
Graceful shutdown: fbtwist's top service, stopped in three steps.

twistd stops the service tree when it gets SIGTERM (or SIGINT).  Then:

 1. every child service stops, except those marked with L{GracefulService.stopLate}:
    the listeners close, so no new connection is accepted;
 2. the I{shutdown hooks} run, all at once, and fbtwist waits until each
    has finished or C{--shutdown-grace} seconds have passed, whichever is
    first; then the hooks' Deferreds are cancelled, which tells them to
    drop what is left;
 3. the services marked with L{stopLate} stop (the demo directory, which
    requests still in flight need in order to log in).

A shutdown hook is a callable taking no argument and returning C{None} or a
Deferred that fires once its work is done; cancelling that Deferred must
drop the rest of the work cleanly.  The web site registers
L{fbtwist.web.FreeBusySite.drain} (requests and uploads in flight finish;
when the grace is over their connections are aborted, and since the store
writes a file only once its body is whole, an aborted upload leaves neither
a new file nor a temporary one).  The FTP service registers in the same way,
in L{fbtwist.tap.makeService}, with L{closeFTPSessions} over the sessions
its factory keeps::

    top.onShutdown(lambda: closeFTPSessions(ftpFactory.sessions))

which sends C{421} to every session and closes it; the FTP code aborts the
upload of a session that closes mid-transfer
(L{fbtwist.interfaces.IUpload.abort}), as it must for a client that goes
away, so the tree keeps the old file and no temporary one.
"""

from typing import Callable, List, Optional, Set

from twisted.application.service import MultiService, Service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.protocols.ftp import RESPONSE, SVC_NOT_AVAIL_CLOSING_CTRL_CNX

#: What FTP sessions are told when the server stops.
FTP_GOODBYE = RESPONSE[SVC_NOT_AVAIL_CLOSING_CTRL_CNX].encode("ascii") + b"\r\n"


class GracefulService(MultiService):
    """
    A L{MultiService} that closes listeners first, lets work in flight
    finish for up to C{grace} seconds, then stops the services that work
    depends on.

    @ivar grace: Seconds the shutdown hooks are given.
    """

    log = Logger()

    def __init__(self, reactor, grace: float = 10.0):
        super().__init__()
        self.reactor = reactor
        self.grace = grace
        self._hooks: List[Callable[[], Optional[defer.Deferred]]] = []
        self._late: Set[Service] = set()

    def onShutdown(self, hook: Callable[[], Optional[defer.Deferred]]) -> None:
        """
        Run C{hook} when fbtwist stops, once its listeners are closed (see
        the module docstring for the contract).
        """
        self._hooks.append(hook)

    def stopLate(self, service: Service) -> None:
        """
        Stop C{service} only after the shutdown hooks are done.
        """
        self._late.add(service)

    def stopService(self) -> defer.Deferred:
        return defer.Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        Service.stopService(self)
        children = list(self)
        children.reverse()
        await _stopAll(s for s in children if s not in self._late)
        await self._runHooks()
        await _stopAll(s for s in children if s in self._late)

    async def _runHooks(self) -> None:
        if not self._hooks:
            return
        pending = [defer.maybeDeferred(hook) for hook in self._hooks]
        work = defer.DeferredList(pending, consumeErrors=True)
        if self.grace > 0:
            work.addTimeout(self.grace, self.reactor)
        else:
            work.cancel()
        try:
            results = await work
        except (defer.TimeoutError, defer.CancelledError):
            results = [(False, None)]
        dropped = False
        for ok, result in results:
            if ok:
                continue
            if result is None or result.check(defer.CancelledError, defer.TimeoutError):
                dropped = True
            else:
                self.log.failure("shutdown hook failed", result)
        if dropped:
            self.log.warn("shutdown: work still in flight after {grace} seconds was dropped", grace=self.grace)


async def _stopAll(services) -> None:
    stopping = [defer.maybeDeferred(s.stopService) for s in services]
    if stopping:
        await defer.DeferredList(stopping, consumeErrors=True)


def closeFTPSessions(sessions) -> defer.Deferred:
    """
    A shutdown hook for FTP: send C{421} to every session and close its
    control connection once that reply is sent.

    @param sessions: The open sessions' protocols (each with its
        C{transport}); Twisted's C{FTPFactory} does not keep them, so the
        FTP factory keeps a set, adding a session in C{connectionMade} and
        removing it in C{connectionLost}.
    @return: A Deferred that fires when every session is closed; cancelling
        it aborts the connections left.
    """
    open_ = {s for s in sessions if s.transport is not None}
    if not open_:
        return defer.succeed(None)

    def abort(d):
        for session in list(open_):
            if session.transport is not None:
                session.transport.abortConnection()

    done = defer.Deferred(abort)

    def closed(session):
        open_.discard(session)
        if not open_ and not done.called:
            done.callback(None)

    for session in list(open_):
        lost = session.connectionLost

        def connectionLost(reason, session=session, lost=lost):
            try:
                lost(reason)
            finally:
                closed(session)

        session.connectionLost = connectionLost
        session.transport.write(FTP_GOODBYE)
        session.transport.loseConnection()
    return done
