"""
The caches of anonymous lookups: names already resolved in the directory
(L{NameCache}), and a small least-recently-used map for parsed files.
"""

import time
from collections import OrderedDict
from typing import Callable, Optional, Tuple


class _Cache:
    """
    A small least-recently-used map, for parsed files keyed by their ETag.
    """

    def __init__(self, size: int = 256):
        self.size = size
        self._items: OrderedDict = OrderedDict()

    def get(self, key):
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key, value) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


class NameCache:
    """
    Lookup names already resolved in the directory, for a while: Outlook
    asks for the same colleagues' files again and again, and without a cache
    every lookup waits for a directory search (the profile's largest part of
    a lookup).

    A name that resolved to a uid is kept for C{ttl} seconds, one that
    resolved to nobody for C{negativeTTL}; at most C{size} names are kept
    (the oldest go first).  Directory outages are not cached.
    """

    def __init__(self, ttl: float = 60.0, negativeTTL: float = 10.0, size: int = 200_000,
                 clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self.negativeTTL = negativeTTL
        self.size = size
        self.clock = clock
        self._entries: "OrderedDict[str, Tuple[float, Optional[str]]]" = OrderedDict()

    def get(self, name: str) -> Tuple[bool, Optional[str]]:
        """
        @return: C{(True, uid)} (C{uid} may be C{None}: nobody) when C{name}
            is cached and fresh, else C{(False, None)}.
        """
        key = name.lower()
        entry = self._entries.get(key)
        if entry is None:
            return False, None
        expires, uid = entry
        if expires <= self.clock():
            del self._entries[key]
            return False, None
        return True, uid

    def put(self, name: str, uid: Optional[str]) -> None:
        key = name.lower()
        self._entries.pop(key, None)
        self._entries[key] = (self.clock() + (self.ttl if uid is not None else self.negativeTTL), uid)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
