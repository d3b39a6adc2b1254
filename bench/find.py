"""
How long C{GET /calendar/find} takes over HTTP, end to end: 20 people (six
meetings a day each, three of them with their own working hours in other
zones) and 15 rooms (eight bookings a day) over two weeks, PT15M steps,
working hours and rooms asked for, against a real server (C{python -m
fbtwist.demo} with a directory of 20 people and 15 rooms, in-memory).  A
plain timing, not a test:

    .venv/bin/python bench/find.py [REQUESTS]

Prints the median and 99th percentile of the answers' latency, one request
at a time.  The same question with a directory of 100,000 users (a real
slapd, the name index) is row (f) of C{bench/run}, which uses this module's
files.
"""

import http.client
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone

random.seed(7)
TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
START = datetime(2026, 3, 23, tzinfo=timezone.utc)
DAYS = 14
PEOPLE = [f"p{i:02d}" for i in range(20)]
ROOMS = [f"r{i:02d}" for i in range(15)]


def ldif() -> str:
    entries = ["dn: dc=example,dc=com\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example",
               "dn: ou=people,dc=example,dc=com\nobjectClass: organizationalUnit\nou: people",
               "dn: ou=rooms,dc=example,dc=com\nobjectClass: organizationalUnit\nou: rooms"]
    for uid in PEOPLE:
        entries.append(f"dn: uid={uid},ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: {uid}\n"
                       f"cn: {uid}\nsn: {uid}\nmail: {uid}@example.com")
    for number, uid in enumerate(ROOMS):
        entries.append(f"dn: uid={uid},ou=rooms,dc=example,dc=com\nobjectClass: room\nobjectClass: uidObject\n"
                       f"uid: {uid}\ncn: Room {uid}\nmsExchResourceCapacity: {4 + number}\n"
                       f"msExchResourceMetaData: {'projector' if number % 2 else 'whiteboard'}")
    return "\n\n".join(entries) + "\n\n"


def freeBusy(perDay: int) -> bytes:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//bench//EN", "BEGIN:VFREEBUSY",
             "DTSTART:20260301T000000Z", "DTEND:20260501T000000Z"]
    for day in range(DAYS):
        for _ in range(perDay):
            s = START + timedelta(days=day, hours=random.randint(6, 19), minutes=15 * random.randint(0, 3))
            e = s + timedelta(minutes=30 * random.randint(1, 4))
            lines.append(f"FREEBUSY:{s:%Y%m%dT%H%M%SZ}/{e:%Y%m%dT%H%M%SZ}")
    return "\r\n".join(lines + ["END:VFREEBUSY", "END:VCALENDAR", ""]).encode("ascii")


def availability(zone: str) -> bytes:
    return "\r\n".join([
        "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//bench//EN", "BEGIN:VAVAILABILITY", "UID:h",
        "DTSTAMP:20260101T000000Z", "BEGIN:AVAILABLE", "UID:h1", "DTSTAMP:20260101T000000Z",
        f"DTSTART;TZID={zone}:20260105T090000", f"DTEND;TZID={zone}:20260105T170000",
        "RRULE:FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", "END:AVAILABLE", "END:VAVAILABILITY", "END:VCALENDAR", "",
    ]).encode("ascii")


def main(requests: int) -> None:
    folder = tempfile.mkdtemp(prefix="fbtwist-bench-find-")
    server = None
    try:
        root = os.path.join(folder, "root")
        os.mkdir(root)
        for uid in PEOPLE:
            with open(os.path.join(root, uid + ".vfb"), "wb") as f:
                f.write(freeBusy(6))
        for uid, zone in zip(PEOPLE[:3], ("America/New_York", "Asia/Tokyo", "Europe/London")):
            with open(os.path.join(root, uid + ".avail.ics"), "wb") as f:
                f.write(availability(zone))
        for uid in ROOMS:
            with open(os.path.join(root, uid + ".vfb"), "wb") as f:
                f.write(freeBusy(8))
        directory = os.path.join(folder, "bench.ldif")
        with open(directory, "w") as f:
            f.write(ldif())
        log = open(os.path.join(folder, "server.log"), "w+")
        server = subprocess.Popen(
            [sys.executable, "-m", "fbtwist.demo", "--http", "tcp:0:interface=127.0.0.1", "--ftp", "none",
             "--root", root, "--demo-ldif", directory, "--default-tz", "Europe/Berlin",
             "--lookup-miss-delay", "0"], cwd=TOP, stdout=log, stderr=subprocess.STDOUT)
        port = None
        for _ in range(200):
            log.seek(0)
            found = re.search(r"FreeBusySite starting on (\d+)", log.read())
            if found:
                port = int(found.group(1))
                break
            time.sleep(0.1)
        if port is None:
            raise SystemExit("the server did not start: see " + log.name)
        path = ("/calendar/find?who=" + ",".join(PEOPLE) + "&duration=PT1H&start=20260323T000000Z"
                "&end=20260406T000000Z&workhours=1&rooms=1&capacity=6&equipment=projector&quorum=10&limit=10")
        connection = http.client.HTTPConnection("127.0.0.1", port)
        times = []
        for number in range(requests + 5):
            began = time.perf_counter()
            connection.request("GET", path)
            response = connection.getresponse()
            body = response.read()
            took = time.perf_counter() - began
            if response.status != 200:
                raise SystemExit(f"{response.status}: {body[:200]!r}")
            if number >= 5:  # the first answers read the files and the directory
                times.append(took)
        times.sort()
        slots = body.count(b'"start"')
        print(f"find: {len(PEOPLE)} people, {len(ROOMS)} rooms, {DAYS} days, PT15M steps, working hours, "
              f"{requests} requests: median {times[len(times) // 2] * 1000:.1f} ms, "
              f"p99 {times[int(len(times) * 0.99) - 1] * 1000:.1f} ms ({slots} slots)")
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
