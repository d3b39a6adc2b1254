#!/usr/bin/env python3
"""
What the kernel alone charges for a durable publish on this machine: the
floor under fbtwist's CPU time per publish, whatever the server's code.

A durable publish (a 2xx only once the bytes and the rename are on disk)
is, in system calls: create a temporary file beside the target, write the
body, C{fsync} it, close it, rename it over the target, and C{fsync} the
folder (fbtwist shares one folder C{fsync} among the publishes that commit
together: C{--group}).  This script does exactly that, C{--count} times,
over a folder of C{--files} files (each replace frees the old file's inode,
as a publish does), in one thread with no server, no network and no
parsing, and prints the CPU time (user and system) per replace from
C{os.times}.  Compare it with C{bench/publishcost.py}'s server CPU per
publish: what lies between the two is fbtwist's own cost (HTTP, the login,
validation, logging) and the network's.

    python3 bench/durablefloor.py [--files 100000] [--count 3000] [--group 8] [--folder DIR]

Without C{--folder} the files live in a temporary folder (on the same
filesystem as the bench's trees, C{TMPDIR}), removed afterwards.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time


def makeFolder(folder: str, files: int, body: bytes) -> None:
    """
    Fill C{folder} with C{files} files of C{body} (those there already are
    kept), then put everything on disk.
    """
    os.makedirs(folder, exist_ok=True)
    for index in range(files):
        path = os.path.join(folder, f"user{index}.vfb")
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.write(body)
    os.sync()


def replaceDurably(folder: str, files: int, count: int, group: int, body: bytes) -> dict:
    """
    Replace C{count} of the folder's files (spread over all C{files}) as a
    durable publish does, the folder synced once per C{group} replaces.

    @return: CPU seconds (C{user}, C{system}) and wall-clock seconds
        (C{wall}) per replace.
    """
    folderFD = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        before, began = os.times(), time.monotonic()
        for index in range(count):
            target = os.path.join(folder, f"user{(index * 7919) % files}.vfb")
            temporary = os.path.join(folder, f".floor-{index}")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, body)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(temporary, target)
            if (index + 1) % group == 0 or index == count - 1:
                os.fsync(folderFD)
        after, ended = os.times(), time.monotonic()
    finally:
        os.close(folderFD)
    return {
        "user": (after.user - before.user) / count,
        "system": (after.system - before.system) / count,
        "wall": (ended - began) / count,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="bench/durablefloor.py", description=__doc__.strip().splitlines()[0])
    parser.add_argument("--files", type=int, default=100000, help="files in the folder")
    parser.add_argument("--count", type=int, default=3000, help="replaces measured")
    parser.add_argument("--group", type=int, default=8, help="replaces per folder fsync")
    parser.add_argument("--size", type=int, default=2000, help="bytes of each file")
    parser.add_argument("--folder", help="the folder (kept); default: a temporary one, removed")
    args = parser.parse_args(argv)
    if args.files < 1 or args.count < 1 or args.group < 1:
        parser.error("--files, --count and --group must be at least 1")
    body = b"X" * args.size
    folder = args.folder or tempfile.mkdtemp(prefix="fbtwist-floor-")
    try:
        makeFolder(folder, args.files, body)
        result = replaceDurably(folder, args.files, args.count, args.group, body)
    finally:
        if not args.folder:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"durable replace ({args.files:,} files, {args.size} bytes, folder fsync per {args.group}): "
          f"CPU {1000 * (result['user'] + result['system']):.3f} ms "
          f"(user {1000 * result['user']:.3f}, system {1000 * result['system']:.3f}), "
          f"wall {1000 * result['wall']:.3f} ms a replace", flush=True)


if __name__ == "__main__":
    sys.exit(main())
