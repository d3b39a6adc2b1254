"""
Brute-force protection for logins: after too many failed logins for one
login name, for one directory entry, or from one client address, within a
window, further attempts are refused for a while — whether or not the login
exists, and whether or not the password would have been right.

Login names are counted the way the directory matches them (L{loginKey}),
so that C{" alice"}, C{"ALICE"} and C{"alice "} share one count; and once
the directory has said which entry a login names, the failure counts for
that entry too, so that one account's other names (its mail address, an
Active Directory form of its login) share its count.
"""

import math
import stringprep
import unicodedata
from collections import OrderedDict, deque
from typing import Iterator, Optional, Tuple

from twisted.logger import Logger

from fbtwist.cache import LRUCache
from fbtwist.errors import TooManyAttempts

#: How many login names, entries and addresses are tracked at most.  Names
#: still counting failures are forgotten least recently failed first when
#: room is needed; active lockouts are never forgotten.
MAX_TRACKED = 10000

# RFC 4518 section 2.2: what LDAP string preparation maps to a space and
# to nothing (besides the Zs/Zl/Zp and Cc/Cf categories).
_TO_SPACE = frozenset("\t\n\v\f\r\x85")
_TO_NOTHING = frozenset("\u00ad\u1806\u034f\u180b\u180c\u180d\ufffc\u200b") | frozenset(
    map(chr, range(0xFE00, 0xFE10))
)


def loginKey(login: str) -> str:
    """
    The form of C{login} under which failures are counted: equal for every
    two logins the directory's C{caseIgnoreMatch} takes for the same value.

    LDAP string preparation (RFC 4518) is applied: control and formatting
    characters dropped, every kind of space mapped to a plain one, case
    folded, NFKC normalised, and leading, trailing and repeated spaces made
    insignificant.  It folds a little more than a directory may (Python's
    full case folding on top): logins that differ only there share a count,
    which errs on the safe side.
    """
    if login.isascii() and login.isprintable():
        # Printable ASCII (nearly every login): no control or formatting
        # characters, no space but the plain one, NFKC leaves it as it is
        # and case folding is lowering: what L{preparedKey} gives, without
        # its work per character (every login pays this, some twice).
        return " ".join(login.lower().split())
    return preparedKey(login)


def preparedKey(login: str) -> str:
    """
    L{loginKey} for any text, by the full preparation.
    """
    mapped = []
    for c in login:
        category = unicodedata.category(c)
        if c in _TO_SPACE or category in ("Zs", "Zl", "Zp"):
            mapped.append(" ")
        elif c in _TO_NOTHING or category in ("Cc", "Cf"):
            continue
        else:
            mapped.append(stringprep.map_table_b2(c))
    text = unicodedata.normalize("NFKC", "".join(mapped))
    text = unicodedata.normalize("NFKC", text.casefold())
    return " ".join(text.split())


def _waitText(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, math.ceil(seconds))} seconds"
    return f"{math.ceil(seconds / 60)} minutes"


class LoginThrottle:
    """
    Counts failed logins per login name (as L{loginKey} gives it), per
    directory entry and per client address.

    The number of names, entries and addresses tracked is bounded by
    C{maxTracked}.  To make room, those still counting (not locked out)
    are forgotten, least recently failed first; a lockout never is.  When
    every place is held by an active lockout, a login or address that is
    not tracked yet is refused as if it were locked out, until the first
    lockout ends: its failures could not be counted, and forgetting a
    lockout instead would let a flood of failures from many addresses lift
    a victim's.

    @param clock: An L{twisted.internet.interfaces.IReactorTime}.
    @param maxFailures: Failures for one login name, or one directory
        entry, within C{window} that lock it out; 0 switches these limits
        off.
    @param maxFailuresPerAddress: Failures from one address within
        C{window} that lock it out (higher than C{maxFailures}: an office
        behind one NAT address shares it); 0 switches it off.
    @param window: Seconds over which failures are counted.
    @param lockout: Seconds a locked-out name, entry or address is refused.
    @param maxTracked: Names, entries and addresses tracked at most.
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
        # Failure times of keys not locked out, least recently failed first
        # (bounded with the lockouts, below maxTracked in all).
        self._counting = LRUCache(maxTracked)
        # When each lockout ends, in the order they were imposed (which is
        # the order they end in: they all last C{lockout}): a queue that
        # expires from its front, not a cache.
        self._lockedUntil: "OrderedDict[tuple, float]" = OrderedDict()

    def __len__(self) -> int:
        """
        How many names, entries and addresses are tracked.
        """
        return len(self._counting) + len(self._lockedUntil)

    def _keys(self, login: Optional[str], peer: Optional[str], uid: Optional[str] = None) -> Iterator[Tuple[str, str]]:
        if login is not None and self.maxFailures > 0:
            yield ("login", loginKey(login))
        if uid is not None and self.maxFailures > 0:
            yield ("entry", loginKey(uid))
        if peer and self.maxFailuresPerAddress > 0:
            yield ("peer", peer)

    def _limit(self, key) -> int:
        return self.maxFailuresPerAddress if key[0] == "peer" else self.maxFailures

    def _expire(self, now: float) -> None:
        locked = self._lockedUntil
        while locked:
            key, until = next(iter(locked.items()))
            if until > now:
                break
            del locked[key]

    def _full(self) -> bool:
        return len(self._lockedUntil) >= self.maxTracked

    def _refuse(self, login, peer, retryAfter: float, why: str):
        self.log.warn(
            "login attempt refused: {why} for {login!r} or from {peer}",
            fbEvent="login-throttled",
            login=login,
            peer=peer,
            why=why,
            retryAfter=retryAfter,
        )
        return TooManyAttempts(f"Too many failed logins: try again in {_waitText(retryAfter)}.", retryAfter)

    def _refusal(self, login: Optional[str], peer: Optional[str], uid: Optional[str]) -> Optional[tuple]:
        if not self._lockedUntil:
            # Nothing locked out (nearly always): nothing refuses, and the
            # places are not all held.
            return None
        now = self.clock.seconds()
        self._expire(now)
        keys = list(self._keys(login, peer, uid))
        ends = [self._lockedUntil[key] for key in keys if key in self._lockedUntil]
        if ends:
            return login if uid is None else uid, peer, max(ends) - now, "too many failures"
        if self._full() and any(key not in self._counting for key in keys):
            firstEnd = next(iter(self._lockedUntil.values()))
            return login, peer, firstEnd - now, "every throttle place is held by a lockout"
        return None

    def _check(self, login: Optional[str], peer: Optional[str], uid: Optional[str]) -> None:
        refusal = self._refusal(login, peer, uid)
        if refusal is not None:
            raise self._refuse(*refusal)

    def refuses(self, login: Optional[str], peer: Optional[str], uid: Optional[str] = None) -> bool:
        """
        Whether L{check} (or L{checkEntry}, for C{uid}) would refuse now,
        asked without logging or counting anything.
        """
        return self._refusal(login, peer, uid) is not None

    def check(self, login: str, peer: Optional[str]) -> None:
        """
        Refuse an attempt while the login name or the address is locked
        out (or while they cannot be tracked: see the class description).

        @raise TooManyAttempts: When it is, with C{retryAfter} the seconds
            until the attempt would no longer be refused.
        """
        self._check(login, peer, None)

    def checkEntry(self, uid: str) -> None:
        """
        Refuse an attempt for the directory entry C{uid} while it is locked
        out.  Call it once the directory has named the entry, whether the
        password was right or not, so that the answer does not tell.

        @raise TooManyAttempts: When it is.
        """
        self._check(None, None, uid)

    def failed(self, login: str, peer: Optional[str], uid: Optional[str] = None) -> None:
        """
        Count a failed login, also for the directory entry C{uid} when the
        directory named one; lock out a name, entry or address that reached
        its limit.
        """
        now = self.clock.seconds()
        self._expire(now)
        for key in self._keys(login, peer, uid):
            if key in self._lockedUntil:
                continue
            failures = self._counting.pop(key, None)
            if failures is None:
                if len(self) >= self.maxTracked:
                    if not self._counting:
                        # Every place holds a lockout: check() refuses
                        # this key until one ends.
                        continue
                    self._counting.popOldest()
                failures = deque()
            failures.append(now)
            while failures and failures[0] <= now - self.window:
                failures.popleft()
            limit = self._limit(key)
            if len(failures) >= limit:
                self._lockedUntil[key] = now + self.lockout
                self.log.warn(
                    "{kind} {value!r} locked out for {lockout:g}s after {limit} failed logins",
                    kind=key[0], value=key[1], lockout=self.lockout, limit=limit,
                )
            else:
                self._counting.put(key, failures)

    def succeeded(self, login: str, uid: Optional[str] = None) -> None:
        """
        Forget the failures of a login name (and of its directory entry)
        after a successful login; not those of the address: an attacker
        could otherwise reset its own count by logging in to an account of
        its own now and then.
        """
        for key in self._keys(login, None, uid):
            self._counting.pop(key, None)
