"""
Busy time derived from published full calendars (C{<uid>.ics}), paid for by
the publisher: the recurrences are expanded once per publish, for a rolling
horizon (L{HORIZON_PAST} before the day of the publish to L{HORIZON_AHEAD}
after it), and the periods kept beside the file in the tree (so every server
sharing the tree reads them); lookups read the kept periods and never expand
anything themselves.

The expansion's work is bounded (L{fbtwist.calendar.derive.expansionLimit}): a publish
whose rules need more is refused (L{fbtwist.calendar.derive.TooExpensive}, a 400 over
HTTP, 550 over FTP) and the old version stays.  At most L{EXPANSION_SLOTS}
expansions run at once, in the reactor's thread pool, so that they never
hold the threads publishes and lookups need.

A calendar the server has no periods for (written by another program or an
older version, or before a crash between the publish and the keeping) is
expanded on its first lookup, under the same bounds, once per version.  A
lookup of kept periods derived more than L{REFRESH_AFTER} ago also starts a
new expansion in the background, so the horizon moves with the days even
for a calendar that is never published again; meanwhile the answer comes
from what is kept.  A lookup's range beyond the horizon is answered for the
part inside it: the VFREEBUSY's DTSTART and DTEND say which.

A derivation also keeps each event's own periods by C{UID} and organizer
(L{fbtwist.calendar.derive.EventBusy}), so that a lookup with an
L{fbtwist.calendar.derive.EventMask} (an organizer moving a meeting) is
answered from the same kept derivation, without expanding anything; the
lookups without a mask read the merged periods as before.  Periods kept by
an older version, without the events, are derived once again for the
first lookup with a mask.
"""

import json
from datetime import datetime, timedelta, timezone
from typing import Dict, List, NamedTuple, Optional

from twisted.internet import defer, threads
from twisted.internet.interfaces import IReactorThreads
from twisted.logger import Logger

from fbtwist.calendar import derive, ical
from fbtwist.calendar.derive import EventBusy, EventMask, maskedPeriods
from fbtwist.calendar.freebusy import FreeBusy, Period, TimeRange, clipPeriods, defaultRange, formatUTC, parseUTC
from fbtwist.errors import FreeBusyError, InvalidCalendar, NotFound
from fbtwist.store.files import etagForContent

#: The horizon of a derivation, from the day it is made.
HORIZON_PAST = timedelta(days=31)
HORIZON_AHEAD = timedelta(days=366)
#: Kept periods older than this are derived again when looked up.
REFRESH_AFTER = timedelta(days=1)
#: How many expansions may run at once (each takes one thread of the pool).
EXPANSION_SLOTS = 1
#: Names whose content is a full calendar.
EVENT_SUFFIXES = ical.EVENT_SUFFIXES

_FORMAT = 1


class Derivation(NamedTuple):
    """
    The busy time of one version of a full calendar, within a horizon, or
    why there is none.

    @ivar etag: The version's entity tag.
    @ivar derived: When it was derived.
    @ivar refused: C{None}, or why the version gives no busy time (too
        expensive to expand, unreadable); then C{periods} is empty.
    @ivar events: Each event's own periods, or C{None} when not kept (a
        calendar feed's, or kept by an older version).
    """

    etag: str
    derived: datetime
    start: datetime
    end: datetime
    periods: List[Period]
    refused: Optional[str] = None
    events: Optional[List[EventBusy]] = None

    def toBytes(self) -> bytes:
        record = {
            "format": _FORMAT, "etag": self.etag, "derived": formatUTC(self.derived),
            "start": formatUTC(self.start), "end": formatUTC(self.end), "refused": self.refused,
            "periods": _periodsJSON(self.periods),
        }
        if self.events is not None:
            # An addition older versions reading the same format pass over.
            record["events"] = [[e.uid, e.organizer, _periodsJSON(e.periods)] for e in self.events]
        return json.dumps(record, separators=(",", ":")).encode("utf-8")

    @classmethod
    def fromBytes(cls, data: bytes) -> Optional["Derivation"]:
        """
        @return: The derivation, or C{None} when C{data} is not one (another
            format, damaged).
        """
        try:
            record = json.loads(data)
            if record["format"] != _FORMAT:
                return None
            events = record.get("events")
            return cls(
                str(record["etag"]), parseUTC("derived", record["derived"]), parseUTC("start", record["start"]),
                parseUTC("end", record["end"]), _periodsOf(record["periods"]),
                None if record["refused"] is None else str(record["refused"]),
                None if events is None else [
                    EventBusy(str(uid), None if organizer is None else str(organizer), _periodsOf(periods))
                    for uid, organizer, periods in events],
            )
        except (ValueError, KeyError, TypeError):
            return None


def _periodsJSON(periods: List[Period]) -> list:
    return [[formatUTC(p.start), formatUTC(p.end), p.fbtype] for p in periods]


def _periodsOf(values) -> List[Period]:
    return [Period(parseUTC("start", s), parseUTC("end", e), str(t)) for s, e, t in values]


def horizon(now: datetime) -> TimeRange:
    """
    The range derived at C{now}: from L{HORIZON_PAST} before today at 00:00
    UTC to L{HORIZON_AHEAD} after it.
    """
    today = defaultRange(now, timedelta(0)).start
    return TimeRange(today - HORIZON_PAST, today + HORIZON_AHEAD)


def isEventsName(path) -> bool:
    return bool(path) and ical.isEventsName(path[-1])


class BusyTime:
    """
    The busy time of the full calendars in one store (see the module).

    @param store: The L{fbtwist.store.tree.CalendarStore}.
    @param reactor: Its clock and thread pool (a reactor without threads,
        as in tests, runs expansions at once).
    @param defaultZone: The zone of all-day and floating events in
        calendars that name none.
    @param ruleIterations: The work an expansion may do
        (L{fbtwist.calendar.derive.expansionLimit}).
    """

    log = Logger()

    def __init__(self, store, reactor, defaultZone, ruleIterations: int = derive.MAX_RULE_ITERATIONS):
        self.store = store
        self.reactor = reactor
        self.defaultZone = defaultZone
        self.ruleIterations = ruleIterations
        self._slots = defer.DeferredSemaphore(EXPANSION_SLOTS)
        #: Derivations by entity tag, as last read or made here.
        self._known: Dict[str, Derivation] = {}
        #: Expansions under way, by entity tag: their waiters.
        self._pending: Dict[str, List[defer.Deferred]] = {}

    @classmethod
    def install(cls, store, reactor, defaultZone, ruleIterations: int = derive.MAX_RULE_ITERATIONS) -> "BusyTime":
        """
        The store's busy time: the one installed, else a new one, installed
        so that publishes to the store (over every protocol) derive it.
        """
        installed = getattr(store.deriveOnCommit, "__self__", None)
        if isinstance(installed, cls):
            return installed
        busyTime = cls(store, reactor, defaultZone, ruleIterations)
        store.deriveOnCommit = busyTime.deriveOnCommit
        return busyTime

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.reactor.seconds(), timezone.utc)

    # --- publishing ---

    def deriveOnCommit(self, path, content: bytes) -> defer.Deferred:
        """
        The store's L{fbtwist.store.tree.CalendarStore.deriveOnCommit}: for a full
        calendar, its busy time as kept beside it; nothing for other files.

        @return: A Deferred firing with the bytes to keep, or C{None};
            failing with L{fbtwist.calendar.derive.TooExpensive} (or another
            L{InvalidCalendar}) to refuse the publish.
        """
        if not content or not isEventsName(path):
            return defer.succeed(None)
        return defer.Deferred.fromCoroutine(self._deriveForPublish(etagForContent(content), content))

    async def _deriveForPublish(self, etag: str, content: bytes) -> bytes:
        derivation = self._known.get(etag)
        if derivation is None or derivation.derived + REFRESH_AFTER <= self.now():
            # (Clients that publish the same calendar again and again pay once a day.)
            derivation = await self._expand(etag, content)
        if derivation.refused == derive.TOO_EXPENSIVE:
            raise derive.TooExpensive()
        if derivation.refused is not None:
            raise InvalidCalendar(derivation.refused)
        return derivation.toBytes()

    # --- looking up ---

    async def freeBusy(self, path, etag: str, content: bytes, timeRange: TimeRange,
                       mask: Optional[EventMask] = None) -> FreeBusy:
        """
        The busy time of the version C{etag} (whose bytes are C{content}) of
        the full calendar at C{path}, within C{timeRange}: the part of it
        inside the kept horizon (DTSTART and DTEND say which; neither when
        nothing of it is inside).

        @param mask: The events to leave out, or C{None}.

        @raise NotFound: When the version gives no busy time (too expensive
            to expand, unreadable).
        """
        derivation = self._kept(path, etag)
        if derivation is None:
            derivation = await self._expand(etag, content, path)
        elif derivation.derived + REFRESH_AFTER <= self.now():
            # Answered from what is kept; the next lookups get the new one.
            self._expand(etag, content, path, refreshing=True).addErrback(
                lambda f: self.log.failure("refreshing the busy time of {path}", f, path="/".join(path)))
        if mask is not None and derivation.events is None and derivation.refused is None:
            # Kept by an older version, without the events: derived once more.
            derivation = await self._expand(etag, content, path)
        if derivation.refused is not None:
            # Not the reason itself: a parser's message may quote the events.
            raise NotFound(derive.TOO_EXPENSIVE if derivation.refused == derive.TOO_EXPENSIVE
                           else "the published calendar is not readable")
        start, end = max(timeRange.start, derivation.start), min(timeRange.end, derivation.end)
        if start >= end:
            return FreeBusy([], None, None)
        periods = None if mask is None else maskedPeriods(derivation.events or [], mask)
        return FreeBusy(clipPeriods(derivation.periods if periods is None else periods, start, end), start, end)

    def _kept(self, path, etag: str) -> Optional[Derivation]:
        known = self._known.get(etag)
        if known is not None and known.derived + REFRESH_AFTER > self.now():
            return known
        # Another server sharing the tree may have derived it.
        data = self.store.derived(path)
        stored = Derivation.fromBytes(data) if data is not None else None
        if stored is not None and stored.etag == etag:
            self._remember(stored)
            return stored
        return known

    def _remember(self, derivation: Derivation) -> None:
        known = self._known.get(derivation.etag)
        if known is None or known.derived <= derivation.derived:
            self._known[derivation.etag] = derivation
        while len(self._known) > 1024:
            del self._known[next(iter(self._known))]

    def _expand(self, etag: str, content: bytes, path=None, refreshing: bool = False) -> defer.Deferred:
        """
        Derive the busy time of one version, once at a time: callers asking
        while it is under way wait for the same result.  With C{path}, the
        result is kept beside the file.

        @return: A Deferred firing with the L{Derivation}.
        """
        waiters = self._pending.get(etag)
        if waiters is not None:
            if refreshing:
                return defer.succeed(None)
            d = defer.Deferred()
            waiters.append(d)
            return d
        self._pending[etag] = []
        d = self._slots.run(self._runExpansion, etag, content)

        def done(result):
            kept = defer.succeed(None)
            if isinstance(result, Derivation):
                self._remember(result)
                if path is not None:
                    kept = self._keep(path, result)

            def release(_):
                for waiter in self._pending.pop(etag):
                    waiter.callback(result) if isinstance(result, Derivation) else waiter.errback(result)
                return result

            return kept.addCallback(release)

        return d.addBoth(done)

    def _runExpansion(self, etag: str, content: bytes) -> defer.Deferred:
        now = self.now()
        window = horizon(now)
        zone, limit = self.defaultZone, self.ruleIterations

        def expand() -> Derivation:
            try:
                periods, events = derive.deriveBoundedByEvent(content, window.start, window.end, zone, limit)
            except InvalidCalendar as e:
                return Derivation(etag, now, window.start, window.end, [], e.reason)
            except Exception:
                # The libraries' own failures on what a client sent: a
                # refusal, not an internal error.
                self.log.failure("expanding a calendar failed")
                return Derivation(etag, now, window.start, window.end, [], "the events cannot be expanded")
            return Derivation(etag, now, window.start, window.end, periods, None, events)

        if IReactorThreads.providedBy(self.reactor):
            return threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), expand)
        return defer.maybeDeferred(expand)

    def _keep(self, path, derivation: Derivation) -> defer.Deferred:
        """
        Keep C{derivation} beside the file at C{path}, unless that was
        published again meanwhile (that publish keeps its own).

        @return: A Deferred firing once it is kept or given up; it does not
            fail (a later lookup derives again what could not be kept).
        """
        if derivation.refused is not None:
            self.log.warn("the calendar {path} gives no busy time: {reason}", path="/".join(path),
                          reason=derivation.refused)
        try:
            if self.store.etag(path) != derivation.etag:
                return defer.succeed(None)
        except FreeBusyError:
            return defer.succeed(None)
        return self.store.runBlocking(self.store.setDerived, path, derivation.toBytes()).addErrback(
            lambda f: self.log.warn("could not keep the busy time of {path}: {error}", path="/".join(path),
                                    error=f.getErrorMessage()))
