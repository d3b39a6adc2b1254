"""
The kernel's cache of names, warmed for lookups at start.

Every lookup asks the filesystem about two names at the top of the tree:
C{<uid>.vfb} and C{<uid>.ics} (which of the two was published last), most
often a name that does not exist.  The first time the kernel is asked for a
name since it started (or since it dropped the name from its cache), it
must look the name up in the folder itself, holding the folder's lock; a
publish's create and rename hold that lock while they wait for the
filesystem's journal (up to hundreds of milliseconds on a busy disk).  A
lookup of an uncached name in the reactor's thread then stalls every
request of the process for as long (C{bench/dirlock.py} shows it without
fbtwist).  Asked once, a name stays in the kernel's cache, found or not,
and later lookups of it take no lock.

So at start a child process (started by L{fbtwist.store.warmup.NameWarmup},
at the lowest CPU priority, not a thread: it shares no interpreter lock
with the reactor) asks the kernel once for both names of every free/busy
or calendar file at the top of the tree.  After a restart of the machine
or of the server, the first lookups then find their names cached instead
of queueing behind publishes.  Nothing is read or written; a child that
fails changes nothing but the speed of first lookups.  This module is that
child, and imports nothing but the standard library, to start quickly::

    python -m fbtwist.store.warmnames ROOT
"""

import os
import sys
import time
from typing import Iterator

#: The files at the top of the tree whose names a lookup asks for (a
#: user's working hours, C{<uid>.avail.ics}, ends in C{.ics} too: its
#: owner's C{<uid>.avail.vfb} and C{.ics} are asked, harmlessly).
_SUFFIXES = (".vfb", ".ics")


def namesToWarm(root: str) -> Iterator[str]:
    """
    The paths a lookup of each published name at the top of C{root} asks
    for: both names (C{.vfb} and C{.ics}) of every C{.vfb} or C{.ics} file
    there, each once.
    """
    seen = set()
    with os.scandir(root) as entries:
        for entry in entries:
            name = entry.name
            if name.startswith(".") or not name.endswith(_SUFFIXES):
                continue
            stem = name[:-4]
            if stem in seen:
                continue
            seen.add(stem)
            for suffix in _SUFFIXES:
                yield os.path.join(root, stem + suffix)


def warmSiblings(path: str) -> None:
    """
    Ask the kernel once for the other name a lookup asks for beside the
    file at C{path} (its C{.ics} for a C{.vfb}, and the other way round):
    for a file published for the first time since the server started,
    from the thread that published it, so that its first lookup finds both
    names cached.
    """
    folder, name = os.path.split(path)
    if name.startswith(".") or not name.endswith(_SUFFIXES):
        return
    for suffix in _SUFFIXES:
        if not name.endswith(suffix):
            try:
                os.lstat(os.path.join(folder, name[:-4] + suffix))
            except OSError:
                pass


def warm(root: str) -> int:
    """
    Ask the kernel once for every name of L{namesToWarm}.

    @return: How many names were asked for.
    """
    count = 0
    for path in namesToWarm(root):
        try:
            os.lstat(path)
        except OSError:
            pass  # Not there: now a name the kernel knows is not there.
        count += 1
    return count


def main(argv=None) -> int:
    """
    C{python -m fbtwist.store.warmnames ROOT}: warm the names of C{ROOT} at
    the lowest CPU priority; prints how many names, in how long.
    """
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m fbtwist.store.warmnames ROOT", file=sys.stderr)
        return 2
    try:
        os.nice(19)
    except OSError:
        pass
    started = time.monotonic()
    try:
        count = warm(argv[0])
    except OSError as e:
        print(f"cannot list {argv[0]}: {e.strerror}", file=sys.stderr)
        return 1
    print(f"{count} {time.monotonic() - started:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
