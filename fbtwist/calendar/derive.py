"""
Free/busy derived from a full calendar (C{.ics}): events and their
recurrences expanded by C{recurring_ical_events} (which builds on
C{dateutil}'s recurrence rules) over a range, with a bound on the work a
calendar's rules may cost.

Besides the merged busy time everyone sees, a derivation may keep each
event's own periods by its C{UID} and C{ORGANIZER} (L{EventBusy}): what
lets an organizer's free/busy request leave out the meeting it is moving
(L{EventMask}, Apple's C{X-CALENDARSERVER-MASK-UID}).  Nothing else of an
event is kept.
"""

import sys
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import FrozenSet, Iterator, List, NamedTuple, Optional, Tuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dateutil.rrule
import recurring_ical_events
from icalendar import Calendar
from twisted.logger import Logger

from fbtwist.calendar.freebusy import (
    BUSY,
    BUSY_TENTATIVE,
    BUSY_UNAVAILABLE,
    FREE,
    Period,
    clipPeriods,
    mergePeriods,
    startOfDay,
)
from fbtwist.calendar.ical import parseEvents
from fbtwist.errors import InvalidCalendar

log = Logger()


def calendarZone(calendar: Calendar, defaultZone: ZoneInfo) -> ZoneInfo:
    """
    The zone of the calendar's all-day and floating events: its
    C{X-WR-TIMEZONE} when that names a known zone, else C{defaultZone}.
    """
    name = calendar.get("X-WR-TIMEZONE")
    if name:
        try:
            return ZoneInfo(str(name).strip())
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return defaultZone


def _instant(value, zone: ZoneInfo) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=zone)
        return value.astimezone(timezone.utc)
    return startOfDay(value, zone)


#: Outlook's own busy status, when an event carries it.
_CDO_STATUS = {"FREE": FREE, "TENTATIVE": BUSY_TENTATIVE, "OOF": BUSY_UNAVAILABLE, "BUSY": BUSY}


def _eventType(event) -> Optional[str]:
    """
    The free/busy type an event occurrence takes, or C{None} when it takes
    no time (cancelled, transparent).
    """
    if str(event.get("STATUS", "")).upper() == "CANCELLED":
        return None
    if str(event.get("TRANSP", "OPAQUE")).upper() == "TRANSPARENT":
        return None
    cdo = _CDO_STATUS.get(str(event.get("X-MICROSOFT-CDO-BUSYSTATUS", "")).upper())
    if cdo == FREE:
        return None
    if str(event.get("STATUS", "")).upper() == "TENTATIVE":
        return BUSY_TENTATIVE
    return cdo or BUSY


#: The most event occurrences kept from one expansion: a bound on the
#: periods stored and served.
MAX_OCCURRENCES = 20000
#: The most steps of recurrence rules one expansion may take by default
#: (see L{expansionLimit}): about a second of CPU.
MAX_RULE_ITERATIONS = 500_000

#: How many Python calls an expansion may make for each rule step it is
#: allowed: a bound on the work around the rules (copying each occurrence).
_CALLS_PER_RULE_ITERATION = 20

TOO_EXPENSIVE = "this calendar's rules are too expensive to expand"


class TooExpensive(InvalidCalendar):
    """
    This calendar's rules are too expensive to expand.
    """

    def __init__(self, reason: str = TOO_EXPENSIVE) -> None:
        super().__init__(reason)


class _WorkExhausted(BaseException):
    # A BaseException, so that no library's "except Exception" (recurring-
    # ical-events skips series that fail) can swallow it and carry on.
    pass


#: The module whose functions are the steps of a recurrence rule: each
#: candidate day or period a rule looks at is a call into it.
_RULE_GLOBALS = vars(dateutil.rrule)


@contextmanager
def expansionLimit(ruleIterations: int) -> Iterator[None]:
    """
    Bound the work of the block in this thread: at most C{ruleIterations}
    calls into C{dateutil}'s recurrence rules (which step through candidate
    days whether or not they match, so a rule that never matches, such as
    C{FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30}, would otherwise run to the year
    9999 producing nothing), and at most L{_CALLS_PER_RULE_ITERATION}
    times as many Python calls in all.  Counting work rather than time
    gives every node of a shared tree the same verdict on one calendar.

    It counts with a trace function (C{sys.settrace}), the only way to see
    inside the libraries' loops; a debugger's or coverage tool's trace is
    suspended meanwhile.

    @raise TooExpensive: When the block needed more.
    """
    budget = {"rules": ruleIterations, "calls": ruleIterations * _CALLS_PER_RULE_ITERATION}

    def count(frame, event, arg):
        # Called at every Python call (and resumed generator); no per-line
        # tracing is asked for, returning None.
        budget["calls"] -= 1
        if frame.f_globals is _RULE_GLOBALS:
            budget["rules"] -= 1
        if budget["rules"] < 0 or budget["calls"] < 0:
            raise _WorkExhausted()

    previous = sys.gettrace()
    sys.settrace(count)
    try:
        yield
    except _WorkExhausted:
        raise TooExpensive() from None
    finally:
        sys.settrace(previous)


def addressKey(address: str) -> str:
    """
    A calendar user address as compared here: without C{mailto:} (in any
    case) and lower-cased.
    """
    address = address.strip()
    if address[:7].lower() == "mailto:":
        address = address[7:]
    return address.strip().lower()


class EventBusy(NamedTuple):
    """
    The busy time of one event of a calendar (all its occurrences, and the
    overridden ones sharing its C{UID}).

    @ivar uid: Its C{UID} (empty when it has none).
    @ivar organizer: Its C{ORGANIZER} as L{addressKey} gives it, or C{None}.
    @ivar periods: Its occurrences, merged and sorted.
    """

    uid: str
    organizer: Optional[str]
    periods: List[Period]


class EventMask(NamedTuple):
    """
    Events to leave out of a busy time: those whose C{UID} is C{uid} and
    whose C{ORGANIZER} is one of C{organizers} (L{addressKey}s), or, with
    C{unorganized}, that name no organizer.  Both conditions as Apple's
    server checks them: only the organizer may make a meeting vanish from
    an attendee's time, and only from their own calendar one without an
    organizer.
    """

    uid: str
    organizers: FrozenSet[str]
    unorganized: bool = False

    def masks(self, event: EventBusy) -> bool:
        if not self.uid or event.uid != self.uid:
            return False
        if event.organizer is None:
            return self.unorganized
        return event.organizer in self.organizers


def maskedPeriods(events: List[EventBusy], mask: EventMask) -> Optional[List[Period]]:
    """
    The busy time of C{events} without those C{mask} masks, merged; C{None}
    when it masks none (then the calendar's merged periods hold).
    """
    if not any(mask.masks(event) for event in events):
        return None
    return mergePeriods([p for event in events if not mask.masks(event) for p in event.periods])


def _occurrences(calendar: Calendar, start: datetime, end: datetime,
                 defaultZone: ZoneInfo) -> List[Tuple[Period, str, Optional[str]]]:
    """
    Every busy occurrence between C{start} and C{end} (a day of slack each
    side), with its event's C{UID} and organizer (L{addressKey}), sorted,
    at most L{MAX_OCCURRENCES}.
    """
    zone = calendarZone(calendar, defaultZone)
    # A day of slack each side: floating and all-day times are compared
    # by the library without our zone.
    slack = timedelta(days=1)
    occurrences = recurring_ical_events.of(calendar, skip_bad_series=True).between(start - slack, end + slack)
    found = []
    for event in occurrences:
        dtstart = event.get("DTSTART")
        if dtstart is None:
            continue
        first = dtstart.dt
        fbtype = _eventType(event)
        if fbtype is None:
            continue
        if event.get("DTEND") is not None:
            last = event["DTEND"].dt
        elif event.get("DURATION") is not None:
            last = first + event["DURATION"].dt
        elif isinstance(first, datetime):
            continue  # takes no time (RFC 5545 3.6.1)
        else:
            last = first + timedelta(days=1)
        organizer = event.get("ORGANIZER")
        found.append((Period(_instant(first, zone), _instant(last, zone), fbtype), str(event.get("UID", "")),
                      None if organizer is None else addressKey(str(organizer))))
    found.sort(key=lambda occurrence: occurrence[0])
    if len(found) > MAX_OCCURRENCES:
        log.warn("kept the first {count} occurrences of {total} in a calendar", count=MAX_OCCURRENCES,
                 total=len(found))
        found = found[:MAX_OCCURRENCES]
    return found


def deriveBusyByEvent(calendar: Calendar, start: datetime, end: datetime,
                      defaultZone: ZoneInfo) -> Tuple[List[Period], List[EventBusy]]:
    """
    L{deriveFreeBusy}'s periods, and each event's own (L{EventBusy}, by
    C{UID} and organizer, in the order of their first occurrence), clipped
    to the range.
    """
    occurrences = _occurrences(calendar, start, end, defaultZone)
    byEvent = {}
    for period, uid, organizer in occurrences:
        byEvent.setdefault((uid, organizer), []).append(period)
    events = []
    for (uid, organizer), periods in byEvent.items():
        clipped = mergePeriods(clipPeriods(periods, start, end))
        if clipped:
            events.append(EventBusy(uid, organizer, clipped))
    return mergePeriods(clipPeriods([o[0] for o in occurrences], start, end)), events


def deriveFreeBusy(calendar: Calendar, start: datetime, end: datetime, defaultZone: ZoneInfo) -> List[Period]:
    """
    The busy periods of a calendar's events between C{start} and C{end}:
    recurrences expanded (RRULE, RDATE, EXDATE, overridden instances),
    cancelled and transparent events left out, tentative ones
    C{BUSY-TENTATIVE}; times in their own zones (VTIMEZONE and DST), all-day
    and floating events in the calendar's zone (L{calendarZone}).  Merged,
    sorted and clipped to the range; nothing of the events but their times
    is kept.  The work is unbounded: expand published calendars with
    L{deriveBounded}.
    """
    periods = [occurrence[0] for occurrence in _occurrences(calendar, start, end, defaultZone)]
    return mergePeriods(clipPeriods(periods, start, end))


def deriveBounded(data: bytes, start: datetime, end: datetime, defaultZone: ZoneInfo,
                  ruleIterations: int = MAX_RULE_ITERATIONS) -> List[Period]:
    """
    Parse a published full calendar and derive its busy periods between
    C{start} and C{end} (L{deriveFreeBusy}), the work bounded by
    L{expansionLimit}.

    @raise TooExpensive: When its rules need more work than that.
    @raise InvalidCalendar: When it is not a full calendar.
    """
    with expansionLimit(ruleIterations):
        return deriveFreeBusy(parseEvents(data), start, end, defaultZone)


def deriveBoundedByEvent(data: bytes, start: datetime, end: datetime, defaultZone: ZoneInfo,
                         ruleIterations: int = MAX_RULE_ITERATIONS) -> Tuple[List[Period], List[EventBusy]]:
    """
    L{deriveBounded}, with each event's own periods (L{deriveBusyByEvent}).

    @raise TooExpensive: When its rules need more work than that.
    @raise InvalidCalendar: When it is not a full calendar.
    """
    with expansionLimit(ruleIterations):
        return deriveBusyByEvent(parseEvents(data), start, end, defaultZone)
