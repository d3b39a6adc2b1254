"""
Finding a time: the slots in a range where enough people, and a room, are
free.

Busy is any period whose C{FBTYPE} is not C{FREE} (tentative time too: a
slot offered is one nobody has any claim on), and, when working hours are
given, any time outside them (L{fbtwist.availability.model.unavailable}).
Each person's and room's busy time is merged once into sorted, disjoint
periods (O(n log n)); the candidate slots are then checked in order with
one cursor per person and room that only moves forward, so the work is
O(n log n + candidates x (people + rooms)), never candidates x periods.
"""

from datetime import datetime, timedelta, timezone, tzinfo
from typing import Dict, Iterable, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from fbtwist.availability.model import Availability, Span, unavailable, union
from fbtwist.calendar.freebusy import Period

STEP = timedelta(minutes=15)
#: Zones that are UTC by another name.
_UTC_NAMES = frozenset({"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu"})


class Slot(NamedTuple):
    """
    A candidate time: C{[start, end)}, in UTC.

    @ivar free: The people free for all of it, sorted.
    @ivar busy: The others, sorted.
    @ivar rooms: The rooms free for all of it, sorted (empty when no rooms
        were asked about).
    """

    start: datetime
    end: datetime
    free: Tuple[str, ...]
    busy: Tuple[str, ...]
    rooms: Tuple[str, ...] = ()


class _Cursor:
    """
    One calendar's busy spans, and how far the slots have got through them.
    """

    __slots__ = ("spans", "index")

    def __init__(self, spans: List[Span]) -> None:
        self.spans = spans
        self.index = 0

    def isFree(self, start: datetime, end: datetime) -> bool:
        """
        Whether no busy span overlaps C{[start, end)}; C{start} may not go
        back between calls.
        """
        spans, index = self.spans, self.index
        while index < len(spans) and spans[index][1] <= start:
            index += 1
        self.index = index
        # The spans are disjoint and sorted, so the first one ending after
        # start is the only one that can begin before end.
        return index == len(spans) or spans[index][0] >= end


def _utc(moment: datetime) -> datetime:
    # Most periods are in UTC already (free/busy files are written so), and
    # astimezone() would copy each of them.
    return moment if moment.tzinfo is timezone.utc else moment.astimezone(timezone.utc)


def _busySpans(periods: Iterable[Period]) -> List[Span]:
    return union((_utc(p.start), _utc(p.end)) for p in periods if p.isBusy)


def candidates(start: datetime, end: datetime, duration: timedelta, step: timedelta = STEP,
               zone: Optional[tzinfo] = None) -> Iterator[datetime]:
    """
    The starts of the slots to consider, in order: C{start}, then every
    C{step} after it while a slot still ends by C{end}.  With C{zone},
    instead the times in the range whose wall clock there is a whole number
    of C{step}s after midnight (C{step} must divide a day): a time the
    clocks skip is no candidate, one they repeat is two.
    """
    if zone is None:
        moment = start
        while moment + duration <= end:
            yield moment
            moment += step
        return
    if zone is timezone.utc or getattr(zone, "key", None) in _UTC_NAMES:
        # No clock changes: every step from a midnight (the default zone
        # of most sites, without the work of the general case below).
        start = start.astimezone(timezone.utc)
        midnight = datetime(start.year, start.month, start.day, tzinfo=timezone.utc)
        yield from candidates(midnight - ((midnight - start) // step) * step, end, duration, step)
        return
    day = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date()
    while day <= last:
        midnight = datetime(day.year, day.month, day.day)
        found = set()
        wall = midnight
        while wall < midnight + timedelta(days=1):
            for fold in (0, 1):
                moment = wall.replace(tzinfo=zone, fold=fold).astimezone(timezone.utc)
                if moment.astimezone(zone).replace(tzinfo=None) == wall and start <= moment \
                        and moment + duration <= end:
                    found.add(moment)
            wall += step
        yield from sorted(found)
        day += timedelta(days=1)


def findSlots(busy: Mapping[str, Sequence[Period]], start: datetime, end: datetime, duration: timedelta,
              step: timedelta = STEP, limit: int = 10, quorum: Optional[int] = None,
              workhours: Optional[Mapping[str, Availability]] = None,
              rooms: Optional[Mapping[str, Sequence[Period]]] = None,
              zone: Optional[tzinfo] = None) -> List[Slot]:
    """
    The first C{limit} slots of C{duration}, starting on the grid of
    L{candidates}, in which at least C{quorum} of the people are free and,
    when C{rooms} are given, at least one room is.

    @param busy: Each person's free/busy periods (any C{FBTYPE} but
        C{FREE} is busy).
    @param start: Aware.
    @param end: Aware; every slot ends by then.
    @param quorum: How many people must be free (all by default).
    @param workhours: Working hours by person; time outside them is busy.
        People without an entry have none.
    @param rooms: Each room's free/busy periods.
    @param zone: Align the slots on the wall clock of this zone, not on
        C{start}.
    @return: Slots sorted by start.
    @raise ValueError: For a range, duration, step, limit or quorum that
        makes no sense, with one sentence.
    @raise fbtwist.calendar.derive.TooExpensive: When someone's working hours are too
        expensive to expand.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be aware date-times (with a zone)")
    start, end = start.astimezone(timezone.utc), end.astimezone(timezone.utc)
    if end <= start:
        raise ValueError("the range ends before it starts")
    if duration <= timedelta(0) or step <= timedelta(0):
        raise ValueError("the duration and the step must be longer than nothing")
    if zone is not None and timedelta(days=1) % step:
        raise ValueError("to align slots in a zone the step must divide a day")
    if limit < 1:
        raise ValueError("the limit must be at least 1")
    people = sorted(busy)
    needed = len(people) if quorum is None else quorum
    if not 0 <= needed <= len(people) or (quorum is not None and quorum < 1):
        raise ValueError(f"the quorum must be between 1 and the number of people ({len(people)})")
    cursors: Dict[str, _Cursor] = {}
    outside: Dict[Availability, List[Period]] = {}  # people often share the site's working hours
    for person in people:
        periods = list(busy[person])
        if workhours and person in workhours:
            model = workhours[person]
            if model not in outside:
                outside[model] = unavailable(model, start, end)
            periods += outside[model]
        cursors[person] = _Cursor(_busySpans(periods))
    roomCursors = {room: _Cursor(_busySpans(rooms[room])) for room in sorted(rooms)} if rooms is not None else None
    slots: List[Slot] = []
    for moment in candidates(start, end, duration, step, zone):
        last = moment + duration
        free = tuple(person for person in people if cursors[person].isFree(moment, last))
        if len(free) < needed:
            continue
        freeRooms: Tuple[str, ...] = ()
        if roomCursors is not None:
            freeRooms = tuple(room for room, cursor in roomCursors.items() if cursor.isFree(moment, last))
            if not freeRooms:
                continue
        busyPeople = tuple(person for person in people if person not in free)
        slots.append(Slot(moment, last, free, busyPeople, freeRooms))
        if len(slots) >= limit:
            break
    return slots
