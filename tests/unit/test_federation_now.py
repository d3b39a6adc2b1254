"""
Other organisations' answers given without waiting when they are fresh in
memory: L{FetchCache.fresh}, L{FederatedFreeBusy.lookupNow} and
L{FreeBusyVisibility.freeBusyForNow} for an address of another
organisation, on a L{Clock} with a scripted fetcher.
"""

from datetime import datetime, timezone

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from fbtwist.access.visibility import ANONYMOUS_VIEWER, FreeBusyVisibility, Person
from fbtwist.calendar.freebusy import TimeRange
from fbtwist.remote.cache import FetchCache
from fbtwist.remote.federation import parseFederationOption
from fbtwist.remote.fetcher import FetchError, FetchResult
from fbtwist.remote.metrics import CountingMetrics
from fbtwist.remote.source import FederatedFreeBusy, readRemoteFreeBusy
from fbtwist.web.lookupcache import NameCache
from tests.unit.test_lookup import vfb

TEMPLATE = parseFederationOption("partner.example = https://fb.partner.example/fb/%NAME%@%SERVER%.vfb")
BUSY = vfb("FREEBUSY:20210105T090000Z/20210105T100000Z", "FREEBUSY;FBTYPE=BUSY-TENTATIVE:20210106T090000Z/PT1H")
DAY = TimeRange(datetime(2021, 1, 5, tzinfo=timezone.utc), datetime(2021, 1, 6, tzinfo=timezone.utc))


class ScriptedFetcher:
    """
    Records each fetch; the test answers it.
    """

    def __init__(self, clock):
        self.clock = clock
        self.calls = []

    def fetch(self, url, credentials=None, *, validate=None, **kwargs):
        d = defer.Deferred()
        self.calls.append((url, validate, d))
        return d

    def answer(self, body=BUSY):
        url, validate, d = self.calls[-1]
        d.callback(FetchResult(url, 200, body, self.clock.seconds(), etag='"1"', value=validate(body)))

    def fail(self, reason):
        self.calls[-1][2].errback(FetchError(reason, f"it failed: {reason}"))


class _Directory:
    """
    Knows nobody: every name is looked up (and found to be nobody's).
    """

    nameIndex = None

    def __init__(self):
        self.asked = []

    def resolveName(self, name):
        self.asked.append(name)
        return defer.succeed(None)


class FreshAnswerTests(SynchronousTestCase):
    """
    A fresh answer in memory is given at once, by the same rules as the
    waiting path; anything else is left to it.
    """

    def setUp(self):
        self.clock = Clock()
        self.fetcher = ScriptedFetcher(self.clock)
        self.metrics = CountingMetrics()
        self.cache = FetchCache(self.fetcher, self.clock, validate=readRemoteFreeBusy, ttl=60, maxStale=120,
                                retryAfter=30, metrics=self.metrics)
        self.source = FederatedFreeBusy(self.cache, {TEMPLATE.domain: TEMPLATE}, findURL=self.findURL)
        self.directory = _Directory()
        self.visibility = FreeBusyVisibility(None, self.directory, self.clock, federation=self.source,
                                             names=NameCache(clock=self.clock.seconds))

    async def findURL(self, address):
        return "https://cal.elsewhere.example/fb.ifb"

    def ask(self, name, timeRange=DAY):
        """
        The waiting path's answer about C{name}, its fetch answered.
        """
        d = defer.Deferred.fromCoroutine(self.visibility.freeBusyFor(ANONYMOUS_VIEWER, Person(name), timeRange))
        if not d.called:
            self.fetcher.answer()
        return self.successResultOf(d)

    def test_cacheFresh(self):
        """
        FetchCache.fresh gives a fresh answer (a hit) and nothing once it expired or before any fetch.
        """
        url = "https://fb.partner.example/fb/alice@partner.example.vfb"
        self.assertIsNone(self.cache.fresh(url))
        self.cache.get(url)
        self.fetcher.answer()
        self.assertEqual(self.cache.fresh(url).etag, '"1"')
        self.cache.flushHits()
        self.assertEqual(self.metrics.count("hit", "fb.partner.example"), 1)
        self.clock.advance(60)
        self.assertIsNone(self.cache.fresh(url))

    def test_lookupNowAfterLookup(self):
        """
        lookupNow gives the answer lookup fetched, while it is fresh, and None before and after.
        """
        self.assertIsNone(self.source.lookupNow("alice@partner.example"))
        d = defer.Deferred.fromCoroutine(self.source.lookup("alice@partner.example"))
        self.fetcher.answer()
        fetched = self.successResultOf(d)
        self.assertEqual(self.source.lookupNow("alice@partner.example"), fetched)
        self.clock.advance(61)
        self.assertIsNone(self.source.lookupNow("alice@partner.example"))

    def test_lookupNowOnlyTemplates(self):
        """
        lookupNow gives nothing for addresses found through the directory or not addresses at all.
        """
        d = defer.Deferred.fromCoroutine(self.source.lookup("bob@elsewhere.example"))
        self.fetcher.answer()
        self.successResultOf(d)
        self.assertIsNone(self.source.lookupNow("bob@elsewhere.example"))
        self.assertIsNone(self.source.lookupNow("not-an-address"))

    def test_visibilityNowAgrees(self):
        """
        freeBusyForNow about another organisation's address is None until its answer is in memory, then
        the answer freeBusyFor gives (clipped to the range), without a fetch.
        """
        self.assertIsNone(self.visibility.freeBusyForNow(ANONYMOUS_VIEWER, Person("alice@partner.example"), DAY))
        waited = self.ask("alice@partner.example")
        now = self.visibility.freeBusyForNow(ANONYMOUS_VIEWER, Person("alice@partner.example"), DAY)
        self.assertEqual(now, waited)
        self.assertEqual([(p.start.hour, p.end.hour) for p in now.freeBusy.periods], [(9, 10)])
        self.assertEqual(len(self.fetcher.calls), 1)

    def test_visibilityNowWithoutDirectory(self):
        """
        While the other organisation's answer is fresh, the directory is not asked again about its address
        (it was asked before the fetch), also once the name cache forgot that nobody here has it.
        """
        self.ask("alice@partner.example")
        self.assertEqual(self.directory.asked, ["alice@partner.example"])
        self.clock.advance(30)  # the name cache keeps "nobody" for 10 seconds
        self.assertEqual(self.visibility.names.get("alice@partner.example"), (False, None))
        self.assertIsNotNone(self.visibility.freeBusyForNow(ANONYMOUS_VIEWER, Person("alice@partner.example"), DAY))
        self.assertEqual(self.directory.asked, ["alice@partner.example"])
        self.assertIsNone(self.visibility.freeBusyForNow(ANONYMOUS_VIEWER, Person("bob@elsewhere.example"), DAY))

    def test_visibilityNowNotStale(self):
        """
        Once the answer expired, freeBusyForNow leaves it to freeBusyFor (which asks again, or marks it stale).
        """
        self.ask("alice@partner.example")
        self.clock.advance(61)
        self.assertIsNone(self.visibility.freeBusyForNow(ANONYMOUS_VIEWER, Person("alice@partner.example"), DAY))
        d = defer.Deferred.fromCoroutine(
            self.visibility.freeBusyFor(ANONYMOUS_VIEWER, Person("alice@partner.example"), DAY))
        self.fetcher.fail("connect")
        self.assertTrue(self.successResultOf(d).stale)

    def rememberAnswers(self):
        """
        Have the visibility remember answers (a watch that never tells a change, the versions fixed).
        """
        from fbtwist.access.answers import RememberedAnswers
        from tests.unit.test_answermemory import FakeWatch

        self.visibility.answers = RememberedAnswers(FakeWatch().open, lambda: ("v1",), 1 << 20, self.clock.seconds,
                                                    inReactorThread=lambda: True)
        return self.visibility.answers

    def test_rememberedWhileFresh(self):
        """
        The anonymous reader's answer about another organisation's address, once made of a fresh fetch, is
        given from memory while that fetch is fresh in the cache, each time a hit of the cache; once it expired
        nothing is given; fetched again, the answer is made anew (a ticket of the new fetch), and the signed-in
        reader is never given one.
        """
        answers = self.rememberAnswers()
        alice = Person("alice@partner.example")
        self.assertEqual(self.visibility.rememberedNow(ANONYMOUS_VIEWER, alice), (None, None))
        self.ask("alice@partner.example")
        self.cache.flushHits()
        hits = self.metrics.count("hit", "partner.example")
        answer, ticket = self.visibility.rememberedNow(ANONYMOUS_VIEWER, alice)
        self.assertIsNone(answer)
        self.assertTrue(ticket.remote)
        self.visibility.rememberNow(ticket, ("etag", b"alice's", 1.0))
        for _ in range(3):
            self.assertEqual(self.visibility.rememberedNow(ANONYMOUS_VIEWER, alice), (("etag", b"alice's", 1.0), None))
        self.cache.flushHits()
        self.assertEqual(self.metrics.count("hit", "partner.example"), hits + 3)
        signedIn = type(ANONYMOUS_VIEWER)("bob")
        self.assertEqual(self.visibility.rememberedNow(signedIn, alice), (None, None))
        self.clock.advance(60)
        self.assertEqual(self.visibility.rememberedNow(ANONYMOUS_VIEWER, alice), (None, None))
        self.cache.flushHits()
        self.assertEqual(self.metrics.count("hit", "partner.example"), hits + 3)
        self.ask("alice@partner.example")
        answer, again = self.visibility.rememberedNow(ANONYMOUS_VIEWER, alice)
        self.assertIsNone(answer)
        self.assertIsNot(again.token, ticket.token)
        self.assertEqual(answers.held, 0)
