"""
The one bounded map fbtwist keeps things in: L{LRUCache}.

Parsed files, answers, resolved lookup names, recent binds, file contents
and failed-login counts all live in one of these, so eviction, expiry and
their tests are written once.  Ours rather than C{cachetools}: what is
needed (per-entry expiry, a size in bytes, an injectable clock, eviction of
the oldest entry on demand) is some forty lines, and the lookups' hot path
gains nothing from a dependency.
"""

from collections import OrderedDict
from typing import Callable, Hashable, Iterator, Optional, Tuple


class LRUCache:
    """
    A map holding at most C{maxSize} (in entries, or in the units of
    C{weigh}), dropping the least recently used entries first; an entry
    may expire at a time of C{clock}.

    @ivar maxSize: The most the cache holds.
    """

    def __init__(self, maxSize: int, weigh: Optional[Callable[[object], int]] = None,
                 clock: Optional[Callable[[], float]] = None):
        """
        @param weigh: The size of a value (its length in bytes, say); by
            default each entry counts 1.  A value larger than C{maxSize} is
            not kept.
        @param clock: What time it is, for entries put with C{expires}.
        """
        self.maxSize = maxSize
        self._weigh = weigh
        self._clock = clock
        self._size = 0
        # key -> (value, expires or None, weight); least recently used first.
        self._entries: "OrderedDict[Hashable, Tuple[object, Optional[float], int]]" = OrderedDict()

    def get(self, key: Hashable, default=None):
        """
        @return: The value of C{key} (now the most recently used), or
            C{default} when there is none or it has expired.
        """
        entry = self._entries.get(key)
        if entry is None:
            return default
        if entry[1] is not None and entry[1] <= self._clock():
            self.pop(key)
            return default
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: Hashable, value, expires: Optional[float] = None) -> None:
        """
        Keep C{value} for C{key} (replacing any), until the time C{expires}
        when given; drop the least recently used entries beyond C{maxSize}.
        """
        self.pop(key)
        weight = 1 if self._weigh is None else self._weigh(value)
        if weight > self.maxSize:
            return
        self._entries[key] = (value, expires, weight)
        self._size += weight
        while self._size > self.maxSize:
            self.popOldest()

    def pop(self, key: Hashable, default=None):
        """
        Forget C{key}.

        @return: Its value (expired or not), or C{default}.
        """
        entry = self._entries.pop(key, None)
        if entry is None:
            return default
        self._size -= entry[2]
        return entry[0]

    def popOldest(self) -> Tuple[Hashable, object]:
        """
        Drop the least recently used entry.

        @return: Its key and value.
        @raise KeyError: When the cache is empty.
        """
        key, (value, _, weight) = self._entries.popitem(last=False)
        self._size -= weight
        return key, value

    def __contains__(self, key: Hashable) -> bool:
        """
        Whether C{key} has an entry, expired or not (its use is not changed).
        """
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self._entries)

    @property
    def size(self) -> int:
        """
        The total size of the entries (their number without C{weigh}).
        """
        return self._size
