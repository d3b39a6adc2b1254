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

from twisted.python import threadable

#: The folder does not exist (yet): a version of its own.
MISSING = ("missing",)


class ReactorTurns:
    """
    Numbers the turns of a reactor, so that a folder's version can be read
    once per turn (L{FolderWatch}'s C{turns}) instead of once per request:
    with many requests a turn (a loaded server reads twenty lookups or more
    from one poll) each would otherwise C{stat} the same folders.

    Why that is sound: the requests of one turn arrived together, and are
    answered together; one look at the folders for all of them is the same
    as if they had arrived a moment earlier, all at once.  A change this
    process makes within the turn is not left to the folder's version: the
    stores that make them forget what they changed
    (L{fbtwist.access.folderwatch.FolderMemo.forget}).  Another process's or
    node's change is seen from the next turn on, as it would be by the next
    request.

    A turn ends when the reactor runs what was scheduled for now: the
    first question of a turn schedules its end (one C{callLater(0)} a
    turn, not one a request).  Outside the reactor's thread there are no
    turns (L{current} is C{None}): each question is asked afresh.

    @param reactor: The reactor (an L{twisted.internet.interfaces.IReactorTime}).
    @param inReactorThread: Tells whether the caller runs in the reactor's
        thread.
    """

    def __init__(self, reactor, inReactorThread: Callable[[], bool] = threadable.isInIOThread):
        self._reactor = reactor
        self._inReactorThread = inReactorThread
        self._turn = 0
        self._ending = None

    def current(self) -> Optional[int]:
        """
        @return: This turn's number, or C{None} outside the reactor's
            thread.
        """
        if not self._inReactorThread():
            return None
        if self._ending is None:
            self._ending = self._reactor.callLater(0, self._ended)
        return self._turn

    def _ended(self) -> None:
        self._ending = None
        self._turn += 1


class FolderWatch:
    """
    One folder's version (see the module).

    @param path: The folder's path.
    @param margin: Seconds a folder's time must lie in the past before its
        version is trusted.
    @param clock: The wall clock (the filesystem's times are wall-clock
        times).
    @param turns: With a L{ReactorTurns}, the folder is looked at once per
        turn of the reactor (see there); without, at every question.
    """

    def __init__(self, path: str, margin: float = 2.0, clock: Callable[[], float] = time.time,
                 turns: Optional[ReactorTurns] = None):
        self.path = path
        self.margin = margin
        self.clock = clock
        self.turns = turns
        #: Until when (by C{clock}) the folder's version cannot be trusted
        #: in any case: a folder changed again before then is as recent.
        self._recentUntil = 0.0
        #: The turn the folder was last looked at in, and what it said.
        self._seenIn = (None, None)

    def version(self) -> Optional[Hashable]:
        """
        @return: A value that changes whenever an entry of the folder is
            added, removed or replaced, or C{None} when that cannot be
            promised now (the folder changed in the last C{margin} seconds,
            or cannot be read): then look at the files themselves.  Once
            per turn of the reactor with C{turns}: then what the turn's
            first question found.
        """
        turns = self.turns
        if turns is None:
            return self._lookNow()
        turn = turns.current()
        seenIn = self._seenIn
        if turn is not None and seenIn[0] == turn:
            return seenIn[1]
        found = self._lookNow()
        if turn is not None:
            self._seenIn = (turn, found)
        return found

    def lookAgain(self) -> None:
        """
        Look at the folder at the next question, even within this turn
        (this process changed it).
        """
        self._seenIn = (None, None)

    def _lookNow(self) -> Optional[Hashable]:
        # The folder itself, now (see version).
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
