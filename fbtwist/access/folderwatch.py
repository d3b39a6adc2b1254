"""
Values computed from the per-user files of a hidden folder of the tree
(users' visibility choices, their calendar feeds), remembered while the
folder is unchanged: L{FolderMemo}, on the folder's version that
L{fbtwist.store.watch.FolderWatch} gives (which says why that is sound).
"""

from typing import Callable, Hashable, Optional

from fbtwist.cache import LRUCache
from fbtwist.store.watch import MISSING, FolderWatch

__all__ = ["MISSING", "FolderMemo", "FolderWatch"]


class FolderMemo:
    """
    Values computed from the files of one folder, each remembered while the
    folder is unchanged (L{FolderWatch}), and computed afresh, every time,
    while it has just changed.

    @param folder: Gives the folder's path (asked once, when first needed).
    @param compute: Computes the value for a key from the files.
    @param size: The most values remembered.
    @param clock: The wall clock, for the watch.
    """

    def __init__(self, folder: Callable[[], str], compute: Callable[[Hashable], object], size: int = 200_000,
                 clock: Optional[Callable[[], float]] = None):
        self._folder = folder
        self._compute = compute
        self._size = size
        self._clock = clock
        self._watch = None
        self._seenVersion = None
        self._values = LRUCache(size)

    def get(self, key: Hashable):
        if self._watch is None:
            self._watch = FolderWatch(self._folder(), **({} if self._clock is None else {"clock": self._clock}))
        # The folder first, then the files: a change between the two shows
        # in the folder's next version.
        version = self._watch.version()
        if version is None:
            return self._compute(key)
        if version != self._seenVersion:
            self._values = LRUCache(self._size)
            self._seenVersion = version
        known = self._values.get(key)
        if known is None:
            known = (self._compute(key),)
            self._values.put(key, known)
        return known[0]

    def forget(self, key: Hashable) -> None:
        """
        Compute C{key}'s value afresh next time (this process changed its
        files).
        """
        self._values.pop(key)
