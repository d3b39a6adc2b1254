"""
What a viewer may see of a person's or a group's free/busy times: the one
decision every door asks (the lookup URLs, the page, group lookups,
anonymous FTP; CalDAV free/busy, availability and federation plug in here
too), so that no two protocols can disagree about it.

Call L{FreeBusyVisibility.freeBusyFor}; a protocol on a hot path may first
try L{FreeBusyVisibility.freeBusyForNow}, the same decision when it can be
made without waiting.
"""

import functools
import hashlib
import time
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import FrozenSet, List, NamedTuple, Optional, Tuple, Union
from zoneinfo import ZoneInfo

from twisted.logger import Logger

from fbtwist.access.answers import NOT_INDEXED, RememberedAnswers, Ticket
from fbtwist.access.latency import LatencyFloor
from fbtwist.access.settings import Shown
from fbtwist.availability.model import Availability, unavailable
from fbtwist.availability.publish import AVAILABILITY_SUFFIX
from fbtwist.availability.vavailability import readAvailability
from fbtwist.cache import LRUCache
from fbtwist.calendar import derive, freebusy, ical
from fbtwist.calendar.busytime import BusyTime
from fbtwist.calendar.derive import EventMask
from fbtwist.calendar.freebusy import FreeBusy, TimeRange
from fbtwist.directory.filters import defaultGroupBase
from fbtwist.errors import InvalidCalendar, NotFound, PermissionDenied
from fbtwist.remote.source import domainOf
from fbtwist.store.paths import FileSnapshot, ResourceInfo

#: What a user publishes: a free/busy file, or a full calendar.
FREEBUSY_FILE = ".vfb"
EVENTS_FILE = ".ics"

#: How many names L{FreeBusyVisibility._uidPastIndex} holds.
_NO_UID_HELD = 4096


class Detail(Enum):
    """
    How much of someone's time a viewer asks to see.
    """

    #: Busy periods with their C{FBTYPE}s and the window they cover, nothing
    #: of the events (what L{fbtwist.calendar.publicview.publicView}
    #: renders): what anyone may see of anyone who published.
    BUSY = "busy"


class Viewer(NamedTuple):
    """
    Who asks: a uid, or C{None} for an anonymous reader.
    """

    uid: Optional[str]
    isAdmin: bool = False


#: An anonymous reader.
ANONYMOUS_VIEWER = Viewer(None)


class Person(NamedTuple):
    """
    A person, by a lookup name: a login, a mail local part or a whole mail
    address, resolved in the directory case-insensitively.
    """

    name: str


class Group(NamedTuple):
    """
    A directory group, by its C{cn}: its members' busy times merged.
    """

    cn: str


class Account(NamedTuple):
    """
    A person or a room by the uid the directory already gave (a group's
    member, a room it lists): not resolved again.
    """

    uid: str


class PublishedFile(NamedTuple):
    """
    One free/busy file in the tree by its store path (anonymous FTP shows
    the tree as files), its owner named by the file name.
    """

    path: Tuple[str, ...]


Target = Union[Person, Group, Account, PublishedFile]


class Mask(NamedTuple):
    """
    One meeting the viewer organizes, left out of the busy time they are
    shown (Apple's C{X-CALENDARSERVER-MASK-UID}: the meeting being moved
    must not block itself).  Honoured only for the viewer who is
    C{organizer}: in a person's published full calendar, that person's
    events with the C{UID} C{uid} whose C{ORGANIZER} is one of
    C{addresses}, and in the organizer's own calendar also those naming no
    organizer.  A free/busy file has no events: nothing is masked there.

    @ivar uid: The event's C{UID}.
    @ivar organizer: The viewer's uid.
    @ivar addresses: The viewer's calendar user addresses (mail addresses
        compared without C{mailto:} and case).
    """

    uid: str
    organizer: str
    addresses: FrozenSet[str]

    def eventMask(self, owner: str) -> EventMask:
        """
        What is left out of C{owner}'s calendar.
        """
        return EventMask(self.uid, frozenset(derive.addressKey(a) for a in self.addresses),
                         unorganized=owner == self.organizer)


class Visible(NamedTuple):
    """
    What the viewer may see.

    @ivar freeBusy: The periods and window, at the asked detail, clipped to
        the asked range (when one was asked for).
    @ivar owner: Whose they are: a login, or C{group-<cn>} for a group.
    @ivar etag: Names the source version(s): equal tags, equal answers.
    @ivar modified: When the source last changed (POSIX seconds); for a
        range that moves with the day, at least that day's start.
    @ivar stale: Whether it is another organisation's expired answer,
        given while its server cannot be asked (the web marks it so).
    """

    freeBusy: FreeBusy
    owner: str
    etag: str
    modified: float
    stale: bool = False


class _Hidden:
    def __repr__(self) -> str:
        return "HIDDEN"


#: The answer when there is nothing the viewer may see.  It carries nothing:
#: a name nobody has, a member who never published, a placeholder, an
#: unreadable file and a group of such members all look the same.
HIDDEN = _Hidden()


class Published(NamedTuple):
    """
    A user's published source of free/busy times.
    """

    path: Tuple[str, ...]
    info: ResourceInfo
    etag: str
    data: bytes
    #: What a reader kept with this version of the file, if anything
    #: (L{fbtwist.store.tree.CalendarStore.keep}).
    kept: Optional[bytes] = None

    @property
    def isCalendar(self) -> bool:
        return self.path[-1].lower().endswith(EVENTS_FILE)


class PlainSource(NamedTuple):
    """
    A person's whole answer (no range, no working hours) when it is one
    published free/busy file shown at one detail
    (L{FreeBusyVisibility.plainNow}): the same file version, owner and
    detail always give the same answer, which can therefore be kept with
    that version of the file.

    @ivar detail: The detail its owner shows the viewer (C{None}: no
        choices, everything).
    """

    published: Published
    owner: str
    detail: Optional[Shown]


def groupSearchBase(configured: Optional[str], directoryURL) -> Optional[str]:
    """
    Where groups are searched: C{configured} (C{--group-base}; empty: no
    group lookups), else below the directory URL's base; C{None}: nowhere.
    """
    if configured is None and directoryURL is not None:
        configured = defaultGroupBase(directoryURL.base)
    return configured or None


def variantETag(*parts: str) -> str:
    """
    A strong entity tag naming C{parts} together.
    """
    digest = hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:32]
    return f'"{digest}"'


@functools.lru_cache(maxsize=256)
def _parsedFreeBusy(etag: str, data: bytes) -> FreeBusy:
    """
    A published free/busy file's times; recent files are remembered (by
    their entity tag and bytes), as most lookups ask for a few people.

    @raise InvalidCalendar: When C{data} is not a free/busy file.
    """
    return ical.readFreeBusy(data)[0]


class FreeBusyVisibility:
    """
    Decides what a viewer may see of whose free/busy times, at which detail,
    and reads it from the tree.

    The rules: a viewer sees L{Detail.BUSY} of anyone who published and
    lets them (L{fbtwist.access.settings.WhoSees}: each person's choice of
    who, and whether every period shows as C{BUSY}; without one, everyone
    in full); nothing else of anyone.  A person one may not see is
    L{HIDDEN}, as one who never published, and a group's hidden member
    contributes nothing.  A group is its members'
    busy times merged.  A person's busy time includes their calendar
    feeds'.  A name nobody has here that is an address of a federated
    domain, and a group C{cn@domain}, are answered from that organisation.
    Only a viewer who signed in is told that a group is
    too large to merge; anyone else gets L{HIDDEN}, as for a group that
    does not exist.

    @param store: The L{fbtwist.interfaces.ICalendarStore} (C{None}: nothing
        is published).
    @param directory: The L{fbtwist.interfaces.IDirectory} resolving names
        and groups.
    @param clock: The reactor (time and the busy time of full calendars).
    @param window: The range of a full calendar or a group asked for
        without one.
    @param missDelay: The floor (L{LatencyFloor}) under the time an L{HIDDEN}
        answer about a person or a group takes.
    @param names: The cache of resolved names (C{get(name)} -> C{(known, uid)},
        C{put(name, uid)}), or C{None}.
    @param groupBase: Where groups are searched; C{None}: no group lookups.
    @param workingHours: The site's working hours (C{--working-hours}), for
        people who published none; C{None}: none.
    @param applyWorkingHours: Mark time outside working hours in every
        answer about a person or a group (C{--apply-working-hours}), not only
        in those asking for them.
    @param federation: Where addresses of other organisations are looked
        up (L{fbtwist.remote.source.FederatedFreeBusy}), or C{None}.
    @param feeds: Users' calendar feeds (L{fbtwist.access.feeds.FeedStore}),
        merged into each person's busy time, or C{None}.
    """

    log = Logger()

    def __init__(self, store, directory, clock, *, window: timedelta = timedelta(days=42),
                 defaultZone: ZoneInfo = ZoneInfo("UTC"), expandLimit: int = derive.MAX_RULE_ITERATIONS,
                 missDelay: float = 0.05, names=None, groupBase: Optional[str] = None, groupMaxMembers: int = 50,
                 workingHours: Optional[Availability] = None, applyWorkingHours: bool = False,
                 federation=None, feeds=None, whoSees=None):
        self._store = store
        self.directory = directory
        self.clock = clock
        self.window = window
        self.names = names
        self.groupBase = groupBase
        self.groupMaxMembers = groupMaxMembers
        self.missFloor = LatencyFloor(clock, missDelay)
        self.workingHours = workingHours
        self.applyWorkingHours = applyWorkingHours
        #: Parsed C{.avail.ics} files by entity tag (C{False}: unreadable).
        self._hoursCache = LRUCache(1024)
        #: The time outside working hours by (hours, start, end): the people
        #: of one question who share the site's hours expand them once.
        self._outsideHours = LRUCache(256)
        #: Published files' periods clipped to a range, by (entity tag,
        #: start, end): the entity tag names the file's content.
        self._clipped = LRUCache(1024)
        self.federation = federation
        self.feeds = feeds
        #: Each person's choice of who may see them
        #: (L{fbtwist.access.settings.WhoSees}); C{None}: everyone, in full.
        self.whoSees = whoSees
        #: The anonymous plain answers remembered in memory
        #: (L{rememberAnswers}), or C{None}.
        self.answers: Optional[RememberedAnswers] = None
        #: Names the cache of names had no uid for (L{_uidPastIndex}), while
        #: it (C{_noUidOf}) has learnt C{_noUidSince} uids.
        self._noUid: set = set()
        self._noUidOf = None
        self._noUidSince = 0
        self.busyTime = None if store is None else BusyTime.install(store, clock, defaultZone, expandLimit)

    def rememberAnswers(self, maxBytes: int) -> RememberedAnswers:
        """
        Remember up to C{maxBytes} of the anonymous reader's plain answers
        in memory (L{fbtwist.access.answers}; C{--answer-memory}), while
        their owners' files, the choices of who sees whom and the feeds are
        unchanged.
        """
        # Its age bound is in real seconds, whatever the reactor's clock.
        self.answers = RememberedAnswers(self._store.watchTop, self._plainVersions, maxBytes, time.monotonic,
                                         state=self._filesState, stateSince=self._filesStateSince)
        return self.answers

    def _filesState(self, uid: str, before: Optional[tuple] = None) -> Optional[tuple]:
        """
        The state of what a person's plain answer is made of on disk
        (L{plainNow}): their two files'.  Given the state C{before}, in
        which a file was missing, that one is not looked at again: a file
        comes into the tree's top folder only by a name there, a change
        the watch tells (L{fbtwist.access.answers}), whereas one that was
        there may change through another name.
        """
        if before is not None and before[1] == ():
            state = self._store.filesState(uid + FREEBUSY_FILE)
            return None if state is None else state + ((),)
        return self._store.filesState(uid + FREEBUSY_FILE, uid + EVENTS_FILE)

    def _filesStateSince(self, uid: str, before: tuple) -> Optional[tuple]:
        """
        The state of a person's files now, when it differs from their state
        C{before} (L{_filesState}'s) only in what setting an attribute
        changes (L{ICalendarStore.filesStateSince}), else C{None}.
        """
        return self._store.filesStateSince(before, uid + FREEBUSY_FILE, uid + EVENTS_FILE)

    def _plainVersions(self):
        """
        The versions of what a plain answer depends on besides its owner's
        files (L{plainNow}): everyone's choices and feeds, each folder's
        version; C{None} while either cannot be promised.
        """
        choices = () if self.whoSees is None else self.whoSees.settings.folderVersion()
        feeds = () if self.feeds is None else self.feeds.folderVersion()
        if choices is None or feeds is None:
            return None
        return choices, feeds

    def rememberedNow(self, viewer: Viewer, target: Target) -> Tuple[Optional[tuple], Optional[Ticket]]:
        """
        The answer remembered for C{target} (L{rememberAnswers}), for the
        anonymous reader only, when nothing it was made of changed since.

        @return: C{(answer, None)}; or C{(None, ticket)}: give the ticket to
            L{rememberNow} with the plain answer made now; or C{(None,
            None)}: nothing may be remembered now.
        """
        answers = self.answers
        if answers is None or viewer.uid is not None or not isinstance(target, Person) or self.applyWorkingHours:
            return None, None
        name = target.name
        # The uid of a name the name index gave before, while it is the
        # same index (a loaded index never changes: a new one replaces it).
        index = getattr(self.directory, "nameIndex", None)
        uid = answers.uidOf(name, index)
        if uid is None and index is not None:
            # Asked of the index once (as L{resolvedNow} would) and
            # remembered.
            indexed, uid = index.get(name)
            if not indexed:
                answers.rememberUid(name, index, NOT_INDEXED)
                uid = NOT_INDEXED
            elif uid is not None:
                answers.rememberUid(name, index, uid)
        elif uid is None:
            uid = NOT_INDEXED
        if uid is NOT_INDEXED:
            uid = self._uidPastIndex(name)
        if uid is not None:
            return answers.get(uid)
        if not self.isFederated(name):
            return None, None
        # Another organisation's address, while the fresh answer it was
        # made of is still the one in the federation's cache (a hit of
        # that cache, as the lookup would be).
        federation = self.federation
        return answers.getRemote(name, federation.stillFresh, federation.freshNow)

    def rememberNow(self, ticket: Ticket, answer: tuple) -> None:
        """
        Remember C{answer} (entity tag, body, time), made for the ticket of
        L{rememberedNow}: a plain answer (L{plainNow}) for a person here,
        L{freeBusyForNow}'s for another organisation's address.
        """
        if self.answers is None:
            return
        # A file reached by another name (a link) may change unseen.
        if ticket.remote or self._store.hasOneName((ticket.key + FREEBUSY_FILE,)):
            self.answers.put(ticket, answer)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.seconds(), timezone.utc)

    # --- the decision ---

    async def freeBusyFor(self, viewer: Viewer, target: Target, timeRange: Optional[TimeRange] = None,
                          detail: Detail = Detail.BUSY, started: Optional[float] = None,
                          workhours: bool = False, mask: Optional[Mask] = None) -> Union[Visible, "_Hidden"]:
        """
        What C{viewer} may see of C{target}'s free/busy times within
        C{timeRange} at C{detail}.

        @param timeRange: The range asked for; C{None}: a free/busy file's
            whole window, a full calendar's or a group's default window
            from today.
        @param workhours: Also mark the time outside each person's working
            hours (C{BUSY-UNAVAILABLE}); always so with C{applyWorkingHours}.
        @param mask: A meeting of the viewer's to leave out of a person's
            busy time (L{Mask}); ignored unless the viewer organizes it.
        @param started: When the request arrived (by C{clock}), the start of
            the floor under an L{HIDDEN} answer about a person or a group;
            default: now.
        @return: A L{Visible}, or L{HIDDEN}: never published, not visible to
            this viewer and not existing look the same, and (for a person
            or a group) take the same floor of time.
        @raise PermissionDenied: Only to a viewer who signed in, for a group
            larger than this server merges.
        @raise fbtwist.errors.DirectoryUnavailable: When the directory
            cannot be asked.
        @raise fbtwist.remote.source.RemoteUnavailable: When another
            organisation's server cannot be asked, for one of its addresses
            or groups, and no answer of its is left to give.
        """
        if started is None:
            started = self.clock.seconds()
        if isinstance(target, PublishedFile):
            return self._fileNow(viewer, target)
        workhours = workhours or self.applyWorkingHours
        if mask is not None:
            mask = await self._viewersMask(viewer, mask)
        if isinstance(target, Group):
            answer = await self._group(viewer, target.cn, timeRange, workhours)
        elif isinstance(target, Account):
            answer = await self._account(viewer, target.uid, timeRange, workhours, mask)
        else:
            answer = await self._person(viewer, target.name, timeRange, workhours, mask)
        if answer is HIDDEN:
            await self.missFloor.wait(started)
        return answer

    def freeBusyForNow(self, viewer: Viewer, target: Target, timeRange: Optional[TimeRange] = None,
                       detail: Detail = Detail.BUSY, workhours: bool = False) -> Optional[Visible]:
        """
        L{freeBusyFor}'s answer when it can be given without waiting (a
        known name whose free/busy file is published: most lookups), else
        C{None}: then ask L{freeBusyFor}.  L{HIDDEN} about a person or a
        group is never given here, as it must wait for the floor.
        """
        if isinstance(target, PublishedFile):
            return self._fileNow(viewer, target)
        if not isinstance(target, Person):
            return None
        known, uid = self.resolvedNow(target.name)
        if uid is None:
            # Another organisation's address whose answer is in memory: it
            # was fetched because nobody here had the name (the directory is
            # asked first), and is asked again once that answer expires.
            remote = self.federation.lookupNow(target.name) if self.isFederated(target.name) else None
            return None if remote is None else self._remoteVisible(target.name, remote, timeRange)
        found = self._fileShownNow(viewer, uid)
        if found is None:
            return None
        published, detail = found
        answer = self._shown(self._visibleFile(published, uid, timeRange, workhours or self.applyWorkingHours), detail)
        # A file that cannot be read as free/busy times (put there by
        # other means than a publish) hides its owner: after the floor.
        return None if answer is HIDDEN else answer

    def _fileShownNow(self, viewer: Viewer, uid: str,
                      whole: bool = True) -> Optional[Tuple[Published, Optional[Shown]]]:
        """
        The free/busy file C{uid} published and the detail they show the
        viewer, when the viewer may see it and it is all there is to see
        (no calendar, no feeds), known without waiting; else C{None}.
        """
        detail = None
        if self.whoSees is not None:
            # The owner's choice read once for both questions.
            mayView, detail = self.whoSees.decideNow(viewer, uid)
            if mayView is not True:
                # Hidden (or only the directory can tell): L{freeBusyFor}
                # answers, after the floor.
                return None
        published = self.published(uid, whole)
        if self._hasFeeds(uid):
            return None
        if published is None or published.isCalendar:
            return None
        return published, detail

    def plainNow(self, viewer: Viewer, target: Target, whole: bool = True) -> Optional[PlainSource]:
        """
        The source of C{target}'s whole answer to C{viewer} (no range, no
        working hours) when it is one published free/busy file shown at one
        detail and that is known without waiting (as L{freeBusyForNow}
        knows it), else C{None}.  Its answer is L{visibleFrom}.

        @param whole: C{False} when what was kept with the file will do if
            there is something: then the file's content is not read (the
            source's C{published.data} is C{None}; see
            L{fbtwist.store.tree.CalendarStore.snapshot}).  Ask again with
            C{True} for the source's answer (L{visibleFrom}).
        """
        if not isinstance(target, Person) or self.applyWorkingHours:
            return None
        known, uid = self.resolvedNow(target.name)
        if uid is None:
            return None
        found = self._fileShownNow(viewer, uid, whole)
        if found is None:
            return None
        published, detail = found
        if detail is None and self.whoSees is not None:
            detail = self.whoSees.detailOf(uid)
        return PlainSource(published, uid, detail)

    def visibleFrom(self, source: PlainSource):
        """
        The answer of a L{plainNow} source: a L{Visible}, or L{HIDDEN} when
        its file cannot be read as free/busy times.
        """
        return self._shown(self._visibleFile(source.published, source.owner, None), source.detail)

    def keepAnswer(self, source: PlainSource, kept: bytes) -> None:
        """
        Keep C{kept} (made of the answer of C{source}) with that version of
        its file: see L{fbtwist.store.tree.CalendarStore.keep}.
        """
        if self._store is not None:
            published = source.published
            self._store.keep(FileSnapshot(published.info, published.etag, published.data, published.kept), kept)

    async def _viewersMask(self, viewer: Viewer, mask: Mask) -> Optional[Mask]:
        """
        C{mask} with only those of its addresses that are the viewer's
        (resolved as lookup names are); C{None} unless the viewer is its
        organizer.
        """
        if viewer.uid is None or mask.organizer != viewer.uid:
            return None
        own = []
        for address in mask.addresses:
            if await self.resolve(derive.addressKey(address)) == viewer.uid:
                own.append(address)
        return mask._replace(addresses=frozenset(own))

    # --- people ---

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
        return self._resolvedPastIndex(name)

    def _resolvedPastIndex(self, name: str) -> Tuple[bool, Optional[str]]:
        """
        L{resolvedNow} for a name the name index does not have: the cache
        of names the directory was asked for.
        """
        if self.names is None:
            return False, None
        return self.names.get(name)

    def _uidPastIndex(self, name: str) -> Optional[str]:
        """
        The uid L{_resolvedPastIndex} gives C{name} (C{None}: none, or
        nobody), asked of the cache of names once while it learns no uid
        for any name (another organisation's address, asked for again and
        again, has none).
        """
        names = self.names
        if names is None:
            return None
        if names is not self._noUidOf or names.learned != self._noUidSince:
            self._noUid, self._noUidOf, self._noUidSince = set(), names, names.learned
        elif name in self._noUid:
            return None
        _, uid = names.get(name)
        if uid is None:
            if len(self._noUid) >= _NO_UID_HELD:
                self._noUid.clear()
            self._noUid.add(name)
        return uid

    async def resolve(self, name: str) -> Optional[str]:
        """
        The uid whose file C{name} asks for (C{None}: nobody), from the
        directory's name index (L{fbtwist.directory.nameindex}; none before it is
        loaded, or when switched off), else the cache or the directory.
        """
        known, uid = self.resolvedNow(name)
        if not known:
            uid = await self.directory.resolveName(name)
            if self.names is not None:
                self.names.put(name, uid)
        return uid

    async def _person(self, viewer: Viewer, name: str, timeRange: Optional[TimeRange], workhours: bool,
                      mask: Optional[Mask] = None):
        uid = await self.resolve(name)
        if uid is None:
            if self.isFederated(name):
                return await self._federated(name, timeRange)
            return HIDDEN
        return await self._account(viewer, uid, timeRange, workhours, mask)

    async def _account(self, viewer: Viewer, uid: str, timeRange: Optional[TimeRange], workhours: bool,
                       mask: Optional[Mask] = None):
        detail = None
        if self.whoSees is not None:
            # The owner's choice read once for both questions.
            mayView, detail = self.whoSees.decideNow(viewer, uid)
            if mayView is None:
                mayView = await self.whoSees.mayView(viewer, uid)
            if not mayView:
                return HIDDEN
        published = self.published(uid)
        if self._hasFeeds(uid):
            return self._shown(await self._withFeeds(uid, published, timeRange, mask), detail)
        if published is None:
            return HIDDEN
        return self._shown(await self._visible(published, uid, timeRange, workhours, mask), detail)

    # --- each person's choice (fbtwist.access.settings) ---

    async def _mayView(self, viewer: Viewer, owner: str) -> bool:
        return self.whoSees is None or await self.whoSees.mayView(viewer, owner)

    def _shown(self, answer, detail: Optional[Shown] = None):
        """
        C{answer} at the detail its owner shows: with busy only, every
        period C{BUSY} (a tentative or out-of-office time looks like any
        other), under an entity tag of its own.

        @param detail: The owner's detail when already read, else C{None}.
        """
        if answer is HIDDEN or self.whoSees is None:
            return answer
        if detail is None:
            detail = self.whoSees.detailOf(answer.owner)
        if detail is Shown.FULL:
            return answer
        fb = answer.freeBusy
        flat = freebusy.mergePeriods(p._replace(fbtype=freebusy.BUSY) for p in fb.periods if p.isBusy)
        return answer._replace(freeBusy=FreeBusy(flat, fb.start, fb.end, fb.organizer),
                               etag=variantETag(answer.etag, "busy-only"))

    def published(self, uid: str, whole: bool = True) -> Optional[Published]:
        """
        The user's source of free/busy times: C{<uid>.vfb} or C{<uid>.ics},
        whichever was published last (empty placeholders do not count).

        @param whole: C{False}: see L{plainNow}.
        """
        if self._store is None:
            return None
        freeBusyPath, eventsPath = (uid + FREEBUSY_FILE,), (uid + EVENTS_FILE,)
        snapshot = self._store.snapshot(freeBusyPath, whole)
        if snapshot is not None and snapshot.info.size == 0:
            snapshot = None
        events = self._store.stat(eventsPath)
        if events is not None and not events.isCollection and events.size > 0:
            if snapshot is None or events.modified > snapshot.info.modified:
                snapshot = self._store.snapshot(eventsPath, whole) or snapshot
        if snapshot is None:
            return None
        return Published(snapshot.info.path, snapshot.info, snapshot.etag, snapshot.data, snapshot.kept)

    async def _visible(self, published: Published, owner: str, timeRange: Optional[TimeRange],
                       workhours: bool = False, mask: Optional[Mask] = None):
        if not published.isCalendar:
            return self._visibleFile(published, owner, timeRange, workhours)
        if timeRange is None:
            timeRange = freebusy.defaultRange(self.now(), self.window)
            # The window moves with the day: so does the answer.
            modified = max(published.info.modified, timeRange.start.timestamp())
        else:
            modified = published.info.modified
        if mask is None:
            fb = await self.busyTime.freeBusy(published.path, published.etag, published.data, timeRange)
            etag = published.etag
        else:
            fb = await self.busyTime.freeBusy(published.path, published.etag, published.data, timeRange,
                                              mask.eventMask(owner))
            etag = variantETag(published.etag, "mask", mask.uid, mask.organizer)
        return self._withHours(Visible(fb, owner, etag, modified), workhours)

    def _visibleFile(self, published: Published, owner: str, timeRange: Optional[TimeRange],
                     workhours: bool = False):
        fb = self._readFreeBusy(published)
        if fb is None:
            return HIDDEN
        if timeRange is not None:
            key = (published.etag, timeRange.start, timeRange.end)
            clipped = self._clipped.get(key)
            if clipped is None:
                clipped = tuple(freebusy.clipPeriods(fb.periods, timeRange.start, timeRange.end))
                self._clipped.put(key, clipped)
            # A list of its own: callers may change it.
            fb = FreeBusy(list(clipped), timeRange.start, timeRange.end, fb.organizer)
        return self._withHours(Visible(fb, owner, published.etag, published.info.modified), workhours)

    # --- working hours ---

    def _withHours(self, answer: Visible, workhours: bool) -> Visible:
        """
        C{answer} with C{BUSY-UNAVAILABLE} periods (or the C{BUSYTYPE} the
        person's blocks give) added outside the owner's working hours,
        within its window, when C{workhours}; the published periods are kept
        as they are.  The entity tag and the time name the hours' version.
        """
        if not workhours:
            return answer
        model, tag, modified = self.workingHoursOf(answer.owner)
        fb = answer.freeBusy
        if model is not None and fb.start is not None and fb.end is not None:
            try:
                extra = self._unavailable(model, fb.start, fb.end)
            except derive.TooExpensive:
                self.log.warn("the working hours of {uid} are too expensive to expand: not applied",
                              uid=answer.owner)
            else:
                fb = FreeBusy(sorted(list(fb.periods) + extra), fb.start, fb.end, fb.organizer)
        return Visible(fb, answer.owner, variantETag(answer.etag, "hours", tag), max(answer.modified, modified))

    def _unavailable(self, model: Availability, start: datetime, end: datetime) -> List[freebusy.Period]:
        """
        L{unavailable}, remembered for recent ranges (read only: callers
        copy before they change).
        """
        key = (model, start, end)
        periods = self._outsideHours.get(key)
        if periods is None:
            periods = unavailable(model, start, end)
            self._outsideHours.put(key, periods)
        return periods

    def workingHoursOf(self, uid: str) -> Tuple[Optional[Availability], str, float]:
        """
        The working hours of C{uid}: their published C{<uid>.avail.ics}, else
        the site's (C{--working-hours}).

        @return: C{(availability or None, a tag naming its version, its
            modification time)}.
        """
        snapshot = None if self._store is None else self._store.snapshot((uid + AVAILABILITY_SUFFIX,))
        if snapshot is not None and snapshot.info.size > 0:
            cached = self._hoursCache.get(snapshot.etag)
            if cached is None:
                try:
                    cached = readAvailability(snapshot.data)
                except InvalidCalendar as e:
                    # Written past the publish check (by an administrator):
                    # the site's hours hold instead.
                    self.log.warn("unreadable working hours {path}: {reason}", path=uid + AVAILABILITY_SUFFIX,
                                  reason=e.reason)
                    cached = False
                self._hoursCache.put(snapshot.etag, cached)
            if cached is not False:
                return cached, snapshot.etag, snapshot.info.modified
        return self.workingHours, "site", 0.0

    def _readFreeBusy(self, published: Published) -> Optional[FreeBusy]:
        """
        The parsed free/busy file, or C{None} when it is not readable
        (written past the server's validation, by an administrator or
        another program: nothing can be served).
        """
        try:
            return _parsedFreeBusy(published.etag, published.data)
        except InvalidCalendar as e:
            self.log.warn("unreadable free/busy file {path}: {reason}", path="/".join(published.path),
                          reason=e.reason)
            return None

    # --- files in the tree ---

    def _fileNow(self, viewer: Viewer, target: PublishedFile):
        path = target.path
        if not path or not path[-1].lower().endswith(ical.FREEBUSY_SUFFIXES) or self._store is None:
            return HIDDEN
        snapshot = self._store.snapshot(path)
        if snapshot is None or not snapshot.data:
            return HIDDEN
        owner = path[-1].rsplit(".", 1)[0]
        if self.whoSees is not None and self.whoSees.mayViewNow(viewer, owner) is not True:
            # Decided now or never: a file is listed at once, so a group
            # membership not known yet hides it (as a directory outage does).
            return HIDDEN
        return self._shown(self._visibleFile(Published(path, snapshot.info, snapshot.etag, snapshot.data), owner, None))

    # --- groups ---

    async def _group(self, viewer: Viewer, cn: str, timeRange: Optional[TimeRange], workhours: bool = False):
        if self._isFederatedGroup(cn):
            return await self._federated(cn, timeRange, group=True)
        if self.groupBase is None:
            raise NotFound("group free/busy is not configured (--group-base)")
        limit = self.groupMaxMembers
        members = await self.directory.groupMembers(cn, self.groupBase, limit)
        if members is not None and len(members) > limit:
            self.log.info("group {cn} has more than {limit} members: not merged (--group-max-members)",
                          cn=cn, limit=limit)
            if viewer.uid is not None:
                raise PermissionDenied(
                    f"the group {cn} has more than {limit} members, more than this server merges "
                    f"(--group-max-members)"
                )
            members = None
        sources = []
        for uid in members or ():
            if not await self._mayView(viewer, uid):
                # Contributes nothing, as if they never published: the
                # answer cannot tell which members are hidden.
                continue
            published = self.published(uid)
            if published is not None or self._hasFeeds(uid):
                sources.append((uid, published))
        if not sources:
            return HIDDEN
        window = timeRange or freebusy.defaultRange(self.now(), self.window)
        periods, tags, modified = [], [cn], 0.0
        for uid, published in sources:
            if self._hasFeeds(uid):
                answer = self._shown(await self._withFeeds(uid, published, window))
            else:
                answer = self._shown(await self._visible(published, uid, window, workhours))
            if answer is HIDDEN:
                continue
            periods.extend(answer.freeBusy.busy())
            tags.append(uid + answer.etag)
            modified = max(modified, answer.modified)
        if len(tags) == 1:
            return HIDDEN
        merged = FreeBusy(freebusy.mergePeriods(periods), window.start, window.end)
        if timeRange is None:
            modified = max(modified, window.start.timestamp())
        return Visible(merged, f"group-{cn}", variantETag(*tags), modified or 0.0)


    # --- calendar feeds ---

    def _hasFeeds(self, uid: Optional[str]) -> bool:
        """
        Whether C{uid}'s calendar feeds have given busy time (one stat of
        the user's feeds file when there are none).
        """
        return self.feeds is not None and uid is not None and self.feeds.hasBusyTime(uid)

    async def _withFeeds(self, uid: str, published: Optional[Published], timeRange: Optional[TimeRange],
                         mask: Optional[Mask] = None):
        """
        C{uid}'s busy time from their calendar feeds merged with what they
        publish (if anything), within C{timeRange} or the default window.
        """
        window = timeRange or freebusy.defaultRange(self.now(), self.window)
        periods = list(self.feeds.busyPeriods(uid, window) or [])
        tags = ["feeds", self.feeds.version(uid) or ""]
        modified = self.feeds.modified(uid)
        organizer = None
        if published is not None:
            own = await self._visible(published, uid, window, mask=mask)
            if own is not HIDDEN:
                periods.extend(own.freeBusy.periods)
                organizer = own.freeBusy.organizer
                tags.append(own.etag)
                modified = max(modified, own.modified)
        if timeRange is None:
            # The window moves with the day: so does the answer.
            modified = max(modified, window.start.timestamp())
        merged = FreeBusy(freebusy.mergePeriods(periods), window.start, window.end, organizer)
        return Visible(merged, uid, variantETag(*tags), modified)

    # --- other organisations ---

    def isFederated(self, name: str) -> bool:
        """
        Whether C{name}, which nobody here has, may be another
        organisation's: federation is configured and it is an address.
        """
        return self.federation is not None and "@" in name

    def _isFederatedGroup(self, cn: str) -> bool:
        """
        Whether C{cn} names another organisation's group: C{cn@domain}, the
        domain having a group template.
        """
        return self.federation is not None and domainOf(cn) in self.federation.groupTemplates

    async def _federated(self, name: str, timeRange: Optional[TimeRange], group: bool = False):
        """
        C{name}'s free/busy from its organisation (with C{group}, a group's
        C{cn@domain}), clipped like a local free/busy file; L{HIDDEN} when
        that organisation has none (or the domain is not federated).

        @raise fbtwist.remote.source.RemoteUnavailable: When its server
            cannot be asked and no answer of its is left to give.
        """
        try:
            remote = await (self.federation.lookupGroup(name, timeRange) if group
                            else self.federation.lookup(name))
        except NotFound:
            return HIDDEN
        if remote is None:
            return HIDDEN
        return self._remoteVisible(name, remote, timeRange, group)

    def _remoteVisible(self, name: str, remote, timeRange: Optional[TimeRange], group: bool = False) -> Visible:
        fb = remote.freeBusy
        if timeRange is not None:
            fb = FreeBusy(freebusy.clipPeriods(fb.periods, timeRange.start, timeRange.end),
                          timeRange.start, timeRange.end, fb.organizer)
        owner = f"group-{name.lower()}" if group else name.lower()
        return Visible(fb, owner, remote.etag, remote.modified, stale=remote.stale)
