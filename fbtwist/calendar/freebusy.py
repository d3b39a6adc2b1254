"""
Free/busy periods as plain values: FBTYPE normalisation, merging, clipping,
the CalConnect lookup range (C{start}, C{end}, C{period}) and rendering a
VFREEBUSY as iCalendar text or as jCal (RFC 7265).

Nothing here parses iCalendar (that is L{fbtwist.calendar.ical}, the only module that
imports C{icalendar}); everything here is pure and works in UTC.
"""

import functools
import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from itertools import chain
from typing import Iterable, List, NamedTuple, Optional, Sequence, Tuple

FREE = "FREE"
BUSY = "BUSY"
BUSY_UNAVAILABLE = "BUSY-UNAVAILABLE"
BUSY_TENTATIVE = "BUSY-TENTATIVE"

#: How strongly a type says "do not book": where periods of different types
#: overlap after merging, the strongest wins.
_STRENGTH = {FREE: 0, BUSY_TENTATIVE: 1, BUSY: 2, BUSY_UNAVAILABLE: 3}


def strength(fbtype: str) -> int:
    """
    How strongly C{fbtype} says "do not book" (C{FREE} least).
    """
    return _STRENGTH[fbtype]

PRODID = "-//fbtwist//free-busy lookup//EN"


def normaliseFBType(value: Optional[str]) -> str:
    """
    The FBTYPE a reader must assume: C{BUSY} when absent, and for unknown
    values (RFC 5545 3.2.9: "treated as BUSY").
    """
    if value is None:
        return BUSY
    upper = str(value).strip().upper()
    return upper if upper in _STRENGTH else BUSY


class Period(NamedTuple):
    """
    One free/busy period, in UTC, C{start < end}.
    """

    start: datetime
    end: datetime
    fbtype: str = BUSY

    @property
    def isBusy(self) -> bool:
        return self.fbtype != FREE


@dataclass
class FreeBusy:
    """
    What a reader may learn from one person's free/busy: the periods and the
    window they cover.  Nothing else is kept, so nothing else can leak.

    @ivar start: The window's start (C{DTSTART}), or C{None}.
    @ivar end: The window's end (C{DTEND}), or C{None}.
    @ivar organizer: The owner's C{ORGANIZER} value (an address), or C{None}.
    """

    periods: List[Period] = field(default_factory=list)
    start: Optional[datetime] = None
    end: Optional[datetime] = None
    organizer: Optional[str] = None

    def busy(self) -> List[Period]:
        return [p for p in self.periods if p.isBusy]


def mergePeriods(periods: Iterable[Period], keepFree: bool = False) -> List[Period]:
    """
    Union periods into sorted, non-overlapping ones.  Adjacent or
    overlapping periods of one type become one; where types overlap, the
    strongest (C{BUSY-UNAVAILABLE} > C{BUSY} > C{BUSY-TENTATIVE} > C{FREE})
    holds the time.

    @param keepFree: Keep C{FREE} periods (where nothing busy covers them);
        by default they are dropped.
    """
    edges = []
    for p in periods:
        if p.end <= p.start or (p.fbtype == FREE and not keepFree):
            continue
        edges.append((p.start, 1, p.fbtype))
        edges.append((p.end, -1, p.fbtype))
    edges.sort(key=lambda e: e[0])
    counts = {t: 0 for t in _STRENGTH}
    merged: List[Period] = []
    current, since = None, None
    index = 0
    while index < len(edges):
        instant = edges[index][0]
        while index < len(edges) and edges[index][0] == instant:
            counts[edges[index][2]] += edges[index][1]
            index += 1
        active = [t for t in counts if counts[t] > 0]
        strongest = max(active, key=strength) if active else None
        if strongest != current:
            if current is not None:
                if merged and merged[-1].end == since and merged[-1].fbtype == current:
                    merged[-1] = merged[-1]._replace(end=instant)
                else:
                    merged.append(Period(since, instant, current))
            current, since = strongest, instant
    return merged


def clipPeriods(periods: Iterable[Period], start: datetime, end: datetime) -> List[Period]:
    """
    The parts of C{periods} inside C{[start, end)}: periods crossing an edge
    are cut there, periods outside are dropped.
    """
    clipped = []
    if end <= start:
        return clipped
    for p in periods:
        s, e = p.start, p.end
        # Most periods of a published file lie wholly outside a range asked
        # for, or wholly inside it: no new period is made for those.
        if e <= start or s >= end or e <= s:
            continue
        if s >= start and e <= end:
            clipped.append(p)
        else:
            clipped.append(Period(s if s > start else start, e if e < end else end, p.fbtype))
    return clipped


# --- the lookup range (CalConnect Freebusy Read URL) ---


class RangeError(ValueError):
    """
    A lookup parameter is malformed; the message says which and why.
    """


_DATETIME = re.compile(
    r"^(\d{4})-?(\d{2})-?(\d{2})(?:T(\d{2}):?(\d{2})(?::?(\d{2}))?(?:\.\d+)?(Z|[+-]\d{2}:?\d{2})?)?$"
)
_DURATION = re.compile(
    r"^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$"
)

#: The longest range a lookup may ask for.
MAX_RANGE = timedelta(days=366 * 2)


def parseUTC(name: str, text: str) -> datetime:
    """
    A UTC date-time (C{20210105T070000Z}, C{2021-01-05T07:00:00Z}, an
    explicit offset) or a date (midnight UTC).

    @raise RangeError: For anything else, floating times included.
    """
    match = _DATETIME.match(text.strip())
    if match is None:
        raise RangeError(f"{name}={text!r} is not a UTC date-time such as 20210105T070000Z or a date")
    year, month, day, hour, minute, second, zone = match.groups()
    if hour is not None and zone is None:
        raise RangeError(f"{name}={text!r} has no time zone: give UTC, ending in Z")
    try:
        if hour is None:
            return datetime(int(year), int(month), int(day), tzinfo=timezone.utc)
        if zone == "Z":
            tz = timezone.utc
        else:
            digits = zone.replace(":", "")
            offset = timedelta(hours=int(digits[1:3]), minutes=int(digits[3:5]))
            tz = timezone(offset if digits[0] == "+" else -offset)
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0), tzinfo=tz)
        return moment.astimezone(timezone.utc)
    except (ValueError, OverflowError) as e:
        raise RangeError(f"{name}={text!r} is not a valid date ({e})") from None


def parseDuration(name: str, text: str) -> timedelta:
    """
    A positive ISO 8601 / RFC 5545 duration: C{P14D}, C{P2W}, C{PT1H30M}.

    @raise RangeError: For anything else.
    """
    match = _DURATION.match(text.strip().upper())
    if match is None or not any(match.groups()):
        raise RangeError(f"{name}={text!r} is not a duration such as P14D or PT8H")
    weeks, days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    try:
        duration = timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)
    except OverflowError:
        raise RangeError(f"{name}={text!r} is too long") from None
    if duration <= timedelta(0):
        raise RangeError(f"{name}={text!r} must be longer than nothing")
    return duration


class TimeRange(NamedTuple):
    start: datetime
    end: datetime


def parseRange(start: Optional[str], end: Optional[str], period: Optional[str], now: datetime,
               window: timedelta) -> Optional[TimeRange]:
    """
    The range a lookup asks for, from its C{start}, C{end} and C{period}
    parameters (each C{None} when absent).

    A missing C{start} is today at 00:00 UTC; a missing C{end} is C{start}
    plus C{period}, or plus C{window}.  Without any of the three there is
    no range (C{None}): the whole published file is meant.

    @raise RangeError: For malformed values, C{end} together with C{period},
        an empty or reversed range, or one longer than L{MAX_RANGE}.
    """
    if start is None and end is None and period is None:
        return None
    if end is not None and period is not None:
        raise RangeError("give end or period, not both")
    startTime = parseUTC("start", start) if start is not None else defaultRange(now, window).start
    if end is not None:
        endTime = parseUTC("end", end)
    else:
        try:
            endTime = startTime + (parseDuration("period", period) if period is not None else window)
        except OverflowError:
            raise RangeError("the range ends after the year 9999") from None
    if endTime <= startTime:
        raise RangeError(f"end ({formatUTC(endTime)}) is not after start ({formatUTC(startTime)})")
    if endTime - startTime > MAX_RANGE:
        raise RangeError(f"the range is longer than {MAX_RANGE.days} days")
    return TimeRange(startTime, endTime)


def defaultRange(now: datetime, window: timedelta) -> TimeRange:
    """
    C{window} from today at 00:00 UTC.
    """
    start = datetime.combine(now.astimezone(timezone.utc).date(), time(0), timezone.utc)
    return TimeRange(start, start + window)


def startOfDay(day: date, tz) -> datetime:
    """
    Midnight at the start of C{day} in C{tz}, in UTC (DST-aware: a day in a
    zone changing its clocks is 23 or 25 hours long).
    """
    return datetime.combine(day, time(0), tz).astimezone(timezone.utc)


# --- rendering ---

#: Output styles: as published (FBTYPE only where it is not BUSY), with
#: FBTYPE on every period (Thunderbird), or busy times only without FBTYPE
#: (what Open-Xchange serves Outlook).
STYLE_PUBLISHED = "published"
STYLE_EXPLICIT = "explicit"
STYLE_SIMPLE = "simple"


def formatUTC(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


@functools.lru_cache(maxsize=8192)
def _jcalUTC(moment: datetime) -> str:
    # Formatted by hand: strftime was most of the time of rendering a file
    # (every lookup answer is rendered, two moments per period).  Busy times
    # fall on few moments (quarter hours, mostly), so recent ones are
    # remembered: a CalDAV answer for 20 people renders hundreds of them.
    # (Equal instants in any zone are one key, and give one UTC text.)
    if moment.tzinfo is not timezone.utc:
        moment = moment.astimezone(timezone.utc)
    return (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
            f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}Z")


def _outputPeriods(fb: FreeBusy, style: str) -> List[Tuple[Optional[str], Period]]:
    """
    The periods to write and the FBTYPE parameter each gets (or C{None}).
    """
    return _stylePeriods(fb.periods, style)


def _stylePeriods(periods, style: str) -> List[Tuple[Optional[str], Period]]:
    out = []
    for p in sorted(periods, key=lambda p: (p.start, p.end)):
        if style == STYLE_SIMPLE:
            if p.isBusy:
                out.append((None, p))
        elif style == STYLE_EXPLICIT:
            out.append((p.fbtype, p))
        else:
            out.append((None if p.fbtype == BUSY else p.fbtype, p))
    return out


def _properties(fb: FreeBusy, uid: str, stamp: datetime, style: str, attendee: Optional[str] = None):
    """
    The VFREEBUSY's properties as (name, parameters, type, value) with the
    value in jCal form, for L{renderJCal}; L{renderICalendar} writes the
    same properties in the same order.
    """
    props = [
        ("uid", {}, "text", uid),
        ("dtstamp", {}, "date-time", _jcalUTC(stamp)),
    ]
    if fb.start is not None:
        props.append(("dtstart", {}, "date-time", _jcalUTC(fb.start)))
    if fb.end is not None:
        props.append(("dtend", {}, "date-time", _jcalUTC(fb.end)))
    if fb.organizer:
        props.append(("organizer", {}, "cal-address", calAddress(fb.organizer)))
    if attendee:
        props.append(("attendee", {}, "cal-address", calAddress(attendee)))
    for fbtype, p in _outputPeriods(fb, style):
        params = {"fbtype": fbtype} if fbtype else {}
        props.append(("freebusy", params, "period", [_jcalUTC(p.start), _jcalUTC(p.end)]))
    return props


def _icalValue(kind: str, value) -> str:
    if kind == "date-time":
        return value.replace("-", "").replace(":", "")
    if kind == "period":
        return "/".join(_icalValue("date-time", v) for v in value)
    if kind == "text":
        return value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")
    return value


def _fold(line: str) -> bytes:
    """
    One content line, folded at 75 octets without splitting a UTF-8
    character (RFC 5545 3.1).
    """
    data = line.encode("utf-8")
    if len(data) <= 75:
        return data + b"\r\n"
    chunks, limit = [], 75
    while len(data) > limit:
        cut = limit
        while cut > 0 and (data[cut] & 0xC0) == 0x80:
            cut -= 1
        chunks.append(data[:cut])
        data = data[cut:]
        limit = 74
    chunks.append(data)
    return b"\r\n ".join(chunks) + b"\r\n"


_URI_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


def calAddress(value: str) -> str:
    """
    An C{ORGANIZER} value as the URI that RFC 5545 requires: Outlook writes
    a bare address (C{someone@example.com}), which becomes
    C{mailto:someone@example.com}; a value with a scheme is kept.
    """
    value = value.strip()
    return value if _URI_SCHEME.match(value) else "mailto:" + value


_CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f]")


def _safeCalAddress(value: str) -> str:
    # Control characters could break the line structure.
    return _CONTROL_CHARACTERS.sub("", value)


def renderICalendar(fb: FreeBusy, uid: str, stamp: datetime, style: str = STYLE_PUBLISHED, method: str = "PUBLISH",
                    attendee: Optional[str] = None) -> bytes:
    """
    One VCALENDAR holding one VFREEBUSY, CRLF line ends, folded lines.

    @param method: The iTIP method (C{REPLY} answers a request, with the
        C{attendee} whose time it is).
    """
    lines = ["UID:" + _icalValue("text", uid), "DTSTAMP:" + _icalUTC(stamp)]
    if fb.start is not None:
        lines.append("DTSTART:" + _icalUTC(fb.start))
    if fb.end is not None:
        lines.append("DTEND:" + _icalUTC(fb.end))
    if fb.organizer:
        lines.append("ORGANIZER:" + _safeCalAddress(calAddress(fb.organizer)))
    if attendee:
        lines.append("ATTENDEE:" + _safeCalAddress(calAddress(attendee)))
    return (_calendarHead(method) + b"".join(_fold(line) for line in lines)
            + _periodLines(tuple(chain.from_iterable(fb.periods)), style) + b"END:VFREEBUSY\r\nEND:VCALENDAR\r\n")


@functools.lru_cache(maxsize=16)
def _calendarHead(method: str) -> bytes:
    return b"".join(_fold(line) for line in ("BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:" + PRODID,
                                              "METHOD:" + method, "BEGIN:VFREEBUSY"))


@functools.lru_cache(maxsize=4096)
def _periodLines(flatPeriods: tuple, style: str) -> bytes:
    """
    The C{FREEBUSY} lines of L{renderICalendar}, rendered once for every
    answer holding the same periods: a CalDAV request asks for many
    people's same week, and clients ask for the same people again and
    again; only the lines around them (C{UID}, C{DTSTAMP}, C{ATTENDEE},
    ...) differ.  (Equal instants in any zone are equal keys and give the
    same UTC text.)

    @param flatPeriods: The periods' fields one after the other (start,
        end, type, start, ...): a flat tuple of times and strings, which
        the garbage collector stops following once it has seen it, where
        a key of L{Period}s would keep every period of thousands of
        answers in each of its full passes (a quarter of a million objects
        for 4,096 files of 60 periods: a stall of the reactor each time).
    """
    periods = [Period(*flatPeriods[i:i + 3]) for i in range(0, len(flatPeriods), 3)]
    lines = []
    for fbtype, p in _stylePeriods(periods, style):
        head = "FREEBUSY;FBTYPE=" + fbtype if fbtype else "FREEBUSY"
        lines.append(_fold(f"{head}:{_icalUTC(p.start)}/{_icalUTC(p.end)}"))
    return b"".join(lines)


def _icalUTC(moment: datetime) -> str:
    if moment.tzinfo is not timezone.utc:
        moment = moment.astimezone(timezone.utc)
    return (f"{moment.year:04d}{moment.month:02d}{moment.day:02d}"
            f"T{moment.hour:02d}{moment.minute:02d}{moment.second:02d}Z")


def renderJCal(fb: FreeBusy, uid: str, stamp: datetime, style: str = STYLE_PUBLISHED) -> bytes:
    """
    The same VCALENDAR as L{renderICalendar}, as jCal (RFC 7265) JSON.
    """
    props = []
    for name, params, kind, value in _properties(fb, uid, stamp, style):
        props.append([name, params, kind, value])
    calendar = [
        "vcalendar",
        [["version", {}, "text", "2.0"], ["prodid", {}, "text", PRODID], ["method", {}, "text", "PUBLISH"]],
        [["vfreebusy", props, []]],
    ]
    return json.dumps(calendar, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def busyAsJSON(periods: Sequence[Period]) -> list:
    """
    Busy periods as JSON-ready dictionaries (for the page's data).
    """
    return [{"start": _jcalUTC(p.start), "end": _jcalUTC(p.end), "fbtype": p.fbtype} for p in periods if p.isBusy]
