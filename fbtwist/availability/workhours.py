"""
The site's default working hours, as an operator writes them
(C{Mon-Fri 08:00-18:00}), read into the same model a published
C{VAVAILABILITY} gives (L{fbtwist.availability.model.Availability}).

The text is groups separated by C{;}, each days then times:

  - days: English day names or their abbreviations of two or more letters
    (C{Mo}, C{Mon}, C{Thurs}, C{Monday}), any case, as a list (C{Mon,Wed})
    and ranges (C{Mon-Fri}; C{Fri-Mon} wraps over the weekend);
  - times: C{HH:MM-HH:MM} windows on the wall clock of the zone, as a list
    (C{08:00-12:00,13:00-17:00}); C{24:00} ends a window at midnight.

A day named in two groups gets the windows of both; windows of one day may
not overlap.  The result is one block without a range (always in force),
C{BUSY-UNAVAILABLE} outside the windows, with one weekly window for each
time window and set of days.
"""

import re
from collections import defaultdict
from datetime import datetime, timedelta, tzinfo
from typing import Dict, List, Tuple

from fbtwist.availability.model import Availability, Block, Window

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_CODES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")

#: The Monday from which the windows' weekly rules start: every range a
#: lookup may ask for comes after it (an occurrence before a rule's start
#: does not exist, so a later start would make earlier ranges all
#: "unavailable").  The rules are expanded from near each lookup's range,
#: so its age costs nothing; a rendered VAVAILABILITY's time zone, which
#: covers 1970 onwards, covers it too.
REFERENCE_MONDAY = datetime(1970, 1, 5)

EXAMPLE = "Mon-Fri 08:00-18:00"

_GROUP = re.compile(r"^\s*(?P<days>[A-Za-z][A-Za-z,\s-]*?)\s+(?P<times>\d.*?)\s*$")
_WINDOW = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")


class WorkingHoursError(ValueError):
    """
    The working hours are not written as this module reads them; the
    message says where, in one sentence.
    """


def _day(name: str, text: str) -> int:
    word = name.strip().lower()
    matches = [index for index, day in enumerate(DAYS) if len(word) >= 2 and day.startswith(word)]
    if len(matches) != 1:
        raise WorkingHoursError(f"{name.strip()!r} in {text!r} is not a day such as Mon or Monday")
    return matches[0]


def _days(spec: str, text: str) -> List[int]:
    days: List[int] = []
    for item in spec.split(","):
        if not item.strip():
            raise WorkingHoursError(f"{text!r} has an empty day in {spec.strip()!r}")
        if "-" in item:
            first, _, last = item.partition("-")
            a, b = _day(first, text), _day(last, text)
            days.extend((a + offset) % 7 for offset in range((b - a) % 7 + 1))
        else:
            days.append(_day(item, text))
    return days


def _minutes(hours: str, minutes: str, window: str, text: str, end: bool) -> int:
    h, m = int(hours), int(minutes)
    if m > 59 or h > 24 or (h == 24 and (m or not end)):
        raise WorkingHoursError(f"{window!r} in {text!r} is not a time of day such as 08:00-18:00")
    return h * 60 + m


def _windows(spec: str, text: str) -> List[Tuple[int, int]]:
    windows = []
    for item in spec.split(","):
        match = _WINDOW.match(item.strip())
        if match is None:
            raise WorkingHoursError(f"{item.strip()!r} in {text!r} is not a time window such as 08:00-18:00")
        first = _minutes(match.group(1), match.group(2), item.strip(), text, end=False)
        last = _minutes(match.group(3), match.group(4), item.strip(), text, end=True)
        if last <= first:
            raise WorkingHoursError(f"the window {item.strip()!r} in {text!r} ends before it starts")
        windows.append((first, last))
    return windows


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parseWorkingHours(text: str, zone: tzinfo) -> Availability:
    """
    Read working hours such as C{Mon-Fri 08:00-18:00} or
    C{Mon-Thu 08:00-12:00,13:00-17:00; Fri 08:00-12:00} on the wall clock
    of C{zone}.

    @raise WorkingHoursError: With one sentence saying what is wrong.
    """
    if not text or not text.strip():
        raise WorkingHoursError(f"the working hours are empty: give them such as {EXAMPLE!r}")
    perDay: Dict[int, List[Tuple[int, int]]] = defaultdict(list)
    for group in text.split(";"):
        if not group.strip():
            continue
        match = _GROUP.match(group)
        if match is None:
            raise WorkingHoursError(f"{group.strip()!r} is not days and times such as {EXAMPLE!r}")
        windows = _windows(match.group("times"), text)
        for day in _days(match.group("days"), text):
            perDay[day].extend(windows)
    if not perDay:
        raise WorkingHoursError(f"the working hours are empty: give them such as {EXAMPLE!r}")
    byWindow: Dict[Tuple[int, int], List[int]] = defaultdict(list)
    for day, windows in sorted(perDay.items()):
        ordered = sorted(set(windows))
        for (a, b), (c, d) in zip(ordered, ordered[1:]):
            if c < b:
                raise WorkingHoursError(
                    f"on {DAYS[day].capitalize()} the windows {_clock(a)}-{_clock(b)} and "
                    f"{_clock(c)}-{_clock(d)} overlap")
        for window in ordered:
            byWindow[window].append(day)
    windows = []
    for (first, last), days in sorted(byWindow.items()):
        start = REFERENCE_MONDAY + timedelta(days=days[0], minutes=first)
        windows.append(Window(
            start=start.replace(tzinfo=zone),
            wallLength=timedelta(minutes=last - first),
            rules=("FREQ=WEEKLY;BYDAY=" + ",".join(_CODES[day] for day in days),),
        ))
    return Availability(blocks=(Block(windows=tuple(windows)),), zone=zone)

