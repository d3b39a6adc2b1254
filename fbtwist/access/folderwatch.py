"""
Values computed from the per-user files of a hidden folder of the tree
(users' visibility choices, their calendar feeds), remembered while the
folder is unchanged: L{FolderMemo}, on the folder's version that
L{fbtwist.store.watch.FolderWatch} gives (which says why that is sound).
"""

import os
from typing import Callable, Hashable, Optional

from fbtwist.cache import LRUCache
from fbtwist.store.watch import MISSING, FolderWatch, ReactorTurns

__all__ = ["MISSING", "FolderMemo", "FolderWatch", "ReactorTurns"]


class FolderMemo:
    """
    Values computed from the files of one folder, each remembered while the
    folder is unchanged (L{FolderWatch}), and computed afresh, every time,
    while it has just changed.

    Given C{fileOf} (the name of a key's file in the folder) and C{absent}
    (the value of a key without a file), a key whose file is not in the
    folder gets C{absent} without C{compute}: the folder's names are listed
    once per version (a folder of at most C{maxListed} names; a larger one
    is not listed), and a missing folder has none.  Most people have no
    file of their own there, and no cache of values can hold every one of
    a million users: this way a lookup of any of them costs no look at a
    file of theirs.

    @param folder: Gives the folder's path (asked once, when first needed).
    @param compute: Computes the value for a key from the files.
    @param size: The most values remembered.
    @param clock: The wall clock, for the watch.
    @param fileOf: The name of a key's file in the folder (C{None} for a key
        that can have none); a name that could not be a file's is simply
        not found among the folder's names.
    @param absent: The value of a key without a file (what C{compute} gives
        then).
    @param turns: The reactor's L{ReactorTurns}: the folder is looked at
        once per turn (L{FolderWatch}); a key this process L{forget}s is
        computed afresh within the turn all the same.
    """

    def __init__(self, folder: Callable[[], str], compute: Callable[[Hashable], object], size: int = 200_000,
                 clock: Optional[Callable[[], float]] = None,
                 fileOf: Optional[Callable[[Hashable], Optional[str]]] = None, absent=None,
                 maxListed: int = 50_000, turns: Optional[ReactorTurns] = None):
        self._folder = folder
        self._turns = turns
        self._compute = compute
        self._size = size
        self._clock = clock
        self._fileOf = fileOf
        self._absent = absent
        self._maxListed = maxListed
        self._watch = None
        self._seenVersion = None
        self._values = LRUCache(size)
        #: The folder's names at C{_seenVersion}: a set, C{None} before they
        #: are listed, C{False} when they are not (too many, unreadable).
        self._names = None

    def _watched(self) -> FolderWatch:
        if self._watch is None:
            self._watch = FolderWatch(self._folder(), turns=self._turns,
                                      **({} if self._clock is None else {"clock": self._clock}))
        return self._watch

    def folderVersion(self) -> Optional[Hashable]:
        """
        The folder's version now (L{FolderWatch.version}), which changes
        whenever a value may: C{None} when that cannot be promised.
        """
        return self._watched().version()

    def get(self, key: Hashable):
        # The folder first, then the files: a change between the two shows
        # in the folder's next version.
        version = self._watched().version()
        if version is None:
            return self._compute(key)
        if version != self._seenVersion:
            self._values = LRUCache(self._size)
            self._seenVersion = version
            self._names = None
        known = self._values.get(key)
        if known is None:
            if self._fileOf is not None and not self._mayHaveFile(key, version):
                # Not kept: the names tell at once, and the values kept
                # are those of keys with files.
                return self._absent
            known = (self._compute(key),)
            self._values.put(key, known)
        return known[0]

    def _mayHaveFile(self, key: Hashable, version) -> bool:
        name = self._fileOf(key)
        if name is None or version == MISSING:
            return False
        names = self._names
        if names is None:
            names = self._names = self._listed()
        return names is False or name in names

    def _listed(self):
        names = set()
        try:
            with os.scandir(self._watch.path) as entries:
                for entry in entries:
                    if len(names) >= self._maxListed:
                        return False
                    names.add(entry.name)
        except OSError:
            return False
        return names

    def forget(self, key: Hashable) -> None:
        """
        Compute C{key}'s value afresh next time (this process changed its
        files).
        """
        self._values.pop(key)
        # Its file may be new: list the folder again when next asked, and
        # look at the folder again (it may be new too), even within this
        # turn of the reactor.
        self._names = None
        if self._watch is not None:
            self._watch.lookAgain()
