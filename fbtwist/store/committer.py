"""
Publishes committed by a process of their own (C{--commit-process}).

A publish's commit is a dozen system calls (create, lock, write, label,
fsync, rename, the folder's fsync), each of which lets CPython's
interpreter lock go and takes it back.  Run in the server's own threads,
each taking-back waits for the reactor's thread to let the lock go, and
each of the reactor's own system calls then hands the lock to a waiting
commit and waits to get it back: measured with C{bench/publishcost.py
--gil}, the reactor's thread of a publishing server spent about a third
of its time waiting for the lock or handing it over, and publishes ran at
half the rate the reactor alone could serve.

L{CommitProcess} sends a publish sent in one piece, without conditions
(no C{If-Match}, C{If-None-Match} or C{If} header), to a child process
(L{fbtwist.store.commitchild}), which commits it exactly as the server's
threads would, in threads of its own, and answers whether the file is
new.  Whatever the child cannot decide alone it gives back, changing
nothing (L{FALLBACK}): a WebDAV lock that may apply to the file (the
avatar's full check is needed), a filesystem without locks, a staging
folder on another filesystem.  The server then commits the publish itself,
as it does when the child is gone (it is started again a second later),
being started, or stopped.  The server starts the child as it starts (the
master of C{--workers}, which rarely publishes, at its first publish).

Frames, both ways: two lengths (4 bytes each, network order), of a JSON
header and of the bytes after it (a request's body).  The child is the
server's own program: nothing it sends comes from a client.
"""

import json
import os
import sys
from typing import Dict, List, Optional, Tuple

from twisted.application.service import Service
from twisted.internet import defer, error, protocol
from twisted.logger import Logger

from fbtwist.store.commitchild import FALLBACK, FrameReader, frame

__all__ = ["FALLBACK", "CommitProcess"]

#: Seconds after the child ended before another is started.
RESTART_DELAY = 1.0

#: Seconds a stopping server waits for the child's commits before killing it.
STOP_TIMEOUT = 10.0


class _ChildProtocol(protocol.ProcessProtocol):
    """
    The server's end of one child: its answers fire the Deferreds of the
    requests sent to it.
    """

    def __init__(self, owner: "CommitProcess"):
        self.owner = owner
        self.waiting: Dict[int, defer.Deferred] = {}
        self.ended = defer.Deferred()
        self._frames = FrameReader()
        #: Requests of this turn of the reactor not written yet.
        self.unsent: List[bytes] = []

    def outReceived(self, data: bytes) -> None:
        for header, _ in self._frames.feed(data):
            self._answered(header)

    def _answered(self, header: bytes) -> None:
        try:
            reply = json.loads(header.decode("utf-8"))
            d = self.waiting.pop(reply["id"])
        except (ValueError, KeyError, TypeError):
            self.owner.log.error("the commit process sent what is not an answer: {header!r}", header=header[:200])
            self.transport.signalProcess("KILL")
            return
        if "errno" in reply:
            d.errback(OSError(reply["errno"], reply.get("message") or os.strerror(reply["errno"])))
            return
        if reply["created"] == FALLBACK and reply.get("message"):
            self.owner.log.warn("the commit process could not commit a publish: {why}", why=reply["message"])
        d.callback(reply["created"])

    def sendUnsent(self) -> None:
        """
        Write this turn's requests to the child, in one write.
        """
        unsent, self.unsent = self.unsent, []
        if unsent and self.waiting:
            self.transport.write(b"".join(unsent))

    def processEnded(self, reason) -> None:
        self.unsent = []
        waiting, self.waiting = self.waiting, {}
        self.owner._childEnded(self, reason)
        # Answered by no one: the server commits them itself (a commit the
        # child made before it ended is made again, the same bytes).
        for d in waiting.values():
            d.callback(FALLBACK)
        self.ended.callback(None)


class CommitProcess(Service):
    """
    The child process committing publishes (see the module), started when
    first needed (or when the reactor runs, with C{startEarly}) and again a
    second after it ended, stopped (once its commits are done) when this
    service stops.

    @param reactor: Spawns the child (an C{IReactorProcess}).
    @param lockFolder: The lock store's folder in the tree (the child asks
        its index whether a lock may apply).
    @param threads: The child's threads.
    @param startEarly: Start the child as soon as the reactor runs: the
        first publishes then do not wait for it to start (about a sixth of
        a second), nor are they committed by the server meanwhile.
    """

    name = "commit-process"
    log = Logger()

    def __init__(self, reactor, lockFolder: str, threads: int, executable: str = sys.executable,
                 startEarly: bool = False):
        self.reactor = reactor
        self.startEarly = startEarly
        self.lockFolder = lockFolder
        self.threads = threads
        self.executable = executable
        self._child: Optional[_ChildProtocol] = None
        self._nextId = 0
        #: When (reactor seconds) a child may be started again.
        self._notBefore = 0.0
        self._stopping = False
        #: How many publishes the child committed, and how many it gave back.
        self.committed = 0
        self.fellBack = 0

    def startService(self) -> None:
        Service.startService(self)
        self._stopping = False
        if self.startEarly:
            self.reactor.callWhenRunning(self._startNow)

    def _startNow(self) -> None:
        if self.running and not self._stopping:
            self._running()

    def commit(self, target: str, place: Optional[Tuple[str, str]], path: tuple, data: bytes, etag: str,
               existed: Optional[bool]) -> defer.Deferred:
        """
        Have the child commit C{data} as the file C{target} (store path
        C{path}).

        @return: A Deferred firing with whether the file is new, or with
            L{FALLBACK} (nothing changed: commit it yourself), or failing
            with the C{OSError} that refused it (nothing changed).
        """
        child = self._running()
        if child is None:
            self.fellBack += 1
            return defer.succeed(FALLBACK)
        self._nextId += 1
        number = self._nextId
        d = child.waiting[number] = defer.Deferred()
        if not child.unsent:
            # Written when the reactor's turn ends, with the turn's other
            # publishes: one write (and one wake-up of the child) for all.
            self.reactor.callLater(0, child.sendUnsent)
        child.unsent.append(frame({
            "id": number, "target": target, "place": list(place) if place is not None else None,
            "path": list(path), "etag": etag, "existed": existed,
        }, data))
        d.addCallback(self._counted)
        return d

    def _counted(self, created):
        if created == FALLBACK:
            self.fellBack += 1
        else:
            self.committed += 1
        return created

    def _running(self) -> Optional[_ChildProtocol]:
        if self._child is not None:
            return self._child
        if self._stopping or self.reactor.seconds() < self._notBefore:
            return None
        child = _ChildProtocol(self)
        try:
            self.reactor.spawnProcess(
                child, self.executable, [self.executable, "-m", "fbtwist.store.commitchild", self.lockFolder,
                                         str(self.threads)],
                env=os.environ.copy(), path=os.getcwd(), childFDs={0: "w", 1: "r", 2: 2},
            )
        except OSError as e:
            self.log.error("the commit process could not be started: {error}", error=e)
            self._notBefore = self.reactor.seconds() + RESTART_DELAY
            return None
        self._child = child
        return child

    def _childEnded(self, child: _ChildProtocol, reason) -> None:
        if self._child is child:
            self._child = None
        if not self._stopping and not reason.check(error.ProcessDone):
            self.log.error("the commit process ended: {reason}", reason=reason.getErrorMessage())
        self._notBefore = self.reactor.seconds() + RESTART_DELAY

    def stopService(self) -> defer.Deferred:
        """
        Let the child finish the commits it has and end (killed after
        L{STOP_TIMEOUT} seconds); publishes from now on are committed by
        the server itself.
        """
        Service.stopService(self)
        self._stopping = True
        child = self._child
        if child is None:
            return defer.succeed(None)
        child.sendUnsent()
        child.transport.closeStdin()
        kill = self.reactor.callLater(STOP_TIMEOUT, _kill, child)
        ended = child.ended

        def done(result):
            if kill.active():
                kill.cancel()
            return result

        return ended.addBoth(done)


def _kill(child: _ChildProtocol) -> None:
    try:
        child.transport.signalProcess("KILL")
    except error.ProcessExitedAlready:
        pass
