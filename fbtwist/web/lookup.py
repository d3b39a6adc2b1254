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

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Coroutine, List, Optional
from zoneinfo import ZoneInfo

from twisted.cred.checkers import ANONYMOUS
from twisted.cred.portal import IRealm, Portal
from twisted.logger import Logger
from twisted.web import http
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from fbtwist.access.visibility import (
    ANONYMOUS_VIEWER,
    HIDDEN,
    Detail,
    FreeBusyVisibility,
    Group,
    Person,
    Viewer,
    Visible,
    variantETag,
)
from fbtwist.addresses import clientAddress
from fbtwist.calendar import derive, freebusy, publicview
from fbtwist.calendar.freebusy import Period, TimeRange
from fbtwist.directory.filters import defaultGroupBase
from fbtwist.errors import NotFound
from fbtwist.interfaces import ICalendarStore, IDirectory
from fbtwist.web import page
from fbtwist.web.lookupcache import NameCache, _Cache
from fbtwist.web.lookupquery import FORMAT_JCAL, Query, parseQuery, splitLookupName
from fbtwist.web.responses import CALENDAR_TYPE, HTTPError, renderAsync, renderSoon, serveCalendar, writeError

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
        #: The one decision of what a viewer may see (lookups and the page).
        self.visibility = FreeBusyVisibility(
            store, directory, reactor, window=settings.window, defaultZone=settings.defaultZone,
            expandLimit=settings.expandLimit, missDelay=settings.missDelay, names=self.names,
            groupBase=settings.groupBase, groupMaxMembers=settings.groupMaxMembers,
        )
        self.busyTime = self.visibility.busyTime
        #: Rendered answers by entity tag.
        self._answerCache = _Cache(1024)

    async def resolve(self, name: str) -> Optional[str]:
        """
        The uid whose file C{name} asks for (C{None}: nobody): see
        L{FreeBusyVisibility.resolve}.
        """
        return await self.visibility.resolve(name)

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
        viewer = ANONYMOUS_VIEWER if reader is None else Viewer(reader)
        postpath = request.postpath
        if not postpath or postpath == [b""]:
            return renderAsync(request, page.answerPage(self, request, viewer))
        if len(postpath) == 1 and postpath[0] in page.STATIC_FILES:
            page.serveStatic(request, postpath[0])
            return NOT_DONE_YET
        if len(postpath) == 2 and postpath[0] == GROUP_SEGMENT:
            return renderAsync(request, self._getGroup(request, viewer))
        if reader is None:
            return renderSoon(request, self._getPerson)
        return renderSoon(request, functools.partial(self._getPerson, reader=viewer))

    # --- one person ---

    def _getPerson(self, request, reader: Viewer = ANONYMOUS_VIEWER) -> Optional[Coroutine]:
        # Answered at once when the name is known and the source is a
        # free/busy file (most lookups): see renderSoon.
        if len(request.postpath) != 1:
            raise HTTPError(http.NOT_FOUND, "ask for /calendar/<name>.vfb")
        name = splitLookupName(request.postpath[0])
        query = parseQuery(request, self.now(), self.settings.window)
        answer = self.visibility.freeBusyForNow(reader, Person(name), query.range, Detail.BUSY)
        if answer is None:
            return self._getPersonLater(request, name, query, reader)
        self._serve(request, query, answer)
        return None

    async def _getPersonLater(self, request, name: str, query: Query, reader: Viewer) -> None:
        # When the request arrived (by the site's clock, the same reactor).
        started = getattr(request, "started", None) or self.reactor.seconds()
        answer = await self.visibility.freeBusyFor(reader, Person(name), query.range, Detail.BUSY, started)
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
        fb, modified = answer.freeBusy, answer.modified
        jcal = query.format == FORMAT_JCAL
        stamp = _utcFromTimestamp(modified)
        etag = variantETag(answer.etag, publicview.PUBLIC_RENDERING, answer.owner, stamp.isoformat(), query.format,
                           query.style, repr(fb.start), repr(fb.end))
        body = self._answerCache.get(etag)
        if body is None:
            body = publicview.publicView(fb, answer.owner, stamp, query.style, jcal)
            self._answerCache.put(etag, body)
        serveCalendar(request, body, etag, modified, contentType=JCAL_TYPE if jcal else CALENDAR_TYPE)

    # --- a group ---

    async def _getGroup(self, request, reader: Viewer) -> None:
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
        answer = await self.visibility.freeBusyFor(reader, Group(cn), query.range, Detail.BUSY, started)
        if answer is HIDDEN:
            raise NotFound(f"No free/busy times published for the group {cn}")
        self._serve(request, query, answer)

    # --- for the page ---

    async def busyTimes(self, name: str, timeRange: TimeRange,
                        reader: Viewer = ANONYMOUS_VIEWER) -> Optional[List[Period]]:
        """
        The busy periods of the person C{name} within C{timeRange}, merged;
        C{None} when nobody by that name has published, after the same
        floor of time whether the name is a member's or nobody's.
        """
        answer = await self.visibility.freeBusyFor(reader, Person(name), timeRange, Detail.BUSY)
        if answer is HIDDEN:
            return None
        return freebusy.mergePeriods(answer.freeBusy.busy())


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
