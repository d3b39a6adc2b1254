#!/usr/bin/env python3
"""
What one publish costs fbtwist: server CPU time and system calls per PUT,
counted rather than timed, so that a busy machine changes them little.

Starts slapd with a few users and one fbtwist (as C{bench/run} does), runs
C{wrk} publishing as each user in turn, and reads the server's CPU time from
C{/proc} before and after; with C{--strace}, a second run under
C{strace -c -f} counts the system calls of every thread.

With C{--in-process N}, no server process, slapd or wrk: the whole site
(C{makeService} with the demo directory, on an in-memory network, as the
fast tests run it) answers N publishes of the same file, one after the
other on one connection, in this process and this thread (the store's
blocking work runs in the calling thread, so nothing waits for other
threads' scheduling).  It prints the CPU time per publish (the client
and the in-memory network included: run it before and after a change),
and with C{--profile FILE} runs the loop again
under cProfile, writes the profile and counts the function calls per
publish.  Run it under C{strace -c -f} or C{valgrind --tool=callgrind}
for system calls or instructions (twice, with two counts: the
difference over the difference in publishes is the cost of one).

    .venv/bin/python bench/publishcost.py [--workers 2] [--strace]
    .venv/bin/python bench/publishcost.py --in-process 2000 [--profile publish.prof]
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from bench.compare import (  # noqa: E402
    FbtwistProcess,
    UserDirectory,
    calendarBody,
    checkPublish,
    chownTree,
    luaScript,
    parseWrk,
    waitForLogLines,
    writeTree,
)
from tests.processes import childPIDs  # noqa: E402


def measure(server, script: str, args, one: str, many: str) -> None:
    """
    Run C{wrk} with C{script} against C{server} for C{args.seconds} and
    print the requests, their latency and the server's CPU time per
    request; with C{args.strace}, a second run under strace and the system
    calls per request.

    @param one: What one request is called (C{publish}).
    @param many: And several (C{publishes}).
    """
    before, threadsBefore = treeCPU(server.pid), threadCPU(server.pid)
    result = wrk(server.port, script, args.seconds, args.connections)
    cpu, threadsAfter = treeCPU(server.pid) - before, threadCPU(server.pid)
    n = max(1, result["requests"])
    print(f"{many}: {result['requests']} in {args.seconds:g} s ({result['rps']:.1f}/s, "
          f"p50 {result['p50']:.1f} ms, p99 {result['p99']:.1f} ms, non-2xx/errors {result['errors']})")
    print(f"server CPU per {one}: {cpu / n * 1000:.3f} ms")
    # Where it went: the reactor's thread and the others (the store's pool),
    # user and system time apart (a publish's system time is mostly the
    # filesystem's, in the pool).
    split = {"reactor": [0.0, 0.0], "other threads": [0.0, 0.0]}
    for tid, (user, system) in threadsAfter.items():
        was = threadsBefore.get(tid, (0.0, 0.0))
        part = split["reactor" if tid == server.pid else "other threads"]
        part[0] += user - was[0]
        part[1] += system - was[1]
    print(f"  of which (user + system, ms per {one}): " + ", ".join(
        f"{name} {user / n * 1000:.3f} + {system / n * 1000:.3f}" for name, (user, system) in split.items()))
    if args.strace:
        pids = [server.pid] + childPIDs(server.pid)
        result, counts = straceCounts(pids, lambda: wrk(server.port, script, args.seconds, args.connections))
        n = max(1, result["requests"])
        total = sum(counts.values())
        print(f"system calls per {one} (strace, {result['requests']} {many}): {total / n:.1f}")
        for name, count in sorted(counts.items(), key=lambda item: -item[1])[:25]:
            print(f"  {name:20} {count / n:6.2f}")


def treeCPU(pid: int) -> float:
    """
    User plus system CPU seconds of C{pid} and its living descendants.
    """
    total, pending, tick = 0.0, [pid], os.sysconf("SC_CLK_TCK")
    while pending:
        current = pending.pop()
        try:
            with open(f"/proc/{current}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            pending.extend(childPIDs(current))
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def threadCPU(pid: int) -> dict:
    """
    User and system CPU seconds of each living thread of C{pid}, by thread
    id (the first thread's id is C{pid}).
    """
    found, tick = {}, os.sysconf("SC_CLK_TCK")
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return found
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        found[int(tid)] = (int(fields[11]) / tick, int(fields[12]) / tick)
    return found


def wrk(port: int, script: str, seconds: float, connections: int) -> dict:
    argv = ["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds:g}s", "--latency", "-s", script,
            f"http://127.0.0.1:{port}/"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds * 3 + 60)
    result = parseWrk(out.stdout)
    requests = re.search(r"(\d+) requests in", out.stdout)
    result["requests"] = int(requests.group(1)) if requests else 0
    return result


_STRACE_LINE = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$")


def straceCounts(pids, run) -> dict:
    """
    Run C{run()} while C{strace -c -f} follows C{pids}: system call name ->
    count.
    """
    argv = ["strace", "-c", "-f", "-qq"]
    for pid in pids:
        argv += ["-p", str(pid)]
    tracer = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    result = run()
    tracer.send_signal(2)
    _, err = tracer.communicate(timeout=60)
    counts = {}
    for line in err.splitlines():
        m = _STRACE_LINE.match(line)
        if m and m.group(2) != "total":
            counts[m.group(2)] = int(m.group(1))
    return result, counts


def inProcess(count: int, profilePath: str = None) -> None:
    """
    Publish C{count} times through the whole site in this process; see the
    module's description.
    """
    import base64
    import cProfile
    import pstats

    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

    from tests.memory import AnswerClient, MemoryServer, ScratchOwner


    owner = ScratchOwner("fbtwist-publishcost-")
    server = MemoryServer(owner).start()
    # The demo directory's administrators' group, as a server with
    # --admin-group: the realm keeps each login's roles, so a publish whose
    # login is known asks the directory nothing.
    body = calendarBody()
    requestBytes = (
        b"PUT /pub/calendar/alice.vfb HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/calendar\r\n"
        b"Authorization: Basic " + base64.b64encode(b"alice:wonderland") + b"\r\n"
        b"Content-Length: " + str(len(body)).encode("ascii") + b"\r\n\r\n" + body
    )
    network, publisher = server.network, AnswerClient()
    network.run(connectProtocol(TCP4ClientEndpoint(network, "127.0.0.1", server.port), publisher))
    for _ in range(20):  # logged in, caches warm
        status = network.run(publisher.send(requestBytes)).result
        assert status.split()[1] in (b"201", b"204"), status

    def loop():
        for _ in range(count):
            network.run(publisher.send(requestBytes))

    before = os.times()
    loop()
    after = os.times()
    user, system = after.user - before.user, after.system - before.system
    print(f"in process: {count} publishes; per publish: CPU {(user + system) / count * 1000:.3f} ms "
          f"(user {user / count * 1000:.3f}, system {system / count * 1000:.3f}; the client and the in-memory "
          f"network included)")
    if profilePath:
        profiler = cProfile.Profile()
        profiler.enable()
        loop()
        profiler.disable()
        profiler.dump_stats(profilePath)
        print(f"Python function calls per publish: {pstats.Stats(profiler).total_calls / count:.0f}")
    server.stop()
    subprocess.run(["rm", "-rf", owner.directory])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--locks", type=int, default=0,
                        help="WebDAV locks held on other files in the tree while publishing")
    parser.add_argument("--store-threads", type=int, default=0, metavar="N",
                        help="the server's --store-threads (by default its default)")
    parser.add_argument("--strace", action="store_true", help="also count system calls (slows the server)")
    parser.add_argument("--in-process", type=int, default=0, metavar="N",
                        help="publish N times through the whole site in this process instead (see above)")
    parser.add_argument("--profile", metavar="FILE", help="with --in-process: write a cProfile of the loop")
    args = parser.parse_args()
    if args.in_process:
        inProcess(args.in_process, args.profile)
        return
    workdir = tempfile.mkdtemp(prefix="fbtwist-publishcost-")
    body = calendarBody()
    directory = UserDirectory(os.path.join(workdir, "ldap"), args.users)
    directory.start()
    server = None
    try:
        tree = os.path.join(workdir, "tree")
        writeTree(tree, args.users, body)
        if args.locks:
            from twisted.python.filepath import FilePath

            from fbtwist.store.locks import LOCK_DIRECTORY, LockStore, WallClock
            from fbtwist.store.tree import CalendarStore

            locks = LockStore(CalendarStore(FilePath(tree)).metadataDirectory(LOCK_DIRECTORY), WallClock)
            for i in range(args.locks):
                locks.create((f"locked{i}.vfb",), "exclusive", "0", "", f"holder{i}", 3600)
        chownTree(tree)
        extra = ["--workers", str(args.workers)] if args.workers else []
        extra += ["--store-threads", str(args.store_threads)] if args.store_threads else []
        server = FbtwistProcess(tree, directory.searchURL, extraArgs=extra,
                                logPath=os.path.join(workdir, "fbtwist.log")).start()
        waitForLogLines(server.logPath, "name index loaded", max(1, args.workers))
        for _ in range(3):
            assert checkPublish(server.port, body) in (201, 204)
        script = os.path.join(workdir, "publish.lua")
        with open(script, "w") as f:
            f.write(luaScript("publish", args.users, 2, body))
        measure(server, script, args, "publish", "publishes")
    finally:
        if server is not None:
            server.stop()
        directory.stop()
        subprocess.run(["rm", "-rf", workdir])


if __name__ == "__main__":
    main()
