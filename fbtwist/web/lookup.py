"""
The lookup URLs under C{/calendar/}: what calendar clients fetch when
planning a meeting, and a page people can read.

  - C{/calendar/<name>.vfb} and C{.ifb}, C{<name>} a login, a mail local part
    (Outlook's C{%NAME%}) or a whole address (C{%NAME%@%SERVER%}, the C{@}
    also as C{%40}), resolved in the directory, case-insensitively;
  - C{/calendar/group/<cn>.vfb} and C{.ifb}: the merged busy times of an LDAP
    group's members;
  - C{/calendar/}: the page (L{fbtwist.web.page});
  - C{/calendar/find}: when can people (and a room) meet (L{fbtwist.web.find});
  - C{/calendar/rooms/}: the rooms that fit (L{fbtwist.web.rooms}).

With C{workhours=1} (or C{--apply-working-hours}) an answer also marks the
time outside each person's working hours (the visibility decides,
L{fbtwist.access.visibility.FreeBusyVisibility.freeBusyFor}).

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

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Coroutine, List, Optional, Tuple
from zoneinfo import ZoneInfo

from twisted.cred.checkers import AllowAnonymousAccess
from twisted.cred.credentials import Anonymous
from twisted.cred.portal import Portal
from twisted.logger import Logger
from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from fbtwist.access.realm import FreeBusyRealm
from fbtwist.access.visibility import (
    HIDDEN,
    Detail,
    FreeBusyVisibility,
    Group,
    Person,
    Visible,
    groupSearchBase,
    variantETag,
)
from fbtwist.addresses import clientAddress
from fbtwist.availability.model import Availability
from fbtwist.availability.workhours import parseWorkingHours
from fbtwist.cache import LRUCache
from fbtwist.calendar import derive, freebusy, publicview
from fbtwist.calendar.freebusy import Period, TimeRange
from fbtwist.errors import NotFound
from fbtwist.interfaces import ICalendarStore, IDirectory, IFreeBusyReader
from fbtwist.web import federated, find, page, rooms
from fbtwist.web.fastlookup import responseHead
from fbtwist.web.lookupcache import NameCache
from fbtwist.web.lookupquery import FORMAT_JCAL, NO_PARAMETERS, Query, parseQuery, splitLookupName
from fbtwist.web.responses import (
    CALENDAR_TYPE,
    HTTPError,
    renderAsync,
    renderSoon,
    serveCalendar,
    writeError,
    writeNotAllowed,
)

JCAL_TYPE = b"application/calendar+json; charset=utf-8"

GROUP_SEGMENT = b"group"
FIND_SEGMENT = b"find"
ROOMS_SEGMENT = b"rooms"


#: L{LookupResource._plainAnswer} not given what was remembered: it asks.
NOT_ASKED = object()


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
    @ivar workingHours: The site's working hours, for people who published
        none; C{None}: none.
    @ivar applyWorkingHours: Mark time outside working hours in every
        answer, not only those asking for C{workhours=1}.
    @ivar keepAnswers: Keep the answer rendered from a person's file with
        that version of the file (L{LookupResource._plainAnswer}).
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
    workingHours: Optional[Availability] = None
    applyWorkingHours: bool = False
    keepAnswers: bool = True
    #: Where addresses of other organisations are looked up
    #: (L{fbtwist.remote.source.FederatedFreeBusy}), or C{None}.
    federation: Optional[object] = None
    #: Users' calendar feeds (L{fbtwist.access.feeds.FeedStore}), or C{None}.
    feeds: Optional[object] = None

    @classmethod
    def fromConfig(cls, config, directoryURL) -> "LookupSettings":
        return cls(
            auth=config.lookupAuth,
            trustedNetworks=tuple(config.trustedNetworks),
            defaultZone=config.defaultTZ,
            groupBase=groupSearchBase(config.groupBase, directoryURL),
            groupMaxMembers=config.groupMaxMembers,
            window=timedelta(days=config.lookupWindow),
            missDelay=config.lookupMissDelay,
            expandLimit=config.expandLimit,
            workingHours=parseWorkingHours(config.workingHours, config.defaultTZ),
            applyWorkingHours=config.applyWorkingHours,
            keepAnswers=config.keepAnswers,
        )


def _utcFromTimestamp(seconds: float) -> datetime:
    return datetime.fromtimestamp(int(seconds), timezone.utc)


class LookupResource(Resource):
    """
    C{/calendar/}: free/busy by lookup name, group free/busy, and the page.
    """

    isLeaf = True
    log = Logger()

    def __init__(self, directory: IDirectory, store: ICalendarStore, settings: LookupSettings = LookupSettings(),
                 reactor=None, names: Optional["NameCache"] = None, portal: Optional[Portal] = None):
        super().__init__()
        self.directory = directory
        self.store = store
        self.settings = settings
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        if portal is None:
            # On its own (tests, tools): a realm and portal of its own, for
            # anonymous readers.
            visibility = visibilityFor(settings, store, directory, reactor, names)
            portal = Portal(FreeBusyRealm(store, directory, visibility=visibility), [AllowAnonymousAccess()])
        #: Where readers get their avatar (L{IFreeBusyReader}).
        self.portal = portal
        #: The realm's one decision of what a viewer may see.
        self.visibility = portal.realm.visibility
        self.names = self.visibility.names
        self.busyTime = self.visibility.busyTime
        #: The floor of time under every answer that finds nothing.
        self.missFloor = self.visibility.missFloor
        #: Rendered answers, (entity tag, body), by what the tag names.
        self._answerCache = LRUCache(1024)
        #: The anonymous reader's avatar, the same for every anonymous
        #: request: logged in once, through the portal.
        self._anonymous: Optional[IFreeBusyReader] = None
        self._anonymousLogin = portal.login(Anonymous(), None, IFreeBusyReader).addCallbacks(
            self._anonymousLoggedIn, self._anonymousRefused)

    def _anonymousLoggedIn(self, result) -> None:
        self._anonymous = result[1]

    def _anonymousRefused(self, failure) -> None:
        self.log.failure("the portal refused the anonymous lookup reader", failure)

    def forReader(self, reader: IFreeBusyReader) -> Resource:
        """
        The lookups as C{reader} (an avatar from the portal, through
        L{guardedLookup}) reads them.
        """
        return _ReaderLookup(self, reader)

    async def resolve(self, name: str) -> Optional[str]:
        """
        The uid whose file C{name} asks for (C{None}: nobody): see
        L{FreeBusyVisibility.resolve}.
        """
        return await self.visibility.resolve(name)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.reactor.seconds(), timezone.utc)

    def render(self, request):
        if request.method not in (b"GET", b"HEAD"):
            # Refused before anything is read or anyone logged in.
            writeNotAllowed(request, ("GET", "HEAD"), "lookups are read-only: use GET")
            return NOT_DONE_YET
        reader = self._anonymous
        if reader is None:
            # Not logged in yet (the portal answers anonymous readers at
            # once, so only when something went wrong).
            self._anonymousLogin.addCallback(lambda _: self._renderLogged(request))
            return NOT_DONE_YET
        return self.renderFor(request, reader)

    def _renderLogged(self, request) -> None:
        if self._anonymous is None:
            writeError(request, http.SERVICE_UNAVAILABLE, "lookups are not available")
        else:
            self.renderFor(request, self._anonymous)

    def renderFor(self, request, reader: IFreeBusyReader):
        """
        Answer C{request} for C{reader}, the avatar the portal gave: the
        anonymous reader, or a reader who logged in (through
        L{guardedLookup}).
        """
        if request.method not in (b"GET", b"HEAD"):
            writeNotAllowed(request, ("GET", "HEAD"), "lookups are read-only: use GET")
            return NOT_DONE_YET
        postpath = request.postpath
        if not postpath or postpath == [b""]:
            return renderAsync(request, page.answerPage(self, request, reader))
        if len(postpath) == 1 and postpath[0] in page.STATIC_FILES:
            page.serveStatic(request, postpath[0])
            return NOT_DONE_YET
        if len(postpath) == 2 and postpath[0] == GROUP_SEGMENT:
            return renderAsync(request, self._getGroup(request, reader))
        if postpath == [FIND_SEGMENT]:
            return renderAsync(request, find.answerFind(self, request, reader))
        if postpath in ([ROOMS_SEGMENT], [ROOMS_SEGMENT, b""]):
            return renderAsync(request, rooms.answerRooms(self, request))
        return renderSoon(request, functools.partial(self._getPerson, reader=reader))

    # --- one person ---

    def _getPerson(self, request, reader: IFreeBusyReader) -> Optional[Coroutine]:
        # Answered at once when the name is known and the source is a
        # free/busy file (most lookups): see renderSoon.
        if len(request.postpath) != 1:
            raise HTTPError(http.NOT_FOUND, "ask for /calendar/<name>.vfb")
        name = splitLookupName(request.postpath[0])
        query = parseQuery(request, self.now(), self.settings.window)
        if query is NO_PARAMETERS:
            plain = self._plainAnswer(reader, name)
            if plain is not None:
                etag, body, modified = plain
                serveCalendar(request, body, etag, modified, contentType=CALENDAR_TYPE)
                return None
        answer = reader.freeBusyForNow(Person(name), query.range, Detail.BUSY, query.workhours)
        if answer is None:
            return self._getPersonLater(request, name, query, reader)
        self._serve(request, query, answer)
        return None

    async def _getPersonLater(self, request, name: str, query: Query, reader: IFreeBusyReader) -> None:
        # When the request arrived (by the site's clock, the same reactor).
        started = getattr(request, "started", None) or self.reactor.seconds()
        answer = await reader.freeBusyFor(Person(name), query.range, Detail.BUSY, started, query.workhours)
        if answer is HIDDEN:
            # The same answer, after the same floor of time, whether the
            # name is a directory member's or nobody's.
            raise NotFound(f"No free/busy times published for {name}")
        self._serve(request, query, answer)

    def _serve(self, request, query: Query, answer: Visible) -> None:
        """
        Answer with L{publicview.publicView} of what the reader may see, in
        the form C{query} asks for.  The entity tag names the source
        version, its time (the C{DTSTAMP}), the form and the rendering, so
        it changes exactly when the bytes do.
        """
        etag, body = self._rendered(query, answer)
        if answer.stale:
            # Another organisation's expired answer (fbtwist.web.federated).
            federated.markStale(request)
        serveCalendar(request, body, etag, answer.modified,
                      contentType=JCAL_TYPE if query.format == FORMAT_JCAL else CALENDAR_TYPE)

    def _rendered(self, query: Query, answer: Visible) -> Tuple[str, bytes]:
        """
        The entity tag and body of C{answer} in the form C{query} asks for,
        rendered once and kept (L{_serve}).
        """
        fb, modified = answer.freeBusy, answer.modified
        jcal = query.format == FORMAT_JCAL
        # Everything the entity tag names (the window's zones too: they are
        # part of its text), so that a lookup asked before is answered
        # without hashing or rendering again.
        key = (answer.etag, answer.owner, int(modified), query.format, query.style, fb.start, fb.end,
               getattr(fb.start, "tzinfo", None), getattr(fb.end, "tzinfo", None))
        cached = self._answerCache.get(key)
        if cached is None:
            stamp = _utcFromTimestamp(modified)
            etag = variantETag(answer.etag, publicview.PUBLIC_RENDERING, answer.owner, stamp.isoformat(),
                               query.format, query.style, repr(fb.start), repr(fb.end))
            cached = (etag, publicview.publicView(fb, answer.owner, stamp, query.style, jcal))
            self._answerCache.put(key, cached)
        return cached

    def answerNow(self, segment: bytes) -> Optional[Tuple[str, bytes, float, bytes]]:
        """
        The anonymous answer to C{GET /calendar/<segment>} without
        parameters, when it is known at once and plain (a published
        free/busy file the anonymous reader may see, not another
        organisation's stale answer): its entity tag, body, time and media
        type, as L{_serve} would send them; else C{None} (then the request
        takes the whole way: L{fbtwist.web.fastlookup}).
        """
        reader = self._anonymous
        if reader is None:
            return None
        try:
            name = splitLookupName(segment)
        except HTTPError:
            return None
        target = Person(name)
        # Remembered in memory, while nothing it was made of changed (with
        # the head of the quick answer: fbtwist.web.fastlookup).
        remembered, ticket = reader.rememberedAnswer(target)
        if remembered is not None:
            etag, body, modified, head = remembered
            return etag, body, modified, CALENDAR_TYPE, head
        plain = self._plainAnswer(reader, name, ticket)
        if plain is not None:
            return plain + (CALENDAR_TYPE, None)
        answer = reader.freeBusyForNow(target, None, Detail.BUSY, False)
        if answer is None or answer.stale:
            return None
        etag, body = self._rendered(NO_PARAMETERS, answer)
        if ticket is not None and ticket.remote:
            # Another organisation's fresh answer.
            self._remember(reader, ticket, (etag, body, answer.modified))
        return etag, body, answer.modified, CALENDAR_TYPE, None

    @staticmethod
    def _remember(reader: IFreeBusyReader, ticket, found: Tuple[str, bytes, float]) -> None:
        """
        Remember C{found} (entity tag, body, time) with the ticket
        (L{IFreeBusyReader.rememberAnswer}), and the head of its quick
        answer with it.
        """
        etag, body, modified = found
        reader.rememberAnswer(ticket, found + (responseHead(etag, CALENDAR_TYPE, len(body), modified),))

    def _plainAnswer(self, reader: IFreeBusyReader, name: str,
                     ticket=NOT_ASKED) -> Optional[Tuple[str, bytes, float]]:
        """
        The entity tag, body and time of the answer without parameters
        about C{name}, when it is made of one published free/busy file
        (L{IFreeBusyReader.plainNow}): from what was kept with that version
        of the file when it was rendered before (by any server using the
        tree), else rendered and then kept with it (C{--keep-answers});
        C{None} when it is not such a file.

        With 100,000 people looked up in turn, most lookups find no answer
        in memory; the kept one spares reading the file's times and
        rendering them (most of such a lookup's work).  First of all, the
        answer remembered in memory (L{IFreeBusyReader.rememberedAnswer}),
        unless C{ticket} says what that gave already (then the answer made
        is remembered with it).
        """
        target = Person(name)
        if ticket is NOT_ASKED:
            # Remembered in memory, while nothing it was made of changed.
            remembered, ticket = reader.rememberedAnswer(target)
            if remembered is not None:
                return remembered[:3]
        if ticket is not None and ticket.remote:
            return None
        # What was kept, when anything was, without reading the file.
        source = reader.plainNow(target, False)
        if source is None:
            return None
        published = source.published
        detail = "full" if source.detail is None else source.detail.name.lower()
        # What the answer depends on besides the file's version (which the
        # store checks): the rendering, the owner (its name is in the
        # answer) and the detail shown.
        tag = f"{publicview.PUBLIC_RENDERING} {source.owner} {detail}\n".encode("utf-8")
        kept = published.kept
        if kept is not None and kept.startswith(tag):
            etag, newline, body = kept[len(tag):].partition(b"\n")
            if newline:
                found = etag.decode("ascii"), body, published.info.modified
                if ticket is not None:
                    self._remember(reader, ticket, found)
                return found
        if published.data is None:
            # Kept for another rendering, owner or detail: the file itself.
            source = reader.plainNow(target)
            if source is None:
                return None
        answer = reader.visibleFrom(source)
        if answer is HIDDEN:
            return None
        etag, body = self._rendered(NO_PARAMETERS, answer)
        if self.settings.keepAnswers:
            reader.keepAnswer(source, tag + etag.encode("ascii") + b"\n" + body)
        found = etag, body, answer.modified
        if ticket is not None:
            self._remember(reader, ticket, found)
        return found

    # --- a group ---

    async def _getGroup(self, request, reader: IFreeBusyReader) -> None:
        """
        Merge the busy times of the group's members.  A group none of whose
        members published, a group larger than C{--group-max-members} and a
        group that does not exist get the person rule's miss, so that
        anonymous readers cannot tell which groups exist or how large they
        are; only a reader who logged in is told that a group is too large
        (L{FreeBusyVisibility.freeBusyFor}).
        """
        cn = splitLookupName(request.postpath[1])
        query = parseQuery(request, self.now(), self.settings.window)
        started = getattr(request, "started", None) or self.reactor.seconds()
        answer = await reader.freeBusyFor(Group(cn), query.range, Detail.BUSY, started, query.workhours)
        if answer is HIDDEN:
            raise NotFound(f"No free/busy times published for the group {cn}")
        self._serve(request, query, answer)

    # --- for the page ---

    async def busyTimes(self, name: str, timeRange: TimeRange,
                        reader: Optional[IFreeBusyReader] = None) -> Optional[List[Period]]:
        """
        The busy periods of the person C{name} within C{timeRange}, merged;
        C{None} when nobody by that name has published, after the same
        floor of time whether the name is a member's or nobody's.
        """
        if reader is None:
            await self._anonymousLogin
            reader = self._anonymous
        answer = await federated.unlessUnavailable(reader.freeBusyFor(Person(name), timeRange, Detail.BUSY))
        if answer is HIDDEN:
            return None
        return freebusy.mergePeriods(answer.freeBusy.busy())

    # --- finding a time, for the page ---

    async def suggestTimes(self, names: List[str], timeRange: TimeRange, duration: timedelta, zone,
                           workhours: bool) -> list:
        """
        The times in C{timeRange} when the people C{names} are all free (the
        page's "find a time", as an anonymous reader sees them).
        """
        # Back-to-back slots of the meeting's length, so that a week's suggestions spread out.
        await self._anonymousLogin
        slots, _ = await find.suggest(self, names, timeRange, duration, self._anonymous, workhours, zone,
                                      step=duration, limit=40)
        return slots


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


class _ReaderLookup(Resource):
    """
    The lookup resource as one reader (an avatar from the portal) reads it.
    """

    isLeaf = True

    def __init__(self, lookup: LookupResource, reader: IFreeBusyReader):
        super().__init__()
        self.lookup = lookup
        self.reader = reader

    def render(self, request):
        return self.lookup.renderFor(request, self.reader)


def guardedLookup(portal: Portal, realmName: str, lookup: LookupResource, trustedNetworks) -> Resource:
    """
    C{lookup} behind HTTP Basic authentication through C{portal} (the one
    portal: its checkers and realm), anonymous for clients in
    C{trustedNetworks}: each request reads as the L{IFreeBusyReader} the
    realm gives its login.
    """
    from fbtwist.web.auth import BasicAuthGuard

    return BasicAuthGuard(portal, realmName, anonymousAllowed=lambda request: isTrusted(request, trustedNetworks),
                          interface=IFreeBusyReader, resourceFor=lookup.forReader)


def visibilityFor(settings: LookupSettings, store: ICalendarStore, directory: IDirectory, reactor,
                  names: Optional[NameCache] = None) -> FreeBusyVisibility:
    """
    The realm's L{FreeBusyVisibility} for lookups as C{settings} describe
    them.
    """
    return FreeBusyVisibility(
        store, directory, reactor, window=settings.window, defaultZone=settings.defaultZone,
        expandLimit=settings.expandLimit, missDelay=settings.missDelay, names=NameCache() if names is None else names,
        groupBase=settings.groupBase, groupMaxMembers=settings.groupMaxMembers,
        workingHours=settings.workingHours, applyWorkingHours=settings.applyWorkingHours,
        federation=settings.federation, feeds=settings.feeds,
    )
