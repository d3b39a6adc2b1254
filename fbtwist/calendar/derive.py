"""
Free/busy derived from a full calendar (C{.ics}): events and their
recurrences expanded by C{recurring_ical_events} (which builds on
C{dateutil}'s recurrence rules) over a range, with a bound on the work a
calendar's rules may cost.
"""

import sys
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Iterator, List, Optional
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
    zone = calendarZone(calendar, defaultZone)
    # A day of slack each side: floating and all-day times are compared
    # by the library without our zone.
    slack = timedelta(days=1)
    occurrences = recurring_ical_events.of(calendar, skip_bad_series=True).between(start - slack, end + slack)
    periods = []
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
        periods.append(Period(_instant(first, zone), _instant(last, zone), fbtype))
    if len(periods) > MAX_OCCURRENCES:
        log.warn("kept the first {count} occurrences of {total} in a calendar", count=MAX_OCCURRENCES,
                 total=len(periods))
        periods = sorted(periods)[:MAX_OCCURRENCES]
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
