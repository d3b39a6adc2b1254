"""
L{FetchCache} on a L{Clock}: freshness, revalidation, stale answers while
the origin is down, remembered 404s, coalescing and bounds.  The fetcher is
scripted by each test (its own behaviour is proved in
L{tests.unit.test_remote_policy} and L{tests.integration.test_remote_loopback}).
"""

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from fbtwist.remote.cache import FetchCache, parseCacheControl
from fbtwist.remote.credentials import Credentials
from fbtwist.remote.fetcher import FetchError, FetchResult
from fbtwist.remote.metrics import CountingMetrics, IRemoteMetrics, NoMetrics

URL = "https://fb.partner.example/freebusy/alice.vfb"
DOMAIN = "partner.example"


class ScriptedFetcher:
    """
    Records each fetch; the test answers it.
    """

    def __init__(self, clock):
        self.clock = clock
        self.calls = []

    def fetch(self, url, credentials=None, **kwargs):
        d = defer.Deferred()
        self.calls.append((url, credentials, kwargs, d))
        return d

    def answer(self, body=b"BEGIN:VCALENDAR v1", status=200, index=-1, **headers):
        self.calls[index][3].callback(FetchResult(URL, status, body, self.clock.seconds(), **headers))

    def fail(self, reason, index=-1):
        self.calls[index][3].errback(FetchError(reason, f"it failed: {reason}"))


class FetchCacheTests(SynchronousTestCase):
    """
    What the cache answers from memory, and when it asks the origin.
    """

    def setUp(self):
        self.clock = Clock()
        self.fetcher = ScriptedFetcher(self.clock)
        self.metrics = CountingMetrics()
        self.cache = self.makeCache()

    def makeCache(self, **kwargs):
        kwargs.setdefault("metrics", self.metrics)
        return FetchCache(self.fetcher, self.clock, **kwargs)

    def get(self, url=URL, cache=None, **kwargs):
        outcome = []
        (cache if cache is not None else self.cache).get(url, domain=DOMAIN, **kwargs).addBoth(outcome.append)
        return outcome

    def fetched(self, body=b"BEGIN:VCALENDAR v1", **headers):
        """
        Get URL, answered by the origin with C{body}.
        """
        outcome = self.get()
        self.fetcher.answer(body, **headers)
        self.assertEqual(outcome[0].body, body)
        return outcome[0]

    def assertFailed(self, outcome, reason):
        self.assertEqual(len(outcome), 1)
        outcome[0].trap(FetchError)
        self.assertEqual(outcome[0].value.reason, reason)

    def test_metricsInterface(self):
        """
        Both metrics implementations provide L{IRemoteMetrics}.
        """
        verifyObject(IRemoteMetrics, NoMetrics())
        verifyObject(IRemoteMetrics, CountingMetrics())

    def test_defaultTTL(self):
        """
        An answer without Cache-Control is fresh for 15 minutes, then asked
        for again, conditionally.
        """
        self.fetched(etag='"1"')
        self.clock.advance(899)
        self.assertEqual(self.get()[0].body, b"BEGIN:VCALENDAR v1")
        self.assertEqual(len(self.fetcher.calls), 1)
        self.clock.advance(1)
        self.get()
        self.assertEqual(len(self.fetcher.calls), 2)
        self.assertEqual(self.fetcher.calls[1][2]["etag"], '"1"')
        # Hits are added up, and handed to the metrics when they are
        # scraped (flushHits); misses at once.
        self.assertEqual((self.metrics.count("hit", DOMAIN), self.metrics.count("miss", DOMAIN)), (0, 2))
        self.cache.flushHits()
        self.assertEqual((self.metrics.count("hit", DOMAIN), self.metrics.count("miss", DOMAIN)), (1, 2))

    def test_maxAge(self):
        """
        max-age sets the freshness, less the answer's Age; s-maxage wins over
        it; maxTTL caps it.
        """
        for cacheControl, age, fresh in [("max-age=60", None, 60), ("max-age=60", "20", 40),
                                         ("public, s-maxage=30, max-age=60", None, 30),
                                         ("max-age=999999999", None, 86400), ("max-age=junk", None, 900)]:
            cache = self.makeCache()
            outcome = self.get(cache=cache)
            self.fetcher.answer(cacheControl=cacheControl, age=age)
            self.clock.advance(fresh - 1)
            calls = len(self.fetcher.calls)
            self.get(cache=cache)
            self.assertEqual(len(self.fetcher.calls), calls, cacheControl)
            self.clock.advance(1)
            self.get(cache=cache)
            self.assertEqual(len(self.fetcher.calls), calls + 1, cacheControl)
            self.fetcher.answer()
            self.assertEqual(outcome[0].body, b"BEGIN:VCALENDAR v1")

    def test_noStoreNoCache(self):
        """
        no-store answers are not kept; no-cache ones are revalidated on
        every use.
        """
        self.fetched(cacheControl="no-store", etag='"1"')
        self.assertEqual(len(self.cache), 0)
        self.get()
        self.assertNotIn("etag", [k for k, v in self.fetcher.calls[1][2].items() if v is not None])
        self.fetcher.answer(cacheControl="no-cache", etag='"2"')
        self.get()
        self.assertEqual(self.fetcher.calls[2][2]["etag"], '"2"')

    def test_notModified(self):
        """
        A 304 makes the kept answer fresh again, its body unchanged, its
        freshness from the 304's headers.
        """
        self.fetched(b"BEGIN:VCALENDAR kept", etag='"1"', cacheControl="max-age=60")
        self.clock.advance(60)
        outcome = self.get()
        self.fetcher.answer(b"", status=304, etag='"1"', cacheControl="max-age=120")
        self.assertEqual((outcome[0].body, outcome[0].stale, outcome[0].status), (b"BEGIN:VCALENDAR kept", False, 200))
        self.clock.advance(119)
        self.get()
        self.assertEqual(len(self.fetcher.calls), 2)
        self.clock.advance(1)
        self.get()
        self.assertEqual(len(self.fetcher.calls), 3)

    def test_staleWhileDown(self):
        """
        When the origin fails after the answer expired, the kept answer is
        given marked stale; the origin is left alone for retryAfter; once it
        recovers answers are fresh again.
        """
        self.fetched(b"BEGIN:VCALENDAR old", cacheControl="max-age=60")
        self.clock.advance(60)
        outcome = self.get()
        self.fetcher.fail("timeout")
        self.assertEqual((outcome[0].body, outcome[0].stale), (b"BEGIN:VCALENDAR old", True))
        self.clock.advance(29)
        self.assertTrue(self.get()[0].stale)
        self.assertEqual(len(self.fetcher.calls), 2)
        self.clock.advance(1)
        outcome = self.get()
        self.fetcher.fail("http-503")
        self.assertTrue(outcome[0].stale)
        self.clock.advance(30)
        outcome = self.get()
        self.fetcher.answer(b"BEGIN:VCALENDAR new")
        self.assertEqual((outcome[0].body, outcome[0].stale), (b"BEGIN:VCALENDAR new", False))
        self.assertEqual(self.metrics.count("stale", DOMAIN), 3)

    def test_staleLimit(self):
        """
        Past maxStale, the failure is given instead of the old answer.
        """
        cache = self.makeCache(maxStale=3600)
        self.get(cache=cache)
        self.fetcher.answer(cacheControl="max-age=60")
        self.clock.advance(60 + 3600)
        outcome = self.get(cache=cache)
        self.fetcher.fail("connect")
        self.assertFailed(outcome, "connect")

    def test_failureRemembered(self):
        """
        A failure with nothing kept is given, and given again without asking
        for retryAfter seconds.
        """
        outcome = self.get()
        self.fetcher.fail("timeout")
        self.assertFailed(outcome, "timeout")
        self.clock.advance(29)
        self.assertFailed(self.get(), "timeout")
        self.assertEqual(len(self.fetcher.calls), 1)
        # A hit of the cache, counted as the fresh ones are: when handed over.
        self.assertEqual(self.metrics.count("hit", DOMAIN), 0)
        self.cache.flushHits()
        self.assertEqual(self.metrics.count("hit", DOMAIN), 1)
        self.clock.advance(1)
        self.get()
        self.assertEqual(len(self.fetcher.calls), 2)

    def test_negative(self):
        """
        A 404 is remembered for negativeTTL, shorter than the TTL, and is
        never covered by a stale answer.
        """
        self.fetched(cacheControl="max-age=60")
        self.clock.advance(60)
        outcome = self.get()
        self.fetcher.fail("http-404")
        self.assertFailed(outcome, "http-404")
        self.clock.advance(119)
        self.assertFailed(self.get(), "http-404")
        self.assertEqual(len(self.fetcher.calls), 2)
        self.clock.advance(1)
        outcome = self.get()
        self.assertEqual(len(self.fetcher.calls), 3)
        self.fetcher.answer(b"BEGIN:VCALENDAR published")
        self.assertEqual(outcome[0].body, b"BEGIN:VCALENDAR published")

    def test_coalescing(self):
        """
        Requests for a URL being fetched share that fetch; one giving up
        does not stop it for the others.
        """
        first, second = self.get(), self.get()
        cancelled = self.cache.get(URL)
        cancelled.addErrback(lambda f: f.trap(defer.CancelledError))
        cancelled.cancel()
        self.assertEqual(len(self.fetcher.calls), 1)
        self.fetcher.answer()
        self.assertEqual(first[0].body, second[0].body)
        self.assertEqual(self.get()[0].body, b"BEGIN:VCALENDAR v1")
        self.assertEqual(len(self.fetcher.calls), 1)

    def test_coalescedFailure(self):
        """
        A failed shared fetch fails every request waiting for it.
        """
        first, second = self.get(), self.get()
        self.fetcher.fail("tls")
        self.assertFailed(first, "tls")
        self.assertFailed(second, "tls")

    def test_credentialsApart(self):
        """
        Answers fetched with different credentials are kept apart.
        """
        self.get(credentials=Credentials("a", "1"))
        self.fetcher.answer()
        self.get(credentials=Credentials("b", "2"))
        self.get(credentials=Credentials("a", "1"))
        self.assertEqual(len(self.fetcher.calls), 2)
        self.assertEqual(self.fetcher.calls[1][1], Credentials("b", "2"))

    def test_maxEntries(self):
        """
        Past maxEntries, the least recently used URL goes.
        """
        cache = self.makeCache(maxEntries=2)
        for url in ("https://a.example/", "https://b.example/"):
            self.get(url, cache=cache)
            self.fetcher.answer()
        self.get("https://a.example/", cache=cache)  # used: b is now the oldest
        self.get("https://c.example/", cache=cache)
        self.fetcher.answer()
        self.assertEqual(len(cache), 2)
        calls = len(self.fetcher.calls)
        self.get("https://a.example/", cache=cache)
        self.assertEqual(len(self.fetcher.calls), calls)
        self.get("https://b.example/", cache=cache)
        self.assertEqual(len(self.fetcher.calls), calls + 1)

    def test_maxBytes(self):
        """
        Bodies are kept within maxBytes, the oldest going first; a body
        larger than the whole budget is given but not kept.
        """
        cache = self.makeCache(maxBytes=5000)
        for url in ("https://a.example/", "https://b.example/", "https://c.example/"):
            self.get(url, cache=cache)
            self.fetcher.answer(b"x" * 1500)
        self.assertLessEqual(cache.size, 5000)
        self.assertEqual(len(cache), 2)
        outcome = self.get("https://d.example/", cache=cache)
        self.fetcher.answer(b"y" * 6000)
        self.assertEqual(len(outcome[0].body), 6000)
        self.assertEqual(len(cache), 2)
        calls = len(self.fetcher.calls)
        self.get("https://d.example/", cache=cache)
        self.assertEqual(len(self.fetcher.calls), calls + 1)

    def test_stillFresh(self):
        """
        freshEntry gives the entry of a fresh answer (no hit counted); stillFresh tells it fresh, counting a hit for
        the domain it was fetched for, while it is the cache's entry for its URL and its freshness lasts.
        """
        self.assertIsNone(self.cache.freshEntry(URL))
        self.fetched(cacheControl="max-age=60")
        entry = self.cache.freshEntry(URL)
        self.assertEqual(entry.result.body, b"BEGIN:VCALENDAR v1")
        self.assertIs(self.cache.freshEntry(URL), entry)
        self.cache.flushHits()
        self.assertEqual(self.metrics.count("hit", DOMAIN), 0)
        self.assertTrue(self.cache.stillFresh(entry))
        self.cache.flushHits()
        self.assertEqual(self.metrics.count("hit", DOMAIN), 1)
        self.clock.advance(60)
        self.assertFalse(self.cache.stillFresh(entry))
        self.assertIsNone(self.cache.freshEntry(URL))
        self.cache.flushHits()
        self.assertEqual(self.metrics.count("hit", DOMAIN), 1)

    def test_stillFreshReplaced(self):
        """
        An entry replaced by a new fetch of its URL (a revalidation too), dropped (the new answer may not be
        stored) or evicted is no longer fresh, whatever its own freshness says.
        """
        self.fetched(etag='"1"', cacheControl="max-age=60")
        entry = self.cache.freshEntry(URL)
        self.clock.advance(61)
        self.get()
        self.fetcher.answer(b"", status=304, etag='"1"', cacheControl="max-age=60")
        revalidated = self.cache.freshEntry(URL)
        self.assertIsNotNone(revalidated)
        self.assertIsNot(revalidated, entry)
        self.assertFalse(self.cache.stillFresh(entry))
        self.assertTrue(self.cache.stillFresh(revalidated))
        self.clock.advance(61)
        self.get()
        self.fetcher.answer(cacheControl="no-store")
        self.assertEqual(len(self.cache), 0)
        self.assertFalse(self.cache.stillFresh(revalidated))
        cache = self.makeCache(maxEntries=1)
        self.get(cache=cache)
        self.fetcher.answer()
        first = cache.freshEntry(URL)
        self.get("https://other.example/", cache=cache)
        self.fetcher.answer()
        self.assertFalse(cache.stillFresh(first))

    def test_stillFreshIsUse(self):
        """
        An entry told still fresh is the most recently used: another goes first when the cache is full.
        """
        cache = self.makeCache(maxEntries=2)
        for url in ("https://a.example/", "https://b.example/"):
            self.get(url, cache=cache)
            self.fetcher.answer()
        a = cache.freshEntry("https://a.example/")
        self.get("https://b.example/", cache=cache)  # b used after a
        self.assertTrue(cache.stillFresh(a))  # a used last
        self.get("https://c.example/", cache=cache)
        self.fetcher.answer()
        self.assertTrue(cache.stillFresh(a))
        self.assertIsNone(cache.freshEntry("https://b.example/"))

    def test_parseCacheControl(self):
        """
        Directives are read case-insensitively, with quoted or bare
        arguments; nonsense is skipped.
        """
        self.assertEqual(parseCacheControl('Max-Age="60", no-cache, private, ,;;'),
                         {"max-age": "60", "no-cache": None, "private": None})
        self.assertEqual(parseCacheControl(None), {})
