"""
Anonymous lookups do not tell who is in the directory: a member who never
published and a name nobody has get the same 404, after the same floor of
time.  In memory with a L{Clock}, and over real HTTP against the demo
directory.
"""

from datetime import datetime, timezone

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.python.filepath import FilePath
from twisted.trial import unittest
from twisted.web.test.requesthelper import DummyRequest

from fbtwist.calendar.freebusy import TimeRange
from fbtwist.directory.nameindex import NameIndex
from fbtwist.store.tree import CalendarStore
from fbtwist.web.lookup import LookupResource, LookupSettings
from tests.helpers import outlookVFB
from tests.memory import startMemoryServer


class _Directory:
    """
    Knows alice, judy and pat; alice and judy are in the name index
    (answered at once), pat only in the directory, and nobody else at all.
    """

    nameIndex = NameIndex({"alice": "alice", "judy": "judy"}, 2)

    def resolveName(self, name):
        return defer.succeed({"judy": "judy", "pat": "pat"}.get(name))


def withoutName(name: str, headers, body: bytes):
    """
    Headers and body of an answer with C{name} taken out of the body (and
    its length out of C{Content-Length}).
    """
    encoded = name.encode("utf-8")
    headers = sorted(
        (key, [b"%d" % (int(values[0]) - len(encoded))] if key.lower() == b"content-length" else values)
        for key, values in headers
    )
    return headers, body.replace(encoded, b"<name>")


class MissFloorTests(unittest.SynchronousTestCase):
    """
    Both kinds of miss wait for the floor, then answer alike.
    """

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1000)
        store = CalendarStore(FilePath(self.mktemp()))
        store.write(("alice.vfb",), outlookVFB())
        self.resource = LookupResource(_Directory(), store, LookupSettings(missDelay=0.05), reactor=self.clock)

    def lookUp(self, name):
        request = DummyRequest([name.encode("utf-8") + b".vfb"])
        request.started = self.clock.seconds()
        self.resource.render(request)
        return request

    def answered(self, name):
        """
        Look C{name} up; check that the answer waits for the floor (0.05 s
        plus at most 0.025 s of jitter) and return it.
        """
        request = self.lookUp(name)
        self.clock.advance(0.049)
        self.assertFalse(request.finished, name)
        self.clock.advance(0.026)
        self.assertTrue(request.finished, name)
        return (request.responseCode,) + withoutName(
            name, request.responseHeaders.getAllRawHeaders(), b"".join(request.written)
        )

    def test_memberAndStrangerAlike(self):
        """
        A member in the name index, a member only the directory knows and a
        name nobody has: the same status, headers and text but for the name,
        none of them sooner than the floor.
        """
        judy, pat, stranger = self.answered("judy"), self.answered("pat"), self.answered("stranger")
        self.assertEqual(judy, stranger)
        self.assertEqual(pat, stranger)
        self.assertEqual(stranger[0], 404)
        self.assertEqual(stranger[2], b"No free/busy times published for <name>.\n")

    def test_publishedAtOnce(self):
        """
        A published file is not held back.
        """
        request = self.lookUp("alice")
        self.assertTrue(request.finished)
        self.assertEqual(request.responseCode or 200, 200)

    def test_pageMissesAlike(self):
        """
        The page's look-ups (busyTimes) of a member who never published and
        of a name nobody has both come back empty only after the floor.
        """
        week = TimeRange(datetime(2021, 1, 4, tzinfo=timezone.utc), datetime(2021, 1, 11, tzinfo=timezone.utc))
        for name in ("judy", "pat", "stranger"):
            d = defer.Deferred.fromCoroutine(self.resource.busyTimes(name, week))
            self.clock.advance(0.049)
            self.assertNoResult(d)
            self.clock.advance(0.026)
            self.assertIsNone(self.successResultOf(d))
        found = defer.Deferred.fromCoroutine(self.resource.busyTimes("alice", week))
        self.assertEqual(len(self.successResultOf(found)), 1)

    def test_floorOff(self):
        """
        With the floor off, a miss is answered at once.
        """
        self.resource = LookupResource(_Directory(), self.resource.store, LookupSettings(missDelay=0),
                                       reactor=self.clock)
        request = self.lookUp("judy")
        self.assertTrue(request.finished)
        self.assertEqual(request.responseCode, 404)


class MissOverHTTPTests(unittest.TestCase):
    """
    The same against a whole server and the demo directory.
    """

    def setUp(self):
        self.server = startMemoryServer(self)
        self.http = self.server.client()

    async def answer(self, name):
        response = await self.http.get(self.server.url(f"/calendar/{name}.vfb"))
        body = await response.content()
        headers = [(k, v) for k, v in response.headers.getAllRawHeaders() if k.lower() != b"date"]
        return (response.code,) + withoutName(name, headers, body)

    async def test_memberAndStrangerAlike(self):
        """
        carol (in the directory, never published) and a made-up name get
        the same status, headers and body but for the name.
        """
        carol = await self.answer("carol")
        stranger = await self.answer("zzyzx")
        self.assertEqual(carol, stranger)
        self.assertEqual(carol[:1], (404,))
        self.assertEqual(carol[2], b"No free/busy times published for <name>.\n")
