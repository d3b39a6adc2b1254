"""
Tests for L{fbtwist.store.pool}: the store's own thread pool, with the
real reactor's threads.
"""

import threading

from twisted.internet import defer
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
