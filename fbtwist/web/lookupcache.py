"""
The cache of lookup names already resolved in the directory (L{NameCache});
parsed files and answers are kept in plain L{fbtwist.cache.LRUCache}s.
"""

import time
from typing import Callable, Optional, Tuple

from fbtwist.cache import LRUCache


class NameCache:
    """
    Lookup names already resolved in the directory, for a while: Outlook
    asks for the same colleagues' files again and again, and without a cache
    every lookup waits for a directory search (the profile's largest part of
    a lookup).

    A name that resolved to a uid is kept for C{ttl} seconds, one that
    resolved to nobody for C{negativeTTL}; at most C{size} names are kept
    (the least recently used go first).  Directory outages are not cached.
    """

    def __init__(self, ttl: float = 60.0, negativeTTL: float = 10.0, size: int = 200_000,
                 clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self.negativeTTL = negativeTTL
        self.size = size
        self.clock = clock
        # name -> (uid,): a tuple, so that "nobody" is not a miss.
        self._entries = LRUCache(size, clock=clock)
        #: How many times a name was given a uid (L{put}): while it stays
        #: the same, a name L{get} gave no uid has none.
        self.learned = 0

    def get(self, name: str) -> Tuple[bool, Optional[str]]:
        """
        @return: C{(True, uid)} (C{uid} may be C{None}: nobody) when C{name}
            is cached and fresh, else C{(False, None)}.
        """
        entry = self._entries.get(name.lower())
        if entry is None:
            return False, None
        return True, entry[0]

    def put(self, name: str, uid: Optional[str]) -> None:
        if uid is not None:
            self.learned += 1
        expires = self.clock() + (self.ttl if uid is not None else self.negativeTTL)
        self._entries.put(name.lower(), (uid,), expires)
