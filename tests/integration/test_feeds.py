"""
Users' calendar feeds, over real loopback HTTP: a user registers an ICS
feed on C{/feeds}, served by a local HTTP server of the test's (changed,
unchanged, gone, garbage, slow); fbtwist fetches it with its real fetcher,
derives the busy time, and merges it into the user's answers.
"""

import re
from urllib.parse import urlencode

from twisted.internet import defer, reactor, task
from twisted.trial import unittest
from twisted.web import resource, server

from fbtwist.access.feeds import FeedStore
from tests.helpers import basicAuth, httpClient, startServer
from tests.unit.test_lookup import EVENT_YEAR, EVENTS, periodsOf, vfb

RANGE = f"?start={EVENT_YEAR}1124T000000Z&end={EVENT_YEAR}1125T000000Z"
OTHER_EVENT = EVENTS.replace(b"T100000", b"T140000").replace(b"T113000", b"T150000")


class FeedOrigin(resource.Resource):
    """
    The feed's server: answers with C{body} and an ETag, 304 to a matching
    If-None-Match, or C{status}, after C{delay} seconds.
    """

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.body = EVENTS
        self.status = 200
        self.delay = 0.0
        self.requests = []

    def render_GET(self, request):
        self.requests.append(request.getHeader(b"If-None-Match"))
        etag = b'"%d"' % hash(self.body)

        def answer():
            if request._disconnected:  # the fetcher gave up (a slow answer)
                return
            request.setResponseCode(self.status)
            if self.status == 200 and request.getHeader(b"If-None-Match") == etag:
                request.setResponseCode(304)
            elif self.status == 200:
                request.setHeader(b"ETag", etag)
                request.setHeader(b"Content-Type", b"text/calendar")
                request.write(self.body)
            request.finish()

        if self.delay:
            reactor.callLater(self.delay, answer)
        else:
            answer()
        return server.NOT_DONE_YET


class FeedTests(unittest.TestCase):
    """
    A user's feed, registered on the page, merged into their answer.
    """

    async def _setUp(self):
        self.origin = FeedOrigin()
        port = reactor.listenTCP(0, server.Site(self.origin), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.feedURL = f"http://127.0.0.1:{port.getHost().port}/private/secret-token/basic.ics"
        self.server = await startServer(
            self, "--federation-allow-networks", "127.0.0.0/8", "--feed-interval", "3600",
            "--federation-timeout", "1", "--feeds-per-user", "2")
        self.http = httpClient(self)
        self.refresher = self.server.service.getServiceNamed("feeds").refresher

    def setUp(self):
        return defer.Deferred.fromCoroutine(self._setUp())

    async def post(self, fields, login="alice", headers=None, token=True):
        if token:
            # The form's token, from the page, as a browser sends it.
            _, page = await self.get("/feeds", basicAuth(login))
            fields = dict(fields, token=re.search(rb'name="token" value="([^"]+)"', page).group(1).decode())
        response = await self.http.post(
            self.server.url("/feeds"), data=urlencode(fields).encode("ascii"), allow_redirects=False,
            headers={**basicAuth(login), b"Content-Type": [b"application/x-www-form-urlencoded"], **(headers or {})})
        return response, await response.content()

    async def get(self, path, headers=None):
        response = await self.http.get(self.server.url(path), headers=headers or {})
        return response, await response.content()

    async def register(self):
        response, body = await self.post({"action": "add", "url": self.feedURL})
        self.assertEqual(response.code, 303, body)
        await self.refresher.refresh("alice")

    async def busy(self, name="alice"):
        response, body = await self.get(f"/calendar/{name}.vfb{RANGE}")
        self.assertEqual(response.code, 200, body)
        return [p[:2] for p in periodsOf(body)[0]], body

    @defer.inlineCallbacks
    def test_feedMergedIntoAnswer(self):
        """
        A registered feed's busy time is alice's answer; with a published file, both are merged; no detail leaves.
        """
        yield defer.Deferred.fromCoroutine(self.register())
        periods, body = yield defer.Deferred.fromCoroutine(self.busy())
        self.assertEqual(periods, [(f"{EVENT_YEAR}1124T090000Z", f"{EVENT_YEAR}1124T103000Z")])
        self.assertNotIn(b"Secret", body)
        self.assertNotIn(b"Boardroom", body)
        self.server.store.write(("alice.vfb",), vfb(f"FREEBUSY:{EVENT_YEAR}1124T150000Z/{EVENT_YEAR}1124T160000Z"))
        periods, _ = yield defer.Deferred.fromCoroutine(self.busy())
        self.assertEqual(periods, [(f"{EVENT_YEAR}1124T090000Z", f"{EVENT_YEAR}1124T103000Z"),
                                   (f"{EVENT_YEAR}1124T150000Z", f"{EVENT_YEAR}1124T160000Z")])

    @defer.inlineCallbacks
    def test_changedAndUnchanged(self):
        """
        An unchanged feed is fetched conditionally (304 keeps the busy time); a changed one replaces it.
        """
        yield defer.Deferred.fromCoroutine(self.register())
        yield self.refresher.refresh("alice")
        self.assertIsNone(self.origin.requests[0])
        self.assertIsNotNone(self.origin.requests[1])
        periods, _ = yield defer.Deferred.fromCoroutine(self.busy())
        self.assertEqual(len(periods), 1)
        self.origin.body = OTHER_EVENT
        yield self.refresher.refresh("alice")
        periods, _ = yield defer.Deferred.fromCoroutine(self.busy())
        self.assertEqual(periods, [(f"{EVENT_YEAR}1124T130000Z", f"{EVENT_YEAR}1124T140000Z")])

    @defer.inlineCallbacks
    def test_goneGarbageSlow(self):
        """
        Garbage and a slow server keep the last busy time and say why on the page; a gone feed's busy time goes.
        """
        yield defer.Deferred.fromCoroutine(self.register())
        self.origin.body = b"<html>login first</html>"
        yield self.refresher.refresh("alice")
        _, page = yield defer.Deferred.fromCoroutine(self.get("/feeds", basicAuth("alice")))
        self.assertIn(b"not a calendar", page)
        periods, _ = yield defer.Deferred.fromCoroutine(self.busy())
        self.assertEqual(len(periods), 1)
        self.origin.body, self.origin.delay = EVENTS, 3.0
        yield self.refresher.refresh("alice")
        _, page = yield defer.Deferred.fromCoroutine(self.get("/feeds", basicAuth("alice")))
        self.assertIn(b"did not answer in time", page)
        self.origin.delay, self.origin.status = 0.0, 404
        yield self.refresher.refresh("alice")
        _, page = yield defer.Deferred.fromCoroutine(self.get("/feeds", basicAuth("alice")))
        self.assertIn(b"the feed is gone", page)
        response, _ = yield defer.Deferred.fromCoroutine(self.get(f"/calendar/alice.vfb{RANGE}"))
        self.assertEqual(response.code, 404)
        yield task.deferLater(reactor, 3.1, lambda: None)  # the slow answer's timer

    @defer.inlineCallbacks
    def test_pageOwnerOnly(self):
        """
        The page needs a login, shows the feed's URL and last fetch to its owner only, and refuses other sites' forms.
        """
        yield defer.Deferred.fromCoroutine(self.register())
        response, page = yield defer.Deferred.fromCoroutine(self.get("/feeds", basicAuth("alice")))
        self.assertEqual(response.code, 200)
        self.assertIn(self.feedURL.encode("ascii"), page)
        self.assertIn(b"1 busy periods", page)
        self.assertIn(b"default-src 'none'", response.headers.getRawHeaders(b"Content-Security-Policy")[0])
        self.assertNotIn(b"<script", page)
        self.assertNotIn(b"style=", page)
        response, page = yield defer.Deferred.fromCoroutine(self.get("/feeds", basicAuth("bsmith")))
        self.assertNotIn(b"secret-token", page)
        response, _ = yield defer.Deferred.fromCoroutine(self.get("/feeds"))
        self.assertEqual(response.code, 401)
        response, _ = yield defer.Deferred.fromCoroutine(
            self.post({"action": "add", "url": "https://evil.example/x.ics"},
                      headers={b"Origin": [b"https://evil.example"]}))
        self.assertEqual(response.code, 403)
        response, _ = yield defer.Deferred.fromCoroutine(
            self.post({"action": "add", "url": "https://evil.example/x.ics"}, token=False))
        self.assertEqual(response.code, 403)

    @defer.inlineCallbacks
    def test_limitsAndRemoval(self):
        """
        At most --feeds-per-user feeds; a bad URL is refused in words; a removed feed stops counting.
        """
        yield defer.Deferred.fromCoroutine(self.register())
        response, page = yield defer.Deferred.fromCoroutine(self.post({"action": "add", "url": "file:///etc/passwd"}))
        self.assertEqual(response.code, 400)
        self.assertIn(b"only http and https", page)
        response, _ = yield defer.Deferred.fromCoroutine(self.post({"action": "add", "url": self.feedURL + "?2"}))
        self.assertEqual(response.code, 303)
        response, page = yield defer.Deferred.fromCoroutine(self.post({"action": "add", "url": self.feedURL + "?3"}))
        self.assertEqual(response.code, 400)
        self.assertIn(b"at most 2 feeds", page)
        feeds = FeedStore(self.server.store).feeds("alice")
        response, _ = yield defer.Deferred.fromCoroutine(self.post({"action": "remove", "id": feeds[0].id}))
        self.assertEqual(response.code, 303)
        self.assertEqual([f.url for f in FeedStore(self.server.store).feeds("alice")], [self.feedURL + "?2"])

    def test_groupMergesFeeds(self):
        """
        alice's feed (and nothing published) counts in the group team's answer.
        """
        return defer.Deferred.fromCoroutine(self._groupMergesFeeds())

    async def _groupMergesFeeds(self):
        await self.register()
        self.server.store.write(("bsmith.vfb",), vfb(f"FREEBUSY:{EVENT_YEAR}1124T150000Z/{EVENT_YEAR}1124T160000Z"))
        response, body = await self.get(f"/calendar/group/team.vfb{RANGE}")
        self.assertEqual(response.code, 200, body)
        self.assertEqual([p[:2] for p in periodsOf(body)[0]],
                         [(f"{EVENT_YEAR}1124T090000Z", f"{EVENT_YEAR}1124T103000Z"),
                          (f"{EVENT_YEAR}1124T150000Z", f"{EVENT_YEAR}1124T160000Z")])
