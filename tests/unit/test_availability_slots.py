"""
Finding a time (L{fbtwist.availability.slots.findSlots}): slots where a
quorum of people and a room are free, within working hours, aligned in a
zone; and property tests proving that every slot offered is really free and
that no slot is missing that passes the rule.
"""

import os
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from fbtwist.availability.slots import Slot, candidates, findSlots
from fbtwist.availability.workhours import parseWorkingHours
from fbtwist.calendar.freebusy import BUSY, BUSY_TENTATIVE, BUSY_UNAVAILABLE, FREE, Period

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
HOUR = timedelta(hours=1)
MINUTES_15 = timedelta(minutes=15)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def starts(slots):
    return [slot.start.strftime("%m-%d %H:%M") for slot in slots]


class FindSlotsTests(unittest.SynchronousTestCase):
    """
    The rules of L{findSlots}, one at a time.
    """

    def test_everyoneFree(self):
        """
        With nobody busy, the slots start at the range's start, one step
        apart, at most C{limit} of them, each listing everyone as free.
        """
        slots = findSlots({"ann": [], "bob": []}, utc(2026, 1, 5, 9), utc(2026, 1, 5, 17), HOUR, limit=3)
        self.assertEqual(slots, [
            Slot(utc(2026, 1, 5, 9), utc(2026, 1, 5, 10), ("ann", "bob"), ()),
            Slot(utc(2026, 1, 5, 9, 15), utc(2026, 1, 5, 10, 15), ("ann", "bob"), ()),
            Slot(utc(2026, 1, 5, 9, 30), utc(2026, 1, 5, 10, 30), ("ann", "bob"), ()),
        ])

    def test_slotsEndByTheRangeEnd(self):
        """
        No slot reaches past the end of the range.
        """
        slots = findSlots({"ann": []}, utc(2026, 1, 5, 9), utc(2026, 1, 5, 10, 30), HOUR, limit=100)
        self.assertEqual(starts(slots), ["01-05 09:00", "01-05 09:15", "01-05 09:30"])

    def test_busyBlocks(self):
        """
        Any type but FREE blocks a slot it overlaps, even by a minute;
        touching is not overlapping.
        """
        busy = {
            "ann": [Period(utc(2026, 1, 5, 9, 59), utc(2026, 1, 5, 10, 1), BUSY_TENTATIVE),
                    Period(utc(2026, 1, 5, 8), utc(2026, 1, 5, 12), FREE)],
            "bob": [Period(utc(2026, 1, 5, 11, 15), utc(2026, 1, 5, 11, 30), BUSY_UNAVAILABLE)],
        }
        slots = findSlots(busy, utc(2026, 1, 5, 9), utc(2026, 1, 5, 13), HOUR, limit=100)
        self.assertEqual(starts(slots), ["01-05 10:15", "01-05 11:30", "01-05 11:45", "01-05 12:00"])
        self.assertEqual(starts(findSlots(busy, utc(2026, 1, 5, 8), utc(2026, 1, 5, 9), HOUR)), ["01-05 08:00"])

    def test_quorum(self):
        """
        With a quorum, a slot needs only that many people free; it lists
        who is free and who is busy.
        """
        busy = {
            "ann": [Period(utc(2026, 1, 5, 9), utc(2026, 1, 5, 10))],
            "bob": [Period(utc(2026, 1, 5, 9), utc(2026, 1, 5, 11))],
            "cyd": [],
        }
        slots = findSlots(busy, utc(2026, 1, 5, 9), utc(2026, 1, 5, 12), HOUR, step=HOUR, quorum=2)
        self.assertEqual([(s.start.hour, s.free, s.busy) for s in slots], [
            (10, ("ann", "cyd"), ("bob",)),
            (11, ("ann", "bob", "cyd"), ()),
        ])
        slots = findSlots(busy, utc(2026, 1, 5, 9), utc(2026, 1, 5, 12), HOUR, step=HOUR, quorum=1)
        self.assertEqual([(s.start.hour, s.free) for s in slots], [(9, ("cyd",)), (10, ("ann", "cyd")),
                                                                   (11, ("ann", "bob", "cyd"))])

    def test_rooms(self):
        """
        With rooms, a slot needs a free room and lists the free ones; with
        no room free, nothing is offered.
        """
        busy = {"ann": []}
        rooms = {
            "big": [Period(utc(2026, 1, 5, 9), utc(2026, 1, 5, 11))],
            "small": [Period(utc(2026, 1, 5, 9), utc(2026, 1, 5, 10)), Period(utc(2026, 1, 5, 11),
                                                                              utc(2026, 1, 5, 12))],
        }
        slots = findSlots(busy, utc(2026, 1, 5, 9), utc(2026, 1, 5, 13), HOUR, step=HOUR, rooms=rooms)
        self.assertEqual([(s.start.hour, s.rooms) for s in slots], [(10, ("small",)), (11, ("big",)),
                                                                    (12, ("big", "small"))])
        self.assertEqual(findSlots(busy, utc(2026, 1, 5, 9), utc(2026, 1, 5, 13), HOUR, rooms={}), [])

    def test_workingHoursInDifferentZones(self):
        """
        Working hours count as busy time: 09:00-17:00 in Berlin and in New
        York overlap from 14:00 to 16:00 UTC in winter, and in the weeks
        between the two countries' clock changes the overlap is an hour
        longer.
        """
        hours = {"ann": parseWorkingHours("Mon-Fri 09:00-17:00", BERLIN),
                 "bob": parseWorkingHours("Mon-Fri 09:00-17:00", NEW_YORK)}
        people = {"ann": [], "bob": []}
        winter = findSlots(people, utc(2026, 1, 5), utc(2026, 1, 6), HOUR, step=HOUR, workhours=hours)
        self.assertEqual(starts(winter), ["01-05 14:00", "01-05 15:00"])
        # New York is on summer time from 8 March, Berlin from 29 March.
        march = findSlots(people, utc(2026, 3, 16), utc(2026, 3, 17), HOUR, step=HOUR, workhours=hours)
        self.assertEqual(starts(march), ["03-16 13:00", "03-16 14:00", "03-16 15:00"])
        summer = findSlots(people, utc(2026, 3, 30), utc(2026, 3, 31), HOUR, step=HOUR, workhours=hours)
        self.assertEqual(starts(summer), ["03-30 13:00", "03-30 14:00"])
        # Bob's working hours do not bind Ann when only one is needed.
        either = findSlots(people, utc(2026, 1, 5), utc(2026, 1, 6), HOUR, step=HOUR, workhours=hours, quorum=1)
        self.assertEqual(starts(either)[:2], ["01-05 08:00", "01-05 09:00"])
        self.assertEqual(either[0].busy, ("bob",))

    def test_alignedInAZone(self):
        """
        In a zone half an hour off UTC, hourly slots fall on the local hour.
        """
        kolkata = ZoneInfo("Asia/Kolkata")
        slots = findSlots({"ann": []}, utc(2026, 1, 5, 3, 10), utc(2026, 1, 5, 8), HOUR, step=HOUR, zone=kolkata)
        self.assertEqual(starts(slots), ["01-05 03:30", "01-05 04:30", "01-05 05:30", "01-05 06:30"])

    def test_alignedAcrossClockChanges(self):
        """
        Aligned on Berlin's wall clock, the hour the clocks skip gives no
        slot and the hour they repeat gives two.
        """
        march = list(candidates(utc(2026, 3, 28, 23), utc(2026, 3, 29, 3), HOUR, HOUR, BERLIN))
        self.assertEqual([m.astimezone(BERLIN).strftime("%H:%M%z") for m in march],
                         ["00:00+0100", "01:00+0100", "03:00+0200", "04:00+0200"])
        october = list(candidates(utc(2026, 10, 24, 22), utc(2026, 10, 25, 3), HOUR, HOUR, BERLIN))
        self.assertEqual([m.astimezone(BERLIN).strftime("%H:%M%z") for m in october],
                         ["00:00+0200", "01:00+0200", "02:00+0200", "02:00+0100", "03:00+0100"])

    def test_errors(self):
        """
        Arguments that make no sense are refused with a sentence.
        """
        start, end = utc(2026, 1, 5, 9), utc(2026, 1, 5, 17)
        cases = [
            (dict(start=end, end=start), "ends before it starts"),
            (dict(start=datetime(2026, 1, 5, 9)), "aware"),
            (dict(duration=timedelta(0)), "longer than nothing"),
            (dict(step=timedelta(0)), "longer than nothing"),
            (dict(limit=0), "limit"),
            (dict(quorum=0), "quorum"),
            (dict(quorum=3), "quorum must be between 1 and the number of people (2)"),
            (dict(step=timedelta(hours=7), zone=BERLIN), "divide a day"),
        ]
        for changes, expected in cases:
            arguments = dict(busy={"ann": [], "bob": []}, start=start, end=end, duration=HOUR)
            arguments.update(changes)
            with self.assertRaises(ValueError, msg=str(changes)) as caught:
                findSlots(**arguments)
            self.assertIn(expected, str(caught.exception))

    def test_periodsInOtherZones(self):
        """
        Busy periods given in other zones (unsorted, overlapping, unmerged)
        block the same slots as the same times in UTC.
        """
        inBerlin = [Period(datetime(2026, 1, 5, 11, tzinfo=BERLIN), datetime(2026, 1, 5, 12, tzinfo=BERLIN)),
                    Period(utc(2026, 1, 5, 9, 30), utc(2026, 1, 5, 10, 30), BUSY_TENTATIVE)]
        inUTC = [Period(utc(2026, 1, 5, 9, 30), utc(2026, 1, 5, 11))]
        start, end = utc(2026, 1, 5, 9), utc(2026, 1, 5, 13)
        slots = findSlots({"ann": inBerlin}, start, end, HOUR, step=timedelta(minutes=30), limit=10)
        self.assertEqual(starts(slots), ["01-05 11:00", "01-05 11:30", "01-05 12:00"])
        self.assertEqual(slots, findSlots({"ann": inUTC}, start, end, HOUR, step=timedelta(minutes=30), limit=10))
    def test_utcGrid(self):
        """
        In UTC (by any of its names) the grid is every step from midnight,
        as the general rule gives it for a zone that never changes its clock.
        """
        fixed = timezone(timedelta(0), "fixed")
        self.assertIsNot(fixed, UTC)
        for start, end, duration, step in [
            (utc(2026, 1, 5, 9, 7), utc(2026, 1, 7, 1), HOUR, MINUTES_15),
            (utc(2026, 1, 5, 0), utc(2026, 1, 5, 5), HOUR, timedelta(hours=2)),
            (datetime(2026, 3, 29, 1, 10, tzinfo=BERLIN), utc(2026, 3, 30), timedelta(minutes=90), timedelta(hours=8)),
            (utc(2026, 1, 5, 23, 59), utc(2026, 1, 6, 0, 30), MINUTES_15, MINUTES_15),
        ]:
            general = list(candidates(start, end, duration, step, fixed))
            for zone in (UTC, ZoneInfo("UTC"), ZoneInfo("Etc/UTC")):
                self.assertEqual(list(candidates(start, end, duration, step, zone)), general)
        self.assertEqual(starts(Slot(m, m, (), ()) for m in candidates(
            utc(2026, 1, 5, 9, 7), utc(2026, 1, 5, 11), HOUR, MINUTES_15, ZoneInfo("UTC"))),
            ["01-05 09:15", "01-05 09:30", "01-05 09:45", "01-05 10:00"])

# --- property tests ---

BASE = utc(2026, 3, 27)
SPAN = timedelta(days=4)  # over Berlin's clock change


@st.composite
def periods(draw):
    count = draw(st.integers(0, 8))
    out = []
    for _ in range(count):
        start = BASE + timedelta(minutes=5 * draw(st.integers(-20, SPAN // timedelta(minutes=5))))
        length = timedelta(minutes=5 * draw(st.integers(1, 300)))
        out.append(Period(start, start + length, draw(st.sampled_from([BUSY, BUSY_TENTATIVE,
                                                                       BUSY_UNAVAILABLE, FREE]))))
    return out


@st.composite
def problems(draw):
    names = draw(st.lists(st.sampled_from(["ann", "bob", "cyd", "dee", "eve"]), min_size=1, max_size=5,
                          unique=True))
    busy = {name: draw(periods()) for name in names}
    rooms = draw(st.none() | st.dictionaries(st.sampled_from(["r1", "r2", "r3"]), periods(), max_size=3))
    quorum = draw(st.none() | st.integers(1, len(names)))
    duration = timedelta(minutes=15 * draw(st.integers(1, 12)))
    step = draw(st.sampled_from([timedelta(minutes=15), timedelta(minutes=30), HOUR]))
    hours = {}
    if draw(st.booleans()):
        for name in draw(st.lists(st.sampled_from(names), unique=True)):
            zone = draw(st.sampled_from([BERLIN, NEW_YORK, UTC]))
            hours[name] = parseWorkingHours(draw(st.sampled_from(
                ["Mon-Fri 08:00-18:00", "Mon-Thu 08:00-12:00,13:00-17:00; Fri 08:00-12:00", "Sat-Mon 00:00-24:00"])),
                zone)
    zone = draw(st.none() | st.sampled_from([BERLIN, ZoneInfo("Asia/Kolkata")]))
    offset = timedelta(minutes=5 * draw(st.integers(0, 100)))
    return dict(busy=busy, start=BASE + offset, end=BASE + SPAN, duration=duration, step=step, quorum=quorum,
                workhours=hours or None, rooms=rooms, zone=zone)


def overlaps(period, start, end) -> bool:
    return period.isBusy and period.start < end and period.end > start


def expected(problem, unavailableOf):
    """
    The slots by the rule, checked naively: every candidate against every
    period.
    """
    busy, rooms = problem["busy"], problem["rooms"]
    needed = len(busy) if problem["quorum"] is None else problem["quorum"]
    out = []
    for moment in candidates(problem["start"], problem["end"], problem["duration"], problem["step"],
                             problem["zone"]):
        last = moment + problem["duration"]
        free = tuple(sorted(p for p in busy if not any(overlaps(x, moment, last)
                                                       for x in list(busy[p]) + unavailableOf(p))))
        freeRooms = () if rooms is None else tuple(sorted(
            r for r in rooms if not any(overlaps(x, moment, last) for x in rooms[r])))
        if len(free) >= needed and (rooms is None or freeRooms):
            out.append(Slot(moment, last, free, tuple(sorted(set(busy) - set(free))), freeRooms))
    return out


PROPERTIES = settings(max_examples=int(os.environ.get("FBTWIST_SLOT_EXAMPLES", "150")), deadline=None,
                      database=None)


class SlotPropertyTests(unittest.SynchronousTestCase):
    """
    Random people, rooms, busy times, quorums and working hours.
    """

    @PROPERTIES
    @given(problems(), st.integers(1, 40))
    def test_slotsAreReallyFree(self, problem, limit):
        """
        No busy period (nor time outside working hours) of a person listed
        free, nor of a room listed, overlaps the slot; the slots are on the
        grid, sorted, at most C{limit}, and each has its quorum.
        """
        from fbtwist.availability.model import unavailable

        slots = findSlots(limit=limit, **problem)
        hours = problem["workhours"] or {}
        needed = len(problem["busy"]) if problem["quorum"] is None else problem["quorum"]
        grid = set(candidates(problem["start"], problem["end"], problem["duration"], problem["step"],
                              problem["zone"]))
        self.assertLessEqual(len(slots), limit)
        self.assertEqual(slots, sorted(slots, key=lambda s: s.start))
        for slot in slots:
            self.assertIn(slot.start, grid)
            self.assertEqual(slot.end - slot.start, problem["duration"])
            self.assertGreaterEqual(len(slot.free), needed)
            for person in slot.free:
                outside = unavailable(hours[person], problem["start"], problem["end"]) if person in hours else []
                for period in list(problem["busy"][person]) + outside:
                    self.assertFalse(overlaps(period, slot.start, slot.end), (person, period, slot))
            if problem["rooms"] is not None:
                self.assertTrue(slot.rooms)
            for room in slot.rooms:
                for period in problem["rooms"][room]:
                    self.assertFalse(overlaps(period, slot.start, slot.end), (room, period, slot))

    @PROPERTIES
    @given(problems(), st.integers(1, 40))
    def test_noSlotMissing(self, problem, limit):
        """
        The slots are exactly the first C{limit} candidates that pass the
        rule when each is checked naively against every period: a slot is
        missing only if it fails the rule.
        """
        from fbtwist.availability.model import unavailable

        hours = problem["workhours"] or {}
        cache = {p: unavailable(hours[p], problem["start"], problem["end"]) if p in hours else []
                 for p in problem["busy"]}
        self.assertEqual(findSlots(limit=limit, **problem), expected(problem, cache.__getitem__)[:limit])
