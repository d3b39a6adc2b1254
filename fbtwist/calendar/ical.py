"""
iCalendar parsing and validation; with L{fbtwist.calendar.derive} (which
expands recurrences), the only modules that import C{icalendar} (and C{recurring_ical_events}, which builds on it,
and C{dateutil}'s recurrence rules, which that builds on).

Validation accepts what real clients write (see PROTOCOL.md): Outlook's files
have no C{UID}, a bare C{ORGANIZER} and no C{FBTYPE}; lines may end in CRLF or
bare LF and may be folded.  What a published file must be is a C{VCALENDAR}
holding at least one C{VFREEBUSY} whose C{FREEBUSY} periods all parse.  A
full calendar (C{.ics}) is a C{VCALENDAR} holding C{VEVENT}s, whose free/busy
times are derived by L{fbtwist.calendar.derive}.

What readers may learn is reduced here to plain periods
(L{fbtwist.calendar.freebusy.FreeBusy}), and
L{fbtwist.calendar.publicview.publicView} is the one definition of what
anyone but the owner gets of them; rendering is
L{fbtwist.calendar.freebusy}'s.
"""

from datetime import date, datetime, timezone
from typing import Optional, Tuple

import recurring_ical_events
from icalendar import Calendar
from icalendar.prop import vPeriod

from fbtwist.calendar import vfb
from fbtwist.calendar.freebusy import FreeBusy, Period, normaliseFBType
from fbtwist.errors import InvalidCalendar

_UTF8_BOM = b"\xef\xbb\xbf"


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
        raise InvalidCalendar("not iCalendar: " + oneLine(e)) from None
    if calendar.name != "VCALENDAR":
        raise InvalidCalendar(f"expected a VCALENDAR, found {calendar.name}")
    errors = [error for component in calendar.walk() for error in component.errors]
    if errors:
        raise InvalidCalendar("not iCalendar: " + oneLine(errors[0]))
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


def oneLine(error) -> str:
    text = " ".join(str(error).split())
    return text[:200] if text else error.__class__.__name__


#: Names whose content must be a free/busy calendar.
FREEBUSY_SUFFIXES = (".vfb", ".ifb")
#: Names whose content must be a full calendar of events.
EVENT_SUFFIXES = (".ics",)
#: A person's working hours (a C{VAVAILABILITY} calendar, checked by
#: L{fbtwist.availability.publish}): an C{.ics} file that holds no events.
AVAILABILITY_SUFFIX = ".avail.ics"


def isEventsName(name: str) -> bool:
    """
    Whether C{name} is a full calendar of events (C{.ics}, not working
    hours).
    """
    lowered = name.lower()
    return lowered.endswith(EVENT_SUFFIXES) and not lowered.endswith(AVAILABILITY_SUFFIX)


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
        if not vfb.readable(data):  # not sure: icalendar decides
            validateFreeBusy(data)
    elif isEventsName(name):
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
            if frequency in REFUSED_FREQUENCIES:
                raise InvalidCalendar(f"events repeating {frequency} are not accepted")
    try:
        recurring_ical_events.of(calendar)
    except Exception as e:
        raise InvalidCalendar("the events cannot be expanded: " + oneLine(e)) from None
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


#: Recurrence frequencies no calendar of meetings needs, and which would
#: make every lookup expand millions of occurrences.
REFUSED_FREQUENCIES = {"SECONDLY", "MINUTELY"}


def parseEvents(data: bytes) -> Calendar:
    """
    Parse a published full calendar for L{deriveFreeBusy}.

    @raise InvalidCalendar: When it is not one.
    """
    return validateEvents(data)
