"""
The lookup URLs under C{/calendar/}: what calendar clients fetch when
planning a meeting, and a page people can read.

  - C{/calendar/<name>.vfb} and C{.ifb}, C{<name>} a login, a mail local part
    (Outlook's C{%NAME%}) or a whole address (C{%NAME%@%SERVER%}, the C{@}
    also as C{%40}), resolved in the directory, case-insensitively;
  - C{/calendar/group/<cn>.vfb} and C{.ifb}: the merged busy times of an LDAP
    group's members;
  - C{/calendar/}: the page (L{fbtwist.web.page}).

The CalConnect Freebusy Read URL parameters C{start}, C{end}, C{period} and
C{format} (C{text/calendar} or jCal), and C{fbtype=explicit} / C{simple=1}
for picky readers, are understood.  Every answer is this server's
rendering of the published times (L{publicview.publicView}, the one definition
of what anonymous readers get, also used by anonymous FTP): valid RFC 5545
for strict parsers, the published periods and FBTYPEs kept, details
(summaries, attendees, ...) never.  A user may publish a full calendar (C{<uid>.ics}) instead of a
free/busy file; whichever of the two was published last is served, the
free/busy times derived from the events when it was published
(L{fbtwist.calendar.busytime}).
"""

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Coroutine, List, NamedTuple, Optional, Tuple
from zoneinfo import ZoneInfo

from twisted.cred.checkers import ANONYMOUS
from twisted.cred.portal import IRealm, Portal
from twisted.logger import Logger
from twisted.web import http
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from fbtwist.access.latency import LatencyFloor
from fbtwist.addresses import clientAddress
from fbtwist.calendar import derive, freebusy, ical, publicview
from fbtwist.calendar.busytime import BusyTime
from fbtwist.calendar.freebusy import FreeBusy, Period, TimeRange
from fbtwist.directory.filters import defaultGroupBase
from fbtwist.errors import InvalidCalendar, NotFound
from fbtwist.interfaces import ICalendarStore, IDirectory
from fbtwist.store.paths import ResourceInfo
from fbtwist.web import federated, feeds, page
from fbtwist.web.lookupcache import NameCache, _Cache
from fbtwist.web.lookupquery import FORMAT_JCAL, Query, parseQuery, splitLookupName
from fbtwist.web.responses import CALENDAR_TYPE, HTTPError, renderAsync, renderSoon, serveCalendar, writeError

#: What a user publishes: a free/busy file, or a full calendar.
FREEBUSY_FILE = ".vfb"
EVENTS_FILE = ".ics"
JCAL_TYPE = b"application/calendar+json; charset=utf-8"

GROUP_SEGMENT = b"group"


@dataclass(frozen=True)
class LookupSettings:
    """
    How lookups behave (from L{fbtwist.config.Config}).

    @ivar auth: Require a directory login for C{/calendar/}.
    @ivar trustedNetworks: With C{auth}, clients here may read anonymously.
    @ivar defaultZone: The zone of all-day events in calendars that name
        none, and of the page's week grid.
    @ivar groupBase: Where groups are searched; C{None}: no group lookups.
    @ivar groupMaxMembers: The largest group merged.
    @ivar window: The range served when a lookup gives a start but no end,
        and the range derived from a full calendar without any.
    @ivar maxPeople: The most people the page shows at once.
    @ivar missDelay: Seconds (and up to half as many more, at random) a
        lookup that finds nothing published waits from its arrival before
        it is answered (see L{fbtwist.access.latency.LatencyFloor}).
    @ivar expandLimit: The work expanding a full calendar may take
        (L{fbtwist.calendar.derive.expansionLimit}).
    """

    auth: bool = False
    trustedNetworks: tuple = ()
    defaultZone: ZoneInfo = ZoneInfo("UTC")
    groupBase: Optional[str] = None
    groupMaxMembers: int = 50
    window: timedelta = timedelta(days=42)
    maxPeople: int = 20
    missDelay: float = 0.05
    expandLimit: int = derive.MAX_RULE_ITERATIONS
    #: Where addresses of other organisations are looked up
    #: (L{fbtwist.remote.source.FederatedFreeBusy}), or C{None}.
    federation: Optional[object] = None
    #: Users' calendar feeds (L{fbtwist.access.feeds.FeedStore}), or C{None}.
    feeds: Optional[object] = None

    @classmethod
    def fromConfig(cls, config, directoryURL) -> "LookupSettings":
        groupBase = config.groupBase
        if groupBase is None and directoryURL is not None:
            groupBase = defaultGroupBase(directoryURL.base)
        return cls(
            auth=config.lookupAuth,
            trustedNetworks=tuple(config.trustedNetworks),
            defaultZone=config.defaultTZ,
            groupBase=groupBase or None,
            groupMaxMembers=config.groupMaxMembers,
            window=timedelta(days=config.lookupWindow),
            missDelay=config.lookupMissDelay,
            expandLimit=config.expandLimit,
        )


class Published(NamedTuple):
    """
    A user's published source of free/busy times.
    """

    path: Tuple[str, ...]
    info: ResourceInfo
    etag: str
    data: bytes

    @property
    def isCalendar(self) -> bool:
        return self.path[-1].lower().endswith(EVENTS_FILE)


def _variantETag(*parts: str) -> str:
    digest = hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:32]
    return f'"{digest}"'


def _utcFromTimestamp(seconds: float) -> datetime:
    return datetime.fromtimestamp(int(seconds), timezone.utc)


class LookupResource(Resource):
    """
    C{/calendar/}: free/busy by lookup name, group free/busy, and the page.
    """

    isLeaf = True
    log = Logger()

    def __init__(self, directory: IDirectory, store: ICalendarStore, settings: LookupSettings = LookupSettings(),
                 reactor=None, names: Optional["NameCache"] = None):
        super().__init__()
        self.directory = directory
        self.store = store
        self.settings = settings
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.names = NameCache() if names is None else names
        self._missFloor = LatencyFloor(reactor, settings.missDelay)
        self._freeBusyCache = _Cache()
        #: Rendered answers by entity tag.
        self._answerCache = _Cache(1024)
        self.busyTime = None if store is None else BusyTime.install(
            store, self.reactor, settings.defaultZone, settings.expandLimit)

    def resolvedNow(self, name: str) -> Tuple[bool, Optional[str]]:
        """
        The uid whose file C{name} asks for, when it is known without
        asking the directory.

        @return: C{(True, uid)} (C{uid} C{None}: nobody), or C{(False, None)}
            when only the directory can tell.
        """
        index = getattr(self.directory, "nameIndex", None)
        if index is not None:
            indexed, uid = index.get(name)
            if indexed:
                return True, uid
        return self.names.get(name)

    async def resolve(self, name: str) -> Optional[str]:
        """
        The uid whose file C{name} asks for (C{None}: nobody), from the
        directory's name index (L{fbtwist.directory.nameindex}; none before it is
        loaded, or when switched off), else the cache or the directory.
        """
        known, uid = self.resolvedNow(name)
        if not known:
            uid = await self.directory.resolveName(name)
            self.names.put(name, uid)
        return uid

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.reactor.seconds(), timezone.utc)

    def render(self, request):
        return self.renderFor(request, None)

    def renderFor(self, request, reader: Optional[str]):
        """
        Answer C{request} for C{reader}: the uid of a reader who logged in
        (through L{guardedLookup}), or C{None} for an anonymous one.
        """
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"Allow", b"GET, HEAD")
            writeError(request, http.NOT_ALLOWED, "lookups are read-only: use GET")
            return NOT_DONE_YET
        postpath = request.postpath
        if not postpath or postpath == [b""]:
            return renderAsync(request, page.answerPage(self, request))
        if len(postpath) == 1 and postpath[0] in page.STATIC_FILES:
            page.serveStatic(request, postpath[0])
            return NOT_DONE_YET
        if len(postpath) == 2 and postpath[0] == GROUP_SEGMENT:
            return renderAsync(request, self._getGroup(request, reader))
        return renderSoon(request, self._getPerson)

    # --- one person ---

    def _getPerson(self, request) -> Optional[Coroutine]:
        # Answered at once when the name is known and the source is a
        # free/busy file asked for as it is (most lookups): see renderSoon.
        if len(request.postpath) != 1:
            raise HTTPError(http.NOT_FOUND, "ask for /calendar/<name>.vfb")
        name = splitLookupName(request.postpath[0])
        query = parseQuery(request, self.now(), self.settings.window)
        known, uid = self.resolvedNow(name)
        if not known:
            return self._getPersonLater(request, name, query)
        return self._answerPerson(request, name, query, uid)

    async def _getPersonLater(self, request, name: str, query: Query) -> None:
        pending = self._answerPerson(request, name, query, await self.resolve(name))
        if pending is not None:
            await pending

    def _answerPerson(self, request, name: str, query: Query, uid: Optional[str]) -> Optional[Coroutine]:
        published = self.published(uid) if uid is not None else None
        if feeds.feedsOf(self, uid) is not None:
            # Busy time from the user's calendar feeds too (fbtwist.web.feeds).
            return feeds.answer(self, request, name, query, uid, published)
        if published is None:
            if uid is None and federated.isFederated(self, name):
                # Not one of ours: another organisation's (fbtwist.web.federated).
                return federated.answer(self, request, name, query)
            return self._notPublished(request, name)
        if not published.isCalendar and not query.transforms:
            fb, _ = self._readFreeBusy(published)
            self._serve(request, query, fb, uid, published.etag, published.info.modified)
            return None
        return self._serveFreeBusy(request, query, uid, published)

    async def _notPublished(self, request, name: str) -> None:
        """
        Answer 404 for a name with nothing published: the same answer, and
        after the same floor of time, whether the name is a directory
        member's or nobody's, so that anonymous readers cannot tell which.
        """
        # When the request arrived (by the site's clock, the same reactor).
        started = getattr(request, "started", None) or self.reactor.seconds()
        await self._missFloor.wait(started)
        raise NotFound(f"No free/busy times published for {name}")

    async def _serveFreeBusy(self, request, query: Query, uid: str, published: Published) -> None:
        fb = await self.freeBusy(published, query.range)
        modified = published.info.modified
        if published.isCalendar and query.range is None and fb.start is not None:
            # The window moves with the day: so does the answer.
            modified = max(modified, fb.start.timestamp())
        self._serve(request, query, fb, uid, published.etag, modified)

    def published(self, uid: str) -> Optional[Published]:
        """
        The user's source of free/busy times: C{<uid>.vfb} or C{<uid>.ics},
        whichever was published last (empty placeholders do not count).
        """
        freeBusyPath, eventsPath = (uid + FREEBUSY_FILE,), (uid + EVENTS_FILE,)
        snapshot = self.store.snapshot(freeBusyPath)
        if snapshot is not None and snapshot.info.size == 0:
            snapshot = None
        events = self.store.stat(eventsPath)
        if events is not None and not events.isCollection and events.size > 0:
            if snapshot is None or events.modified > snapshot.info.modified:
                snapshot = self.store.snapshot(eventsPath) or snapshot
        if snapshot is None:
            return None
        return Published(snapshot.info.path, snapshot.info, snapshot.etag, snapshot.data)

    def _readFreeBusy(self, published: Published) -> Tuple[FreeBusy, bool]:
        cached = self._freeBusyCache.get(published.etag)
        if cached is None:
            try:
                cached = ical.readFreeBusy(published.data)
            except InvalidCalendar as e:
                # Written past the server's validation (by an administrator
                # or another program): nothing can be served.
                self.log.warn("unreadable free/busy file {path}: {reason}", path="/".join(published.path),
                              reason=e.reason)
                raise NotFound("the published free/busy file is not readable") from None
            self._freeBusyCache.put(published.etag, cached)
        return cached

    async def freeBusy(self, published: Published, timeRange: Optional[TimeRange]) -> FreeBusy:
        """
        What a reader may learn from a published source, clipped to
        C{timeRange} (DTSTART and DTEND set to it).  A full calendar without
        a range gives the default window from today.
        """
        if published.isCalendar:
            if timeRange is None:
                timeRange = freebusy.defaultRange(self.now(), self.settings.window)
            return await self.busyTime.freeBusy(published.path, published.etag, published.data, timeRange)
        fb, _ = self._readFreeBusy(published)
        if timeRange is None:
            return fb
        return FreeBusy(
            freebusy.clipPeriods(fb.periods, timeRange.start, timeRange.end),
            timeRange.start, timeRange.end, fb.organizer,
        )

    def _serve(self, request, query: Query, fb: FreeBusy, owner: str, sourceETag: str, modified: float) -> None:
        """
        Answer with L{publicview.publicView} of C{fb}, C{owner}'s (a login, or
        C{group-<cn>}), in the form C{query} asks for.  The entity tag
        names the source version, its time (the C{DTSTAMP}), the form and
        the rendering, so it changes exactly when the bytes do.
        """
        jcal = query.format == FORMAT_JCAL
        stamp = _utcFromTimestamp(modified)
        etag = _variantETag(sourceETag, publicview.PUBLIC_RENDERING, owner, stamp.isoformat(), query.format,
                            query.style, repr(fb.start), repr(fb.end))
        body = self._answerCache.get(etag)
        if body is None:
            body = publicview.publicView(fb, owner, stamp, query.style, jcal)
            self._answerCache.put(etag, body)
        serveCalendar(request, body, etag, modified, contentType=JCAL_TYPE if jcal else CALENDAR_TYPE)

    # --- a group ---

    async def _getGroup(self, request, reader: Optional[str]) -> None:
        """
        Merge the busy times of the group's members.  A group none of whose
        members published, a group larger than C{--group-max-members} and a
        group that does not exist get the person rule's miss
        (L{_notPublished}), so that anonymous readers cannot tell which
        groups exist or how large they are; only a reader who logged in is
        told that a group is too large.
        """
        cn = splitLookupName(request.postpath[1])
        query = parseQuery(request, self.now(), self.settings.window)
        if federated.isFederatedGroup(self, cn):
            # Another organisation's group (fbtwist.web.federated).
            return await federated.answer(self, request, cn, query, group=True)
        if self.settings.groupBase is None:
            raise NotFound("group free/busy is not configured (--group-base)")
        limit = self.settings.groupMaxMembers
        members = await self.directory.groupMembers(cn, self.settings.groupBase, limit)
        if members is not None and len(members) > limit:
            self.log.info("group {cn} has more than {limit} members: not merged (--group-max-members)",
                          cn=cn, limit=limit)
            if reader is not None:
                raise HTTPError(
                    http.FORBIDDEN,
                    f"the group {cn} has more than {limit} members, more than this server merges "
                    f"(--group-max-members)",
                )
            members = None
        sources = []
        for uid in members or ():
            published = self.published(uid)
            if published is not None or feeds.feedsOf(self, uid) is not None:
                sources.append((uid, published))
        if not sources:
            return await self._notPublished(request, f"the group {cn}")
        timeRange = query.range or freebusy.defaultRange(self.now(), self.settings.window)
        periods, tags, modified = [], [cn], 0.0
        for uid, published in sources:
            # With the member's calendar feeds, if any (fbtwist.web.feeds).
            fb, tag, changed = await feeds.memberFreeBusy(self, uid, published, timeRange)
            periods.extend(fb.busy())
            tags.append(uid + tag)
            modified = max(modified, changed)
        merged = FreeBusy(freebusy.mergePeriods(periods), timeRange.start, timeRange.end)
        if query.range is None:
            modified = max(modified, timeRange.start.timestamp())
        self._serve(request, query, merged, f"group-{cn}", _variantETag(*tags), modified or 0.0)

    # --- for the page ---

    async def busyTimes(self, name: str, timeRange: TimeRange) -> Optional[List[Period]]:
        """
        The busy periods of the person C{name} within C{timeRange}, merged;
        C{None} when nobody by that name has published, after the same
        floor of time whether the name is a member's or nobody's.
        """
        started = self.reactor.seconds()
        uid = await self.resolve(name)
        published = self.published(uid) if uid is not None else None
        if feeds.feedsOf(self, uid) is not None:
            fb, _, _ = await feeds.mergedFreeBusy(self, uid, published, timeRange)
            if fb is not None:
                return freebusy.mergePeriods(fb.busy())
        if published is None and uid is None and federated.isFederated(self, name):
            found = await federated.busyTimes(self, name, timeRange)
            if found is not None:
                return found
        if published is None:
            await self._missFloor.wait(started)
            return None
        fb = await self.freeBusy(published, timeRange)
        return freebusy.mergePeriods(fb.busy())


# --- who may read ---


def isTrusted(request, networks) -> bool:
    """
    Whether the client's address is in one of C{networks}.
    """
    host = getattr(request.getClientAddress(), "host", None)
    if not host or not networks:
        return False
    address = clientAddress(host)
    return address is not None and any(address in network for network in networks)


@implementer(IRealm)
class _LookupRealm:
    """
    Every login that gets through the checkers reads the lookup resource.
    """

    def __init__(self, resource: Resource):
        self.resource = resource

    def requestAvatar(self, avatarId, mind, *interfaces):
        if IResource not in interfaces:
            raise TypeError("lookups are served over HTTP only")
        if avatarId is ANONYMOUS:
            return IResource, self.resource, lambda: None
        return IResource, _SignedInLookup(self.resource, avatarId), lambda: None


class _SignedInLookup(Resource):
    """
    The lookup resource as a reader who logged in sees it.
    """

    isLeaf = True

    def __init__(self, lookup: LookupResource, uid: str):
        super().__init__()
        self.lookup = lookup
        self.uid = uid

    def render(self, request):
        return self.lookup.renderFor(request, self.uid)


def guardedLookup(portal: Portal, realmName: str, lookup: LookupResource, trustedNetworks) -> Resource:
    """
    C{lookup} behind HTTP Basic authentication with the checkers of
    C{portal} (the directory), anonymous for clients in C{trustedNetworks}.
    """
    from fbtwist.web.auth import BasicAuthGuard

    checkers = []
    for checker in portal.checkers.values():
        if checker not in checkers:
            checkers.append(checker)
    lookupPortal = Portal(_LookupRealm(lookup), checkers)
    return BasicAuthGuard(lookupPortal, realmName, anonymousAllowed=lambda request: isTrusted(request, trustedNetworks))
