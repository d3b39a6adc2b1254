"""
The threads the store's blocking work runs in (writing, fsync, rename,
the directory's fsync, the locks' files): a small pool of its own.

Small because every thread more is one more commit fsyncing at once and
one more thread taking the interpreter lock from the reactor: on one disk
a few threads keep it busy, and the directory fsyncs are shared between
the commits waiting for them whatever the number
(L{fbtwist.store.files._DirectorySyncs}).  Its own so that the work
other parts send to the reactor's pool (expanding calendars, writing the
name index) never queues publishes behind it.
"""

from typing import Callable, Optional

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

#: The threads of the store's pool by default (C{--store-threads}).
DEFAULT_THREADS = 3


class StorePool(Service):
    """
    A thread pool of at most C{threads} threads, started when first used and
    stopped (waiting for the work it runs) when this service stops or the
    reactor shuts down, whichever comes first; used again after, it starts
    anew.

    @ivar threads: The most threads it runs.
    """

    name = "store-pool"

    def __init__(self, reactor, threads: int = DEFAULT_THREADS):
        self.reactor = reactor
        self.threads = threads
        self._pool: Optional[ThreadPool] = None
        self._trigger = None

    def runBlocking(self, f: Callable, *args) -> defer.Deferred:
        """
        Run C{f(*args)} in one of the pool's threads.

        @return: A Deferred firing (in the reactor thread) with its result.
        """
        if self._pool is None:
            self._pool = ThreadPool(0, self.threads, "fbtwist-store")
            self._pool.start()
            self._trigger = self.reactor.addSystemEventTrigger("during", "shutdown", self._stopPool)
        return deferToThreadPool(self.reactor, self._pool, f, *args)

    def stopService(self) -> None:
        Service.stopService(self)
        if self._trigger is not None:
            self.reactor.removeSystemEventTrigger(self._trigger)
        self._stopPool()

    def _stopPool(self) -> None:
        pool, self._pool, self._trigger = self._pool, None, None
        if pool is not None:
            # Returns once the work running and queued is done (as the
            # reactor's own pool stops).
            pool.stop()
