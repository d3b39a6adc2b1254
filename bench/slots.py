"""
How long finding a time takes: 20 people (six meetings a day each, working
hours in three zones) and 15 rooms (eight bookings a day) over two weeks
with PT15M steps.  A plain timing, not a test:

    .venv/bin/python bench/slots.py
"""

import random
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from fbtwist.availability.slots import findSlots
from fbtwist.availability.workhours import parseWorkingHours
from fbtwist.calendar.freebusy import BUSY, BUSY_TENTATIVE, Period

random.seed(7)
UTC = timezone.utc
start = datetime(2026, 3, 23, tzinfo=UTC)
end = start + timedelta(days=14)

def calendar(perDay):
    out = []
    for day in range(14):
        for _ in range(perDay):
            s = start + timedelta(days=day, hours=random.randint(6, 19), minutes=15 * random.randint(0, 3))
            length = timedelta(minutes=30 * random.randint(1, 4))
            out.append(Period(s, s + length, random.choice([BUSY, BUSY_TENTATIVE])))
    return out

people = {f"p{i:02d}": calendar(6) for i in range(20)}
rooms = {f"r{i:02d}": calendar(8) for i in range(15)}
zones = [ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York"), ZoneInfo("Europe/London")]
hours = {p: parseWorkingHours("Mon-Thu 08:00-12:00,13:00-18:00; Fri 08:00-14:00", zones[i % 3])
         for i, p in enumerate(people)}

def run(label, **kw):
    best = None
    for _ in range(5):
        t = time.perf_counter()
        slots = findSlots(people, start, end, timedelta(minutes=60), **kw)
        d = time.perf_counter() - t
        best = d if best is None else min(best, d)
    print(f"{label:55s} {best * 1000:8.1f} ms  {len(slots)} slots")

n = sum(len(v) for v in people.values()) + sum(len(v) for v in rooms.values())
print(f"{len(people)} people, {len(rooms)} rooms, {n} busy periods, 14 days, PT15M steps ({14*96} candidates)")
run("all free, limit 10", rooms=rooms)
run("quorum 12, rooms, working hours, limit 10", rooms=rooms, workhours=hours, quorum=12)
run("all free, rooms, working hours, every slot (limit 10**6)", rooms=rooms, workhours=hours, limit=10**6)
run("quorum 12, rooms, working hours, every slot", rooms=rooms, workhours=hours, quorum=12, limit=10**6)
run("quorum 1, rooms, working hours, every slot, Berlin grid", rooms=rooms, workhours=hours, quorum=1,
    limit=10**6, zone=ZoneInfo("Europe/Berlin"))
own = {p: parseWorkingHours(f"Mon-Thu 08:{i:02d}-12:00,13:00-18:00; Fri 08:00-14:{i:02d}", zones[i % 3])
       for i, p in enumerate(people)}
run("quorum 12, rooms, 20 different working hours, every slot", rooms=rooms, workhours=own, quorum=12,
    limit=10**6)
