"""
A floor under the time an answer takes, so that how long a refusal took
does not tell why it was refused: a failed login for a user who exists (a
directory bind was tried) and one for a login nobody has (no bind), or a
lookup for a member who never published (a file looked for) and one for a
name nobody has (a directory search).
"""

import random
from typing import Callable, Optional

from twisted.internet import defer
from twisted.internet.task import deferLater


class LatencyFloor:
    """
    Holds answers back until at least C{seconds} (plus up to C{jitter}
    seconds, at random) after their request arrived.

    An answer that took longer than the floor already is held back to the
    next doubling of it (C{2 * seconds}, C{4 * seconds}, ...), so that a
    slow directory leaks at most which of these steps the work ended in,
    not how long it took.

    @param clock: An L{twisted.internet.interfaces.IReactorTime}; its C{seconds()} is the time base of
        C{started}.
    @param seconds: The floor; 0 switches it off.
    @param jitter: Seconds of random delay added on top (default: half the
        floor).
    @param random: Returns a number in [0, 1) for the jitter (default: from
        the system's source of randomness).
    """

    def __init__(self, clock, seconds: float, jitter: Optional[float] = None,
                 random: Callable[[], float] = random.SystemRandom().random):
        self.clock = clock
        self.seconds = seconds
        self.jitter = seconds / 2 if jitter is None else jitter
        self.random = random

    def delay(self, started: float) -> float:
        """
        @return: How many seconds more an answer to a request that arrived
            at C{started} must wait.
        """
        if self.seconds <= 0:
            return 0.0
        elapsed = max(0.0, self.clock.seconds() - started)
        target = self.seconds
        while target <= elapsed:
            target *= 2
        return target - elapsed + self.jitter * self.random()

    def wait(self, started: float) -> defer.Deferred:
        """
        @return: A Deferred that fires once the floor for a request that
            arrived at C{started} has passed (at once when it is off).
        """
        delay = self.delay(started)
        if delay <= 0:
            return defer.succeed(None)
        return deferLater(self.clock, delay, lambda: None)
