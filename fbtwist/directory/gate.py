"""
How many requests fbtwist has at the directory at once: a bounded number
per kind of operation (searches, binds), the others waiting in fbtwist, first
come first served, in a queue of bounded length and for a bounded time.

A directory given a hundred searches at once answers each of them late,
and late answers looked like an outage; given a few at a time it answers
each one quickly.  The time a request waits here is not the directory's:
its C{--ldap-timeout} starts when it is sent.  A request that finds the
queue full, or waits longer than allowed, fails with L{DirectoryBusy} (a
503 for the client) without marking the directory down.
"""

from collections import deque
from typing import Deque, Dict

from twisted.internet import defer

from fbtwist.errors import DirectoryUnavailable


class DirectoryBusy(DirectoryUnavailable):
    """
    The directory is busy; try again shortly.
    """


class _Kind:
    """
    The slots and waiters of one kind of operation.
    """

    def __init__(self, limit: int):
        self.limit = limit
        self.active = 0
        self.waiting: Deque[defer.Deferred] = deque()


class DirectoryGate:
    """
    Lets at most C{limits[kind]} operations of each kind run at once; the
    others wait in order of arrival.  Each kind has slots of its own, so a
    flood of searches never holds up binds, nor binds searches.

    @param limits: Concurrent operations allowed, by kind.
    @param queueSize: Operations allowed to wait, all kinds together; one
        more fails at once with L{DirectoryBusy}.
    @param queueTimeout: Seconds an operation may wait for a slot before
        failing with L{DirectoryBusy}.
    @param clock: Times the waits.
    """

    def __init__(self, limits: Dict[str, int], queueSize: int, queueTimeout: float, clock):
        self._kinds = {kind: _Kind(limit) for kind, limit in limits.items()}
        self.queueSize = queueSize
        self.queueTimeout = queueTimeout
        self.clock = clock

    def waiting(self) -> int:
        """
        @return: How many operations wait for a slot.
        """
        return sum(len(k.waiting) for k in self._kinds.values())

    def active(self, kind: str) -> int:
        """
        @return: How many operations of C{kind} hold a slot.
        """
        return self._kinds[kind].active

    def acquire(self, kind: str) -> defer.Deferred:
        """
        @return: A Deferred firing once a slot of C{kind} is held (give it
            back with L{release}), or failing with L{DirectoryBusy}.
        """
        slots = self._kinds[kind]
        if slots.active < slots.limit and not slots.waiting:
            slots.active += 1
            return defer.succeed(None)
        if self.waiting() >= self.queueSize:
            return defer.fail(DirectoryBusy("the directory is busy: too many requests are waiting for it"))

        def cancel(d):
            slots.waiting.remove(d)

        d = defer.Deferred(cancel)
        slots.waiting.append(d)
        timer = self.clock.callLater(self.queueTimeout, self._expire, slots, d)
        d.addBoth(_cancelTimer, timer)
        return d

    def _expire(self, slots: _Kind, d: defer.Deferred) -> None:
        slots.waiting.remove(d)
        d.errback(DirectoryBusy(f"the directory is busy: no answer slot within {self.queueTimeout:g}s"))

    def release(self, kind: str) -> None:
        """
        Give back a slot of C{kind}: the next waiter (if any) takes it.
        """
        slots = self._kinds[kind]
        if slots.waiting:
            slots.waiting.popleft().callback(None)
        else:
            slots.active -= 1

    def slot(self, kind: str) -> "_Slot":
        """
        @return: An asynchronous context manager holding a slot of C{kind}
            for the length of its block.
        """
        return _Slot(self, kind)


def _cancelTimer(result, timer):
    if timer.active():
        timer.cancel()
    return result


class _Slot:
    def __init__(self, gate: DirectoryGate, kind: str):
        self.gate = gate
        self.kind = kind

    async def __aenter__(self):
        await self.gate.acquire(self.kind)

    async def __aexit__(self, *exc):
        self.gate.release(self.kind)
        return False
