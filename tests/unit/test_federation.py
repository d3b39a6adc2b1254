"""
Lookups of other organisations' addresses: L{FederatedFreeBusy} on a
L{Clock} with a scripted fetcher (which URL, which credentials, what a
stale, absent or failing origin becomes), and the federation's settings
(two real servers over loopback HTTP: L{tests.integration.test_federation}).
"""

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial import unittest

from fbtwist.errors import InvalidCalendar, NotFound
from fbtwist.remote.cache import FetchCache
from fbtwist.remote.credentials import Credentials
from fbtwist.remote.federation import parseFederationOption
from fbtwist.remote.fetcher import FetchError, FetchResult
from fbtwist.remote.metrics import CountingMetrics
from fbtwist.remote.source import FederatedFreeBusy, RemoteUnavailable, readRemoteFreeBusy
from tests.unit.test_lookup import vfb

TEMPLATE = parseFederationOption("partner.example = https://fb.partner.example/fb/%NAME%@%SERVER%.vfb")
GROUP_TEMPLATE = parseFederationOption("partner.example = https://fb.partner.example/group/%NAME%.vfb?x=1")
BUSY = vfb("FREEBUSY:20210105T090000Z/20210105T100000Z", "FREEBUSY;FBTYPE=BUSY-TENTATIVE:20210106T090000Z/PT1H")


class ScriptedFetcher:
    """
    Records each fetch; the test answers it.
    """

    def __init__(self, clock):
        self.clock = clock
        self.calls = []

    def fetch(self, url, credentials=None, *, validate=None, **kwargs):
        d = defer.Deferred()
        self.calls.append((url, credentials, validate, d))
        return d

    def answer(self, body=BUSY, **headers):
        url, _, validate, d = self.calls[-1]
        d.callback(FetchResult(url, 200, body, self.clock.seconds(), value=validate(body), **headers))

    def fail(self, reason):
        self.calls[-1][3].errback(FetchError(reason, f"it failed: {reason}"))


class FederatedFreeBusyTests(unittest.SynchronousTestCase):
    """
    Where an address is looked up, and what the cache's answers become.
    """

    def setUp(self):
        self.clock = Clock()
        self.fetcher = ScriptedFetcher(self.clock)
        self.metrics = CountingMetrics()
        self.cache = FetchCache(self.fetcher, self.clock, validate=readRemoteFreeBusy, ttl=60, maxStale=120,
                                retryAfter=30, metrics=self.metrics)
        self.urls = {}
        self.source = FederatedFreeBusy(
            self.cache, {TEMPLATE.domain: TEMPLATE}, {"partner.example": Credentials("fb", "pw")},
            findURL=self.findURL, groupTemplates={TEMPLATE.domain: GROUP_TEMPLATE})

    async def findURL(self, address):
        return self.urls.get(address)

    def lookup(self, address):
        outcome = []
        defer.Deferred.fromCoroutine(self.source.lookup(address)).addBoth(outcome.append)
        return outcome

    def test_templateURLAndCredentials(self):
        """
        A configured domain's address is fetched from its template, with the domain's credentials.
        """
        outcome = self.lookup("Alice@Partner.Example")
        url, credentials, _, _ = self.fetcher.calls[0]
        self.assertEqual(url, "https://fb.partner.example/fb/Alice@partner.example.vfb")
        self.assertEqual(credentials, Credentials("fb", "pw"))
        self.fetcher.answer()
        remote = outcome[0]
        self.assertFalse(remote.stale)
        self.assertEqual(len(remote.freeBusy.periods), 2)
        self.assertEqual(self.metrics.count("miss", "partner.example"), 1)

    def test_cachedAnswer(self):
        """
        A second lookup within the TTL is answered from memory: one fetch.
        """
        self.lookup("alice@partner.example")
        self.fetcher.answer()
        self.clock.advance(59)
        self.assertEqual(len(self.lookup("alice@partner.example")[0].freeBusy.periods), 2)
        self.assertEqual(len(self.fetcher.calls), 1)
        self.cache.flushHits()
        self.assertEqual(self.metrics.count("hit", "partner.example"), 1)

    def test_freshNow(self):
        """
        freshNow gives a token of the fresh fetch result in the cache, the same while it stays fresh (not counted:
        stillFresh counts each use of it, handed over by flushHits), nothing once it expired, and another once
        fetched again; stillFresh tells the old token no longer fresh.
        """
        self.assertIsNone(self.source.freshNow("alice@partner.example"))
        self.lookup("alice@partner.example")
        self.fetcher.answer()
        first = self.source.freshNow("alice@partner.example")
        self.assertIsNotNone(first)
        self.assertIs(self.source.freshNow("alice@partner.example"), first)
        url, credentials, domain = self.successResultOf(
            defer.Deferred.fromCoroutine(self.source.locate("alice@partner.example")))
        self.assertIs(first.result, self.cache.fresh(url, credentials, domain))
        self.cache.flushHits()
        self.assertEqual(self.metrics.count("hit", "partner.example"), 1)  # fresh() counts
        self.assertTrue(self.source.stillFresh(first))
        self.assertTrue(self.source.stillFresh(first))
        # Added up, and handed to the metrics together when they are read:
        # no event, no timer per hit.
        self.clock.advance(0)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.metrics.count("hit", "partner.example"), 1)
        self.cache.flushHits()
        self.assertEqual(self.metrics.count("hit", "partner.example"), 3)
        self.cache.flushHits()
        self.assertEqual(self.metrics.count("hit", "partner.example"), 3)
        self.clock.advance(61)
        self.assertIsNone(self.source.freshNow("alice@partner.example"))
        self.assertFalse(self.source.stillFresh(first))
        self.lookup("alice@partner.example")
        self.fetcher.answer()
        again = self.source.freshNow("alice@partner.example")
        self.assertIsNotNone(again)
        self.assertIsNot(again, first)
        # Replaced by the new fetch: not fresh, though the clock says so.
        self.assertFalse(self.source.stillFresh(first))
        self.assertTrue(self.source.stillFresh(again))
        self.cache.flushHits()
        self.assertEqual(self.metrics.count("hit", "partner.example"), 4)
        self.assertIsNone(self.source.freshNow("alice@elsewhere.example"))

    def test_staleThenUnavailable(self):
        """
        While the origin fails an expired answer is given marked stale; past maxStale, RemoteUnavailable.
        """
        self.lookup("alice@partner.example")
        self.fetcher.answer()
        self.clock.advance(61)
        outcome = self.lookup("alice@partner.example")
        self.fetcher.fail("connect")
        self.assertTrue(outcome[0].stale)
        self.clock.advance(120)
        outcome = self.lookup("alice@partner.example")
        self.fetcher.fail("connect")
        error = outcome[0].trap(RemoteUnavailable) and outcome[0].value
        self.assertEqual(error.retryAfter, 30)
        self.assertIn("partner.example", error.reason)

    def test_absent(self):
        """
        A 404 from the origin is NotFound.
        """
        outcome = self.lookup("nobody@partner.example")
        self.fetcher.fail("http-404")
        outcome[0].trap(NotFound)

    def test_garbage(self):
        """
        A body that is not free/busy fails validation: RemoteUnavailable, never a 500.
        """
        outcome = self.lookup("alice@partner.example")
        url, _, validate, d = self.fetcher.calls[0]
        self.assertRaises(InvalidCalendar, validate, b"<html>no</html>")
        self.fetcher.fail("not-calendar")
        outcome[0].trap(RemoteUnavailable)

    def test_groupURL(self):
        """
        A group is fetched from the group template, for the range asked for; no template, no fetch.
        """
        from fbtwist.calendar.freebusy import TimeRange, parseUTC

        timeRange = TimeRange(parseUTC("start", "20210105T000000Z"), parseUTC("end", "20210106T000000Z"))
        outcome = []
        defer.Deferred.fromCoroutine(self.source.lookupGroup("team@partner.example", timeRange)).addBoth(
            outcome.append)
        self.assertEqual(self.fetcher.calls[0][0], "https://fb.partner.example/group/team.vfb?x=1"
                                                   "&start=20210105T000000Z&end=20210106T000000Z")
        self.fetcher.answer()
        self.assertEqual(len(outcome[0].freeBusy.periods), 2)
        outcome = []
        defer.Deferred.fromCoroutine(self.source.lookupGroup("team@elsewhere.example")).addBoth(outcome.append)
        self.assertEqual(outcome, [None])

    def test_notFederated(self):
        """
        An address of no configured domain and no directory URL is not federated (None), with no fetch.
        """
        self.assertIsNone(self.lookup("bob@elsewhere.example")[0])
        self.assertIsNone(self.lookup("not-an-address")[0])
        self.assertEqual(self.fetcher.calls, [])

    def test_directoryURL(self):
        """
        A calFBURL from the directory is fetched, without the template domain's credentials.
        """
        self.urls["bob@elsewhere.example"] = "https://cal.elsewhere.example/bob/fb.ifb"
        outcome = self.lookup("bob@elsewhere.example")
        url, credentials, _, _ = self.fetcher.calls[0]
        self.assertEqual((url, credentials), ("https://cal.elsewhere.example/bob/fb.ifb", None))
        self.fetcher.answer()
        self.assertEqual(len(outcome[0].freeBusy.periods), 2)

    def test_directoryURLRefused(self):
        """
        A calFBURL that is not an http(s) URL is ignored (not federated).
        """
        self.urls["bob@elsewhere.example"] = "file:///etc/passwd"
        self.assertIsNone(self.lookup("bob@elsewhere.example")[0])
        self.assertEqual(self.fetcher.calls, [])


class MinimumFreshnessTests(unittest.SynchronousTestCase):
    """
    C{FetchCache(minTTL=...)}: an origin's no-cache does not make every lookup a fetch.
    """

    def test_noCacheHeldForMinTTL(self):
        """
        An answer marked no-cache is fresh for minTTL, then revalidated; no-store is still not kept.
        """
        clock = Clock()
        fetcher = ScriptedFetcher(clock)
        cache = FetchCache(fetcher, clock, validate=readRemoteFreeBusy, minTTL=60)
        url = "https://fb.partner.example/fb/alice.vfb"
        cache.get(url)
        fetcher.answer(cacheControl="no-cache", etag='"v1"')
        cache.get(url)
        self.assertEqual(len(fetcher.calls), 1)
        clock.advance(61)
        cache.get(url)
        self.assertEqual(len(fetcher.calls), 2)
        fetcher.answer(cacheControl="no-store")
        cache.get(url)
        self.assertEqual(len(fetcher.calls), 3)


class FederationSettingsTests(unittest.SynchronousTestCase):
    """
    The [federation] section and the --federate options.
    """

    def options(self, *args):
        from twisted.python.filepath import FilePath

        from fbtwist.tap import Options

        options = Options()
        options.parseOptions(["--root", FilePath(self.mktemp()).path, *args])
        return options

    def configFile(self, text: str) -> str:
        path = self.mktemp()
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def test_section(self):
        """
        Each line of [federation] is a federate setting; the templates are read into the federation.
        """
        from fbtwist.tap import federationSettings

        path = self.configFile("[freebusy]\nfeed-interval = 60\n[federation]\n"
                               "Partner.Example = https://fb.partner.example/%NAME%@%SERVER%.vfb\n"
                               "other.example = https://other.example/fb?who=%NAME%\n")
        config = self.options("--config", path).config
        templates, credentials, groups = federationSettings(config)
        self.assertEqual(sorted(templates), ["other.example", "partner.example"])
        self.assertEqual(templates["partner.example"].expand("a/b"),
                         "https://fb.partner.example/a%2Fb@partner.example.vfb")
        self.assertEqual((credentials, groups, config.feedInterval), ({}, {}, 60.0))

    def test_mistakes(self):
        """
        A bad template, a domain twice or both places at once stop the server with a sentence naming it.
        """
        from twisted.python import usage

        for args, fragment in [
            (["--federate", "partner.example=https://fb.partner.example/fixed.vfb"], "has no %NAME%"),
            (["--federate", "partner.example=https://%NAME%.partner.example/x"], "not in its host"),
            (["--federate", "partner.example=ftp://fb.partner.example/%NAME%"], "--federate partner.example="),
            (["--federate", "a.example=https://a.example/%NAME%", "--federate", "A.example=https://b/%NAME%"],
             "given twice"),
            (["--federate", "no-equals-sign"], "expected DOMAIN=VALUE"),
            (["--federation-credentials", "partner.example=/nonexistent/file"], "cannot read /nonexistent/file"),
        ]:
            error = self.assertRaises(usage.UsageError, self.options, *args)
            self.assertIn(fragment, str(error))
        path = self.configFile("[freebusy]\nfederate = a.example=https://a.example/%NAME%\n"
                               "[federation]\nb.example = https://b.example/%NAME%\n")
        error = self.assertRaises(usage.UsageError, self.options, "--config", path)
        self.assertIn("use one", str(error))
