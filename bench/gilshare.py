#!/usr/bin/env python3
"""
Where each thread of a server spends its wall time, the interpreter lock
included: read from py-spy's raw stacks recorded with C{--native --idle
--threads} (C{bench/publishcost.py --gil FILE} and C{bench/lookupcost.py
--gil FILE} record them; C{python bench/gilshare.py FILE} reads any such
file again).

Why: CPython lets one thread run Python at a time.  Every call into the
system (a socket's C{recv}, a file's C{fsync}) lets the lock go and takes
it back after; when other threads want it meanwhile, giving it up means
waking one of them, and taking it back means waiting until that one lets
it go again.  A publish's work in the store's threads (about a dozen
system calls, each one such hand-over) therefore costs the reactor's
thread time that neither C{/proc}'s CPU times nor a profile of Python
functions show as the lock's: this tells it apart, from the native frames
of CPython 3.11 (Linux, glibc), where

  - the interpreter lock is a mutex and a condition variable of its own:
    a thread waiting to take it back is in C{pthread_cond_timedwait} (or
    in C{pthread_mutex_lock} right under the call that let it go), one
    letting it go while others wait wakes one in C{pthread_cond_signal};
  - Python's own locks and queues (C{threading.Lock}, C{SimpleQueue}) wait
    in C{PyThread_acquire_lock_timed} (semaphores), and an idle reactor in
    C{epoll_wait}.

States: C{running} (Python and C code), C{system call} (in a libc call,
such as C{fsync}: in the kernel), C{waiting for the lock}, C{handing the
lock over}, C{idle} (nothing to do: polling, an empty queue).
"""

import argparse
import collections
import re
import sys
from typing import Dict, Iterable, Tuple

RUNNING = "running"
SYSTEM_CALL = "system call"
LOCK_WAIT = "waiting for the lock"
LOCK_HANDOVER = "handing the lock over"
IDLE = "idle"

#: The states in the order they are printed.
STATES = (RUNNING, SYSTEM_CALL, LOCK_WAIT, LOCK_HANDOVER, IDLE)

_THREAD = re.compile(r"^thread \((?:0x[0-9a-fA-F]+|\d+)\): (.*)$")
_NUMBERED = re.compile(r"-\d+$")


def frameName(frame: str) -> str:
    """
    The function of one of py-spy's frames (C{name (file:line)} or
    C{0xADDRESS (library)}), without where it is.
    """
    return frame.split(" (", 1)[0]


def classify(frames) -> str:
    """
    The state of one sample from its frames, outermost first (the thread's
    own frame left out).
    """
    names = [frameName(frame) for frame in frames]
    for depth in range(len(names) - 1, -1, -1):
        name = names[depth]
        if name == "PyThread_acquire_lock_timed":
            return IDLE
        if name == "pthread_cond_timedwait":
            return LOCK_WAIT
        if name == "pthread_cond_signal":
            return LOCK_HANDOVER
        if name == "pthread_mutex_lock":
            # The lock's mutex, taken on the way back from a call.
            return LOCK_WAIT
        if name in ("epoll_wait", "select_epoll_poll_impl"):
            return IDLE
        if not name.startswith("0x"):
            break
    leaf = frames[-1] if frames else ""
    if "(libc.so" in leaf and not frameName(leaf).startswith("0x"):
        return SYSTEM_CALL
    return RUNNING


def threadKind(name: str) -> str:
    """
    The kind of a thread from its name: the pool's numbered threads
    (C{fbtwist-store-0}, ...) together, the main thread (the reactor's)
    as C{reactor}.
    """
    if name == "MainThread":
        return "reactor"
    return _NUMBERED.sub("", name)


def shares(lines: Iterable[str]) -> Dict[str, Dict[str, float]]:
    """
    Each kind of thread's samples by state, as fractions of its samples.

    @param lines: py-spy's raw lines: C{frame;frame;... COUNT}, the first
        frame C{thread (ID): NAME}.
    """
    counts: Dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        match = _THREAD.match(frames[0])
        if match is None:
            continue
        counts[threadKind(match.group(1))][classify(frames[1:])] += int(count)
    found = {}
    for kind, states in counts.items():
        total = sum(states.values())
        found[kind] = {state: states[state] / total for state in STATES}
        found[kind]["samples"] = total
    return found


def report(found: Dict[str, Dict[str, float]]) -> Tuple[str, ...]:
    """
    One line per kind of thread (the reactor's first): its share of each
    state.
    """
    lines = []
    for kind in sorted(found, key=lambda kind: (kind != "reactor", kind)):
        states = found[kind]
        lines.append(f"  {kind} ({int(states['samples'])} samples): " + ", ".join(
            f"{state} {states[state] * 100:.0f} %" for state in STATES))
    return tuple(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("raw", help="py-spy's raw output (record --native --idle --threads --format raw)")
    args = parser.parse_args(argv)
    with open(args.raw) as f:
        found = shares(f)
    if not found:
        sys.exit(f"{args.raw}: no samples with thread names (record with --threads)")
    print("\n".join(report(found)))


if __name__ == "__main__":
    main()
