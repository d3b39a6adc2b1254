"""
Reading a published C{VAVAILABILITY} (RFC 7953) into the availability
model, and rendering the model as one.

A published file is a C{VCALENDAR} holding one or more C{VAVAILABILITY}
components, each with C{AVAILABLE} subcomponents; times are UTC or local
with a C{TZID} (an IANA name, or one the file's C{VTIMEZONE} defines).
What the model keeps, and the rules it follows, are described in
L{fbtwist.availability.model}.  Validation is strict where a lenient
reading would guess (floating and all-day times, an C{AVAILABLE} without an
end, a C{PRIORITY} out of range, both C{DTEND} and C{DURATION}): each is
refused with one sentence, fit for a 400 answer to a publish.  The rest of
a component (C{UID}, C{DTSTAMP}, C{SUMMARY}, C{LOCATION}...) is not required
and not kept.

Parsing is C{icalendar}'s (by L{fbtwist.calendar.ical.parseCalendar}); the components
are read generically by name, so any C{icalendar} that parses unknown
components will do.
"""

import uuid
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Dict, List, Optional, Tuple

from dateutil.rrule import rrulestr
from icalendar import Calendar, Component
from icalendar.prop import vRecur

from fbtwist.availability.model import MAX_RULE_ITERATIONS, Availability, Block, Window, busyType

# Two helpers of the events' reader, shared rather than copied: its
# one-line error text, and the rule frequencies it refuses (a window
# repeating every minute would make every lookup expand hundreds of
# thousands of them).
from fbtwist.calendar.derive import expansionLimit
from fbtwist.calendar.freebusy import PRODID, formatUTC
from fbtwist.calendar.ical import REFUSED_FREQUENCIES, oneLine, parseCalendar
from fbtwist.errors import InvalidCalendar

#: How far ahead of each window's start the reader expands it, to refuse
#: rules that are too expensive when they are published rather than at
#: every lookup.
CHECKED_SPAN = timedelta(days=366)

_NAMESPACE = uuid.UUID("0c7f2d36-6a55-5b3e-8f0e-5e7c9a1b2d44")


def _single(component: Component, key: str, where: str):
    value = component.get(key)
    if isinstance(value, list):
        raise InvalidCalendar(f"{where} has more than one {key}")
    return value


def _moment(component: Component, key: str, where: str) -> Optional[datetime]:
    """
    A C{DTSTART} or C{DTEND}: an aware date-time, or C{None} when absent.
    """
    value = _single(component, key, where)
    if value is None:
        return None
    moment = getattr(value, "dt", None)
    if not isinstance(moment, datetime):
        if isinstance(moment, date):
            raise InvalidCalendar(f"{where}'s {key} is a date: RFC 7953 wants a date-time")
        raise InvalidCalendar(f"{where}'s {key} is not a date-time")
    if moment.tzinfo is None:
        raise InvalidCalendar(f"{where}'s {key} is a floating time: give it a TZID or write it in UTC")
    return moment


def _duration(component: Component, where: str) -> Optional[timedelta]:
    value = _single(component, "DURATION", where)
    if value is None:
        return None
    length = getattr(value, "dt", None)
    if not isinstance(length, timedelta):
        raise InvalidCalendar(f"{where}'s DURATION is not a duration")
    if length <= timedelta(0):
        raise InvalidCalendar(f"{where}'s DURATION is not positive")
    return length


def _listed(component: Component, key: str, zone: tzinfo, where: str) -> List[Tuple[datetime, object]]:
    """
    The values of C{RDATE} or C{EXDATE}: (moment, C{None} or the
    period's end or length).  A floating value is taken in C{zone}.
    """
    values = component.get(key, [])
    out = []
    for value in values if isinstance(values, list) else [values]:
        for item in getattr(value, "dts", []):
            moment, extra = item.dt, None
            if isinstance(moment, tuple):
                moment, extra = moment
            if not isinstance(moment, datetime):
                raise InvalidCalendar(f"{where}'s {key} holds a date: RFC 7953 wants date-times")
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=zone)
            out.append((moment, extra))
    return out


def _ruleText(rule, start: datetime, where: str) -> str:
    """
    An C{RRULE} as text for C{dateutil}, its C{UNTIL} in UTC (a floating
    C{UNTIL} is read in the zone of the start, a date as the end of that
    day there).
    """
    if not isinstance(rule, vRecur):
        raise InvalidCalendar(f"{where}'s RRULE is not a recurrence rule")
    frequency = str((rule.get("FREQ") or [""])[0]).upper()
    if not frequency:
        raise InvalidCalendar(f"{where}'s RRULE has no FREQ")
    if frequency in REFUSED_FREQUENCIES:
        raise InvalidCalendar(f"{where} repeats {frequency}, which is not accepted")
    rule = vRecur(rule)
    until = rule.get("UNTIL")
    if until:
        moment = until[0]
        if not isinstance(moment, datetime):
            moment = datetime(moment.year, moment.month, moment.day, 23, 59, 59)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=start.tzinfo)
        rule["UNTIL"] = [moment.astimezone(timezone.utc)]
    text = rule.to_ical().decode("ascii")
    try:
        rrulestr(text, dtstart=start)
    except (ValueError, TypeError, KeyError, IndexError) as e:
        raise InvalidCalendar(f"{where}'s RRULE cannot be read: {oneLine(e)}") from None
    return text


def _window(component: Component, where: str) -> Tuple[Window, Optional[datetime]]:
    """
    One C{AVAILABLE}, and its C{RECURRENCE-ID} (or C{None}).
    """
    start = _moment(component, "DTSTART", where)
    if start is None:
        raise InvalidCalendar(f"{where} has no DTSTART")
    end = _moment(component, "DTEND", where)
    length = _duration(component, where)
    wall = exact = timedelta(0)
    if end is not None and length is not None:
        raise InvalidCalendar(f"{where} has both DTEND and DURATION")
    if end is not None:
        if end <= start:
            raise InvalidCalendar(f"{where} ends ({formatUTC(end)}) before it starts ({formatUTC(start)})")
        if end.tzinfo == start.tzinfo:
            wall = end.replace(tzinfo=None) - start.replace(tzinfo=None)
        else:
            exact = end.astimezone(timezone.utc) - start.astimezone(timezone.utc)
    elif length is not None:
        wall, exact = timedelta(days=length.days), length - timedelta(days=length.days)
    else:
        raise InvalidCalendar(f"{where} has neither DTEND nor DURATION")
    rules = component.get("RRULE", [])
    texts = tuple(_ruleText(rule, start, where) for rule in (rules if isinstance(rules, list) else [rules]))
    dates = []
    for moment, extra in _listed(component, "RDATE", start.tzinfo, where):
        if isinstance(extra, datetime):
            extra = (extra if extra.tzinfo else extra.replace(tzinfo=start.tzinfo)) - moment
        if extra is not None and extra <= timedelta(0):
            raise InvalidCalendar(f"{where} has an RDATE period that ends before it starts")
        dates.append((moment, extra))
    exdates = tuple(moment for moment, _ in _listed(component, "EXDATE", start.tzinfo, where))
    recurrence = _moment(component, "RECURRENCE-ID", where)
    window = Window(start=start, wallLength=wall, exactLength=exact, rules=texts, dates=tuple(dates),
                    exdates=exdates)
    return window, recurrence


def _priority(component: Component, where: str) -> int:
    value = _single(component, "PRIORITY", where)
    if value is None:
        return 0
    try:
        priority = int(value)
    except (TypeError, ValueError):
        raise InvalidCalendar(f"{where}'s PRIORITY is not a number") from None
    if not 0 <= priority <= 9:
        raise InvalidCalendar(f"{where}'s PRIORITY is {priority}: give 0 (undefined) or 1 (highest) to 9")
    return priority


def _block(component: Component, number: int) -> Block:
    where = f"VAVAILABILITY {number}"
    start = _moment(component, "DTSTART", where)
    end = _moment(component, "DTEND", where)
    length = _duration(component, where)
    if end is not None and length is not None:
        raise InvalidCalendar(f"{where} has both DTEND and DURATION")
    if length is not None:
        if start is None:
            raise InvalidCalendar(f"{where} has a DURATION but no DTSTART")
        end = (start + timedelta(days=length.days)).astimezone(timezone.utc) + (
            length - timedelta(days=length.days))
    if start is not None and end is not None and end <= start:
        raise InvalidCalendar(f"{where} ends ({formatUTC(end)}) before it starts ({formatUTC(start)})")
    busytype = _single(component, "BUSYTYPE", where)
    masters: Dict[str, int] = {}
    windows: List[Window] = []
    overrides: List[Tuple[str, datetime]] = []
    available = [c for c in component.subcomponents if c.name == "AVAILABLE"]
    for index, sub in enumerate(available, 1):
        window, recurrence = _window(sub, f"AVAILABLE {index} of {where}")
        uid = str(sub.get("UID", f"#{index}"))
        if recurrence is None:
            masters.setdefault(uid, len(windows))
        else:
            overrides.append((uid, recurrence))
        windows.append(window)
    # An occurrence overridden by a RECURRENCE-ID is left out of its series;
    # the overriding component is a window of its own.
    for uid, recurrence in overrides:
        if uid in masters:
            master = windows[masters[uid]]
            windows[masters[uid]] = Window(master.start, master.wallLength, master.exactLength, master.rules,
                                           master.dates, master.exdates + (recurrence,))
    return Block(windows=tuple(windows), start=start, end=end, busytype=busyType(busytype),
                 priority=_priority(component, where))


def availabilityOf(calendar: Calendar, ruleIterations: int = MAX_RULE_ITERATIONS) -> Availability:
    """
    The model of a parsed calendar's C{VAVAILABILITY} components.

    @raise InvalidCalendar: With one sentence when a component is not as
        RFC 7953 says.
    @raise fbtwist.calendar.derive.TooExpensive: When a window's rules need more
        work than allowed to expand a year (see L{CHECKED_SPAN}).
    """
    components = [c for c in calendar.subcomponents if c.name == "VAVAILABILITY"]
    if not components:
        raise InvalidCalendar("the calendar has no VAVAILABILITY component")
    blocks = tuple(_block(component, number) for number, component in enumerate(components, 1))
    zone: tzinfo = timezone.utc
    for block in blocks:
        moments = [window.start for window in block.windows] + [block.start]
        for moment in moments:
            if moment is not None:
                zone = moment.tzinfo
                break
        else:
            continue
        break
    with expansionLimit(ruleIterations):
        for block in blocks:
            for window in block.windows:
                first = window.start.astimezone(timezone.utc)
                window.ruleStarts(first, first + CHECKED_SPAN)
    return Availability(blocks=blocks, zone=zone)


def readAvailability(data: bytes, ruleIterations: int = MAX_RULE_ITERATIONS) -> Availability:
    """
    Parse and check a published C{VCALENDAR} of C{VAVAILABILITY}
    components (see L{availabilityOf}).

    @raise InvalidCalendar: With one sentence saying what is wrong
        (L{fbtwist.calendar.derive.TooExpensive} for rules too expensive to expand).
    """
    return availabilityOf(parseCalendar(data), ruleIterations)


# --- rendering ---


def _uid(*parts) -> str:
    return str(uuid.uuid5(_NAMESPACE, repr(parts)))


def _renderWindow(window: Window, stamp: datetime) -> Component:
    available = Component()
    available.name = "AVAILABLE"
    available.add("UID", _uid(window))
    available.add("DTSTAMP", stamp)
    available.add("DTSTART", window.start)
    if not window.exactLength:
        available.add("DTEND", window.start + window.wallLength)
    elif not window.wallLength:
        available.add("DTEND", window.start.astimezone(timezone.utc) + window.exactLength)
    else:
        available.add("DURATION", window.wallLength + window.exactLength)
    for text in window.rules:
        available.add("RRULE", vRecur.from_ical(text))
    for moment, length in window.dates:
        available.add("RDATE", [moment] if length is None else [(moment, length)])
    if window.exdates:
        available.add("EXDATE", list(window.exdates))
    return available


def renderAvailability(model: Availability, stamp: Optional[datetime] = None) -> Calendar:
    """
    C{model} as a C{VCALENDAR} holding a C{VAVAILABILITY} for each block,
    its times in their own zones (the person's, for working hours made
    by L{fbtwist.availability.workhours.parseWorkingHours}) with the
    C{VTIMEZONE}s they need; L{availabilityOf} reads it back as C{model}.

    @param stamp: The C{DTSTAMP} (now by default).
    """
    stamp = (stamp or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(microsecond=0)
    calendar = Calendar()
    calendar.add("VERSION", "2.0")
    calendar.add("PRODID", PRODID)
    for block in model.blocks:
        component = Component()
        component.name = "VAVAILABILITY"
        component.add("UID", _uid(block))
        component.add("DTSTAMP", stamp)
        if block.start is not None:
            component.add("DTSTART", block.start)
        if block.end is not None:
            component.add("DTEND", block.end)
        component.add("BUSYTYPE", block.busytype)
        if block.priority:
            component.add("PRIORITY", block.priority)
        for window in block.windows:
            component.add_component(_renderWindow(window, stamp))
        calendar.add_component(component)
    calendar.add_missing_timezones()
    return calendar
