"""
Giving the memory of a large, short-lived build back to the operating
system.
"""

import ctypes

from fbtwist.compat.libc import cFunction

#: glibc's C{malloc_trim}, or C{None} (another C library: musl has none).
_trim = cFunction("malloc_trim", (ctypes.c_size_t,))


def releaseFreeMemory() -> bool:
    """
    Return the C heap's free memory to the operating system, where the C
    library allows it (glibc's C{malloc_trim}).

    Loading a million users' names allocates a few hundred MB for seconds
    (the tables of the build, the file's parts before they are written);
    once freed, glibc keeps most of it in the process (freed blocks of
    the heap of the thread that built the file, and large blocks under its
    raised mmap threshold) for allocations that never come: the process
    would hold the memory of a second copy of the index for its life.

    @return: Whether memory was released.
    """
    if _trim is None:
        return False
    return bool(_trim(0))
