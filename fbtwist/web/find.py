"""
C{GET /calendar/find}: when can these people (and a room) meet?

Parameters:
  - C{who}: logins, mail addresses and C{group:<cn>} (comma-separated,
    repeatable);
  - C{duration}: how long, in ISO 8601 (C{PT30M}, C{PT1H30M});
  - C{start}, C{end} (or C{period}): the range, as in lookups;
  - C{tz}: align the slots on this zone's wall clock (default
    C{--default-tz});
  - C{workhours=1}: time outside each person's working hours is busy;
  - C{step} (default C{PT15M}), C{limit} (default 10), C{quorum} (how many
    of the people must be free; default all);
  - C{rooms=1}, C{capacity}, C{equipment}: each slot also needs a free room
    that fits.

The answer is JSON, C{{"slots": [{"start", "end", "free", "busy",
"rooms"}], "unknown": [...]}}, slots sorted by start.  A name nobody has, a
person who published nothing and a person the viewer may not see are all
listed in C{unknown} alike, after the same floor of time as a lookup's miss;
nothing is guessed.

Each person's busy time comes from one function, L{busyPeriods}: the one
place to ask what the viewer may see of someone's free/busy.
"""

import json
from datetime import timedelta, timezone
from typing import Dict, List, Optional, Sequence, Tuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from twisted.web import http

from fbtwist.access.visibility import HIDDEN, Account, Detail
from fbtwist.availability.slots import findSlots
from fbtwist.calendar import derive, freebusy
from fbtwist.calendar.freebusy import Period, RangeError, TimeRange
from fbtwist.web.lookupquery import argument, flagArgument
from fbtwist.web.responses import HTTPError
from fbtwist.web.rooms import matchingRooms

#: The most people (groups counted by their members) one question may name.
MAX_PEOPLE = 50
#: The longest range searched.
MAX_RANGE = timedelta(days=62)
#: The most slots one answer may list.
MAX_LIMIT = 100
#: The shortest step between candidate slots.
MIN_STEP = timedelta(minutes=5)
#: The longest name accepted in C{who}.
MAX_NAME = 256
GROUP_PREFIX = "group:"


def isoUTC(moment) -> str:
    """
    An aware time as C{2026-11-23T09:00:00Z}.
    """
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class FindQuery:
    """
    What a C{/calendar/find} request asks, checked.
    """

    def __init__(self, names: List[str], timeRange: TimeRange, duration: timedelta, zone, workhours: bool,
                 step: timedelta, limit: int, quorum: Optional[int], rooms: bool, capacity: int,
                 equipment: Tuple[str, ...]):
        self.names, self.range, self.duration, self.zone = names, timeRange, duration, zone
        self.workhours, self.step, self.limit, self.quorum = workhours, step, limit, quorum
        self.rooms, self.capacity, self.equipment = rooms, capacity, equipment


def _values(request, name: str) -> List[str]:
    out = []
    for raw in request.args.get(name.encode("ascii"), []):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise HTTPError(http.BAD_REQUEST, f"the {name} parameter is not UTF-8") from None
        out.extend(part.strip() for part in text.split(",") if part.strip())
    return out


def _count(request, name: str, default: Optional[int], low: int, high: int) -> Optional[int]:
    text = argument(request, name)
    if text is None or not text.strip():
        return default
    try:
        value = int(text.strip())
    except ValueError:
        raise HTTPError(http.BAD_REQUEST, f"{name} must be a whole number") from None
    if not low <= value <= high:
        raise HTTPError(http.BAD_REQUEST, f"{name} must be between {low} and {high}")
    return value


def _duration(request, name: str, default: Optional[timedelta]) -> timedelta:
    text = argument(request, name)
    if text is None:
        if default is None:
            raise HTTPError(http.BAD_REQUEST, f"give the {name}, such as PT30M")
        return default
    try:
        return freebusy.parseDuration(name, text)
    except RangeError as e:
        raise HTTPError(http.BAD_REQUEST, str(e)) from None


def equipmentAskedFor(request) -> Tuple[str, ...]:
    """
    The equipment asked for (C{equipment}, comma-separated, repeatable),
    lower-cased.
    """
    return tuple(dict.fromkeys(item.lower() for item in _values(request, "equipment")))


def parseFindQuery(request, now, window: timedelta, defaultZone) -> FindQuery:
    """
    Read and bound a C{/calendar/find} request.

    @raise HTTPError: 400 with one sentence for anything missing, malformed
        or too large.
    """
    names = []
    for name in _values(request, "who"):
        if len(name) > MAX_NAME:
            raise HTTPError(http.BAD_REQUEST, "a name in who is too long")
        if name.lower() not in (n.lower() for n in names):
            names.append(name)
    if not names:
        raise HTTPError(http.BAD_REQUEST, "give who: logins, addresses or group:<cn>, comma-separated")
    if len(names) > MAX_PEOPLE:
        raise HTTPError(http.BAD_REQUEST, f"ask for at most {MAX_PEOPLE} people at once")
    try:
        timeRange = freebusy.parseRange(argument(request, "start"), argument(request, "end"),
                                        argument(request, "period"), now, window)
    except RangeError as e:
        raise HTTPError(http.BAD_REQUEST, str(e)) from None
    if timeRange is None:
        timeRange = freebusy.defaultRange(now, window)
    if timeRange.end - timeRange.start > MAX_RANGE:
        raise HTTPError(http.BAD_REQUEST, f"search at most {MAX_RANGE.days} days at once")
    duration = _duration(request, "duration", None)
    if duration > timeRange.end - timeRange.start:
        raise HTTPError(http.BAD_REQUEST, "the duration is longer than the range")
    step = _duration(request, "step", timedelta(minutes=15))
    if step < MIN_STEP:
        raise HTTPError(http.BAD_REQUEST, f"the step must be at least {int(MIN_STEP.total_seconds()) // 60} minutes")
    zone = defaultZone
    zoneName = argument(request, "tz")
    if zoneName is not None and zoneName.strip():
        try:
            zone = ZoneInfo(zoneName.strip())
        except (ZoneInfoNotFoundError, ValueError):
            raise HTTPError(http.BAD_REQUEST, f"tz={zoneName!r} is not a time zone such as Europe/Berlin") from None
    if timedelta(days=1) % step:
        raise HTTPError(http.BAD_REQUEST, "the step must divide a day, such as PT15M or PT1H")
    return FindQuery(
        names, timeRange, duration, zone, flagArgument(request, "workhours"), step,
        _count(request, "limit", 10, 1, MAX_LIMIT), _count(request, "quorum", None, 1, MAX_PEOPLE),
        flagArgument(request, "rooms"), _count(request, "capacity", 0, 0, 100_000) or 0,
        equipmentAskedFor(request),
    )


async def busyPeriods(reader, uid: str, timeRange: TimeRange, workhours: bool,
                      started: Optional[float] = None) -> Optional[List[Period]]:
    """
    What C{reader} (an L{fbtwist.interfaces.IFreeBusyReader}) may learn of
    C{uid}'s busy time within C{timeRange}, with time outside their working
    hours when C{workhours}; C{None} when there is nothing to see (nothing
    published, or not for this reader: the two are not told apart).  The
    periods are not merged: L{findSlots} joins them into busy spans itself,
    as it must anyway, so merging here (by C{FBTYPE}) would be wasted work.

    Every person and room in a C{/calendar/find} answer goes through here,
    and so through the one visibility decision.
    """
    answer = await reader.freeBusyFor(Account(uid), timeRange, Detail.BUSY, started, workhours)
    if answer is HIDDEN:
        return None
    return answer.freeBusy.busy()


async def _people(lookup, names: Sequence[str]) -> Tuple[Dict[str, str], List[str]]:
    """
    The uids the names mean (by the name to show), and the names that mean
    nobody; groups give their members by uid.
    """
    people: Dict[str, str] = {}
    unknown: List[str] = []
    seen = set()
    for name in names:
        if name.lower().startswith(GROUP_PREFIX):
            cn = name[len(GROUP_PREFIX):].strip()
            base = lookup.visibility.groupBase
            members = None
            if cn and base is not None:
                members = await lookup.visibility.directory.groupMembers(cn, base, MAX_PEOPLE)
            if not members:
                unknown.append(name)
                continue
            for uid in members:
                if uid not in seen:
                    seen.add(uid)
                    people[uid] = uid
        else:
            uid = await lookup.visibility.resolve(name)
            if uid is None:
                unknown.append(name)
            elif uid not in seen:
                seen.add(uid)
                people[name] = uid
        if len(people) > MAX_PEOPLE:
            raise HTTPError(http.BAD_REQUEST, f"ask for at most {MAX_PEOPLE} people at once (groups count "
                                              f"by their members)")
    return people, unknown


async def suggest(lookup, names: Sequence[str], timeRange: TimeRange, duration: timedelta, reader,
                  workhours: bool = False, zone=None, step: timedelta = timedelta(minutes=15), limit: int = 10,
                  quorum: Optional[int] = None, rooms: bool = False, capacity: int = 0,
                  equipment: Sequence[str] = (), started: Optional[float] = None) -> Tuple[list, List[str]]:
    """
    The slots where the people C{names} (and, with C{rooms}, a room that
    fits) are free, as C{reader} (an L{fbtwist.interfaces.IFreeBusyReader})
    may see them; what C{/calendar/find} and the page's "find a time" both
    answer.

    @param started: When the request arrived (for the miss floor).
    @return: C{(slots, unknown names)}; slots are
        L{fbtwist.availability.slots.Slot}s.
    @raise HTTPError: 400 for a question that cannot be answered.
    """
    if started is None:
        started = lookup.reactor.seconds()
    people, unknown = await _people(lookup, names)
    busy: Dict[str, List[Period]] = {}
    for name, uid in people.items():
        periods = await busyPeriods(reader, uid, timeRange, workhours, started)
        if periods is None:
            unknown.append(name)
        else:
            busy[name] = periods
    if unknown:
        # The same floor of time as a lookup's miss: how long the answer
        # takes does not tell which names are someone's.
        await lookup.missFloor.wait(started)
    roomBusy = None
    if rooms:
        roomBusy = {}
        for room in await matchingRooms(lookup.visibility.directory, capacity, equipment):
            periods = await busyPeriods(reader, room.uid, timeRange, False, started)
            # A room that published nothing is free.
            roomBusy[room.uid] = periods or []
    if quorum is not None and quorum > len(busy):
        raise HTTPError(http.BAD_REQUEST, f"the quorum ({quorum}) is more than the people found ({len(busy)})")
    slots = []
    if busy and (roomBusy is None or roomBusy):
        try:
            slots = findSlots(busy, timeRange.start, timeRange.end, duration, step=step, limit=limit,
                              quorum=quorum, rooms=roomBusy, zone=zone)
        except derive.TooExpensive:
            raise HTTPError(http.BAD_REQUEST, "someone's working hours are too expensive to expand") from None
        except ValueError as e:
            raise HTTPError(http.BAD_REQUEST, str(e)) from None
    return slots, unknown


async def answerFind(lookup, request, reader) -> None:
    """
    Answer C{GET /calendar/find} for C{reader} from C{lookup} (the
    L{fbtwist.web.lookup.LookupResource}).
    """
    started = getattr(request, "started", None) or lookup.reactor.seconds()
    query = parseFindQuery(request, lookup.now(), lookup.settings.window, lookup.settings.defaultZone)
    slots, unknown = await suggest(
        lookup, query.names, query.range, query.duration, reader, query.workhours, query.zone, query.step,
        query.limit, query.quorum, query.rooms, query.capacity, query.equipment, started)
    body = json.dumps({
        "slots": [{"start": isoUTC(slot.start), "end": isoUTC(slot.end), "free": list(slot.free),
                   "busy": list(slot.busy), "rooms": list(slot.rooms)} for slot in slots],
        "unknown": unknown,
    }, ensure_ascii=False).encode("utf-8")
    request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
    request.setHeader(b"Cache-Control", b"no-cache")
    request.setHeader(b"Content-Length", b"%d" % len(body))
    request.write(body)
