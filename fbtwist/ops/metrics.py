"""
Prometheus metrics, built from log events.

One log observer, L{MetricsObserver}, turns the C{fbEvent} events that the
rest of fbtwist logs (see COMMON.md: C{http-request}, C{publish},
C{publish-rejected}, C{directory-call}, C{bind-cache}, C{ftp-session},
C{login-throttled}, C{remote-fetch}) into counters, a histogram and gauges, so that no other
module imports prometheus_client: code emits events, this module counts
them.  Each observer has a registry of its own (never the process-global
one), so two servers in one process, or tests, never mix their numbers.

The lock gauge asks a callable, L{MetricsObserver.lockCount}, when scraped:
whoever keeps the WebDAV locks sets it in L{fbtwist.tap.makeService}
(C{top.metrics.lockCount = locks.count}); until then it reads 0.  So does
the commit process's counter (L{MetricsObserver.commitCounts}: the
publishes it committed and those it gave back to the server, which a
child failing to start or dying makes grow; no event per publish).
"""

from typing import Callable, List, Optional

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from twisted.application.service import Service
from twisted.logger import ILogObserver, Logger, globalLogPublisher
from twisted.web.resource import Resource
from zope.interface import implementer

from fbtwist.logs import ACCESS_EVENT

_log = Logger()

#: Request methods counted under their own name; others count as OTHER, so
#: a client cannot grow the label set without bound.
KNOWN_METHODS = frozenset(
    "GET HEAD PUT POST DELETE OPTIONS PROPFIND PROPPATCH MKCOL COPY MOVE LOCK UNLOCK REPORT".split()
)
KNOWN_PROTOCOLS = frozenset({"http", "ftp"})
#: What fbtwist.remote counts (its EventMetrics' events).
REMOTE_EVENTS = frozenset({"fetch", "hit", "miss", "failure", "stale"})

#: Latency buckets (directory calls, requests), in seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _label(value, allowed=None, maximum: int = 64) -> str:
    text = "none" if value is None else str(value)[:maximum]
    if allowed is not None and text not in allowed:
        return "other"
    return text


@implementer(ILogObserver)
class MetricsObserver:
    """
    Counts fbtwist's events into a registry of its own.

    @ivar registry: The L{CollectorRegistry} to expose.
    @ivar lockCount: A callable returning how many WebDAV locks are held,
        or C{None} while nothing keeps locks.
    """

    def __init__(self):
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.lockCount: Optional[Callable[[], int]] = None
        #: The commit process's C{(committed, given back)} publishes
        #: (L{fbtwist.store.committer.CommitProcess}), or C{None}: none.
        self.commitCounts: Optional[Callable[[], tuple]] = None
        registry.register(_CommitCollector(self))
        #: The answers remembered in memory: C{(hits, misses, answers held,
        #: bytes held)} (L{fbtwist.access.answers.RememberedAnswers}), or
        #: C{None}: none.
        self.answerCounts: Optional[Callable[[], tuple]] = None
        registry.register(_AnswerMemoryCollector(self))
        #: Called before each scrape (L{exposition}): what counts in memory
        #: and hands its counts over as events only then
        #: (L{fbtwist.remote.cache.FetchCache.flushHits}).
        self.beforeScrape: List[Callable[[], None]] = []
        self.requests = Counter(
            "fbtwist_http_requests", "HTTP requests answered, by method and status.",
            ["method", "status"], registry=registry,
        )
        self.requestSeconds = Histogram(
            "fbtwist_http_request_seconds", "Time from a request's first line to its answer, by method.",
            ["method"], buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.publishes = Counter(
            "fbtwist_publishes", "Free/busy files published, by protocol.", ["protocol"], registry=registry,
        )
        self.rejections = Counter(
            "fbtwist_publish_rejections", "Publishes refused, by protocol and reason.",
            ["protocol", "reason"], registry=registry,
        )
        self.directoryCalls = Histogram(
            "fbtwist_directory_call_seconds", "Directory (LDAP) call latency, by operation and outcome.",
            ["operation", "ok"], buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.bindCache = Counter(
            "fbtwist_bind_cache_lookups", "Bind cache lookups, by result (hit or miss).",
            ["result"], registry=registry,
        )
        self.ftpSessions = Gauge(
            "fbtwist_ftp_sessions_open", "FTP sessions open now.", registry=registry,
        )
        self.throttled = Counter(
            "fbtwist_logins_throttled", "Logins refused because of too many failures.", registry=registry,
        )
        self.remote = Counter(
            "fbtwist_remote_fetches", "Free/busy fetched from elsewhere (federation, feeds): fetches, cache "
            "hits, misses, failures (by reason) and stale answers, by domain.",
            ["event", "domain", "reason"], registry=registry,
        )
        self._requestSeries: dict = {}
        # (metric, label values) -> its labelled child: see _series.
        self._children: dict = {}
        self.locks = Gauge("fbtwist_dav_locks", "WebDAV locks held now.", registry=registry)
        self.locks.set_function(self._lockCount)
        # Zero series for the common labels, so that dashboards and rate()
        # see them from the start.
        for protocol in sorted(KNOWN_PROTOCOLS):
            self.publishes.labels(protocol=protocol)
        for result in ("hit", "miss"):
            self.bindCache.labels(result=result)

    def _commitCounts(self) -> tuple:
        if self.commitCounts is None:
            return 0, 0
        return self.commitCounts()

    def _lockCount(self) -> float:
        if self.lockCount is None:
            return 0
        try:
            return float(self.lockCount())
        except Exception:
            return float("nan")

    def __call__(self, event: dict) -> None:
        kind = event.get("fbEvent")
        if kind is None:
            return
        handler = self._handlers.get(kind)
        if handler is not None:
            try:
                handler(self, event)
            except (TypeError, ValueError, KeyError):
                # A malformed event must never break logging.
                pass

    def _request(self, event):
        method = event.get("method")
        method = method if method in KNOWN_METHODS else "OTHER"
        status = _label(event.get("status"), maximum=3)
        series = self._requestSeries.get((method, status))
        if series is None:
            # prometheus_client's labels() costs more than the rest of this
            # observer: the few (method, status) pairs are looked up once.
            series = self._requestSeries[method, status] = (
                self.requests.labels(method=method, status=status),
                self.requestSeconds.labels(method=method),
            )
        series[0].inc()
        seconds = event.get("seconds")
        if isinstance(seconds, (int, float)):
            series[1].observe(seconds)

    def _series(self, metric, *values):
        """
        C{metric.labels(*values)} (label values in the order the metric
        declares them), made once: prometheus_client's C{labels} checks and
        converts its arguments and takes a lock at every call, which every
        publish would pay for a few times.  Holds what the metric holds
        anyway, one child per combination of label values.
        """
        key = (metric, values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def _publish(self, event):
        self._series(self.publishes, _label(event.get("protocol"), KNOWN_PROTOCOLS)).inc()

    def _rejected(self, event):
        self._series(
            self.rejections, _label(event.get("protocol"), KNOWN_PROTOCOLS), _label(event.get("reason"), maximum=40),
        ).inc()

    def _directoryCall(self, event):
        seconds = float(event["seconds"])
        self._series(
            self.directoryCalls, _label(event.get("operation"), maximum=20), "true" if event.get("ok") else "false",
        ).observe(seconds)

    def _bindCache(self, event):
        self._series(self.bindCache, "hit" if event.get("hit") else "miss").inc()

    def _ftpSession(self, event):
        change = int(event["change"])
        if change in (-1, 1):
            self.ftpSessions.inc(change)

    def _throttled(self, event):
        self.throttled.inc()

    def _remote(self, event):
        self._series(
            self.remote, _label(event.get("event"), REMOTE_EVENTS), _label(event.get("domain"), maximum=64),
            _label(event.get("reason"), maximum=40),
        ).inc(int(event.get("count", 1)))

    _handlers = {
        ACCESS_EVENT: _request,
        "publish": _publish,
        "publish-rejected": _rejected,
        "directory-call": _directoryCall,
        "bind-cache": _bindCache,
        "ftp-session": _ftpSession,
        "login-throttled": _throttled,
        "remote-fetch": _remote,
    }

    def exposition(self, accept: str = ""):
        """
        The metrics in the format the scraper asks for (Prometheus' text
        format, or OpenMetrics when its C{Accept} header says so).

        @return: The body and its content type.
        """
        for flush in self.beforeScrape:
            try:
                flush()
            except Exception:
                # A count lost must not cost the scrape the others.
                _log.failure("handing counts to the metrics")
        encode, contentType = choose_encoder(accept)
        return encode(self.registry), contentType


class _CommitCollector:
    """
    C{fbtwist_commit_process_publishes_total}, by outcome (C{committed},
    C{given_back}), read from the commit process when scraped.
    """

    def __init__(self, observer: MetricsObserver):
        self._observer = observer

    def describe(self):
        return [CounterMetricFamily("fbtwist_commit_process_publishes", "", labels=("outcome",))]

    def collect(self):
        committed, givenBack = self._observer._commitCounts()
        family = CounterMetricFamily(
            "fbtwist_commit_process_publishes",
            "Publishes sent to the commit process, by outcome: committed there, or given back to the server "
            "(a WebDAV lock may apply, or no process was running).",
            labels=("outcome",),
        )
        family.add_metric(("committed",), committed)
        family.add_metric(("given_back",), givenBack)
        yield family


class _AnswerMemoryCollector:
    """
    C{fbtwist_answer_memory_lookups_total} (by result: C{hit}, C{miss}),
    C{fbtwist_answer_memory_answers} and C{fbtwist_answer_memory_bytes}, read
    from the answers remembered in memory when scraped.
    """

    def __init__(self, observer: MetricsObserver):
        self._observer = observer

    def describe(self):
        return [CounterMetricFamily("fbtwist_answer_memory_lookups", "", labels=("result",)),
                GaugeMetricFamily("fbtwist_answer_memory_answers", ""),
                GaugeMetricFamily("fbtwist_answer_memory_bytes", "")]

    def collect(self):
        counts = self._observer.answerCounts
        hits, misses, held, size = (0, 0, 0, 0) if counts is None else counts()
        lookups = CounterMetricFamily(
            "fbtwist_answer_memory_lookups",
            "Anonymous lookups of a published file asked of the answers remembered in memory (--answer-memory), "
            "by result: answered from memory, or not held.",
            labels=("result",),
        )
        lookups.add_metric(("hit",), hits)
        lookups.add_metric(("miss",), misses)
        yield lookups
        yield GaugeMetricFamily("fbtwist_answer_memory_answers", "Answers remembered in memory now.", value=held)
        yield GaugeMetricFamily("fbtwist_answer_memory_bytes",
                                "What the answers remembered in memory weigh now (bodies and their overhead).",
                                value=size)


class MetricsService(Service):
    """
    Keeps a L{MetricsObserver} subscribed to the log while fbtwist runs.
    """

    name = "metrics-observer"

    def __init__(self, observer: MetricsObserver, publisher=globalLogPublisher):
        self.observer = observer
        self.publisher = publisher

    def startService(self):
        super().startService()
        self.publisher.addObserver(self.observer)

    def stopService(self):
        super().stopService()
        self.publisher.removeObserver(self.observer)


class MetricsResource(Resource):
    """
    C{GET /metrics}: the Prometheus text exposition.
    """

    isLeaf = True

    def __init__(self, observer: MetricsObserver):
        super().__init__()
        self.observer = observer

    def render_GET(self, request):
        accept = (request.getHeader(b"Accept") or b"").decode("latin-1")
        body, contentType = self.observer.exposition(accept)
        request.setHeader(b"Content-Type", contentType.encode("ascii"))
        request.setHeader(b"Cache-Control", b"no-store")
        request.setHeader(b"Content-Length", b"%d" % len(body))
        return body
