"""
Whether anything in one folder of the tree may have changed, at the cost of
one C{stat} of the folder (L{FolderWatch}): what lets the per-user files of
a hidden folder (users' visibility choices, L{fbtwist.access.folderwatch})
and the names of the lock index (L{fbtwist.store.locks}) be read once and
then remembered while the folder stays as it was, instead of one C{stat}
per file per request.

Why the folder's version is enough:

  - The server writes these files only atomically (a temporary file in the
    folder, then renamed over the old one; L{fbtwist.store.files.atomicWrite},
    and Twisted's C{FilePath.setContent} alike), or creates them, and
    removes them by unlinking: each of these changes the folder's entries, which sets the
    folder's modification time (POSIX, for every local
    filesystem and for NFS, where the server sets them).  Every server
    sharing the tree sees the same folder, so a change made by another node
    is seen as soon as this node's C{stat} of the folder shows it (on NFS,
    after its attribute cache, as for any file of the tree).  A file
    rewritten in place, by hand, is not seen: change them with the server's
    tools, or touch the folder afterwards.
  - Times have a granularity (a clock tick of the kernel, a second on some
    filesystems), so two changes within one tick may leave the folder's
    time as it was after the first.  A version is therefore trusted only
    once the folder's time is at least C{margin} seconds in the past (by
    this machine's clock, which covers small clock differences between
    nodes and the server): a later change must then give a later time.
    Until then (a folder changed in the last moments) L{FolderWatch.version}
    says C{None}, without asking again before that time, and callers look
    at each file, as without the watch.
"""

import os
import time
from typing import Callable, Hashable, Optional

#: The folder does not exist (yet): a version of its own.
MISSING = ("missing",)


class FolderWatch:
    """
    One folder's version (see the module).

    @param path: The folder's path.
    @param margin: Seconds a folder's time must lie in the past before its
        version is trusted.
    @param clock: The wall clock (the filesystem's times are wall-clock
        times).
    """

    def __init__(self, path: str, margin: float = 2.0, clock: Callable[[], float] = time.time):
        self.path = path
        self.margin = margin
        self.clock = clock
        #: Until when (by C{clock}) the folder's version cannot be trusted
        #: in any case: a folder changed again before then is as recent.
        self._recentUntil = 0.0

    def version(self) -> Optional[Hashable]:
        """
        @return: A value that changes whenever an entry of the folder is
            added, removed or replaced, or C{None} when that cannot be
            promised now (the folder changed in the last C{margin} seconds,
            or cannot be read): then look at the files themselves.
        """
        if self.clock() < self._recentUntil:
            return None
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return MISSING
        except OSError:
            return None
        if self.clock() - st.st_mtime < self.margin:
            self._recentUntil = st.st_mtime + self.margin
            return None
        return (st.st_dev, st.st_ino, st.st_mtime_ns)
