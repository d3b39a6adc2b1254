"""
GET /healthz: 200 when the tree is writable and the directory answers, 503
with the failing part named otherwise.
"""

import json
import os
from types import SimpleNamespace

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.python.filepath import FilePath
from twisted.trial import unittest

from fbtwist.errors import DirectoryUnavailable
from fbtwist.ops.health import HealthResource
from tests.helpers import inline
from tests.memory import startMemoryServer


class HealthTests(unittest.TestCase):
    """
    The health check against a whole server and the demo directory, in
    memory.
    """

    async def health(self, server):
        response = await server.client().get(server.url("/healthz"))
        body = await response.content()
        self.assertEqual(response.headers.getRawHeaders(b"Content-Type"), [b"application/json"])
        self.assertEqual(response.headers.getRawHeaders(b"Cache-Control"), [b"no-store"])
        return response.code, json.loads(body)

    @inline
    async def test_healthy(self):
        """
        Both parts work: 200, and the probe leaves no file in the tree.
        """
        server = startMemoryServer(self)
        self.assertEqual(await self.health(server), (200, {"status": "ok", "tree": "ok", "directory": "ok"}))
        self.assertEqual(os.listdir(server.store.root.path), [])

    @inline
    async def test_directoryDown(self):
        """
        A directory nobody listens at: 503, naming the directory and not the
        server's address.
        """
        server = startMemoryServer(
            self, "--ldap", "ldap://127.0.0.1:389/dc=example,dc=com", "--ldap-timeout", "2",
        )
        code, body = await self.health(server)
        self.assertEqual((code, body), (503, {"status": "fail", "tree": "ok", "directory": "unavailable"}))

    @inline
    async def test_directoryStopped(self):
        """
        The demo directory stopped while the server runs: 503, then 200 again
        once it is back.
        """
        server = startMemoryServer(self)
        server.service.health.maxAge = 0
        self.assertEqual((await self.health(server))[0], 200)
        demo = server.service.getServiceNamed("ldap-demo")
        port = demo.port
        await port.stopListening()
        server.directory.close()
        code, body = await self.health(server)
        self.assertEqual((code, body["directory"]), (503, "unavailable"))
        demo.startService()
        self.addCleanup(lambda: demo.port.stopListening())
        # The directory reconnects once its back-off delay (0.25 s after one
        # failure) has passed.
        for attempt in range(30):
            answer = await self.health(server)
            if answer[0] == 200:
                break
            server.network.advance(0.1)
        self.assertEqual(answer, (200, {"status": "ok", "tree": "ok", "directory": "ok"}))

    @inline
    async def test_treeNotWritable(self):
        """
        A tree that cannot be written (here: gone): 503 naming the tree.
        """
        server = startMemoryServer(self)
        server.store.root.remove()
        code, body = await self.health(server)
        self.assertEqual((code, body), (503, {"status": "fail", "tree": "not writable", "directory": "ok"}))


class _Directory:
    """
    A directory whose searches the test answers.
    """

    url = SimpleNamespace(attribute="uid")

    def __init__(self):
        self.searches = []

    def search(self, filterObject, attributes):
        d = defer.Deferred()
        self.searches.append(d)
        return d


class HealthCacheTests(unittest.SynchronousTestCase):
    """
    Checks are shared and rate-limited.
    """

    def setUp(self):
        self.clock = Clock()
        self.directory = _Directory()
        root = FilePath(self.mktemp())
        root.makedirs()
        self.health = HealthResource(root, self.directory, clock=self.clock, maxAge=1.0)

    def test_shared(self):
        """
        Requests while a check runs wait for it instead of searching again.
        """
        first, second = self.health.check(), self.health.check()
        self.assertEqual(len(self.directory.searches), 1)
        self.directory.searches[0].callback([])
        ok = {"status": "ok", "tree": "ok", "directory": "ok"}
        self.assertEqual((self.successResultOf(first), self.successResultOf(second)), (ok, ok))

    def test_cachedBriefly(self):
        """
        An answer is reused for maxAge seconds, then checked afresh.
        """
        self.health.check()
        self.directory.searches[0].errback(DirectoryUnavailable())
        self.clock.advance(0.9)
        self.assertEqual(self.successResultOf(self.health.check())["directory"], "unavailable")
        self.assertEqual(len(self.directory.searches), 1)
        self.clock.advance(0.2)
        fresh = self.health.check()
        self.assertEqual(len(self.directory.searches), 2)
        self.directory.searches[1].callback([])
        self.assertEqual(self.successResultOf(fresh)["status"], "ok")

    def test_directoryError(self):
        """
        A directory that answers with an error counts as failing.
        """
        d = self.health.check()
        self.directory.searches[0].errback(ValueError("no such attribute"))
        self.assertEqual(self.successResultOf(d), {"status": "fail", "tree": "ok", "directory": "error"})
