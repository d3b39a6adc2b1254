"""
WebDAV on a whole fbtwist on loopback where the store's blocking work runs
in the reactor's thread pool: a LOCK granted while a PUT's body is being
written.
"""

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from tests.davhelpers import DAVClient, lockBody, recordEvents, startDAVServer
from tests.helpers import inline, outlookVFB


class LockWhileWritingTests(unittest.TestCase):
    """
    A PUT held in the thread pool while a LOCK comes in.
    """

    async def _setUp(self):
        self.server = await startDAVServer(self)
        self.dav = DAVClient(self, self.server)
        self.events = recordEvents(self)

    def setUp(self):
        return defer.Deferred.fromCoroutine(self._setUp())

    @inline
    async def test_lockTakenWhileWriting(self):
        """
        A LOCK granted while a PUT's body is being written to disk (in the
        thread pool) wins: the PUT is 423 and the old file stays.
        """
        path = "/pub/calendar/alice.vfb"
        await self.dav.request("PUT", path, body=outlookVFB())
        store = self.server.store
        # The store's own threads commit it (not the commit process, which
        # holds its temporary file's lock from the start: a LOCK then waits
        # for the PUT, tests.integration.test_committer).
        store.committer = None
        threaded, held = store.runBlocking, []

        def runBlocking(f, *args):
            d = defer.Deferred()
            held.append(lambda: threaded(f, *args).chainDeferred(d))
            return d

        store.runBlocking = runBlocking
        putting = defer.ensureDeferred(self.dav.request("PUT", path, body=outlookVFB("x@example.com")))
        for _ in range(500):
            if held:
                break
            await task.deferLater(reactor, 0.01)
        store.runBlocking = threaded
        response, _ = await self.dav.request("LOCK", path, login="admin", body=lockBody())
        self.assertEqual(response.code, 200)
        held.pop()()
        response, _ = await putting
        self.assertEqual(response.code, 423)
        self.assertEqual(store.read(("alice.vfb",)), outlookVFB())
