"""
A fast reader for free/busy files as clients really write them, without
C{icalendar}.

Every publish and every uncached lookup reads a free/busy file; C{icalendar}
takes about 1.7 ms for Outlook's 2.4 KB file, this reader a small fraction
of that.  It understands a strict subset of iCalendar: an optional UTF-8 byte
order mark, CRLF or bare LF, folded lines, one C{VCALENDAR} holding only
C{VFREEBUSY} components, whose properties are free/busy periods (UTC start
and UTC end or a duration), dates and date-times without zones, and text,
address, URI and unknown properties.

L{read} has three outcomes: the file's free/busy times, or C{None} when the
file is outside that subset, and then the caller asks C{icalendar}
(L{fbtwist.calendar.ical}), which accepts or refuses it with its usual reason.  So
the rule here is soundness: whatever L{read} accepts, C{icalendar} accepts
too and reads to the same result; everything else is C{None}, never a
refusal.  The behaviours of C{icalendar} 7 that this mirrors are named where
they matter; C{tests/unit/test_vfb.py} checks them against C{icalendar} itself.

L{combine} reduces components to what readers may learn, for both readers.
"""

import re
from datetime import datetime, timedelta, timezone
from typing import Dict, Iterable, List, NamedTuple, Optional, Set, Tuple

from fbtwist.calendar.freebusy import BUSY, FreeBusy, Period, normaliseFBType

#: What a published file may hold and be called clean (nothing but
#: free/busy times): the calendar's envelope, and in each VFREEBUSY the
#: window, the owner and the periods.  Anything else (SUMMARY, LOCATION, COMMENT, ATTENDEE, CONTACT,
#: DESCRIPTION, X- properties, parameters such as Kolab's X-SUMMARY, other
#: components) is a detail that readers do not get.
CLEAN_CALENDAR_PROPERTIES = frozenset({"VERSION", "PRODID", "METHOD", "CALSCALE"})
CLEAN_FREEBUSY_PROPERTIES = frozenset({"DTSTAMP", "DTSTART", "DTEND", "UID", "ORGANIZER", "FREEBUSY", "URL"})
CLEAN_PARAMETERS = {"FREEBUSY": frozenset({"FBTYPE", "VALUE"}), "ORGANIZER": frozenset({"CN"})}
_NONE: frozenset = frozenset()


class Component(NamedTuple):
    """
    One C{VFREEBUSY} as L{combine} takes it, times in UTC.
    """

    start: Optional[datetime]
    end: Optional[datetime]
    organizer: Optional[str]
    periods: List[Period]


def combine(components: Iterable[Component]) -> FreeBusy:
    """
    What readers may learn from a file's C{VFREEBUSY}s: the periods of all
    (sorted; empty ones left out), the window spanning all, the first
    owner.
    """
    fb = FreeBusy()
    for component in components:
        if component.start is not None and (fb.start is None or component.start < fb.start):
            fb.start = component.start
        if component.end is not None and (fb.end is None or component.end > fb.end):
            fb.end = component.end
        if component.organizer is not None and fb.organizer is None:
            fb.organizer = component.organizer
        fb.periods += [p for p in component.periods if p.start < p.end]
    fb.periods.sort()
    return fb


# --- the content-line grammar understood here ---

#: NAME *(;PARAM=VALUE) : VALUE, with ASCII names, parameter values quoted
#: or plain, and no backslash, tab or control character before the value
#: (where icalendar would unescape, strip or refuse).  Plain parameter values
#: may hold spaces and "=" (base64); icalendar strips spaces next to ";"
#: and "=", which changes nothing read here.
_LINE = re.compile(
    r'([A-Za-z0-9-]+)((?:;[A-Za-z0-9-]+=(?:"[^"\x00-\x1f\x7f]*"|[^";:,\\\x00-\x1f\x7f]*))*):(.*)'
)
_PARAMETER = re.compile(r';([A-Za-z0-9-]+)=("[^"]*"|[^;]*)')
#: A fold: a line break, any blank lines, a space or tab.  The lookbehind
#: starts a match only at the first of a run of line breaks, so that a
#: long run not followed by a space is scanned once, not once per line
#: break (as in icalendar's own pattern).
_FOLD = re.compile(r"(?<!\n)\n+[ \t]")
#: Where a text has a fold at all (one pass, not one per character sought).
_FOLD_START = re.compile("\n[ \t]")
_FBTYPE = re.compile(r"[A-Za-z0-9-]+")

#: Dates and times as icalendar reads them, minutes and seconds in range:
#: C{datetime.fromisoformat} (ten times faster than building the datetime
#: from the numbers, as icalendar does) then takes exactly these.
_TIME = r"[0-9]{8}T[0-2][0-9][0-5][0-9][0-5][0-9]"
_DATE_TIME = re.compile(r"[0-9]{8}(?:T[0-2][0-9][0-5][0-9][0-5][0-9]Z?)?")
#: A period: UTC start, and UTC end or a duration (L{_DURATION}).
_PERIOD = r"(" + _TIME + r"Z)/(?:(" + _TIME + r"Z)|(P[0-9WDTHMS]*))"
_PERIODS = re.compile(_PERIOD)
#: The most common FREEBUSY line, read at once.
_FREEBUSY = re.compile(r"FREEBUSY(?:;FBTYPE=([A-Za-z0-9-]+))?:" + _PERIOD)
#: icalendar's duration grammar, without sign, with ASCII digits only.
_DURATION = re.compile(
    r"P(?:([0-9]{1,6})W)?(?:([0-9]{1,6})D)?(?:T(?:([0-9]{1,6})H)?(?:([0-9]{1,6})M)?(?:([0-9]{1,6})S)?)?"
)
#: Durations read so far (a few kinds, such as PT30M, recur in every file).
_durations: Dict[str, timedelta] = {}
#: FREEBUSY lines of the common form (L{_FREEBUSY}) that passed
#: L{_checkPeriod}: the same meetings' lines come back with every publish
#: of a calendar, and many people's periods are alike (on the hour, the half
#: hour).  What a line passes depends on nothing but its text.  Emptied when
#: it holds L{_CHECKED_LINES}.
_checkedLines: Set[str] = set()
_CHECKED_LINES = 16384

#: The value type icalendar gives a property by default (its
#: C{TypesFactory.types_map}, which C{tests/unit/test_vfb.py} compares with this);
#: a name not here is UNKNOWN, read verbatim.  Of these, TEXT never fails to
#: parse; CAL-ADDRESS and URI fail only on a line break, which only an
#: escape can make; DTSTART, DTEND, DTSTAMP and FREEBUSY are parsed here;
#: the rest are not understood here.
ICALENDAR_TYPES = {
    name: kind
    for kind, names in {
        "adr": "ADR", "boolean": "RSVP", "categories": "CATEGORIES", "geo": "GEO", "n": "N", "org": "ORG",
        "period": "FREEBUSY", "recur": "EXRULE RRULE", "unknown": "IMAGE", "date-time-list": "EXDATE RDATE",
        "cal-address": "ATTENDEE DELEGATED-FROM DELEGATED-TO MEMBER ORGANIZER SENT-BY",
        "date-time": "ACKNOWLEDGED COMPLETED CREATED DTEND DTSTAMP DTSTART DUE LAST-MODIFIED RECURRENCE-ID",
        "duration": "DURATION GAP REFRESH-INTERVAL TRIGGER",
        "integer": "PERCENT-COMPLETE PRIORITY REPEAT SEQUENCE",
        "text": "ACTION CALSCALE CLASS CN COMMENT CONTACT CUTYPE DESCRIPTION ENCODING FBTYPE FMTTYPE LABEL "
                "LANGUAGE LINKREL LOCATION METHOD PARTSTAT PRODID PROXIMITY RANGE REFID RELATED RELATED-TO "
                "RELTYPE REQUEST-STATUS RESOURCES ROLE STATUS SUMMARY TRANSP TZID TZNAME UID VALUE VERSION",
        "uri": "ALTREP ATTACH CONCEPT CONFERENCE DIR LINK SOURCE TZURL URL",
        "utc-offset": "TZOFFSETFROM TZOFFSETTO",
    }.items()
    for name in names.split()
}
_VERBATIM_TYPES = {"text", "unknown"}
_UNESCAPED_TYPES = {"cal-address", "uri"}
_DATE_TIMES = {"DTSTART": "start", "DTEND": "end", "DTSTAMP": None}


class _NotSure(Exception):
    """
    The file is outside what this reader understands.
    """


def _moment(value: str) -> datetime:
    """
    A DATE or DATE-TIME value without zone, in UTC: icalendar reads a date
    as a date and a floating time as naive, both of which
    L{fbtwist.calendar.ical} takes as UTC.
    """
    if _DATE_TIME.fullmatch(value) is None:
        raise _NotSure()
    try:
        return datetime.fromisoformat(value).replace(tzinfo=timezone.utc)
    except ValueError:
        raise _NotSure() from None


def _duration(text: str) -> timedelta:
    duration = _durations.get(text)
    if duration is None:
        match = _DURATION.fullmatch(text)
        if match is None:
            raise _NotSure()
        weeks, days, hours, minutes, seconds = (int(n or 0) for n in match.groups())
        duration = timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)
        if len(_durations) < 100:
            _durations[text] = duration
    return duration


def _period(start: str, end: Optional[str], duration: Optional[str], fbtype: str) -> Period:
    """
    One period from the groups of L{_PERIOD}: icalendar refuses one ending
    before it starts.
    """
    try:
        first = datetime.fromisoformat(start)
        last = datetime.fromisoformat(end) if duration is None else first + _duration(duration)
    except (ValueError, OverflowError):
        raise _NotSure() from None
    if first > last:
        raise _NotSure()
    return Period(first, last, fbtype)


def _checkPeriod(start: str, end: Optional[str], duration: Optional[str]) -> None:
    """
    What L{_period} checks, without making the period.
    """
    if duration is not None:
        # A duration is never negative: only the start and the sum can fail.
        try:
            fromisoformat(start) + _duration(duration)
        except (ValueError, OverflowError):
            raise _NotSure() from None
        return
    # Both of L{_TIME}'s fixed width: as strings they compare as the times
    # they are (when they are times at all, which is checked next).
    if start > end:
        raise _NotSure()
    try:
        fromisoformat(start)
        fromisoformat(end)
    except ValueError:
        raise _NotSure() from None


fromisoformat = datetime.fromisoformat


def _periods(value: str, fbtype: str) -> List[Period]:
    """
    The periods of one FREEBUSY value, which icalendar splits at every
    comma.
    """
    periods = []
    for text in value.split(","):
        match = _PERIODS.fullmatch(text)
        if match is None:
            raise _NotSure()
        periods.append(_period(*match.groups(), fbtype))
    return periods


def _parameters(text: str) -> Dict[str, str]:
    """
    A line's parameters by upper-case name, quotes taken off; the same name
    twice (icalendar keeps the last) is not understood here.
    """
    parameters = {}
    for name, value in _PARAMETER.findall(text):
        name = name.upper()
        if name in parameters:
            raise _NotSure()
        parameters[name] = value[1:-1] if value.startswith('"') else value
    return parameters


def _lines(data: bytes) -> List[str]:
    """
    The unfolded content lines, as icalendar splits them: a line break
    (CRLF or LF) followed by any blank lines and a space or tab is a fold,
    blank lines are dropped.  A CR alone is not understood here.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _NotSure() from None
    lines = None
    if "\r" in text:
        # Split at CRLF at once (every client's line ends) when no line
        # ends otherwise: each pass over the text costs as much as the
        # split, and replacing every CRLF first would be one more.
        lines = text.split("\r\n")
        if text.count("\r") != len(lines) - 1:
            raise _NotSure()  # a CR alone
        if text.count("\n") != len(lines) - 1:
            lines = None  # bare LFs too
            text = text.replace("\r\n", "\n")
    # A fold: "\n " or "\n\t", also as the end of "\r\n ".
    if _FOLD_START.search(text) is not None:
        text = _FOLD.sub("", text.replace("\r\n", "\n") if lines is not None else text)
        lines = None
    if lines is None:
        lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line for line in lines if line] if "" in lines else lines


def _read(data: bytes, build: bool = True) -> Optional[Tuple[FreeBusy, bool]]:
    """
    The free/busy times of C{data} and whether it holds nothing else, or,
    when not C{build}, C{None} once every check passed (without making the
    periods: what a publish asks).

    @raise _NotSure: When the file is outside what this reader understands.
    """
    lines = _lines(data)
    # icalendar takes names and component names in any case; the rest of
    # the first and last lines (parameters, anything outside the
    # calendar) is not understood here.
    if not lines or not (lines[0].isascii() and lines[0].upper() == "BEGIN:VCALENDAR"
                         and lines[-1].isascii() and lines[-1].upper() == "END:VCALENDAR"):
        raise _NotSure()
    components: List[Component] = []
    clean = True
    inside = False  # in a VFREEBUSY, whose fields follow
    moments: Dict[str, datetime] = {}
    organizer: Optional[str] = None
    periods: List[Period] = []
    for line in lines[1:-1]:
        if inside and line.startswith("FREEBUSY"):
            if not build and line in _checkedLines:
                continue
            match = _FREEBUSY.fullmatch(line)
            if match is not None:
                fbtype, start, end, duration = match.groups()
                if build:
                    periods.append(_period(start, end, duration, BUSY if fbtype is None else normaliseFBType(fbtype)))
                else:
                    _checkPeriod(start, end, duration)
                    if len(_checkedLines) >= _CHECKED_LINES:
                        _checkedLines.clear()
                    _checkedLines.add(line)
                continue
        match = _LINE.fullmatch(line)
        if match is None:
            raise _NotSure()
        name, parameterText, value = match.groups()
        name = name.upper()
        if name == "BEGIN" or name == "END":
            # Nothing but VFREEBUSY, unnested.  (icalendar would end the
            # innermost component whatever END names.)
            if parameterText or not value.isascii() or value.upper() != "VFREEBUSY" or (name == "END") != inside:
                raise _NotSure()
            if inside:
                components.append(Component(moments.get("start"), moments.get("end"), organizer, periods))
                moments, organizer, periods = {}, None, []
            inside = not inside
            continue
        parameters = _parameters(parameterText) if parameterText else {}
        if "VALUE" in parameters and not (name == "FREEBUSY" and parameters["VALUE"].upper() == "PERIOD"):
            raise _NotSure()  # another value type than the default
        if not inside:
            clean = clean and name in CLEAN_CALENDAR_PROPERTIES
        elif clean:
            clean = name in CLEAN_FREEBUSY_PROPERTIES and parameters.keys() <= CLEAN_PARAMETERS.get(name, _NONE)
        kind = ICALENDAR_TYPES.get(name, "unknown")
        if kind in _VERBATIM_TYPES:
            continue
        if name == "FREEBUSY":
            fbtype = parameters.get("FBTYPE")
            if fbtype is not None and not _FBTYPE.fullmatch(fbtype):
                raise _NotSure()  # quoted lists, RFC 6868 escapes, spaces
            read = _periods(value, normaliseFBType(fbtype))
            if inside:
                periods.extend(read)
        elif name in _DATE_TIMES:
            if parameters:
                raise _NotSure()  # TZID, VALUE
            moment = _moment(value)
            field = _DATE_TIMES[name]
            if inside and field is not None:
                if field in moments:
                    raise _NotSure()  # icalendar makes a list
                moments[field] = moment
        elif kind in _UNESCAPED_TYPES:
            if "\\" in value:
                raise _NotSure()  # "\n" unescapes to a line break, refused in these types
            if name == "ORGANIZER" and inside:
                if organizer is not None:
                    raise _NotSure()  # icalendar makes a list
                organizer = value
        else:
            raise _NotSure()
    if inside or not components:
        raise _NotSure()
    return (combine(components), clean) if build else None


def read(data: bytes) -> Optional[Tuple[FreeBusy, bool]]:
    """
    Read a free/busy file as L{fbtwist.calendar.ical.readFreeBusy} does, if it is of
    the common shape understood here.

    @param data: The file as published.
    @return: Its free/busy times and whether it holds nothing else, or
        C{None} when the file is outside what this reader understands (ask
        C{icalendar} then).
    """
    try:
        return _read(data)
    except _NotSure:
        return None


def readable(data: bytes) -> bool:
    """
    Whether L{read} gives C{data}'s free/busy times (not C{None}), found
    without making them: exactly then C{icalendar} accepts the file too.
    """
    try:
        _read(data, build=False)
    except _NotSure:
        return False
    return True
