"""
Prometheus metrics: counted from log events, served at /metrics (or on a
listener of their own), parsed by prometheus_client's own parser.
"""

from prometheus_client.parser import text_string_to_metric_families
from twisted.logger import Logger, LogPublisher
from twisted.trial import unittest

from fbtwist.ops.metrics import MetricsObserver, MetricsService
from tests.helpers import basicAuth, inline, outlookVFB
from tests.memory import startMemoryServer


def samples(text: str) -> dict:
    """
    Every sample of an exposition, by (name, sorted labels).
    """
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


class MetricsObserverTests(unittest.SynchronousTestCase):
    """
    Events become counters, a histogram and gauges.
    """

    def setUp(self):
        self.publisher = LogPublisher()
        self.observer = MetricsObserver()
        service = MetricsService(self.observer, self.publisher)
        service.startService()
        self.addCleanup(service.stopService)
        self.log = Logger(observer=self.publisher)

    def value(self, name, **labels):
        return self.observer.registry.get_sample_value(name, labels)

    def test_events(self):
        """
        Each COMMON.md event moves its metric.
        """
        log = self.log
        log.info("x", fbEvent="http-request", method="PUT", status=201, seconds=0.02)
        log.info("x", fbEvent="http-request", method="BREW", status=418)
        log.info("x", fbEvent="publish", uid="alice", protocol="ftp", path="alice.vfb", size=3)
        log.info("x", fbEvent="publish-rejected", uid=None, protocol="http", path="a", reason="too-large")
        log.info("x", fbEvent="directory-call", operation="bind", seconds=0.003, ok=True, server="ldap://x")
        log.info("x", fbEvent="bind-cache", hit=True)
        log.info("x", fbEvent="bind-cache", hit=False)
        log.info("x", fbEvent="ftp-session", change=+1)
        log.info("x", fbEvent="ftp-session", change=+1)
        log.info("x", fbEvent="ftp-session", change=-1)
        log.info("x", fbEvent="login-throttled", login="alice", peer="10.0.0.1")
        self.assertEqual(self.value("fbtwist_http_requests_total", method="PUT", status="201"), 1)
        self.assertEqual(self.value("fbtwist_http_requests_total", method="OTHER", status="418"), 1)
        self.assertEqual(self.value("fbtwist_http_request_seconds_bucket", method="PUT", le="0.025"), 1)
        self.assertEqual(self.value("fbtwist_http_request_seconds_bucket", method="PUT", le="0.01"), 0)
        self.assertEqual(self.value("fbtwist_publishes_total", protocol="ftp"), 1)
        self.assertEqual(self.value("fbtwist_publish_rejections_total", protocol="http", reason="too-large"), 1)
        self.assertEqual(self.value("fbtwist_directory_call_seconds_count", operation="bind", ok="true"), 1)
        self.assertEqual(
            self.value("fbtwist_directory_call_seconds_bucket", operation="bind", ok="true", le="0.005"), 1)
        self.assertEqual(self.value("fbtwist_bind_cache_lookups_total", result="hit"), 1)
        self.assertEqual(self.value("fbtwist_bind_cache_lookups_total", result="miss"), 1)
        self.assertEqual(self.value("fbtwist_ftp_sessions_open"), 1)
        self.assertEqual(self.value("fbtwist_logins_throttled_total"), 1)

    def test_remoteHitsTogether(self):
        """
        A remote-fetch event counting several hits at once (one turn's,
        L{fbtwist.remote.cache.FetchCache.countHit}) adds them all.
        """
        from fbtwist.remote.metrics import EventMetrics

        metrics = EventMetrics(self.log)
        metrics.hit("partner.example")
        metrics.hit("partner.example", 5)
        self.assertEqual(self.value("fbtwist_remote_fetches_total", event="hit", domain="partner.example",
                                    reason="none"), 6)

    def test_countsHandedOverBeforeScrape(self):
        """
        What counts in memory (the remote cache's hits answered at once:
        L{fbtwist.remote.cache.FetchCache.flushHits}) is handed over before
        each scrape, so the scrape shows it; a hand-over that fails is
        logged and the scrape still answers with the rest.
        """
        from twisted.internet.task import Clock

        from fbtwist.remote.cache import FetchCache
        from fbtwist.remote.metrics import EventMetrics

        cache = FetchCache(None, Clock(), metrics=EventMetrics(self.log))
        cache.countHit("https://fb.partner.example/a.vfb", "partner.example")
        cache.countHit("https://fb.partner.example/b.vfb", "partner.example")
        self.assertIsNone(self.value("fbtwist_remote_fetches_total", event="hit", domain="partner.example",
                                     reason="none"))

        def broken():
            raise RuntimeError("no counts")

        self.observer.beforeScrape.extend([broken, cache.flushHits])
        body, _ = self.observer.exposition()
        self.assertIn(b'fbtwist_remote_fetches_total{domain="partner.example",event="hit",reason="none"} 2.0', body)
        cache.countHit("https://fb.partner.example/a.vfb", "partner.example")
        body, _ = self.observer.exposition()
        self.assertIn(b'fbtwist_remote_fetches_total{domain="partner.example",event="hit",reason="none"} 3.0', body)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)

    def test_labelledSeriesLookedUpOnce(self):
        """
        Repeated events of the same labels ask prometheus_client for their
        labelled series once, and still count each event.
        """
        asked = []
        for metric in (self.observer.publishes, self.observer.bindCache, self.observer.directoryCalls):
            def counting(*values, metric=metric, labels=metric.labels):
                asked.append((metric, values))
                return labels(*values)

            metric.labels = counting
        for _ in range(3):
            self.log.info("x", fbEvent="publish", uid="alice", protocol="http", path="alice.vfb", size=3)
            self.log.info("x", fbEvent="bind-cache", hit=True)
            self.log.info("x", fbEvent="directory-call", operation="bind", seconds=0.003, ok=True)
        self.assertEqual(len(asked), 3)
        self.assertEqual(self.value("fbtwist_publishes_total", protocol="http"), 3)
        self.assertEqual(self.value("fbtwist_bind_cache_lookups_total", result="hit"), 3)
        self.assertEqual(self.value("fbtwist_directory_call_seconds_count", operation="bind", ok="true"), 3)

    def test_malformedEventIgnored(self):
        """
        An event with a missing or wrong field changes nothing and raises
        nothing.
        """
        self.log.info("x", fbEvent="directory-call", operation="search", seconds="soon", ok=True)
        self.log.info("x", fbEvent="ftp-session")
        self.assertIsNone(self.value("fbtwist_directory_call_seconds_count", operation="search", ok="true"))
        self.assertEqual(self.value("fbtwist_ftp_sessions_open"), 0)

    def test_lockCount(self):
        """
        The lock gauge reads the hook set by whoever keeps locks (0 without).
        """
        self.assertEqual(self.value("fbtwist_dav_locks"), 0)
        self.observer.lockCount = lambda: 7
        self.assertEqual(self.value("fbtwist_dav_locks"), 7)

    def test_commitCounts(self):
        """
        The commit process's counter reads its hook when scraped (0 without).
        """
        self.assertEqual(self.value("fbtwist_commit_process_publishes_total", outcome="committed"), 0)
        self.assertEqual(self.value("fbtwist_commit_process_publishes_total", outcome="given_back"), 0)
        self.observer.commitCounts = lambda: (12, 3)
        self.assertEqual(self.value("fbtwist_commit_process_publishes_total", outcome="committed"), 12)
        self.assertEqual(self.value("fbtwist_commit_process_publishes_total", outcome="given_back"), 3)
        self.assertIn(b"fbtwist_commit_process_publishes_total{outcome=\"given_back\"} 3.0",
                      self.observer.exposition()[0])

    def test_answerCounts(self):
        """
        The answers remembered in memory: their hook read when scraped (0
        without).
        """
        self.assertEqual(self.value("fbtwist_answer_memory_lookups_total", result="hit"), 0)
        self.assertEqual(self.value("fbtwist_answer_memory_bytes"), 0)
        self.observer.answerCounts = lambda: (40, 2, 5, 16000)
        self.assertEqual(self.value("fbtwist_answer_memory_lookups_total", result="hit"), 40)
        self.assertEqual(self.value("fbtwist_answer_memory_lookups_total", result="miss"), 2)
        self.assertEqual(self.value("fbtwist_answer_memory_answers"), 5)
        self.assertEqual(self.value("fbtwist_answer_memory_bytes"), 16000)

    def test_registriesSeparate(self):
        """
        Two observers never share numbers (no process-global registry).
        """
        self.log.info("x", fbEvent="publish", protocol="http")
        other = MetricsObserver()
        self.assertEqual(other.registry.get_sample_value("fbtwist_publishes_total", {"protocol": "http"}), 0)
        self.assertEqual(self.value("fbtwist_publishes_total", protocol="http"), 1)

    def test_stopped(self):
        """
        After the service stops, events are no longer counted.
        """
        publisher = LogPublisher()
        observer = MetricsObserver()
        service = MetricsService(observer, publisher)
        service.startService()
        service.stopService()
        Logger(observer=publisher).info("x", fbEvent="publish", protocol="http")
        self.assertEqual(observer.registry.get_sample_value("fbtwist_publishes_total", {"protocol": "http"}), 0)


class MetricsEndpointTests(unittest.TestCase):
    """
    GET /metrics on a running server.
    """

    async def scrape(self, http, url):
        response = await http.get(url)
        body = await response.content()
        self.assertEqual(response.code, 200)
        self.assertTrue(response.headers.getRawHeaders(b"Content-Type")[0].startswith(b"text/plain; version=0.0.4"))
        return samples(body.decode("utf-8"))

    @inline
    async def test_countersMove(self):
        """
        Publishing, a rejected publish and a lookup each move their counter.
        """
        server = startMemoryServer(self)
        http = server.client()
        before = await self.scrape(http, server.url("/metrics"))
        self.assertEqual(before[("fbtwist_publishes_total", (("protocol", "http"),))], 0)
        for data in (outlookVFB(), b"garbage"):
            response = await http.put(server.url("/pub/calendar/alice.vfb"), data=data, headers=basicAuth("alice"))
            await response.content()
        response = await http.get(server.url("/calendar/alice.vfb"))
        await response.content()
        after = await self.scrape(http, server.url("/metrics"))
        self.assertEqual(after[("fbtwist_publishes_total", (("protocol", "http"),))], 1)
        self.assertEqual(after[("fbtwist_publish_rejections_total",
                                (("protocol", "http"), ("reason", "invalid-calendar")))], 1)
        self.assertEqual(after[("fbtwist_http_requests_total", (("method", "PUT"), ("status", "201")))], 1)
        self.assertEqual(after[("fbtwist_http_requests_total", (("method", "PUT"), ("status", "400")))], 1)
        self.assertEqual(after[("fbtwist_http_requests_total", (("method", "GET"), ("status", "200")))], 2)
        self.assertIn(("fbtwist_dav_locks", ()), after)
        self.assertIn(("fbtwist_ftp_sessions_open", ()), after)

    @inline
    async def test_ownListener(self):
        """
        --metrics ENDPOINT serves /metrics and /healthz there and not on the
        public listener.
        """
        server = startMemoryServer(self, "--metrics", "tcp:0:interface=127.0.0.1")
        port = server.portOf("metrics")
        http = server.client()
        response = await http.get(server.url("/metrics"))
        await response.content()
        self.assertEqual(response.code, 404)
        found = await self.scrape(http, f"http://127.0.0.1:{port}/metrics")
        self.assertIn(("fbtwist_http_requests_total", (("method", "GET"), ("status", "404"))), found)
        response = await http.get(f"http://127.0.0.1:{port}/healthz")
        await response.content()
        self.assertEqual(response.code, 200)

    @inline
    async def test_off(self):
        """
        --metrics none serves no metrics.
        """
        server = startMemoryServer(self, "--metrics", "none")
        response = await server.client().get(server.url("/metrics"))
        await response.content()
        self.assertEqual(response.code, 404)
        self.assertRaises(KeyError, server.service.getServiceNamed, "metrics")
