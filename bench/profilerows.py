"""
Where the time of bench/compare.py's rows (b) publishes, (e) CalDAV
outbox POST, (f) finding a time and (g) federated lookups goes: the same directory and
files (C{--users} users, 15 rooms, a second fbtwist as the other
organisation), one fbtwist under cProfile (twistd's C{--profiler
cprofile}), a number of requests of one row sent one at a time, then the
functions with the most calls and the most time in them.  Call counts do
not depend on what else the machine runs; times do.  A plain tool, not a
test:

    .venv/bin/python -m bench.profilerows b|e|f|g|local [--users N] [--requests N]

Row b publishes as each user in turn (from user000000 on, the warm-up's
users first), as the bench's publishes do: with more users than the bind
cache holds, each a login the directory answers (a bind).
"""

import argparse
import os
import pstats
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from bench.compare import (  # noqa: E402
    FIND_PATH,
    PARTNER,
    ROOM_OPTIONS,
    RoomDirectory,
    calendarBody,
    outboxBody,
    waitForLogLines,
    writeFindFiles,
    writeTree,
)
from bench.pace import pick  # noqa: E402
from tests.processes import FbtwistProcess, basicAuthorization, request, userName, userPassword  # noqa: E402


def requests(row: str, users: int, count: int):
    """
    C{count} requests of C{row}: C{(method, path, body, headers)}.
    """
    choose = pick(users, 13)
    authorization = basicAuthorization(userName(0), userPassword(0))
    body = calendarBody()
    for index in range(count):
        if row == "b":
            yield ("PUT", f"/pub/calendar/{userName(index % users)}.vfb", body,
                   {"Authorization": basicAuthorization(userName(index % users), userPassword(index % users)),
                    "Content-Type": "text/calendar"})
        elif row == "e":
            yield ("POST", f"/caldav/calendars/{userName(0)}/outbox/",
                   outboxBody([choose(index * 20 + k) for k in range(20)]),
                   {"Authorization": authorization, "Content-Type": "text/calendar"})
        elif row == "f":
            yield "GET", FIND_PATH, None, {}
        else:
            domain = PARTNER if row == "g" else "example.com"
            yield "GET", f"/calendar/{userName(index % 500)}@{domain}.vfb", None, {}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("row", choices=["b", "e", "f", "g", "local"])
    parser.add_argument("--users", type=int, default=100000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--stats", help="keep the cProfile statistics in this file")
    args = parser.parse_args(argv)
    workdir = tempfile.mkdtemp(prefix="fbtwist-profile-")
    directory = RoomDirectory(os.path.join(workdir, "ldap"), args.users)
    directory.start()
    servers = []
    try:
        tree = os.path.join(workdir, "tree")
        writeTree(tree, args.users, calendarBody())
        writeFindFiles(tree)
        partner = FbtwistProcess(tree, directory.searchURL, logPath=os.path.join(workdir, "partner.log")).start()
        servers.append(partner)
        template = f"http://127.0.0.1:{partner.port}/calendar/%NAME%@example.com.vfb"
        server = FbtwistProcess(tree, directory.searchURL, logPath=os.path.join(workdir, "fbtwist.log"),
                                extraArgs=ROOM_OPTIONS + ["--federate", f"{PARTNER}={template}",
                                                          "--federation-allow-networks", "127.0.0.0/8"])
        stats = os.path.join(workdir, "cprofile.stats")
        where = server.args.index("freebusy")
        server.args[where:where] = [f"--profile={stats}", "--profiler=cprofile", "--savestats"]
        server.start()
        servers.append(server)
        for process in servers:
            waitForLogLines(process.logPath, "name index loaded", 1)
        # Warm: every name asked once (the caches, the other organisation);
        # for publishes, users the requests then do not publish as.
        warm = list(requests(args.row, args.users, min(args.requests, 500)))
        if args.row == "b":
            warm = list(requests("b", args.users, args.users))[-1:]
        for method, path, body, headers in warm:
            request(server.port, method, path, body, headers, timeout=60)
        began = time.monotonic()
        statuses = {}
        for method, path, body, headers in requests(args.row, args.users, args.requests):
            status, _ = request(server.port, method, path, body, headers, timeout=60)
            statuses[status] = statuses.get(status, 0) + 1
        took = time.monotonic() - began
        with open("/proc/loadavg") as f:
            load = " ".join(f.read().split()[:3])
        print(f"row {args.row}: {args.requests} requests in {took:.2f} s ({took / args.requests * 1000:.2f} ms each, "
              f"statuses {statuses}), load average {load}; the profile includes the warm-up")
        server.stop(60)
        if args.stats:
            shutil.copy(stats, args.stats)
        profile = pstats.Stats(stats)
        # The requests' own code (not the name index's load at the start).
        profile.sort_stats("cumulative").print_stats("fbtwist/(web|access|calendar|availability|remote)", args.top)
        profile.sort_stats("calls").print_stats(args.top)
        profile.sort_stats("tottime").print_stats(args.top)
    finally:
        for process in servers:
            process.stop()
        directory.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
