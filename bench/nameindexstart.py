"""
The name index at start, cold (no kept file: a child process builds it) and
warm (the file the last run kept, mapped at once, then rebuilt), with
C{--workers}: how long until every process has it, and the memory (PSS) of
the whole process tree once it has it and the build's child has exited
(after lookups of random users, so that the pages they touch count).

    .venv/bin/python -m bench.nameindexstart --cache /path/to/cache [--users 1000000] [--workers 2]

With C{--child-only N}: only the build's child process, N times in a row
against the same slapd (no fbtwist server): its wall time, its CPU seconds
and slapd's during it, and the load average, for each build.

The directory is the one of C{bench/run --million} (C{--million-cache}),
made when the cache has none.
"""

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.compare import StreamedUserDirectory, indexPSS, processTreePSS, waitForLogLines  # noqa: E402
from tests.processes import TOP, FbtwistProcess, processTreeRSS, request, userName  # noqa: E402


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} (1 min), {five:.2f} (5 min)"


def _start(workdir: str, tree: str, directory, names: str, workers: int, run: str):
    logPath = os.path.join(workdir, f"fbtwist-{run}.log")
    began = time.monotonic()
    server = FbtwistProcess(tree, directory.searchURL, logPath=logPath, extraArgs=[
        "--workers", str(workers), "--name-index-dir", names]).start(timeout=120)
    return server, began


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--cache", required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--lookups", type=int, default=500,
                        help="lookups of random users after the cold build (their pages of the file counted)")
    parser.add_argument("--child-only", type=int, default=0, metavar="N",
                        help="only run the index build's child process N times, timing it and slapd")
    parser.add_argument("--ldap-port", type=int, default=None, help="slapd's port (default: a free one)")
    args = parser.parse_args(argv)
    workdir = tempfile.mkdtemp(prefix="fbtwist-nameindexstart-")
    tree = os.path.join(workdir, "tree")
    names = os.path.join(workdir, "names")
    os.makedirs(tree)
    os.mkdir(names, 0o700)
    directory = StreamedUserDirectory(os.path.join(workdir, "ldap"), args.users, cache=args.cache)
    # A port given: slapd's first start uses it instead of picking one.
    directory.port = args.ldap_port
    directory.start()
    try:
        if args.child_only:
            for _ in range(args.child_only):
                _childBuild(directory, names)
            return
        for run in ("cold", "warm"):
            server, began = _start(workdir, tree, directory, names, args.workers, run)
            try:
                if run == "warm":
                    waitForLogLines(server.logPath, "kept name index", 1, 600)
                    waitForLogLines(server.logPath, "name index mapped", args.workers, 600)
                    print(f"warm: every process has the kept index after {time.monotonic() - began:.1f} s; "
                          f"PSS {processTreePSS(server.pid) / 2**20:.0f} MB, RSS "
                          f"{processTreeRSS(server.pid) / 2**20:.0f} MB (build running); load {_load()}",
                          flush=True)
                waitForLogLines(server.logPath, "name index loaded", 1, 3600)
                if run == "cold":
                    waitForLogLines(server.logPath, "name index mapped", args.workers, 600)
                    size = sum(os.path.getsize(os.path.join(names, n)) for n in os.listdir(names))
                    print(f"index file: {size / 2**20:.0f} MB", flush=True)
                wall = time.monotonic() - began
                with open(server.logPath) as f:
                    loaded = [line for line in f if "name index loaded" in line][-1].strip()
                time.sleep(3)
                if run == "cold":
                    _lookups(server.port, args.users, args.lookups)
                mapped = indexPSS(server.pid, names) / 2**20
                print(f"{run}: the names file's pages in all processes: PSS {mapped:.1f} "
                      f"MB (at most its size, shared once)", flush=True)
                print(f"{run}: built after {wall:.1f} s wall ({loaded.split('] ', 1)[-1]}); "
                      f"PSS {processTreePSS(server.pid) / 2**20:.0f} MB, RSS "
                      f"{processTreeRSS(server.pid) / 2**20:.0f} MB of all processes; master RSS "
                      f"{_rss(server.pid) / 2**20:.0f} MB; load {_load()}",
                      flush=True)
            finally:
                server.stop()
        # The same processes without the index: what the names add.
        server = FbtwistProcess(tree, directory.searchURL, logPath=os.path.join(workdir, "fbtwist-none.log"),
                                extraArgs=["--workers", str(args.workers), "--name-index-refresh", "0"]).start(120)
        try:
            time.sleep(10)
            print(f"no index: PSS {processTreePSS(server.pid) / 2**20:.0f} MB, RSS "
                  f"{processTreeRSS(server.pid) / 2**20:.0f} MB of all processes; master RSS "
                  f"{_rss(server.pid) / 2**20:.0f} MB; load {_load()}", flush=True)
        finally:
            server.stop()
    finally:
        directory.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _cpu(pid: int) -> float:
    """
    The CPU seconds (user and system) process C{pid} has used so far.
    """
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _childBuild(directory, names: str) -> None:
    """
    One cold build of the index file by the child process fbtwist starts
    for it, timed: wall, the child's CPU, slapd's CPU meanwhile.
    """
    path = os.path.join(names, "names.idx")
    if os.path.exists(path):
        os.unlink(path)
    argv = [sys.executable, "-m", "fbtwist.worker", "--build-name-index", path, "600",
            "--ldap", directory.searchURL, "--root", names, "--ftp", "none"]
    env = dict(os.environ, PYTHONPATH=TOP + os.pathsep + os.environ.get("PYTHONPATH", ""))
    slapdBefore = _cpu(directory.pid)
    began = time.monotonic()
    child = subprocess.Popen(argv, cwd=TOP, env=env, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.monotonic() - began
    slapd = _cpu(directory.pid) - slapdBefore
    errors = child.stderr.read().decode("utf-8", "replace").strip()
    child.stdin.close()
    child.stderr.close()
    child.returncode = os.waitstatus_to_exitcode(status)
    size = os.path.getsize(path) if os.path.exists(path) else 0
    print(f"child build: {wall:.2f} s wall, exit {child.returncode}; child CPU {usage.ru_utime:.2f} s user + "
          f"{usage.ru_stime:.2f} s system, max RSS {usage.ru_maxrss / 1024:.0f} MB; slapd CPU {slapd:.2f} s; "
          f"file {size / 2**20:.0f} MB; load {_load()}" + (f"; error: {errors[-300:]}" if errors else ""),
          flush=True)


def _lookups(port: int, users: int, count: int) -> None:
    """
    C{count} lookups of random users (new connections: spread over the
    workers), so that the PSS counts the index pages lookups touch.
    """
    began = time.monotonic()
    statuses = {}
    for _ in range(count):
        status, _ = request(port, "GET", f"/calendar/{userName(random.randrange(users))}.vfb")
        statuses[status] = statuses.get(status, 0) + 1
    print(f"{count} lookups in {time.monotonic() - began:.1f} s: {statuses}", flush=True)


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


if __name__ == "__main__":
    main()
