"""
A fast reader for free/busy requests as scheduling clients write them,
without C{icalendar}: one C{VCALENDAR} holding one C{VFREEBUSY}, its window
in UTC, properties with plain or quoted parameters, CRLF or LF, folded
lines.  Anything else gives C{None}, and the caller parses the body with
C{icalendar} (L{fbtwist.calendar.ical.parseCalendar}), which accepts or
refuses it with its reason: this reader only makes the common case fast,
never decides what is valid.
"""

import re
from datetime import datetime, timezone
from typing import List, NamedTuple, Optional

_PARAMETER = r';[A-Za-z0-9-]+=(?:"[^"\x00-\x1f]*"|[^";:,\x00-\x1f]*)(?:,(?:"[^"\x00-\x1f]*"|[^";:,\x00-\x1f]*))*'
_LINE = re.compile(r"([A-Za-z0-9-]+)((?:%s)*):([^\x00-\x08\x0a-\x1f\x7f]*)$" % _PARAMETER)
_UTC = re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$")
#: Properties whose values are text (may hold escapes): only UID is used.
_TEXT_ESCAPE = re.compile(r"\\[\\;,nN]")


class Request(NamedTuple):
    """
    What a free/busy request holds, as the values are written.
    """

    method: Optional[str]
    components: int
    uid: Optional[str]
    organizers: List[str]
    attendees: List[str]
    start: Optional[datetime]
    end: Optional[datetime]
    #: Apple's C{X-CALENDARSERVER-MASK-UID} (the first), or C{None}.
    maskUID: Optional[str] = None


def _utc(value: str) -> Optional[datetime]:
    match = _UTC.match(value)
    if match is None:
        return None
    try:
        return datetime(*map(int, match.groups()), tzinfo=timezone.utc)
    except ValueError:
        return None


def _unescape(value: str) -> str:
    return _TEXT_ESCAPE.sub(lambda m: "\n" if m.group(0) in ("\\n", "\\N") else m.group(0)[1], value)


def read(data: bytes) -> Optional[Request]:
    """
    @return: The request, or C{None} when C{data} is outside what this
        reader knows (then ask C{icalendar}).
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    text = text.replace("\r\n", "\n").replace("\n ", "").replace("\n\t", "")
    if "\r" in text:
        return None
    lines = [line for line in text.split("\n") if line]
    if not lines or lines[0].upper() != "BEGIN:VCALENDAR" or lines[-1].upper() != "END:VCALENDAR":
        return None
    method = uid = start = end = maskUID = None
    organizers, attendees = [], []
    components, inside = 0, False
    for line in lines[1:-1]:
        match = _LINE.match(line)
        if match is None:
            return None
        name, parameters, value = match.group(1).upper(), match.group(2), match.group(3)
        if name == "BEGIN":
            if inside or value.upper() != "VFREEBUSY" or parameters:
                return None
            inside, components = True, components + 1
        elif name == "END":
            if not inside or value.upper() != "VFREEBUSY" or parameters:
                return None
            inside = False
        elif not inside:
            if name == "METHOD":
                method = value
        elif name == "ORGANIZER":
            organizers.append(value)
        elif name == "ATTENDEE":
            attendees.append(value)
        elif name in ("DTSTART", "DTEND"):
            moment = _utc(value)
            if moment is None or parameters:
                return None
            if name == "DTSTART":
                start = moment
            else:
                end = moment
        elif name == "UID":
            uid = _unescape(value)
        elif name == "X-CALENDARSERVER-MASK-UID" and maskUID is None:
            maskUID = _unescape(value)
    if inside:
        return None
    return Request(method, components, uid, organizers, attendees, start, end, maskUID)
