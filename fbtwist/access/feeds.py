"""
Users' own calendar feeds: ICS URLs a signed-in user registers (a Google,
Nextcloud or Exchange calendar published elsewhere), fetched on a schedule,
their busy time merged into the user's answers.

  - B{Where}: one hidden JSON file per user in the calendar tree
    (C{.feeds/<uid>.json}, written atomically), so every server sharing
    the tree sees the same feeds and their busy time.  It holds each feed's
    URL, the validators of its last answer (C{ETag}, C{Last-Modified}),
    its last outcome in words, and the busy periods derived from it: never
    the events themselves, which are expanded as they arrive and dropped.
  - B{Work}: each fetch goes through L{fbtwist.remote.fetcher.Fetcher}
    (address policy, time and size bounds, conditional requests), and the
    busy time is derived as for a published full calendar, for the same
    horizon and with the same bounded expansion
    (L{fbtwist.calendar.derive.deriveBounded} in the reactor's threads).
  - B{Secrets}: a feed's URL often is its password; it is never logged
    past its origin (L{describeFeed}) and shown to its owner only.
"""

import json
import secrets
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Dict, List, Optional

from twisted.internet import defer, task, threads
from twisted.internet.interfaces import IReactorThreads
from twisted.logger import Logger

from fbtwist.access.folderwatch import FolderMemo
from fbtwist.calendar import derive
from fbtwist.calendar.busytime import Derivation, horizon
from fbtwist.calendar.freebusy import Period, TimeRange, clipPeriods
from fbtwist.errors import InvalidCalendar, PermissionDenied
from fbtwist.remote.calendars import eventCalendar
from fbtwist.remote.fetcher import FetchError, describeOrigin, parseURL
from fbtwist.store.files import atomicWrite
from fbtwist.store.paths import validateName

#: The hidden folder of the tree that holds the feeds.
FEEDS_FOLDER = "feeds"
_FORMAT = 1


def describeFeed(url: str) -> str:
    """
    @return: What may be said of a feed's URL in a log: its origin.
    """
    try:
        return describeOrigin(parseURL(url))
    except FetchError:
        return "a feed"


@dataclass
class Feed:
    """
    One registered feed and what its last fetch gave.

    @ivar id: Names the feed on the page (random, not the URL).
    @ivar ok: Whether the last fetch succeeded (C{None}: not fetched yet).
    @ivar message: The last outcome, in words.
    @ivar checkedAt: When it was last fetched (seconds since the epoch).
    @ivar busy: The busy time derived from its last good answer.
    """

    id: str
    url: str
    ok: Optional[bool] = None
    message: str = "not fetched yet"
    checkedAt: Optional[float] = None
    etag: Optional[str] = None
    lastModified: Optional[str] = None
    busy: Optional[Derivation] = field(default=None, repr=False)

    def toJSON(self) -> dict:
        return {"id": self.id, "url": self.url, "ok": self.ok, "message": self.message,
                "checkedAt": self.checkedAt, "etag": self.etag, "lastModified": self.lastModified,
                "busy": None if self.busy is None else json.loads(self.busy.toBytes())}

    @classmethod
    def fromJSON(cls, record: dict) -> "Feed":
        busy = record.get("busy")
        return cls(str(record["id"]), str(record["url"]), record.get("ok"), str(record.get("message", "")),
                   record.get("checkedAt"), record.get("etag"), record.get("lastModified"),
                   None if busy is None else Derivation.fromBytes(json.dumps(busy).encode("utf-8")))


def _fileName(uid: str) -> str:
    """
    The name the file of C{uid}'s feeds would have (a uid that can name
    none is not found among the folder's names, as its file would not be).
    """
    return uid + ".json"


class FeedStore:
    """
    The feeds of every user, in the calendar tree.

    @param store: The L{fbtwist.store.tree.CalendarStore}.
    @param maxPerUser: How many feeds one user may register.
    @param turns: The reactor's L{fbtwist.store.watch.ReactorTurns}, or
        C{None}: whether a user's feeds give busy time is known from one
        C{stat} of the folder per question, or per turn with them.
    """

    log = Logger()

    def __init__(self, store, maxPerUser: int = 5, clock=None, turns=None):
        self.store = store
        self.maxPerUser = maxPerUser
        self._cache: Dict[str, tuple] = {}
        self._folderPath = None
        #: Whether each user's feeds have given busy time, while the folder
        #: is unchanged: asked for every lookup, mostly of people without
        #: feeds (one stat of the folder instead of one of their file).
        self._hasBusy = FolderMemo(lambda: self._folder().path, self._hasBusyTime, clock=clock,
                                   fileOf=_fileName, absent=False, turns=turns)

    def _folder(self):
        # Made by the first registration, not before.
        if self._folderPath is None:
            self._folderPath = self.store.metadataDirectory(FEEDS_FOLDER, create=False)
        return self._folderPath

    def _file(self, uid: str):
        return self._folder().child(validateName(uid) + ".json")

    def feeds(self, uid: str) -> List[Feed]:
        """
        @return: C{uid}'s feeds (none when the file is missing or damaged).
        """
        path = self._file(uid)
        try:
            stat = path.getModificationTime(), path.getsize()
        except OSError:
            return []
        cached = self._cache.get(uid)
        if cached is not None and cached[0] == stat:
            return [replace(f) for f in cached[1]]
        try:
            record = json.loads(path.getContent())
            if record.get("format") != _FORMAT:
                return []
            found = [Feed.fromJSON(r) for r in record["feeds"]]
        except (OSError, ValueError, KeyError, TypeError):
            self.log.warn("the feeds of {uid} are unreadable", uid=uid)
            return []
        self._cache[uid] = (stat, found)
        if len(self._cache) > 4096:
            self._cache.pop(next(iter(self._cache)))
        return [replace(f) for f in found]

    def save(self, uid: str, feeds: List[Feed]) -> None:
        data = json.dumps({"format": _FORMAT, "feeds": [f.toJSON() for f in feeds]}, separators=(",", ":"))
        self._folder().makedirs(ignoreExistingDirectory=True)
        atomicWrite(self._file(uid), data.encode("utf-8"))
        self._cache.pop(uid, None)
        self._hasBusy.forget(uid)

    def owners(self) -> List[str]:
        """
        @return: The uids with a feeds file.
        """
        folder = self._folder()
        if not folder.isdir():
            return []
        return sorted(p.basename()[:-5] for p in folder.children() if p.basename().endswith(".json"))

    def add(self, uid: str, url: str) -> Feed:
        """
        Register a feed for C{uid}.

        @raise ValueError: With one sentence when C{url} cannot be fetched.
        @raise PermissionDenied: When C{uid} has as many feeds as allowed.
        """
        try:
            url = parseURL(url.strip()).to_text()
        except FetchError as e:
            raise ValueError(e.message) from None
        feeds = self.feeds(uid)
        if any(f.url == url for f in feeds):
            raise ValueError("this feed is registered already")
        if len(feeds) >= self.maxPerUser:
            raise PermissionDenied(f"at most {self.maxPerUser} feeds may be registered: remove one first")
        feed = Feed(secrets.token_hex(8), url)
        self.save(uid, feeds + [feed])
        return feed

    def remove(self, uid: str, feedId: str) -> bool:
        feeds = self.feeds(uid)
        kept = [f for f in feeds if f.id != feedId]
        if len(kept) == len(feeds):
            return False
        self.save(uid, kept)
        return True

    def busyPeriods(self, uid: str, timeRange: TimeRange) -> Optional[List[Period]]:
        """
        @return: The busy periods of C{uid}'s feeds within C{timeRange}, or
            C{None} when C{uid} has no feed with busy time.
        """
        periods, any = [], False
        for feed in self.feeds(uid):
            if feed.busy is not None:
                any = True
                start, end = max(timeRange.start, feed.busy.start), min(timeRange.end, feed.busy.end)
                if start < end:
                    periods.extend(clipPeriods(feed.busy.periods, start, end))
        return periods if any else None

    def hasBusyTime(self, uid: str) -> bool:
        """
        Whether one of C{uid}'s feeds has given busy time (a feed not
        fetched yet, or failing from the start, changes no answer).
        """
        return self._hasBusy.get(uid)

    def folderVersion(self):
        """
        A value that changes whenever L{hasBusyTime} may for anyone
        (L{FolderMemo.folderVersion}), or C{None} when that cannot be
        promised now.
        """
        return self._hasBusy.folderVersion()

    def _hasBusyTime(self, uid: str) -> bool:
        return self.version(uid) is not None and any(f.busy is not None for f in self.feeds(uid))

    def modified(self, uid: str) -> float:
        """
        @return: When C{uid}'s feeds last changed (0 when there are none).
        """
        try:
            return self._file(uid).getModificationTime()
        except OSError:
            return 0.0

    def version(self, uid: str) -> Optional[str]:
        """
        @return: Names the current state of C{uid}'s feeds (for entity
            tags), or C{None} when there are none.
        """
        path = self._file(uid)
        try:
            return f"{path.getModificationTime()}:{path.getsize()}"
        except OSError:
            return None


class FeedRefresher:
    """
    Fetches every registered feed every C{interval} seconds and keeps the
    busy time each gives (see the module).

    @param fetcher: A L{fbtwist.remote.fetcher.Fetcher}.
    """

    log = Logger()

    def __init__(self, feeds: FeedStore, fetcher, reactor, interval: float, defaultZone,
                 ruleIterations: int = derive.MAX_RULE_ITERATIONS):
        self.feeds = feeds
        self.fetcher = fetcher
        self.reactor = reactor
        self.interval = interval
        self.defaultZone = defaultZone
        self.ruleIterations = ruleIterations
        self._loop = None
        self._running: Dict[str, List[defer.Deferred]] = {}

    def start(self) -> None:
        self._loop = task.LoopingCall(self.refreshAll)
        self._loop.clock = self.reactor
        self._loop.start(self.interval, now=True).addErrback(
            lambda f: self.log.failure("refreshing calendar feeds", f))

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def refreshAll(self) -> defer.Deferred:
        """
        Fetch every user's feeds, one user after another.
        """
        return defer.Deferred.fromCoroutine(self._refreshAll())

    async def _refreshAll(self) -> None:
        try:
            owners = self.feeds.owners()
        except OSError:
            return
        for uid in owners:
            try:
                await self.refresh(uid)
            except Exception:
                self.log.failure("refreshing the feeds of {uid}", uid=uid)

    def refresh(self, uid: str) -> defer.Deferred:
        """
        Fetch C{uid}'s feeds now; while they are being fetched, wait for
        that instead (one fetch of a feed at a time).
        """
        waiters = self._running.get(uid)
        if waiters is not None:
            waiter = defer.Deferred()
            waiters.append(waiter)
            return waiter
        self._running[uid] = []

        def done(result):
            for waiter in self._running.pop(uid):
                waiter.callback(None)
            return result

        return defer.Deferred.fromCoroutine(self._refresh(uid)).addBoth(done)

    async def _refresh(self, uid: str) -> None:
        results = {}
        for feed in self.feeds.feeds(uid):
            results[feed.id] = await self._fetch(feed)
        # Registered or removed meanwhile: kept as the page left them.
        current = self.feeds.feeds(uid)
        updated = [results.get(f.id, f) if results.get(f.id, f).url == f.url else f for f in current]
        # Read and written in the reactor's thread, so that a registration
        # from the page cannot fall between the two (one small file).
        self.feeds.save(uid, updated)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.reactor.seconds(), timezone.utc)

    async def _fetch(self, feed: Feed) -> Feed:
        now = self.now()
        window = horizon(now)

        def derived(body: bytes):
            # Failures are told without the parser's words, which may quote
            # the events (and end in logs and on the page).
            try:
                eventCalendar(body)  # the cheap check and the parser's, before the expansion
            except InvalidCalendar:
                raise InvalidCalendar("not a calendar of events") from None

            def expand():
                try:
                    return derive.deriveBounded(body, window.start, window.end, self.defaultZone,
                                                self.ruleIterations)
                except derive.TooExpensive:
                    raise
                except Exception:
                    raise InvalidCalendar("the events cannot be expanded") from None

            if IReactorThreads.providedBy(self.reactor):
                return threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), expand)
            return expand()

        checked = replace(feed, checkedAt=self.reactor.seconds())
        try:
            result = await self.fetcher.fetch(
                feed.url, validate=derived, etag=feed.etag if feed.busy is not None else None,
                lastModified=feed.lastModified if feed.busy is not None else None, domain="feed")
        except FetchError as e:
            self.log.info("calendar feed at {origin} failed: {reason}", origin=describeFeed(feed.url),
                          reason=e.reason)
            gone = e.reason in ("http-404", "http-410")
            return replace(checked, ok=False, message=_inWords(e), busy=None if gone else feed.busy)
        except InvalidCalendar as e:
            return replace(checked, ok=False, message=f"not a usable calendar: {e.reason}")
        if result.notModified:
            return replace(checked, ok=True, message="unchanged since the last fetch",
                           etag=result.etag or feed.etag, lastModified=result.lastModified or feed.lastModified)
        periods = result.value
        return replace(checked, ok=True, message=f"{len(periods)} busy periods",
                       etag=result.etag, lastModified=result.lastModified,
                       busy=Derivation(result.etag or "", now, window.start, window.end, periods))


def _inWords(error: FetchError) -> str:
    """
    A fetch's failure as its owner reads it on the page.
    """
    if error.reason in ("http-404", "http-410"):
        return "the feed is gone (the server answered that it does not exist)"
    if error.reason == "timeout":
        return "the feed's server did not answer in time"
    if error.reason == "not-calendar":
        return "what the feed's server answered is not a calendar"
    if error.reason == "too-large":
        return "the feed is larger than this server accepts"
    if error.reason == "forbidden-address":
        return "the feed's address is on a network this server may not reach"
    return error.message
