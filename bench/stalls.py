"""
What stalls fbtwist under the mixed Outlook load: runs bench/compare.py's
mixed workload (d) against fbtwist, one process and C{--workers 2}, with a
stall watch in every fbtwist process (C{bench/stallwatch/sitecustomize.py}:
a heartbeat on the reactor, a thread sampling the reactor thread whenever
the heartbeat is late), and prints, for each run, the latency percentiles,
the load generator's own stalls and each server stall with what the
reactor thread was doing meanwhile.

    .venv/bin/python -m bench.stalls --users 100000 --rounds 3

Run it from the top of the tree, after C{bench/run} has once made the
virtualenv.  Everything lives in a temporary directory, removed afterwards
unless C{--keep}.
"""

import argparse
import glob
import json
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, TOP)

from bench import compare, pace  # noqa: E402
from bench.compare import (  # noqa: E402
    ROOM_OPTIONS,
    Results,
    RoomDirectory,
    _descendants,
    calendarBody,
    chownTree,
    mixed,
    startServers,
    stopServers,
    writeTree,
)


def kindsOf(raw) -> str:
    """
    p50 and p99 of each kind of request (publish, lookup) of a paced run.
    """
    parts = []
    for kind in sorted({kind for kind, _, _ in raw}):
        latencies = sorted(latency for k, latency, _ in raw if k == kind)
        parts.append(f"{kind} p50 {latencies[len(latencies) // 2] * 1000:.2f} ms "
                     f"p99 {latencies[int(0.99 * len(latencies))] * 1000:.2f} ms")
    return ", ".join(parts)


def readStalls(folder: str):
    records = []
    for path in glob.glob(os.path.join(folder, "stalls-*.jsonl")):
        with open(path) as f:
            for line in f:
                try:
                    records.append(json.loads(line))
                except ValueError:
                    pass
    return sorted(records, key=lambda r: r["at"])


def shortStack(stack: str, lines: int = 4) -> str:
    """
    The innermost frames of a formatted stack, one line each.
    """
    frames = [f.strip().splitlines()[0] for f in stack.split("  File ")[1:]]
    return " <- ".join(reversed(frames[-lines:])).replace(TOP + "/", "")


def report(records, pids, began: float, ended: float, minimum: float) -> None:
    stalls = [r for r in records if r["kind"] == "stall" and began <= r["at"] <= ended and r["ms"] >= minimum]
    for r in stalls:
        who = "this server" if r["pid"] in pids else "elsewhere"
        print(f"    stall {r['ms']:6.0f} ms at +{r['at'] - began:5.1f}s pid {r['pid']} ({who}, {r['argv'][-40:]}), "
              f"CPU {r['cpuMs']:.0f} ms, gc {r['gcs']}, load {' '.join(r['loadavg'])}")
        for state, n in sorted(r["states"].items(), key=lambda kv: -kv[1])[:2]:
            print(f"        {n:3d}× {state}")
        for sample in r["samples"][:2]:
            print(f"        {sample['n']:3d}× {shortStack(sample['stack'])}")
    mine = [r for r in records if r["kind"] == "stall" and began <= r["at"] <= ended and r["pid"] in pids]
    states = {}
    for r in mine:
        for state, n in r["states"].items():
            states[state] = states.get(state, 0) + n
    total = sum(states.values()) or 1
    print(f"    this server: {len(mine)} stalls, {sum(r['ms'] for r in mine):.0f} ms in all; where its reactor "
          f"thread was (samples every 2 ms):")
    for state, n in sorted(states.items(), key=lambda kv: -kv[1])[:8]:
        print(f"      {100 * n / total:3.0f}% {n:5d}× {state}")
    others = {}
    for r in mine:
        for stack, n in r.get("others", {}).items():
            others[stack] = others.get(stack, 0) + n
    if others:
        print("    meanwhile, its other threads waiting in the kernel:")
        for stack, n in sorted(others.items(), key=lambda kv: -kv[1])[:6]:
            print(f"      {n:5d}× {stack}")
    for r in records:
        if r["kind"] == "census" and began <= r["at"] <= ended:
            print(f"    full collection of {r['ms']:.0f} ms in pid {r['pid']} walked {r['objects']:,} objects "
                  f"({r['frozen']:,} frozen): {r['top']}")
    collections = [r for r in records if r["kind"] == "gc" and began <= r["at"] <= ended]
    for generation in range(3):
        times = sorted(r["ms"] for r in collections if r["generation"] == generation)
        if times:
            print(f"    generation {generation} collections over 5 ms: {len(times)}, "
                  f"median {times[len(times) // 2]:.0f} ms, longest {times[-1]:.0f} ms")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench/stalls.py", description=__doc__.strip().splitlines()[0])
    parser.add_argument("--users", type=int, default=100000)
    parser.add_argument("--workers", default="0,2", help="fbtwist variants: 0 one process, N --workers N")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=float, default=30, help="seconds of each mixed run")
    parser.add_argument("--threshold", type=float, default=15, help="ms the heartbeat may be late")
    parser.add_argument("--show", type=float, default=30, help="print stalls of at least this many ms")
    parser.add_argument("--keep", action="store_true")
    options = parser.parse_args(argv)
    workdir = tempfile.mkdtemp(prefix="fbtwist-stalls-")
    os.chmod(workdir, 0o755)
    folder = os.path.join(workdir, "stalls")
    os.makedirs(folder)
    os.environ["FBTWIST_STALL_LOG"] = folder
    os.environ["FBTWIST_STALL_MS"] = str(options.threshold)
    os.environ["PYTHONPATH"] = os.path.join(HERE, "stallwatch") + os.pathsep + os.environ.get("PYTHONPATH", "")
    args = compare.parseArguments(["--fbtwist-workers", options.workers, "--no-apache", "--no-wsgidav",
                                   "--mixed-duration", str(options.duration)])
    print(f"work directory: {workdir}", flush=True)
    captured = []

    def capturing(*args, **kwargs):
        raw, elapsed = pace.runPaced(*args, **kwargs)
        captured.append(raw)
        return raw, elapsed

    # compare.mixed's requests, their latencies kept by kind.
    compare.runPaced = capturing
    body = calendarBody()
    directory = RoomDirectory(os.path.join(workdir, "ldap"), options.users)
    directory.start()
    try:
        tree = os.path.join(workdir, "tree")
        writeTree(tree, options.users, body)
        chownTree(tree)
        servers = startServers(args, workdir, tree, directory, extra=list(ROOM_OPTIONS), peers=False)
        try:
            for round in range(options.rounds):
                for name, server in servers.items():
                    results = Results()
                    load = open("/proc/loadavg").read().split()[:3]
                    began = time.time()
                    mixed(args, results, options.users, {name: server}, body)
                    ended = time.time()
                    row = results.rows[0]
                    late = row.get("generatorLate", [])
                    print(f"  round {round + 1} {name}: p50 {row['p50']:.2f} ms p99 {row['p99']:.2f} ms, "
                          f"errors {row['errors']}, load before {' '.join(load)}; generator late "
                          f"{len(late)}× (max {max(late, default=0):.0f} ms), its CPU "
                          f"{captured[-1].cpu / options.duration:.0%} of a core; {kindsOf(captured[-1])}", flush=True)
                    pids = {server.pid, *_descendants(server.pid)}
                    report(readStalls(folder), pids, began, ended, options.show)
        finally:
            stopServers(servers)
    finally:
        directory.stop()
        if not options.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
