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

Lean because every publish passes through it: its threads take work from
one queue, and their results go back to the reactor in batches, one
wake-up of the reactor for all the results that arrive before it runs
(a busy server's publishes end several at a time), where Twisted's
thread pool and C{deferToThreadPool} cost a handful of locks, a context
and a wake-up per call.
"""

import threading
from collections import deque
from queue import SimpleQueue
from typing import Callable, List, Optional

from twisted.application.service import Service
from twisted.internet import defer
from twisted.python.failure import Failure

#: The threads of the store's pool by default (C{--store-threads}).
DEFAULT_THREADS = 3


class _Workers:
    """
    C{count} threads running the calls of one queue, their outcomes fired
    in the reactor's thread.
    """

    def __init__(self, reactor, count: int, name: str):
        self._reactor = reactor
        self._queue: SimpleQueue = SimpleQueue()
        #: Outcomes not yet handed to the reactor: (Deferred, result, failed).
        self._done: deque = deque()
        self._doneLock = threading.Lock()
        self._deliveryDue = False
        self._threads: List[threading.Thread] = []
        for number in range(count):
            thread = threading.Thread(target=self._work, name=f"{name}-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def call(self, f: Callable, args: tuple) -> defer.Deferred:
        d = defer.Deferred()
        self._queue.put((d, f, args))
        return d

    def _work(self) -> None:
        get, done, lock = self._queue.get, self._done, self._doneLock
        while True:
            work = get()
            if work is None:
                return
            d, f, args = work
            try:
                outcome, failed = f(*args), False
            except BaseException:
                outcome, failed = Failure(), True
            del work, f, args
            with lock:
                done.append((d, outcome, failed))
                wake, self._deliveryDue = not self._deliveryDue, True
            del d, outcome
            if wake:
                self._reactor.callFromThread(self._deliver)

    def _deliver(self) -> None:
        # In the reactor's thread: everything done so far, with one wake-up.
        with self._doneLock:
            self._deliveryDue = False
            done = list(self._done)
            self._done.clear()
        for d, outcome, failed in done:
            if failed:
                d.errback(outcome)
            else:
                d.callback(outcome)

    def stop(self) -> None:
        """
        Return once the work running and queued is done and the threads
        have ended (its last outcomes are handed to the reactor as usual).
        """
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()


class StorePool(Service):
    """
    A thread pool of C{threads} threads, started when first used and
    stopped (waiting for the work it runs) when this service stops or the
    reactor shuts down, whichever comes first; used again after, it starts
    anew.

    @ivar threads: The threads it runs.
    """

    name = "store-pool"

    def __init__(self, reactor, threads: int = DEFAULT_THREADS):
        self.reactor = reactor
        self.threads = threads
        self._pool: Optional[_Workers] = None
        self._trigger = None

    def runBlocking(self, f: Callable, *args) -> defer.Deferred:
        """
        Run C{f(*args)} in one of the pool's threads.

        @return: A Deferred firing (in the reactor thread) with its result.
        """
        if self._pool is None:
            self._pool = _Workers(self.reactor, self.threads, "fbtwist-store")
            self._trigger = self.reactor.addSystemEventTrigger("during", "shutdown", self._stopPool)
        return self._pool.call(f, args)

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
