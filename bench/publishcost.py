#!/usr/bin/env python3
"""
What one publish costs fbtwist: server CPU time and system calls per PUT,
counted rather than timed, so that a busy machine changes them little.

Starts slapd with a few users and the bench's rooms, and one fbtwist with
the bench's options (as C{bench/run} does), runs C{wrk} publishing as each
user in turn, and reads from C{/proc} before and after the server's CPU
time and its threads' context switches, and from slapd's monitor the
directory operations it answered (per publish: a login the bind cache
holds costs none, a first login a bind); with C{--strace}, a second run
under C{strace -c -f} counts the system calls of every thread, with
C{--py-spy FILE} one under py-spy writes where every thread's time goes,
the workers' and the commit processes' too (py-spy's raw format: one stack
a line, beginning with its process and thread, then its count), with C{--gil
FILE} one under py-spy with the native frames and the idle samples too
tells what share of each thread's time goes to waiting for the
interpreter lock and to handing it over (L{bench.gilshare}), with C{--perf
FILE} one under C{perf record -g} (the kernel's part of each thread too).  With C{--users}
above the bind cache's size (1,000 by default; C{bench/run} has 100,000),
every publish is a first login, as in the bench.

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

With C{--directory-cache DIR}, the directory is the bench's million-user
one (C{bench/run --million-cache}: no rooms; its database made once for
C{--users} users and kept in DIR) and the users' files hard links, as in
the bench's million-user run (which also has C{--admin-group}): C{--users
1000000} then measures a publish there, and C{--users 100000} with its
own database the same at a tenth.

It prints the filesystem the tree is on (L{bench.compare.treeFilesystem}):
on ext4 without a journal a run started less than a minute after another
ended (which removed its tree of C{--users} files) pays for reading the
inodes that removal freed: measured on the bench's machine, 0.78 ms of
CPU a publish in a run started after a pause of 45 s, 2.70 ms in the run
started right after it ended.  There, compare runs with C{--tree DIR}:
one tree, made by the first run and kept, so that no run removes one.

With C{--files N}, the folder the users publish into holds N more files
(hard links to a few written ones, made in seconds) before the server
starts: what a folder's size costs a publish shows without a directory of
as many users (compare C{--files 100000} with C{--files 1000000}).

    .venv/bin/python bench/publishcost.py [--users 100000] [--workers 2] [--strace] [--py-spy FILE] [--gil FILE]
        [--perf FILE] [--tree DIR]
    .venv/bin/python bench/publishcost.py --in-process 2000 [--profile publish.prof] [--files 1000000]
"""

import argparse
import cProfile
import os
import pstats
import re
import shlex
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from bench.compare import (  # noqa: E402
    ADMIN_GROUP,
    ROOM_OPTIONS,
    FbtwistProcess,
    RoomDirectory,
    StreamedUserDirectory,
    calendarBody,
    checkPublish,
    chownTree,
    linkFiles,
    luaScript,
    parseWrk,
    treeFilesystem,
    userName,
    waitForLogLines,
    writeTree,
)
from bench.gilshare import report, shares  # noqa: E402
from fbtwist.store.warmup import worthWarming  # noqa: E402
from tests.processes import childPIDs  # noqa: E402


def timedLoop(loop, profilePath=None):
    """
    Run C{loop()} once timed (this process's CPU), and again under cProfile
    when C{profilePath} is given (the profile written there).

    @return: C{(user, system, calls)}: CPU seconds of the timed run, and the
        Python function calls of the profiled one (C{None} without one).
    """
    before = os.times()
    loop()
    after = os.times()
    calls = None
    if profilePath:
        profiler = cProfile.Profile()
        profiler.enable()
        loop()
        profiler.disable()
        profiler.dump_stats(profilePath)
        calls = pstats.Stats(profiler).total_calls
    return after.user - before.user, after.system - before.system, calls


def byThread(before: dict, after: dict, reactors) -> dict:
    """
    Two counts per thread (thread id -> pair), their growth from C{before}
    to C{after} summed for the reactors' threads (C{reactors}: their ids)
    and for the other threads.
    """
    sums = {"reactor": [0, 0], "other threads": [0, 0]}
    for tid, (first, second) in after.items():
        was = before.get(tid, (0, 0))
        part = sums["reactor" if tid in reactors else "other threads"]
        part[0] += first - was[0]
        part[1] += second - was[1]
    return sums


def measure(server, script: str, args, one: str, many: str, directory=None) -> None:
    """
    Run C{wrk} with C{script} against C{server} for C{args.seconds} and
    print the requests, their latency, the server's CPU time and context
    switches per request, and the directory's operations per request (when
    C{directory} is a L{MonitoredDirectory}); with C{args.strace}, a second
    run under strace and the system calls per request; with
    C{args.py_spy}, one under py-spy; with C{args.gil}, one under py-spy
    with native frames, and each thread's share of the interpreter lock.

    @param one: What one request is called (C{publish}).
    @param many: And several (C{publishes}).
    """
    # The process and, with --workers, its workers: each one's first thread
    # runs its reactor.
    pids = [server.pid] + childPIDs(server.pid)
    before, threadsBefore = treeCPU(server.pid), eachThread(threadCPU, pids)
    switchesBefore = eachThread(contextSwitches, pids)
    operationsBefore = directory.operations() if directory is not None else {}
    directoryBefore = treeCPU(directory.pid) if directory is not None else 0.0
    result = wrk(server.port, script, args.seconds, args.connections)
    cpu, threadsAfter = treeCPU(server.pid) - before, eachThread(threadCPU, pids)
    switchesAfter = eachThread(contextSwitches, pids)
    operationsAfter = directory.operations() if directory is not None else {}
    directoryCPU = treeCPU(directory.pid) - directoryBefore if directory is not None else 0.0
    n = max(1, result["requests"])
    print(f"{many}: {result['requests']} in {args.seconds:g} s ({result['rps']:.1f}/s, "
          f"p50 {result['p50']:.1f} ms, p99 {result['p99']:.1f} ms, non-2xx/errors {result['errors']})")
    print(f"server CPU per {one}: {cpu / n * 1000:.3f} ms")
    print(f"  the tree's filesystem: {treeFilesystem(tempfile.gettempdir())}")
    # Where it went: the reactor's thread and the others (the store's pool),
    # user and system time apart (a publish's system time is mostly the
    # filesystem's, in the pool).
    split = byThread(threadsBefore, threadsAfter, pids)
    print(f"  of which (user + system, ms per {one}): " + ", ".join(
        f"{name} {user / n * 1000:.3f} + {system / n * 1000:.3f}" for name, (user, system) in split.items()))
    # Each thread's switches: the reactor's and the store's threads handing
    # the interpreter lock and the work to each other show here.
    switches = byThread(switchesBefore, switchesAfter, pids)
    print(f"context switches per {one} (voluntary + involuntary): " + ", ".join(
        f"{name} {voluntary / n:.2f} + {involuntary / n:.2f}" for name, (voluntary, involuntary) in switches.items()))
    if directory is not None:
        asked = {name: operationsAfter.get(name, 0) - operationsBefore.get(name, 0) for name in operationsAfter}
        print(f"directory operations per {one}: " + ", ".join(
            f"{name} {count / n:.2f}" for name, count in sorted(asked.items()) if count)
            + f" (none: 0); slapd CPU {directoryCPU / n * 1000:.3f} ms per {one}")
    if args.py_spy:
        pySpy(server, args.py_spy, lambda: wrk(server.port, script, args.seconds, args.connections))
    if getattr(args, "gil", None):
        if pySpy(server, args.gil, lambda: wrk(server.port, script, args.seconds, args.connections), native=True):
            with open(args.gil) as f:
                print("where each thread's time went (py-spy, native frames, idle included):")
                print("\n".join(report(shares(f))))
    if args.perf:
        perfRecord([server.pid] + childPIDs(server.pid), args.perf,
                   lambda: wrk(server.port, script, args.seconds, args.connections))
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


def eachThread(count, pids) -> dict:
    """
    C{count(pid)} (by thread id) for each of C{pids}, in one dict.
    """
    found = {}
    for pid in pids:
        found.update(count(pid))
    return found


def contextSwitches(pid: int) -> dict:
    """
    The voluntary and involuntary context switches of each living thread of
    C{pid}, by thread id.
    """
    found = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return found
    for tid in tids:
        counts = {}
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if "ctxt_switches" in line:
                        name, value = line.split(":")
                        counts[name.strip()] = int(value)
        except (FileNotFoundError, ProcessLookupError):
            continue
        found[int(tid)] = (counts.get("voluntary_ctxt_switches", 0), counts.get("nonvoluntary_ctxt_switches", 0))
    return found


def pySpy(server, path: str, run, native: bool = False) -> bool:
    """
    Run C{run()} while py-spy samples every thread of C{server} and of its
    child processes (the workers of C{--workers}, the commit processes),
    not the idle ones, writing its raw stacks to C{path} (each stack
    begins with its process, then its thread).

    @param native: Sample the C frames too, and the idle threads, of
        C{server} alone (for L{bench.gilshare}, whose stacks begin with
        their thread).
    @return: Whether the samples were written.
    """
    spy = os.path.join(os.path.dirname(sys.executable), "py-spy")
    return _sampled("py-spy", [spy if os.path.exists(spy) else "py-spy", "record", "--pid", str(server.pid),
                               "--format", "raw", "--threads", "--rate", "200", "--output", path]
                    + (["--native", "--idle"] if native else ["--subprocesses"]), path, run, 60)


def perfRecord(pids, path: str, run) -> None:
    """
    Run C{run()} while C{perf record -g} samples every thread of C{pids}
    (the kernel's part of their time included), writing to C{path}; read
    it with C{perf report -i PATH --no-children --sort dso,sym}.
    """
    _sampled("perf", ["perf", "record", "-g", "-F", "999", "-o", path, "-p", ",".join(str(pid) for pid in pids)],
             path, run, 120)


def _sampled(name: str, argv, path: str, run, timeout: float) -> bool:
    """
    Run C{run()} while the sampling profiler C{argv} (C{name}) records,
    stopped by an interrupt once C{run} returns.

    @return: Whether it recorded (else the reason is printed).
    """
    recorder = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    result = run()
    recorder.send_signal(2)
    _, err = recorder.communicate(timeout=timeout)
    if recorder.returncode not in (0, -2):
        print(f"{name} failed: {err.strip()[-300:]}")
        return False
    print(f"{name}: {result['requests']} requests sampled into {path}")
    return True


class MonitoredDirectory(RoomDirectory):
    """
    The bench's directory (users and rooms) with slapd's monitor, which
    counts the operations it answered.
    """

    def _config(self, installed, databaseDir):
        return super()._config(installed, databaseDir) + "\ndatabase monitor\naccess to * by * read\n"

    def operations(self) -> dict:
        """
        The operations slapd completed so far, by kind (C{Bind},
        C{Search}, ...).
        """
        out = subprocess.run(
            ["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", self.url, "-b", "cn=Operations,cn=Monitor",
             "-s", "one", "(objectClass=*)", "monitorOpCompleted"],
            capture_output=True, text=True, timeout=30,
        )
        counts, name = {}, None
        for line in out.stdout.splitlines():
            if line.startswith("dn: cn="):
                name = line[len("dn: cn="):].split(",", 1)[0]
            elif line.startswith("monitorOpCompleted:") and name is not None:
                counts[name] = int(line.split(":", 1)[1])
        return counts


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


def fillFolder(folder: str, files: int, body: bytes) -> None:
    """
    Put C{files} more files (C{extra0000000.vfb}, ...) into C{folder}, as
    hard links (see L{bench.compare.linkFiles}), saying how long it took.
    """
    if not files:
        return
    started = time.monotonic()
    linkFiles(folder, (f"extra{i:07d}.vfb" for i in range(files)), body)
    print(f"{files:,} more files in the folder in {time.monotonic() - started:.1f} s", flush=True)


def inProcess(count: int, profilePath: str = None, files: int = 0) -> None:
    """
    Publish C{count} times through the whole site in this process (into a
    folder of C{files} more files); see the module's description.
    """
    import base64

    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

    from tests.memory import AnswerClient, MemoryServer, ScratchOwner


    owner = ScratchOwner("fbtwist-publishcost-")
    server = MemoryServer(owner)
    fillFolder(server.root.path, files, calendarBody())
    server.start()
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

    user, system, calls = timedLoop(loop, profilePath)
    print(f"in process: {count} publishes; per publish: CPU {(user + system) / count * 1000:.3f} ms "
          f"(user {user / count * 1000:.3f}, system {system / count * 1000:.3f}; the client and the in-memory "
          f"network included)")
    if calls is not None:
        print(f"Python function calls per publish: {calls / count:.0f}")
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
    parser.add_argument("--files", type=int, default=0, metavar="N",
                        help="N more files in the folder published into (e.g. 1000000), made before the server starts")
    parser.add_argument("--profile", metavar="FILE", help="with --in-process: write a cProfile of the loop")
    parser.add_argument("--py-spy", metavar="FILE",
                        help="also sample the server's threads, and its workers' and commit processes', with py-spy "
                             "during a second run (raw stacks)")
    parser.add_argument("--gil", metavar="FILE",
                        help="also sample them with py-spy's native frames during another run, and tell each "
                             "thread's share of waiting for the interpreter lock (bench/gilshare.py)")
    parser.add_argument("--perf", metavar="FILE",
                        help="also sample the server's threads, the kernel's part too, with perf record -g during "
                             "a second run")
    parser.add_argument("--directory-cache", metavar="DIR",
                        help="the bench's million-user directory, its database kept in DIR (see above)")
    parser.add_argument("--admin-group", action="store_true",
                        help="the server's --admin-group: the bench's administrators (bench/run's million-user "
                             "row has it, its 100,000-user rows not)")
    parser.add_argument("--tree", metavar="DIR",
                        help="publish into the tree in DIR, made with the users' files when it has none and kept "
                             "afterwards (a run then pays for no tree removed before it)")
    parser.add_argument("--server-args", default="", metavar="ARGS",
                        help="more arguments for the server, as one string (e.g. '--room-filter none')")
    args = parser.parse_args()
    if args.in_process:
        inProcess(args.in_process, args.profile, args.files)
        return
    workdir = tempfile.mkdtemp(prefix="fbtwist-publishcost-")
    body = calendarBody()
    if args.directory_cache:
        directory = StreamedUserDirectory(os.path.join(workdir, "ldap"), args.users, cache=args.directory_cache)
    else:
        directory = MonitoredDirectory(os.path.join(workdir, "ldap"), args.users)
    directory.start()
    server = None
    try:
        tree = args.tree or os.path.join(workdir, "tree")
        if args.tree and os.path.exists(os.path.join(tree, userName(args.users - 1) + ".vfb")):
            pass  # the users' files are there, from the run before
        elif args.directory_cache:
            linkFiles(tree, (userName(i) + ".vfb" for i in range(args.users)), body)
        else:
            writeTree(tree, args.users, body)
        fillFolder(tree, args.files, body)
        if args.locks:
            from twisted.python.filepath import FilePath

            from fbtwist.store.locks import LOCK_DIRECTORY, LockStore, WallClock
            from fbtwist.store.tree import CalendarStore

            locks = LockStore(CalendarStore(FilePath(tree)).metadataDirectory(LOCK_DIRECTORY), WallClock)
            for i in range(args.locks):
                locks.create((f"locked{i}.vfb",), "exclusive", "0", "", f"holder{i}", 3600)
        chownTree(tree)
        extra = ([] if args.directory_cache else list(ROOM_OPTIONS)) \
            + (["--admin-group", ADMIN_GROUP] if args.admin_group else []) \
            + (["--workers", str(args.workers)] if args.workers else [])
        extra += ["--store-threads", str(args.store_threads)] if args.store_threads else []
        extra += shlex.split(args.server_args)
        server = FbtwistProcess(tree, directory.searchURL, extraArgs=extra,
                                logPath=os.path.join(workdir, "fbtwist.log")).start()
        # As bench/run: the master (or the one process) loads the name
        # index, each worker maps the file it wrote.
        waitForLogLines(server.logPath, "name index loaded", 1)
        if args.workers:
            waitForLogLines(server.logPath, "name index mapped", args.workers)
        # The names of the tree looked up once at start (a child process,
        # seconds for a million files): done before anything is counted.
        # A folder too small for it (a few thousand users) has none.
        if worthWarming(tree):
            waitForLogLines(server.logPath, "names of the calendar tree", 1)
        for _ in range(3):
            assert checkPublish(server.port, body) in (201, 204)
        script = os.path.join(workdir, "publish.lua")
        with open(script, "w") as f:
            f.write(luaScript("publish", args.users, 2, body))
        measure(server, script, args, "publish", "publishes",
                directory if isinstance(directory, MonitoredDirectory) else None)
    finally:
        if server is not None:
            server.stop()
        directory.stop()
        subprocess.run(["rm", "-rf", workdir])


if __name__ == "__main__":
    main()
