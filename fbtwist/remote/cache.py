"""
A cache in front of L{fbtwist.remote.fetcher.Fetcher}: lookups of another
organisation's free/busy, or of a user's calendar feed, answered from
memory while the answer is fresh, so that a busy page of lookups costs the
origin one request per URL per freshness period, not one per lookup.

  - B{Freshness}: an answer is fresh for its C{Cache-Control} C{s-maxage}
    or C{max-age} (less its C{Age}), at most C{maxTTL}, or C{ttl} (15
    minutes) when it gives none; C{no-cache} makes it stale at once,
    C{no-store} keeps it out of the cache.  C{Expires} is not read.
  - B{Revalidation}: a stale answer with an C{ETag} or C{Last-Modified} is
    fetched again conditionally; a 304 makes it fresh again without a body.
  - B{Outages}: when the origin cannot be asked (timeout, refused
    connection, TLS failure, 5xx, a wrong body...), the last good answer is
    given for up to C{maxStale} past its freshness, marked C{stale=True}
    so that the caller can say so; the failure is remembered for
    C{retryAfter} seconds, during which the origin is not asked again, so
    that an outage costs lookups no time.
  - B{Absence}: a 404 or 410 is remembered for C{negativeTTL}, shorter
    than C{ttl}, so that a user who starts publishing is seen soon.
  - B{Coalescing}: requests for a URL that is being fetched wait for that
    fetch instead of starting their own.
  - B{Bounds}: at most C{maxEntries} URLs and C{maxBytes} bytes of bodies,
    the least recently used going first.

All times come from the C{clock} (an C{IReactorTime}), so tests drive them.
Entries are keyed by URL and credentials: answers fetched with different
credentials are never mixed.
"""

import re
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

from twisted.internet import defer
from twisted.python.failure import Failure

from fbtwist.remote.credentials import Credentials
from fbtwist.remote.fetcher import FetchError, FetchResult
from fbtwist.remote.metrics import IRemoteMetrics, NoMetrics

#: Failures that say the resource does not exist, rather than that the
#: origin is unwell: remembered as an answer, never covered by a stale one.
ABSENT = frozenset({"http-404", "http-410"})

#: What an entry costs besides its body (bytes, roughly).
ENTRY_OVERHEAD = 512

_DIRECTIVE = re.compile(r"\s*([A-Za-z-]+)\s*(?:=\s*\"?([^\",]*)\"?)?\s*")


def parseCacheControl(value: Optional[str]) -> Dict[str, Optional[str]]:
    """
    @return: The directives of a C{Cache-Control} header value, names in
        lower case, each with its argument or C{None}.
    """
    directives = {}
    for part in (value or "").split(","):
        match = _DIRECTIVE.fullmatch(part)
        if match:
            directives[match.group(1).lower()] = match.group(2)
    return directives


def _seconds(text: Optional[str]) -> Optional[int]:
    if text is None or not text.strip().isdigit():
        return None
    return int(text.strip())


@dataclass
class _Entry:
    #: The last good answer, or C{None}.
    result: Optional[FetchResult]
    #: Until when C{result} is fresh.
    freshUntil: float
    #: A remembered failure (a 404, or the origin's last failure), or C{None}.
    error: Optional[FetchError] = None
    #: Until when C{error} is the answer without asking again.
    errorUntil: float = 0.0
    size: int = ENTRY_OVERHEAD
    #: Its key in the cache, once stored.
    key: Optional[Tuple[str, Optional[Credentials]]] = None
    #: The domain its fetch was for (its hits are counted for it).
    domain: str = ""
    #: Whether it is the cache's entry for its key: true from its storing
    #: until it is replaced, dropped or evicted (L{FetchCache.stillFresh}).
    current: bool = False


class FetchCache:
    """
    Answers fetches from memory when it can (see the module's docstring).

    @param fetcher: Has the L{fbtwist.remote.fetcher.Fetcher.fetch} method.
    @param clock: An C{IReactorTime}.
    @param validate: Passed to every fetch (what a body must be).
    @param ttl: Seconds an answer stays fresh when it does not say.
    @param maxTTL: The longest freshness an answer may claim.
    @param minTTL: The shortest freshness an answer gets, whatever it
        claims (C{no-cache}, a small C{max-age}); C{no-store} still keeps it
        out.  Free/busy a few minutes old is as good as new, and an origin
        that asks every reader to revalidate (fbtwist itself answers
        C{no-cache}) would otherwise be asked once per lookup.
    @param negativeTTL: Seconds a 404 or 410 is remembered.
    @param retryAfter: Seconds after a failure before the origin is asked
        again.
    @param maxStale: Seconds past its freshness an answer may still be
        given, marked stale, while the origin fails.
    @param metrics: Told of misses and stale answers as they happen, and
        of hits when L{flushHits} hands them over.
    """

    def __init__(self, fetcher, clock, *, validate: Optional[Callable[[bytes], Any]] = None,
                 ttl: float = 15 * 60, maxTTL: float = 24 * 60 * 60, minTTL: float = 0,
                 negativeTTL: float = 2 * 60,
                 retryAfter: float = 30, maxStale: float = 24 * 60 * 60, maxEntries: int = 1000,
                 maxBytes: int = 32 << 20, metrics: IRemoteMetrics = None):
        self.fetcher = fetcher
        self.clock = clock
        self.validate = validate
        self.ttl = ttl
        self.maxTTL = maxTTL
        self.minTTL = minTTL
        self.negativeTTL = negativeTTL
        self.retryAfter = retryAfter
        self.maxStale = maxStale
        self.maxEntries = maxEntries
        self.maxBytes = maxBytes
        self.metrics = metrics if metrics is not None else NoMetrics()
        self._entries: "OrderedDict[Tuple[str, Optional[Credentials]], _Entry]" = OrderedDict()
        self._inflight: Dict[Tuple[str, Optional[Credentials]], List[defer.Deferred]] = {}
        self.size = 0
        #: Hits counted by L{countHit} not yet handed to the metrics, by
        #: domain (L{flushHits}).
        self._hits: Dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, url: str, credentials: Optional[Credentials] = None,
            domain: Optional[str] = None) -> defer.Deferred:
        """
        The answer for C{url}, from memory or from the origin.

        @param domain: Names the request in metrics (C{url}'s host when
            C{None}).
        @return: A L{twisted.internet.defer.Deferred} firing with a L{FetchResult} (C{stale}
            set when the origin failed and an expired answer is given), or
            failing with a L{FetchError}.
        """
        domain = domain or _hostOf(url)
        fresh = self.fresh(url, credentials, domain)
        if fresh is not None:
            return defer.succeed(fresh)
        key = (url, credentials)
        now = self.clock.seconds()
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            if entry.error is not None and now < entry.errorUntil:
                self.countHit(url, domain)
                stale = self._staleAnswer(entry, now)
                if stale is not None:
                    self.metrics.stale(domain)
                    return defer.succeed(stale)
                return defer.fail(entry.error)
        self.metrics.miss(domain)
        waiters = self._inflight.get(key)
        start = waiters is None
        if start:
            waiters = self._inflight[key] = []
        waiter = defer.Deferred(lambda d: waiters.remove(d))
        waiters.append(waiter)
        if start:
            shared = defer.Deferred.fromCoroutine(self._refresh(key, url, credentials, domain))
            shared.addBoth(self._deliver, key)
        return waiter

    def fresh(self, url: str, credentials: Optional[Credentials] = None,
              domain: Optional[str] = None) -> Optional[FetchResult]:
        """
        L{get}'s answer when it is a fresh one in memory, without a
        Deferred: a hit, counted by L{countHit}; else C{None}: then ask
        L{get}.
        """
        entry = self.freshEntry(url, credentials)
        if entry is None:
            return None
        self.countHit(url, domain)
        return entry.result

    def freshEntry(self, url: str, credentials: Optional[Credentials] = None):
        """
        The cache's entry for C{url} when it holds a fresh answer (its
        C{result}), made the most recently used; else C{None}.  No hit is
        counted: it is a token that L{stillFresh} tells, and counts, again
        (a lookup's answer made of it and remembered, say).
        """
        key = (url, credentials)
        entry = self._entries.get(key)
        if entry is None or entry.result is None or self.clock.seconds() >= entry.freshUntil:
            return None
        self._entries.move_to_end(key)
        return entry

    def stillFresh(self, entry) -> bool:
        """
        Whether C{entry} (from L{freshEntry}) is still the cache's entry for
        its URL and fresh: then its answer is as good as L{fresh}'s, and it
        is used again here, a hit (counted for the domain it was fetched
        for) that makes it the most recently used.  A new fetch of the URL
        (a new entry), its expiry, its eviction or its drop: C{False}.
        """
        if not entry.current or self.clock.seconds() >= entry.freshUntil:
            return False
        self._entries.move_to_end(entry.key)
        self.countHit(entry.key[0], entry.domain)
        return True

    def countHit(self, url: str, domain: Optional[str] = None) -> None:
        """
        Count a hit of the cache (a fresh answer, L{fresh}; a failure
        remembered): only added up here, and handed to the metrics, by
        domain, when L{flushHits} is called (before each scrape of the
        metrics: L{fbtwist.ops.metrics.MetricsObserver.beforeScrape}).  A
        metrics event per hit, or per turn of the reactor, cost a lookup
        answered at once a sixth of its time.
        """
        domain = domain or _hostOf(url)
        hits = self._hits
        hits[domain] = hits.get(domain, 0) + 1

    def flushHits(self) -> None:
        """
        Hand the hits L{countHit} added up since the last call to the
        metrics, one count a domain.
        """
        hits, self._hits = self._hits, {}
        for domain, count in hits.items():
            self.metrics.hit(domain, count)

    def _deliver(self, result, key) -> None:
        for waiter in self._inflight.pop(key):
            if waiter.called:  # cancelled
                continue
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)
        return None

    def _staleAnswer(self, entry: _Entry, now: float) -> Optional[FetchResult]:
        if entry.result is None or entry.error is None or entry.error.reason in ABSENT:
            return None
        if now >= entry.freshUntil + self.maxStale:
            return None
        return replace(entry.result, stale=True)

    async def _refresh(self, key, url: str, credentials, domain: str) -> FetchResult:
        entry = self._entries.get(key)
        known = entry.result if entry is not None else None
        try:
            result = await self.fetcher.fetch(
                url, credentials, validate=self.validate, domain=domain,
                etag=known.etag if known is not None else None,
                lastModified=known.lastModified if known is not None else None)
        except FetchError as e:
            now = self.clock.seconds()
            if e.reason in ABSENT:
                self._store(key, _Entry(None, now, e, now + self.negativeTTL), domain)
                raise
            current = self._entries.get(key, entry)
            failed = _Entry(current.result if current is not None else None,
                            current.freshUntil if current is not None else now, e, now + self.retryAfter)
            stale = self._staleAnswer(failed, now)
            self._store(key, failed if stale is not None else _Entry(None, now, e, now + self.retryAfter), domain)
            if stale is None:
                raise
            self.metrics.stale(domain)
            return stale
        if result.notModified:
            if known is None:  # only asked conditionally when something is known
                raise FetchError("bad-response", "the origin answered 304 to an unconditional request")
            result = replace(
                known, fetchedAt=result.fetchedAt, etag=result.etag or known.etag,
                lastModified=result.lastModified or known.lastModified,
                cacheControl=result.cacheControl if result.cacheControl is not None else known.cacheControl,
                age=result.age)
        lifetime = self._lifetime(result)
        if lifetime is None:
            self._drop(key)
        else:
            self._store(key, _Entry(result, result.fetchedAt + lifetime), domain)
        return result

    def _lifetime(self, result: FetchResult) -> Optional[float]:
        """
        @return: How long C{result} is fresh from its arrival, or C{None}
            when it may not be stored.
        """
        directives = parseCacheControl(result.cacheControl)
        if "no-store" in directives:
            return None
        lifetime = self._claimedLifetime(directives, result)
        return max(lifetime, float(self.minTTL))

    def _claimedLifetime(self, directives, result: FetchResult) -> float:
        if "no-cache" in directives:
            return 0.0
        maxAge = _seconds(directives.get("s-maxage"))
        if maxAge is None:
            maxAge = _seconds(directives.get("max-age"))
        if maxAge is None:
            return float(self.ttl)
        return float(max(0, min(maxAge, self.maxTTL) - (_seconds(result.age) or 0)))

    def _drop(self, key) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            entry.current = False
            self.size -= entry.size

    def _store(self, key, entry: _Entry, domain: str) -> None:
        self._drop(key)
        entry.size = ENTRY_OVERHEAD + len(key[0]) + (len(entry.result.body) if entry.result is not None else 0)
        if entry.size > self.maxBytes:
            return
        entry.key, entry.domain, entry.current = key, domain, True
        self._entries[key] = entry
        self.size += entry.size
        while len(self._entries) > self.maxEntries or self.size > self.maxBytes:
            _, evicted = self._entries.popitem(last=False)
            evicted.current = False
            self.size -= evicted.size


def _hostOf(url: str) -> str:
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""
