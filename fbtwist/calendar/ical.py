"""
iCalendar parsing and validation: the only module that imports C{icalendar}
(and C{recurring_ical_events}, which builds on it, and C{dateutil}'s
recurrence rules, which that builds on).

Validation accepts what real clients write (see PROTOCOL.md): Outlook's files
have no C{UID}, a bare C{ORGANIZER} and no C{FBTYPE}; lines may end in CRLF or
bare LF and may be folded.  What a published file must be is a C{VCALENDAR}
holding at least one C{VFREEBUSY} whose C{FREEBUSY} periods all parse.  A
full calendar (C{.ics}) is a C{VCALENDAR} holding C{VEVENT}s, whose free/busy
times are derived here, recurrences expanded by C{recurring_ical_events}.

What readers may learn is reduced here to plain periods
(L{fbtwist.calendar.freebusy.FreeBusy}), and L{publicView} is the one definition of
what anyone but the owner gets of them; rendering is L{fbtwist.calendar.freebusy}'s.
"""

import functools
import sys
import uuid
from contextlib import contextmanager
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from typing import Iterator, List, Optional, Tuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dateutil.rrule
import recurring_ical_events
from icalendar import Calendar
from icalendar.prop import vPeriod
from twisted.logger import Logger

from fbtwist.calendar import vfb
from fbtwist.errors import InvalidCalendar
from fbtwist.calendar.freebusy import (
    BUSY,
    BUSY_TENTATIVE,
    BUSY_UNAVAILABLE,
    FREE,
    STYLE_PUBLISHED,
    FreeBusy,
    Period,
    clipPeriods,
    mergePeriods,
    normaliseFBType,
    renderICalendar,
    renderJCal,
    startOfDay,
)

_UTF8_BOM = b"\xef\xbb\xbf"
log = Logger()


def parseCalendar(data: bytes) -> Calendar:
    """
    Parse one iCalendar object.

    @param data: The body as published (UTF-8, an optional byte order mark).
    @return: The C{VCALENDAR} component.
    @raise InvalidCalendar: With a one-line reason when C{data} is not a
        single well-formed C{VCALENDAR}.
    """
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM):]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidCalendar(f"the body is not UTF-8 (byte {e.start})") from None
    if not text.strip():
        raise InvalidCalendar("the body is empty")
    try:
        calendar = Calendar.from_ical(text)
    except (ValueError, KeyError, IndexError, TypeError, OverflowError) as e:
        raise InvalidCalendar("not iCalendar: " + _oneLine(e)) from None
    if calendar.name != "VCALENDAR":
        raise InvalidCalendar(f"expected a VCALENDAR, found {calendar.name}")
    errors = [error for component in calendar.walk() for error in component.errors]
    if errors:
        raise InvalidCalendar("not iCalendar: " + _oneLine(errors[0]))
    return calendar


def validateFreeBusy(data: bytes) -> Calendar:
    """
    Check that C{data} is a publishable free/busy file.

    @return: The parsed calendar.
    @raise InvalidCalendar: With a one-line reason otherwise.
    """
    calendar = parseCalendar(data)
    components = calendar.walk("VFREEBUSY")
    if not components:
        if calendar.walk("VEVENT"):
            raise InvalidCalendar(
                f"this is a calendar of events (VEVENT), not free/busy times (VFREEBUSY): "
                f"publish it as <login>{EVENT_SUFFIXES[0]}"
            )
        raise InvalidCalendar("the calendar has no VFREEBUSY component")
    for component in components:
        for value in _values(component, "FREEBUSY"):
            if not isinstance(value, vPeriod):  # another VALUE type
                raise InvalidCalendar("a FREEBUSY value is not a period")
    return calendar


def _oneLine(error) -> str:
    text = " ".join(str(error).split())
    return text[:200] if text else error.__class__.__name__


#: Names whose content must be a free/busy calendar.
FREEBUSY_SUFFIXES = (".vfb", ".ifb")
#: Names whose content must be a full calendar of events.
EVENT_SUFFIXES = (".ics",)


def validateUpload(name: str, data: bytes) -> None:
    """
    Check the body of a publish to C{name}.  An empty body is a placeholder
    (Windows' WebDAV client creates files empty, then fills them); other
    names than calendar files (which only administrators may write) are not
    checked.

    @raise InvalidCalendar: With a one-line reason.
    """
    if not data:
        return
    if name.lower().endswith(FREEBUSY_SUFFIXES):
        if vfb.read(data) is None:  # not sure: icalendar decides
            validateFreeBusy(data)
    elif name.lower().endswith(EVENT_SUFFIXES):
        validateEvents(data)


def validateEvents(data: bytes) -> Calendar:
    """
    Check that C{data} is a publishable full calendar: a C{VCALENDAR} with
    at least one C{VEVENT}, each with a C{DTSTART}, whose recurrences can be
    expanded.

    @return: The parsed calendar.
    @raise InvalidCalendar: With a one-line reason otherwise.
    """
    calendar = parseCalendar(data)
    events = calendar.walk("VEVENT")
    if not events:
        raise InvalidCalendar("the calendar has no VEVENT component")
    for event in events:
        if event.get("DTSTART") is None:
            raise InvalidCalendar("a VEVENT has no DTSTART")
        rules = event.get("RRULE", [])
        for rule in rules if isinstance(rules, list) else [rules]:
            frequency = str((rule.get("FREQ") or [""])[0]).upper()
            if frequency in _REFUSED_FREQUENCIES:
                raise InvalidCalendar(f"events repeating {frequency} are not accepted")
    try:
        recurring_ical_events.of(calendar)
    except Exception as e:
        raise InvalidCalendar("the events cannot be expanded: " + _oneLine(e)) from None
    return calendar


# --- what readers may learn from a free/busy file ---


def _isClean(calendar: Calendar) -> bool:
    for name, _ in calendar.property_items(recursive=False):
        if name not in vfb.CLEAN_CALENDAR_PROPERTIES | {"BEGIN", "END"}:
            return False
    for component in calendar.subcomponents:
        if component.name != "VFREEBUSY" or component.subcomponents:
            return False
        for name, value in component.property_items(recursive=False):
            if name in ("BEGIN", "END"):
                continue
            if name not in vfb.CLEAN_FREEBUSY_PROPERTIES:
                return False
            params = getattr(value, "params", {}) or {}
            if set(params) - vfb.CLEAN_PARAMETERS.get(name, set()):
                return False
    return True


def _utc(value) -> Optional[datetime]:
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    return None


def _values(component, key) -> list:
    values = component.get(key, [])
    return values if isinstance(values, list) else [values]


def _component(component) -> vfb.Component:
    def moments(key):
        # A VALUE of another type (TEXT, PERIOD, ...) gives no moment.
        values = (_utc(getattr(value, "dt", None)) for value in _values(component, key))
        return [moment for moment in values if moment is not None]

    organizers = _values(component, "ORGANIZER")
    periods = []
    for period in _values(component, "FREEBUSY"):
        start, end = _utc(period.start), _utc(period.end)
        if start is not None and end is not None:
            periods.append(Period(start, end, normaliseFBType(period.params.get("FBTYPE"))))
    # A property written twice (which the fast reader leaves to icalendar)
    # counts as often: the window spans all, the first owner wins.
    return vfb.Component(min(moments("DTSTART"), default=None), max(moments("DTEND"), default=None),
                         str(organizers[0]) if organizers else None, periods)


def freeBusyOf(calendar: Calendar) -> Tuple[FreeBusy, bool]:
    """
    Reduce a parsed free/busy file (L{validateFreeBusy}) to what readers
    may learn.

    @return: The periods, window and owner of all its C{VFREEBUSY}s, and
        whether the file holds nothing else (no detail was left out).
    """
    return vfb.combine(_component(c) for c in calendar.walk("VFREEBUSY")), _isClean(calendar)


def readFreeBusy(data: bytes) -> Tuple[FreeBusy, bool]:
    """
    Reduce a published free/busy file to what readers may learn: by
    L{fbtwist.calendar.vfb} when the file has the common shape it understands, else
    by C{icalendar} (L{freeBusyOf}); both give the same.

    @return: The periods, window and owner of all its C{VFREEBUSY}s, and
        whether the file holds nothing else (no detail was left out).
    @raise InvalidCalendar: When it is not a free/busy file.
    """
    return vfb.read(data) or freeBusyOf(validateFreeBusy(data))


# --- the one definition of what anonymous readers get ---

#: Names the way L{publicView} renders; part of every lookup's entity tag,
#: so that a client holding an answer rendered another way (by an earlier
#: version) gets the new one, not a 304.
PUBLIC_RENDERING = "rfc5545-1"

#: The namespace of the C{urn:uuid:} owner addresses of L{publicView}.
_OWNER_NAMESPACE = uuid.UUID("5d1b4a9e-3c4f-5a8e-9d3b-0f6a2c7e8b41")


def publicUID(owner: str) -> str:
    """
    The C{UID} of every answer about C{owner} (a login, or C{group-<cn>}):
    the same for every version and every range, so that a client sees
    one free/busy object per person.
    """
    return f"fbtwist-{owner}"


def publicOrganizer(owner: str) -> str:
    """
    The C{ORGANIZER} of an answer whose source names none (a full
    calendar, a group, a file without one): a URI that stands for
    C{owner} and nobody else.  No mail address is made up: the server
    does not know the owner's without asking the directory.
    """
    return "urn:uuid:" + str(uuid.uuid5(_OWNER_NAMESPACE, owner))


def publicView(fb: FreeBusy, owner: str, stamp: datetime, style: str = STYLE_PUBLISHED, jcal: bool = False) -> bytes:
    """
    What anyone but the owner reads of C{owner}'s free/busy times, through
    every door (the lookup URLs, anonymous FTP): one C{VFREEBUSY} rendered
    by this server, valid RFC 5545 for strict parsers, whatever the source
    (a clean Outlook file, one carrying event details, a full calendar).

    It holds the published periods with their C{FBTYPE}s exactly (unless
    C{style} asks otherwise), the window (C{DTSTART}/C{DTEND}), a C{UID}
    stable per owner (L{publicUID}), C{DTSTAMP} (C{stamp}, to the second)
    and C{ORGANIZER} (the published one as a URI, else
    L{publicOrganizer}); a source without a window gets the span of its
    periods.  Nothing else of the source leaves.

    @param fb: What readers may learn (L{readFreeBusy}, or periods derived
        from a full calendar).
    @param owner: The login, or C{group-<cn>} for a group.
    @param jcal: Render jCal (RFC 7265) instead of iCalendar text.
    """
    stamp = stamp.replace(microsecond=0)
    if not fb.organizer:
        fb = replace(fb, organizer=publicOrganizer(owner))
    if fb.start is None or fb.end is None:
        # iTIP (RFC 5546) wants the window of a published VFREEBUSY: the
        # span of the periods, when the source gave none.
        start = fb.start or min((p.start for p in fb.periods), default=None) or fb.end or stamp
        end = fb.end or max((p.end for p in fb.periods), default=None) or start
        fb = replace(fb, start=start, end=max(start, end))
    render = renderJCal if jcal else renderICalendar
    return render(fb, publicUID(owner), stamp, style)


@functools.lru_cache(maxsize=1024)
def publicFreeBusy(data: bytes, owner: str, stamp: datetime) -> bytes:
    """
    L{publicView} of a published free/busy file, as served without
    parameters.  Recent answers are remembered (anonymous FTP asks for
    the same file's answer for C{LIST}, C{SIZE} and C{RETR}).

    @raise InvalidCalendar: When it is not a free/busy file.
    """
    fb, _ = readFreeBusy(data)
    return publicView(fb, owner, stamp)


# --- free/busy derived from a full calendar ---


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

#: Recurrence frequencies no calendar of meetings needs, and which would
#: make every lookup expand millions of occurrences.
_REFUSED_FREQUENCIES = {"SECONDLY", "MINUTELY"}

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


def parseEvents(data: bytes) -> Calendar:
    """
    Parse a published full calendar for L{deriveFreeBusy}.

    @raise InvalidCalendar: When it is not one.
    """
    return validateEvents(data)
