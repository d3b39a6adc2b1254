"""
Brute-force protection for logins: after too many failed logins for one
login name, or from one client address, within a window, further attempts
are refused for a while — whether or not the login exists, and whether or
not the password would have been right.
"""

from collections import OrderedDict, deque
from typing import Deque, Optional

from twisted.logger import Logger

from fbtwist.errors import TooManyAttempts

#: How many login names and addresses are tracked at most; the least
#: recently failed are forgotten first, so a flood of made-up names cannot
#: exhaust memory.
MAX_TRACKED = 10000


class _Counter:
    """
    Failure times of one login name or address, and when its lockout ends.
    """

    __slots__ = ("failures", "lockedUntil")

    def __init__(self):
        self.failures: Deque[float] = deque()
        self.lockedUntil = 0.0


class LoginThrottle:
    """
    Counts failed logins per login name and per client address.

    @param clock: An L{IReactorTime}.
    @param maxFailures: Failures for one login name within C{window} that
        lock it out; 0 switches the per-name limit off.
    @param maxFailuresPerAddress: Failures from one address within
        C{window} that lock it out (higher than C{maxFailures}: an office
        behind one NAT address shares it); 0 switches it off.
    @param window: Seconds over which failures are counted.
    @param lockout: Seconds a locked-out name or address is refused.
    """

    log = Logger()

    def __init__(self, clock, maxFailures: int = 5, maxFailuresPerAddress: int = 20,
                 window: float = 300.0, lockout: float = 300.0, maxTracked: int = MAX_TRACKED):
        self.clock = clock
        self.maxFailures = maxFailures
        self.maxFailuresPerAddress = maxFailuresPerAddress
        self.window = window
        self.lockout = lockout
        self.maxTracked = maxTracked
        self._counters: "OrderedDict[tuple, _Counter]" = OrderedDict()

    @staticmethod
    def _keys(login: str, peer: Optional[str]):
        keys = [("login", login.casefold())]
        if peer:
            keys.append(("peer", peer))
        return keys

    def _limit(self, key) -> int:
        return self.maxFailures if key[0] == "login" else self.maxFailuresPerAddress

    def check(self, login: str, peer: Optional[str]) -> None:
        """
        Refuse an attempt while the login name or the address is locked
        out.

        @raise TooManyAttempts: When it is.
        """
        now = self.clock.seconds()
        for key in self._keys(login, peer):
            counter = self._counters.get(key)
            if counter is not None and counter.lockedUntil > now:
                self.log.warn(
                    "login attempt refused: too many failures for {login!r} or from {peer}",
                    fbEvent="login-throttled",
                    login=login,
                    peer=peer,
                )
                raise TooManyAttempts()

    def failed(self, login: str, peer: Optional[str]) -> None:
        """
        Count a failed login; lock out a name or address that reached its
        limit.
        """
        now = self.clock.seconds()
        for key in self._keys(login, peer):
            limit = self._limit(key)
            if limit <= 0:
                continue
            counter = self._counters.pop(key, None) or _Counter()
            self._counters[key] = counter
            failures = counter.failures
            failures.append(now)
            while failures and failures[0] <= now - self.window:
                failures.popleft()
            while len(failures) > limit:
                failures.popleft()
            if len(failures) >= limit:
                counter.lockedUntil = now + self.lockout
                failures.clear()
                self.log.warn(
                    "{kind} {value!r} locked out for {lockout:g}s after {limit} failed logins",
                    kind=key[0], value=key[1], lockout=self.lockout, limit=limit,
                )
        while len(self._counters) > self.maxTracked:
            self._counters.popitem(last=False)

    def succeeded(self, login: str) -> None:
        """
        Forget the failures of a login name after a successful login (not
        those of the address: an attacker could otherwise reset its own
        count by logging in to an account of its own now and then).
        """
        self._counters.pop(("login", login.casefold()), None)
