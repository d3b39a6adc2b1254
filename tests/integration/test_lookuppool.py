"""
Tests for the pool the store looks names up in for the lookups
(L{fbtwist.tap.buildStore}): a pool of its own, with the real reactor's
threads, so that a lookup does not queue behind publishes' fsyncs.
"""

import os
import threading

from twisted.trial import unittest

from fbtwist.store.cachedlookup import NotCached, lstatCached
from fbtwist.tap import LOOKUP_THREADS, Options, makeService


class LookupPoolTests(unittest.TestCase):
    """
    The store's lookups of names the kernel has not cached run in the
    "lookup-pool", not in the store's pool.
    """

    async def test_ownPool(self):
        """
        makeService gives the store a lookup pool of LOOKUP_THREADS threads,
        a child of the top service beside the store pool, and the store's
        lookUpInThread runs in one of its threads, after which the name is
        cached.
        """
        from twisted.internet import reactor

        options = Options()
        options.parseOptions(["--root", self.mktemp(), "--http", "tcp:0", "--ftp", "none"])
        top = makeService(options, reactor=reactor)
        lookups, store = top.getServiceNamed("lookup-pool"), top.getServiceNamed("store-pool")
        self.addCleanup(lookups.stopService)
        self.addCleanup(store.stopService)
        self.assertEqual(lookups.threads, LOOKUP_THREADS)
        self.assertIsNot(lookups, store)
        self.assertEqual(top.store.lookUpBlocking, lookups.runBlocking)
        path = os.path.join(top.store.root.path, "alice.ics")
        e = self.assertRaises(NotCached, lstatCached, path)
        threads = []
        self.patch(os, "lstat", lambda name, lstat=os.lstat: (threads.append(threading.current_thread().name),
                                                             lstat(name))[1])
        await top.store.lookUpInThread(e)
        self.assertEqual(len(threads), 1)
        self.assertNotEqual(threads[0], threading.main_thread().name)
        self.assertRaises(FileNotFoundError, lstatCached, path)
