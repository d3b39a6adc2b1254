"""
Lookups of other organisations' addresses wired over real loopback HTTP:
server A (C{--federate partner.example=...}) answering for a user of server
B, fetched with fbtwist's real fetcher, cached, marked stale while B is
down, then 503 (the lookups' logic on a clock is tested in
L{tests.unit.test_federation}).
"""

import json
from datetime import date, timedelta

from twisted.internet import defer, task
from twisted.trial import unittest

from tests.helpers import httpClient, startServer
from tests.unit.test_federation import BUSY
from tests.unit.test_lookup import periodsOf, vfb


def sleep(seconds: float) -> defer.Deferred:
    from twisted.internet import reactor

    return task.deferLater(reactor, seconds, lambda: None)


class TwoServers:
    """
    Server A looks up alice@partner.example at server B (whose demo
    directory has alice@example.com), over real loopback HTTP.
    """

    ttl = "30"
    maxStale = "30"

    async def _setUp(self):
        self.accessLog = self.mktemp()
        self.b = await startServer(self, "--access-log", self.accessLog)
        self.b.store.write(("alice.vfb",), BUSY)
        self.a = await startServer(
            self, "--federate", f"partner.example=http://127.0.0.1:{self.b.port}/calendar/%NAME%@example.com.vfb",
            "--federate-group", f"partner.example=http://127.0.0.1:{self.b.port}/calendar/group/%NAME%.vfb",
            "--federation-allow-networks", "127.0.0.0/8", "--federation-ttl", self.ttl,
            "--federation-max-stale", self.maxStale)
        self.http = httpClient(self)

    def setUp(self):
        return defer.Deferred.fromCoroutine(self._setUp())

    async def get(self, path, server=None):
        response = await self.http.get((server or self.a).url(path))
        return response, await response.content()

    def fetchesAtB(self) -> int:
        """
        How many of B's requests were for alice's file (B's access log
        service stopped first, so that its file is complete).
        """
        accessLog = self.b.service.getServiceNamed("access-log")
        if accessLog.running:
            accessLog.stopService()
        with open(self.accessLog, encoding="utf-8") as f:
            return sum("/calendar/alice@example.com.vfb" in line for line in f)


class TwoServerTests(TwoServers, unittest.TestCase):
    """
    A's answers for B's user: as local ones, cached.
    """

    @defer.inlineCallbacks
    def test_lookupLikeLocal(self):
        """
        A's answer for alice@partner.example is B's periods in A's public view, as a local answer is.
        """
        response, body = yield defer.Deferred.fromCoroutine(self.get("/calendar/alice@partner.example.vfb"))
        self.assertEqual(response.code, 200)
        periods, component = periodsOf(body)
        self.assertEqual(periods, [("20210105T090000Z", "20210105T100000Z", None),
                                   ("20210106T090000Z", "20210106T100000Z", "BUSY-TENTATIVE")])
        self.assertEqual(str(component["DTSTART"].dt.date()), "2021-01-04")
        self.assertIsNone(response.headers.getRawHeaders(b"X-Fbtwist-Stale"))

    @defer.inlineCallbacks
    def test_rangeJCalAndVariants(self):
        """
        %40, .ifb, a range (clipped), jCal and fbtype=explicit work as for a local user.
        """
        path = "/calendar/alice%40partner.example.ifb?start=20210105T093000Z&end=20210106T000000Z"
        response, body = yield defer.Deferred.fromCoroutine(self.get(path))
        periods, component = periodsOf(body)
        self.assertEqual(periods, [("20210105T093000Z", "20210105T100000Z", None)])
        response, body = yield defer.Deferred.fromCoroutine(
            self.get(path + "&format=application/calendar%2Bjson"))
        self.assertEqual(response.headers.getRawHeaders(b"Content-Type")[0].split(b";")[0],
                         b"application/calendar+json")
        self.assertIn("freebusy", json.dumps(json.loads(body)))
        response, body = yield defer.Deferred.fromCoroutine(
            self.get("/calendar/alice@partner.example.vfb?fbtype=explicit"))
        self.assertEqual(response.code, 200)
        self.assertIn(b"FBTYPE=BUSY:", body)

    @defer.inlineCallbacks
    def test_oneFetchForManyLookups(self):
        """
        Many lookups within the TTL cost B one request (B's access log), and A's metrics count them.
        """
        for _ in range(5):
            response, _ = yield defer.Deferred.fromCoroutine(self.get("/calendar/alice@partner.example.vfb"))
            self.assertEqual(response.code, 200)
        self.assertEqual(self.fetchesAtB(), 1)
        _, metrics = yield defer.Deferred.fromCoroutine(self.get("/metrics"))
        self.assertIn(b'fbtwist_remote_fetches_total{domain="partner.example",event="hit",reason="none"} 4.0',
                      metrics)
        self.assertIn(b'fbtwist_remote_fetches_total{domain="partner.example",event="fetch",reason="none"} 1.0',
                      metrics)

    @defer.inlineCallbacks
    def test_groupAtB(self):
        """
        A's /calendar/group/team@partner.example.vfb is B's group team merged (B's window), clipped to a range, as jCal.
        """
        day = (date.today() + timedelta(days=2)).strftime("%Y%m%d")
        self.b.store.write(("alice.vfb",), vfb(f"FREEBUSY:{day}T090000Z/{day}T100000Z"))
        self.b.store.write(("bsmith.vfb",), vfb(f"FREEBUSY:{day}T093000Z/{day}T110000Z"))
        path = f"/calendar/group/team@partner.example.vfb?start={day}T000000Z&end={day}T103000Z"
        response, body = yield defer.Deferred.fromCoroutine(self.get(path))
        self.assertEqual(response.code, 200, body)
        self.assertEqual(periodsOf(body)[0], [(f"{day}T090000Z", f"{day}T103000Z", None)])
        response, body = yield defer.Deferred.fromCoroutine(self.get(path + "&format=application/calendar%2Bjson"))
        self.assertEqual(response.code, 200)
        self.assertEqual(json.loads(body)[0], "vcalendar")
        self.assertIn(f"{day[:4]}-{day[4:6]}-{day[6:]}T10:30:00Z", body.decode("utf-8"))
        response, _ = yield defer.Deferred.fromCoroutine(self.get("/calendar/group/nogroup@partner.example.vfb"))
        self.assertEqual(response.code, 404)

    @defer.inlineCallbacks
    def test_peoplePage(self):
        """
        The people page shows a federated address's busy time as a local person's.
        """
        response, body = yield defer.Deferred.fromCoroutine(
            self.get("/calendar/?who=alice@partner.example&week=2021-01-04"))
        self.assertEqual(response.code, 200, body)
        self.assertIn(b"alice@partner.example", body)
        self.assertNotIn(b'class="missing"', body)
        response, body = yield defer.Deferred.fromCoroutine(
            self.get("/calendar/?who=nobody@partner.example&week=2021-01-04"))
        self.assertIn(b'class="missing"', body)

    @defer.inlineCallbacks
    def test_absentAtB(self):
        """
        A name B has nothing for is 404 at A, as a local miss.
        """
        response, _ = yield defer.Deferred.fromCoroutine(self.get("/calendar/nobody@partner.example.vfb"))
        self.assertEqual(response.code, 404)
        response, _ = yield defer.Deferred.fromCoroutine(self.get("/calendar/bob@unknown.example.vfb"))
        self.assertEqual(response.code, 404)

    @defer.inlineCallbacks
    def test_localUsersFirst(self):
        """
        A's own users are answered from A's tree, whatever is federated.
        """
        self.a.store.write(("carol.vfb",), BUSY)
        response, _ = yield defer.Deferred.fromCoroutine(self.get("/calendar/carol@example.com.vfb"))
        self.assertEqual(response.code, 200)
        self.assertEqual(self.fetchesAtB(), 0)


class RefreshTests(TwoServers, unittest.TestCase):
    """
    A's answer for B's user, remembered in memory (C{--answer-memory}), no
    longer than B's answer stays fresh in A's cache.
    """

    ttl = "0.5"

    @defer.inlineCallbacks
    def test_newVersionOnceExpired(self):
        """
        Asked again within the TTL, the same answer (from memory); B's new version once the TTL is over.
        """
        path = "/calendar/alice@partner.example.vfb"
        bodies = []
        for _ in range(3):
            response, body = yield defer.Deferred.fromCoroutine(self.get(path))
            self.assertEqual(response.code, 200)
            bodies.append(body)
        self.assertEqual(bodies[1:], bodies[:1] * 2)
        answers = self.a.service.portal.realm.visibility.answers
        self.assertGreaterEqual(answers.hits, 1)
        self.b.store.write(("alice.vfb",), vfb("FREEBUSY:20210107T090000Z/20210107T100000Z"))
        yield sleep(0.6)
        response, body = yield defer.Deferred.fromCoroutine(self.get(path))
        self.assertEqual(periodsOf(body)[0], [("20210107T090000Z", "20210107T100000Z", None)])
        self.assertEqual(self.fetchesAtB(), 2)


class OutageTests(TwoServers, unittest.TestCase):
    """
    B stopped: A's stale answer, then 503.
    """

    ttl = "0.5"
    # The stale answer must come within the window after B's stop and the
    # failed fetch, which on a loaded machine took past a window of 1 s.
    maxStale = "3"

    @defer.inlineCallbacks
    def test_staleThen503(self):
        """
        While B is down A serves its last answer marked stale; past the stale window, 503 with Retry-After.
        """
        response, _ = yield defer.Deferred.fromCoroutine(self.get("/calendar/alice@partner.example.vfb"))
        self.assertEqual(response.code, 200)
        yield defer.Deferred.fromCoroutine(self.b.stop())
        yield sleep(0.6)
        response, body = yield defer.Deferred.fromCoroutine(self.get("/calendar/alice@partner.example.vfb"))
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders(b"X-Fbtwist-Stale"), [b"1"])
        self.assertEqual(response.headers.getRawHeaders(b"Warning"), [b'110 - "Response is Stale"'])
        self.assertEqual(len(periodsOf(body)[0]), 2)
        yield sleep(3.0)
        response, body = yield defer.Deferred.fromCoroutine(self.get("/calendar/alice@partner.example.vfb"))
        self.assertEqual(response.code, 503)
        self.assertTrue(response.headers.getRawHeaders(b"Retry-After"))
        self.assertIn(b"partner.example", body)

