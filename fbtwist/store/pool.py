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

A call may give its outcome before it ends (L{Afterwards}: the rest of
its work runs once the outcome is on its way), or leave it to another
thread of the pool (L{Later}): so a commit whose directory's fsync is
run by another thread's call takes one trip, and its outcome reaches
the reactor with that fsync's others, in one wake-up.
"""

import threading
from collections import deque
from functools import partial
from queue import SimpleQueue
from typing import Callable, List, Optional

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

#: The threads of the store's pool by default (C{--store-threads}).
DEFAULT_THREADS = 3

_log = Logger()


class Later:
    """
    What a call of the pool returns when another thread gives its outcome:
    the pool hands that outcome to the reactor once L{resolve} is called
    (in any thread; once).  A runner that is not the pool sees the object
    itself (L{settled} tells whether it has an outcome yet).
    """

    __slots__ = ("_lock", "_outcome", "_receiver")

    def __init__(self):
        self._lock = threading.Lock()
        self._outcome: Optional[tuple] = None
        self._receiver: Optional[Callable] = None

    def resolve(self, outcome, failed: bool = False) -> None:
        """
        Give the outcome: C{outcome} is the result, or a L{Failure} when
        C{failed}.
        """
        with self._lock:
            self._outcome = (outcome, failed)
            receiver = self._receiver
        if receiver is not None:
            receiver(outcome, failed)

    def then(self, receiver: Callable) -> None:
        """
        Have C{receiver(outcome, failed)} called once the outcome is given
        (at once when it was).
        """
        with self._lock:
            self._receiver = receiver
            outcome = self._outcome
        if outcome is not None:
            receiver(*outcome)

    def settled(self) -> Optional[tuple]:
        """
        The outcome and whether it failed, or C{None} while none was given.
        """
        with self._lock:
            return self._outcome


class Afterwards:
    """
    What a call of the pool returns to give its outcome C{value} at once
    and go on with C{work()} in the same thread (the pool's next call waits
    for it); a runner that is not the pool sees the object itself.
    """

    __slots__ = ("value", "work")

    def __init__(self, value, work: Callable[[], None]):
        self.value = value
        self.work = work


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
        get = self._queue.get
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
            kind = type(outcome)
            if kind is Later:
                outcome.then(partial(self._handOver, d))
            elif kind is Afterwards:
                self._handOver(d, outcome.value, False)
                try:
                    outcome.work()
                except BaseException:
                    # Nobody awaits it: said in the log, as the reactor's
                    # pool says an uncaught error.
                    self._reactor.callFromThread(_log.failure, "the store's work after a call failed", Failure())
            else:
                self._handOver(d, outcome, failed)
            del d, outcome

    def _handOver(self, d: defer.Deferred, outcome, failed: bool) -> None:
        # In any of the pool's threads: queued for the reactor, which is
        # woken when nothing queued before has woken it yet.
        with self._doneLock:
            self._done.append((d, outcome, failed))
            wake, self._deliveryDue = not self._deliveryDue, True
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
