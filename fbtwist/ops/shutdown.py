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
L{fbtwist.web.site.FreeBusySite.drain} (requests and uploads in flight finish;
when the grace is over their connections are aborted, and since the store
writes a file only once its body is whole, an aborted upload leaves neither
a new file nor a temporary one).  The FTP factory
(L{fbtwist.ftp.server.CalendarFTPFactory}) needs no hook: when its listener
closes in step 1 it sends C{421} to every session and closes it, and an
upload cut off that way is aborted (L{fbtwist.interfaces.IUpload.abort}) as
for any client that goes away, so the tree keeps the old file and no
temporary one.
"""

from typing import Callable, List, Optional, Set

from twisted.application.service import MultiService, Service
from twisted.internet import defer
from twisted.logger import Logger


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
