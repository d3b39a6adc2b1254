"""
How long a lookup of a name waits while publishes write into the same
directory, without fbtwist: threads publish as the store does (a new
temporary file, fsync, rename over the user's file; 111 a second in all,
the mixed load's rate at 100,000 users) while the main thread looks names
up with C{lstat}, one every millisecond or so:

    .venv/bin/python bench/dirlock.py FOLDER --names new
    .venv/bin/python bench/dirlock.py FOLDER --names existing

FOLDER holds C{user000000.vfb} ... (a bench tree: bench/stalls.py --keep
leaves one).  C{new}: names nobody looked up before (as the C{.ics} of each
user, the first time a lookup asks): the kernel looks each up under the
directory's lock, which a create or a rename holds, so the slowest lookup
waits as long as the slowest rename.  C{existing}: the users' files, names
the kernel has cached: no wait.
"""

import argparse
import os
import random
import threading
import time


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench/dirlock.py", description=__doc__.strip().splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--names", choices=("new", "existing"), default="new")
    parser.add_argument("--users", type=int, default=100000)
    parser.add_argument("--threads", type=int, default=2, help="publishing threads")
    parser.add_argument("--rate", type=float, default=111.0, help="publishes a second, all threads together")
    parser.add_argument("--seconds", type=float, default=15.0)
    options = parser.parse_args(argv)
    body = b"x" * 2385
    stop = threading.Event()
    holds = []

    def publish():
        while not stop.is_set():
            began = time.monotonic()
            name = f"user{random.randrange(options.users):06d}.vfb"
            temporary = os.path.join(options.folder, f".{name}.{random.getrandbits(48):012x}.tmp")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            created = time.monotonic()
            os.write(fd, body)
            os.fsync(fd)
            os.close(fd)
            synced = time.monotonic()
            os.rename(temporary, os.path.join(options.folder, name))
            holds.append((created - began, time.monotonic() - synced))
            time.sleep(max(0.0, options.threads / options.rate - (time.monotonic() - began)))

    threads = [threading.Thread(target=publish) for _ in range(options.threads)]
    for thread in threads:
        thread.start()
    waits = []
    end = time.monotonic() + options.seconds
    try:
        while time.monotonic() < end:
            user = random.randrange(options.users)
            name = f"user{user:06d}.vfb" if options.names == "existing" else f"user{user:06d}.{len(waits)}.ics"
            began = time.monotonic()
            try:
                os.lstat(os.path.join(options.folder, name))
            except FileNotFoundError:
                pass
            waits.append(time.monotonic() - began)
            time.sleep(0.0008)
    finally:
        stop.set()
        for thread in threads:
            thread.join()

    def percentiles(values):
        values = sorted(values)
        return f"p99 {values[int(0.99 * len(values))] * 1000:.2f} ms, longest {values[-1] * 1000:.1f} ms"

    print(f"lstat of {options.names} names: {len(waits)}, {percentiles(waits)}, "
          f"{sum(w > 0.010 for w in waits)} over 10 ms")
    print(f"publishes: {len(holds)}; create {percentiles([h[0] for h in holds])}; "
          f"rename {percentiles([h[1] for h in holds])}; load average {open('/proc/loadavg').read().split()[:3]}")


if __name__ == "__main__":
    main()
