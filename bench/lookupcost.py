#!/usr/bin/env python3
"""
What one anonymous lookup (C{GET /calendar/<name>.vfb}) and one CalDAV
outbox POST cost fbtwist: CPU time, Python function calls and system calls
per request, counted rather than timed, so that a busy machine changes them
little.

With C{--in-process N} (as C{bench/publishcost.py --in-process}): no server
process, slapd or wrk: the whole site (C{makeService} with the demo
directory, on an in-memory network, as the fast tests run it) answers N
lookups of a published free/busy file, one after the other on one
connection, in this process and this thread, and then N outbox POSTs
(alice asking for the week of C{--attendees} people, each added to the
demo directory with a published free/busy file).  It prints the CPU time per request (the client
and the in-memory network included: run it before and after a change) and
the Python function calls per request; with C{--profile PREFIX} it writes
C{PREFIX-lookup.prof} and C{PREFIX-outbox.prof}.  Run it under
C{strace -c -f} or C{valgrind --tool=callgrind} for system calls or
instructions (twice, with two counts: the difference over the difference in
requests is the cost of one); C{--only lookup} or C{--only outbox} runs one
of the two.

Without C{--in-process}: slapd with C{--users} users and one fbtwist (as
C{bench/run} does), C{wrk} looking up each user in turn, and the server's
CPU time per lookup from C{/proc}; with C{--strace}, a second run counts
the system calls per lookup.

    .venv/bin/python bench/lookupcost.py --in-process 5000 [--profile /tmp/lookup]
    .venv/bin/python bench/lookupcost.py [--workers 2] [--strace] [--server-args '--answer-memory 0']
"""

import argparse
import os
import shlex
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from bench.compare import (  # noqa: E402
    FbtwistProcess,
    UserDirectory,
    calendarBody,
    chownTree,
    lookEveryoneUp,
    luaScript,
    waitForLogLines,
    writeTree,
)
from bench.publishcost import measure, timedLoop, wrk  # noqa: E402
from fbtwist.config import DEMO_LDIF  # noqa: E402


def attendeeNames(count: int):
    """
    The logins of the people an outbox POST asks for (added to the demo
    directory, each with a published free/busy file).
    """
    return [f"person{index:03d}" for index in range(count)]


def outboxBody(attendees) -> bytes:
    """
    What a CalDAV client posts to alice's outbox to see the week of
    C{attendees} (addresses).
    """
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//bench//EN", "METHOD:REQUEST", "BEGIN:VFREEBUSY",
             "UID:bench", "DTSTAMP:20261206T000000Z", "DTSTART:20210104T000000Z", "DTEND:20210111T000000Z",
             "ORGANIZER:mailto:alice@example.com"]
    lines += [f"ATTENDEE:mailto:{address}" for address in attendees]
    lines += ["END:VFREEBUSY", "END:VCALENDAR", ""]
    return "\r\n".join(lines).encode("ascii")


def inProcess(count: int, attendees: int, only=None, profilePrefix: str = None, people: int = 0) -> None:
    """
    C{count} lookups and C{count} outbox POSTs through the whole site in
    this process; see the module's description.
    """
    import base64

    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

    from tests.memory import AnswerClient, MemoryServer, ScratchOwner


    def basic(uid, password):
        return b"Authorization: Basic " + base64.b64encode(f"{uid}:{password}".encode()) + b"\r\n"

    owner = ScratchOwner("fbtwist-lookupcost-")
    # The demo directory and as many more people as one POST asks for.
    ldif = os.path.join(owner.directory, "people.ldif")
    with open(DEMO_LDIF.path) as source, open(ldif, "w") as f:
        f.write(source.read().rstrip("\n") + "\n")
        for uid in attendeeNames(max(attendees, people)):
            f.write(f"\ndn: uid={uid},ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: {uid}\n"
                    f"cn: {uid}\nsn: {uid}\nmail: {uid}@example.com\n")
        f.write("\n")
    server = MemoryServer(owner, "--demo-ldif", ldif).start()
    # No --admin-group, as a bench server runs.
    server.service.portal.realm.adminGroup = None
    network, client = server.network, AnswerClient()
    network.run(connectProtocol(TCP4ClientEndpoint(network, "127.0.0.1", server.port), client))
    body = calendarBody()

    def put(uid, password):
        return (f"PUT /pub/calendar/{uid}.vfb HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/calendar\r\n"
                .encode() + basic(uid, password) + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
                + body)

    status = network.run(client.send(put("alice", "wonderland"))).result
    assert status.split()[1] in (b"201", b"204"), status
    for uid in attendeeNames(max(attendees, people)):
        server.store.write((f"{uid}.vfb",), body)

    lookups = [f"GET /calendar/{uid}.vfb HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode("ascii")
               for uid in (attendeeNames(people) if people else ["alice"])]
    post = outboxBody([f"{uid}@example.com" for uid in attendeeNames(attendees)])
    outbox = (b"POST /caldav/calendars/alice/outbox/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
              b"Content-Type: text/calendar; charset=utf-8\r\n" + basic("alice", "wonderland")
              + b"Content-Length: " + str(len(post)).encode() + b"\r\n\r\n" + post)

    for name, requests in (("lookup", lookups), ("outbox", [outbox])):
        if only and name != only:
            continue
        for index in range(20):  # logged in, caches warm
            status = network.run(client.send(requests[index % len(requests)])).result
            assert status.split()[1] == b"200", (name, status, b"".join(client.received)[:2000])

        def loop(requests=requests):
            for index in range(count):
                network.run(client.send(requests[index % len(requests)]))

        # Always profiled, for the calls per request (written where asked,
        # else to a scratch file).
        path = f"{profilePrefix}-{name}.prof" if profilePrefix else os.path.join(owner.directory, "loop.prof")
        user, system, calls = timedLoop(loop, path)
        print(f"in process: {count} x {name}; per request: CPU {(user + system) / count * 1000:.3f} ms "
              f"(user {user / count * 1000:.3f}, system {system / count * 1000:.3f}; the client and the "
              f"in-memory network included); Python function calls {calls / count:.0f}")
    server.stop()
    subprocess.run(["rm", "-rf", owner.directory])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--strace", action="store_true", help="also count system calls (slows the server)")
    parser.add_argument("--in-process", type=int, default=0, metavar="N",
                        help="N lookups and N outbox POSTs through the whole site in this process (see above)")
    parser.add_argument("--attendees", type=int, default=20, help="with --in-process: attendees per outbox POST")
    parser.add_argument("--only", choices=("lookup", "outbox"), help="with --in-process: only these requests")
    parser.add_argument("--people", type=int, default=0,
                        help="with --in-process: look up this many people in turn (as bench/run's lookups do: "
                             "every lookup a file not read lately), not alice again and again")
    parser.add_argument("--py-spy", metavar="FILE",
                        help="without --in-process: also sample the server with py-spy during a second run")
    parser.add_argument("--gil", metavar="FILE",
                        help="without --in-process: also sample it with py-spy's native frames during another run, "
                             "and tell each thread's share of waiting for the interpreter lock (bench/gilshare.py)")
    parser.add_argument("--perf", metavar="FILE",
                        help="without --in-process: also sample the server with perf record during a second run")
    parser.add_argument("--cold", action="store_true",
                        help="without --in-process: do not ask for every user once before measuring")
    parser.add_argument("--profile", metavar="PREFIX", help="with --in-process: write cProfiles of the loops")
    parser.add_argument("--server-args", default="", metavar="ARGS",
                        help="without --in-process: more arguments for the server, as one string (e.g. "
                             "'--answer-memory 0': every lookup then reads the answer kept with the file, what a "
                             "lookup missing the answers in memory costs)")
    args = parser.parse_args()
    if args.in_process:
        inProcess(args.in_process, args.attendees, args.only, args.profile, args.people)
        return
    workdir = tempfile.mkdtemp(prefix="fbtwist-lookupcost-")
    body = calendarBody()
    directory = UserDirectory(os.path.join(workdir, "ldap"), args.users)
    directory.start()
    server = None
    try:
        tree = os.path.join(workdir, "tree")
        writeTree(tree, args.users, body)
        chownTree(tree)
        extra = (["--workers", str(args.workers)] if args.workers else []) + shlex.split(args.server_args)
        server = FbtwistProcess(tree, directory.searchURL, extraArgs=extra,
                                logPath=os.path.join(workdir, "fbtwist.log")).start()
        # Loaded once (by the master of --workers), then mapped by each worker.
        waitForLogLines(server.logPath, "name index loaded", 1, 120)
        if args.workers:
            waitForLogLines(server.logPath, "name index mapped", args.workers, 120)
        script = os.path.join(workdir, "lookup.lua")
        with open(script, "w") as f:
            f.write(luaScript("lookup", args.users, 2))
        wrk(server.port, script, 1, args.connections)  # warm
        if not args.cold:
            # As bench/run: every user asked for once before, their answers
            # kept.
            print("every user looked up once:", lookEveryoneUp(server.port, args.users), flush=True)
        measure(server, script, args, "lookup", "lookups")
    finally:
        if server is not None:
            server.stop()
        directory.stop()
        subprocess.run(["rm", "-rf", workdir])


if __name__ == "__main__":
    main()
