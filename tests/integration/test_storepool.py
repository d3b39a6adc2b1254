"""
Tests for L{fbtwist.store.pool}: the store's own thread pool, with the
real reactor's threads.
"""

import threading
import time

from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.trial import unittest

from fbtwist.store.pool import StorePool
from fbtwist.tap import Options, makeService


class StorePoolTests(unittest.TestCase):
    """
    L{StorePool} runs the store's blocking work in at most its number of
    threads, and stops with its service.
    """

    def setUp(self):
        from twisted.internet import reactor

        self.reactor = reactor

    def test_atMostItsThreads(self):
        """
        Work given to a pool of two threads runs in two threads, both at once.
        """
        pool = StorePool(self.reactor, 2)
        self.addCleanup(pool.stopService)
        both = threading.Barrier(2, timeout=30)

        def work():
            both.wait()
            return threading.current_thread()

        d = defer.gatherResults([pool.runBlocking(work) for _ in range(6)])

        def check(threads):
            self.assertEqual(len(set(threads)), 2)
            self.assertNotIn(threading.main_thread(), threads)

        return d.addCallback(check)

    def test_oneThread(self):
        """
        A pool of one thread runs everything given to it in that thread, one
        after the other.
        """
        pool = StorePool(self.reactor, 1)
        self.addCleanup(pool.stopService)
        d = defer.gatherResults([pool.runBlocking(threading.current_thread) for _ in range(5)])
        return d.addCallback(lambda threads: self.assertEqual(len(set(threads)), 1))

    def test_stopsWithService(self):
        """
        Stopping the service ends its threads once their work is done; used
        again, the pool starts anew.
        """
        pool = StorePool(self.reactor, 2)
        pool.startService()
        first = []

        def stop(thread):
            first.append(thread)
            pool.stopService()
            self.assertFalse(thread.is_alive())
            return pool.runBlocking(threading.current_thread)

        def check(thread):
            pool.stopService()
            self.assertIsNot(thread, first[0])
            self.assertFalse(thread.is_alive())

        return pool.runBlocking(threading.current_thread).addCallback(stop).addCallback(check)

    def test_failure(self):
        """
        What the work raises fails its Deferred, in the reactor's thread;
        the pool goes on.
        """
        pool = StorePool(self.reactor, 1)
        self.addCleanup(pool.stopService)

        def fail():
            raise ZeroDivisionError("no")

        failed = self.assertFailure(pool.runBlocking(fail), ZeroDivisionError)
        failed.addCallback(lambda _: self.assertIs(threading.current_thread(), threading.main_thread()))
        return failed.addCallback(lambda _: pool.runBlocking(lambda x: x * 2, 21)).addCallback(
            self.assertEqual, 42)

    def test_oneWakeUpForResultsTogether(self):
        """
        Results that end while the reactor is busy are handed to it with one
        wake-up (one C{callFromThread}), each Deferred fired with its own.
        """
        reactor = CountingReactor(self.reactor)
        pool = StorePool(reactor, 2)
        self.addCleanup(pool.stopService)
        ended = threading.Semaphore(0)

        def work(n):
            ended.release()
            return n * n

        ds = [pool.runBlocking(work, n) for n in range(6)]
        # The reactor's thread (this one) is busy until all have ended.
        for _ in ds:
            self.assertTrue(ended.acquire(timeout=30))
        deadline = time.monotonic() + 30
        while reactor.calls < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)
        self.assertEqual(reactor.calls, 1)
        return defer.gatherResults(ds).addCallback(self.assertEqual, [n * n for n in range(6)])

    def test_laterAndAfterwards(self):
        """
        A call returning an L{Afterwards} has its value handed over before
        its work runs; one returning a L{Later} has its Deferred fired with
        what another thread resolves it with, a failure included.
        """
        from fbtwist.store.pool import Afterwards, Later

        pool = StorePool(self.reactor, 2)
        self.addCleanup(pool.stopService)
        later, failing, release = Later(), Later(), threading.Event()
        handedOver = []

        def afterwards():
            return Afterwards("first", lambda: (release.wait(30), later.resolve("joined"),
                                                failing.resolve(Failure(ZeroDivisionError()), True)))

        first = pool.runBlocking(afterwards).addCallback(handedOver.append)
        joined = pool.runBlocking(lambda: later)
        failed = self.assertFailure(pool.runBlocking(lambda: failing), ZeroDivisionError)

        def firstHandedOver(_):
            # Its work still waits: the others have no outcome yet.
            self.assertEqual(handedOver, ["first"])
            self.assertFalse(joined.called)
            release.set()
            return defer.gatherResults([joined, failed])

        return first.addCallback(firstHandedOver).addCallback(lambda results: self.assertEqual(results[0], "joined"))

    def test_stopWaitsForQueuedWork(self):
        """
        Stopping waits for the work queued as well as the work running.
        """
        pool = StorePool(self.reactor, 1)
        done = []

        def work(n):
            time.sleep(0.02)
            done.append(n)

        ds = [pool.runBlocking(work, n) for n in range(4)]
        pool.stopService()
        self.assertEqual(done, [0, 1, 2, 3])
        return defer.gatherResults(ds)

    def test_makeService(self):
        """
        C{--store-threads} sizes the pool of the store, a child of the top
        service named C{store-pool}.
        """
        options = Options()
        options.parseOptions(["--root", self.mktemp(), "--http", "tcp:0", "--ftp", "none",
                              "--store-threads", "5"])
        top = makeService(options, reactor=self.reactor)
        pool = top.getServiceNamed("store-pool")
        self.assertEqual(pool.threads, 5)
        self.assertEqual(top.store.runBlocking, pool.runBlocking)


class CountingReactor:
    """
    The real reactor, counting the calls given to it from other threads.
    """

    def __init__(self, reactor):
        self._reactor = reactor
        self.calls = 0

    def callFromThread(self, f, *args, **kwargs):
        self.calls += 1
        return self._reactor.callFromThread(f, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._reactor, name)
