"""
The credentials checker: logins and passwords checked against the
directory, for HTTP Basic and FTP alike, with a bind cache and brute-force
throttling in front of it.
"""

import hashlib
import hmac
import os
from typing import Optional

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from fbtwist.access.latency import LatencyFloor
from fbtwist.access.throttle import LoginThrottle
from fbtwist.cache import LRUCache
from fbtwist.errors import TooManyAttempts
from fbtwist.interfaces import IDirectory
from fbtwist.logs import logDebug


def credentialText(value) -> str:
    """
    Normalise a login or password to text.

    HTTP Basic hands over bytes; Twisted's FTP server hands over text decoded
    as latin-1.  Both are read as UTF-8 where they are valid UTF-8 (what
    current clients send) and as latin-1 otherwise.
    """
    if isinstance(value, str):
        try:
            value = value.encode("latin-1")
        except UnicodeEncodeError:
            return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


class BindCache:
    """
    Remembers successful binds for C{ttl} seconds, so that a client sending
    Basic credentials with every request does not cost a directory bind
    each time.

    Safer than Apache's C{mod_authnz_ldap} cache, which keeps the password
    itself: only a keyed hash of it is kept (keyed BLAKE2b under a random key
    per process, with a random salt per entry), the size is bounded (least
    recently used entries go first), and a password that does not match
    the remembered one is never answered from the cache: it goes to the
    directory, and when the directory accepts it, it replaces the old one.
    A password changed in the directory therefore stops working here at the
    latest C{ttl} seconds later.

    Not a slow hash such as scrypt: that cost 3-12 ms of CPU per publish,
    which made a publish answered from the cache slower than one asking the
    directory; its only gain is against someone holding a copy of this
    process's memory, who holds the key too, and every password in flight.

    @param clock: An L{twisted.internet.interfaces.IReactorTime}.
    """

    _processKey = os.urandom(32)
    #: How many salts' random bytes are asked of the kernel at once.
    SALTS_AT_ONCE = 256

    def __init__(self, clock, ttl: float = 300.0, maxSize: int = 1000):
        self.clock = clock
        self.ttl = ttl
        self.maxSize = maxSize
        self._entries = LRUCache(maxSize, clock=lambda: self.clock.seconds())
        self._salts, self._saltsUsed = b"", 0

    def _hash(self, password: str, salt: bytes) -> bytes:
        # Keyed BLAKE2b (a MAC, with the salt as its own parameter): one
        # call, a seventh of the CPU of an HMAC-SHA256, on every login the
        # cache answers.
        return hashlib.blake2b(password.encode("utf-8"), digest_size=32, key=self._processKey, salt=salt).digest()

    def get(self, login: str, password: str) -> Optional[str]:
        """
        @return: The uid remembered for C{login} if C{password} is the one
            it bound with less than C{ttl} seconds ago, else C{None}.
        """
        entry = self._entries.get(login)
        if entry is None:
            return None
        uid, salt, digest = entry
        if not hmac.compare_digest(digest, self._hash(password, salt)):
            return None
        return uid

    def put(self, login: str, password: str, uid: str) -> None:
        """
        Remember that C{login} bound as C{uid} with C{password}, replacing
        whatever was remembered for it.
        """
        salt = self._salt()
        self._entries.put(login, (uid, salt, self._hash(password, salt)), expires=self.clock.seconds() + self.ttl)

    def _salt(self) -> bytes:
        # Random bytes for SALTS_AT_ONCE salts from the kernel at once: each
        # first login puts one, and a system call in the reactor's thread
        # hands the interpreter to the store's threads until they give it back.
        if self._saltsUsed >= len(self._salts):
            self._salts, self._saltsUsed = os.urandom(16 * self.SALTS_AT_ONCE), 0
        start = self._saltsUsed
        self._saltsUsed += 16
        return self._salts[start:start + 16]

    def __len__(self) -> int:
        return len(self._entries)

    def held(self, login: str) -> Optional[tuple]:
        """
        What is remembered for C{login}, to show that no password is: C{(uid,
        salt, digest)}, the digest a keyed hash of the salted password under a
        key of this process; C{None} when nothing (or only an expired entry)
        is.
        """
        return self._entries.get(login)


@implementer(ICredentialsChecker)
class DirectoryChecker:
    """
    Checks L{IUsernamePassword} credentials with search-then-bind.

    Fails with L{UnauthorizedLogin} for bad credentials only; a directory
    that cannot answer fails with L{fbtwist.errors.DirectoryUnavailable},
    and a throttled login or address with L{fbtwist.errors.TooManyAttempts}
    (before the password is even looked at, so the answer says nothing
    about the account).  The client's address is read from the credentials'
    C{peer} attribute where the protocol set it.

    Once the directory has named the entry a login stands for, an entry
    locked out by failures under any of its names is refused too, with the
    same answer whether the password was right or not (the directory names
    the entry with L{fbtwist.errors.WrongPassword}).

    Failures are answered no sooner than C{failureFloor} allows, so that
    how long a failed login took does not tell whether the login exists.

    @param cache: A L{BindCache}, or C{None} for none.
    @param throttle: A L{LoginThrottle}, or C{None} for none.
    @param failureFloor: A L{LatencyFloor} for failed logins, or C{None}
        for none.
    @param loginForms: The directory's L{fbtwist.directory.loginforms.LoginForms}: the
        throttle counts every form of a login as one login.
    """

    credentialInterfaces = (IUsernamePassword,)
    log = Logger()

    def __init__(self, directory: IDirectory, cache: Optional[BindCache] = None,
                 throttle: Optional[LoginThrottle] = None, failureFloor: Optional[LatencyFloor] = None,
                 loginForms=None):
        self.directory = directory
        self.cache = cache
        self.throttle = throttle
        self.failureFloor = failureFloor
        self.loginForms = loginForms

    def requestAvatarId(self, credentials) -> defer.Deferred:
        known = self.cachedLogin(credentials)
        if known is not None:
            # What the coroutine below would conclude, without it.
            return defer.succeed(known.confirm())
        return defer.Deferred.fromCoroutine(self._requestAvatarId(credentials))

    def cachedLogin(self, credentials) -> Optional["CachedLogin"]:
        """
        The login of C{credentials} when it is known without waiting: the
        bind cache holds the login with this password, and neither the
        login, the client's address nor the directory entry is locked out
        (the checks L{requestAvatarId} makes, in its order).  Nothing is
        counted or logged yet: the caller confirms the login
        (L{CachedLogin.confirm}) once it acts on it.

        @return: A L{CachedLogin}, or C{None} when L{requestAvatarId} must
            be asked (not cached, malformed, throttled: it answers those).
        """
        if self.cache is None:
            return None
        login = credentialText(credentials.username)
        password = credentialText(credentials.password)
        if not login or not password or len(login) > 256 or len(password) > 1024 or "\x00" in login + password:
            return None
        throttled = self.loginForms.canonical(login) if self.loginForms is not None else login
        throttle = self.throttle
        if throttle is not None and throttle.refuses(throttled, getattr(credentials, "peer", None)):
            return None
        uid = self.cache.get(login, password)
        if uid is None or (throttle is not None and throttle.refuses(None, None, uid)):
            return None
        return CachedLogin(self, uid, throttled)

    def _cachedLoginConfirmed(self, uid: str, throttled: str) -> None:
        # What _requestAvatarId does for a login the cache answers.
        logDebug(self.log, "bind cache {hit}", fbEvent="bind-cache", hit=True)
        if self.throttle is not None:
            self.throttle.succeeded(throttled, uid)

    async def _requestAvatarId(self, credentials) -> str:
        login = credentialText(credentials.username)
        password = credentialText(credentials.password)
        peer = getattr(credentials, "peer", None)
        # DOMAIN\user and user@suffix are the same login as user.
        throttled = self.loginForms.canonical(login) if self.loginForms is not None else login
        if self.throttle is not None:
            self.throttle.check(throttled, peer)
        started = self.failureFloor.clock.seconds() if self.failureFloor is not None else 0.0
        try:
            if not login or not password:
                raise UnauthorizedLogin("empty login or password")
            if len(login) > 256 or len(password) > 1024 or "\x00" in login + password:
                raise UnauthorizedLogin("malformed credentials")
            uid = self.cache.get(login, password) if self.cache is not None else None
            if self.cache is not None:
                logDebug(self.log, "bind cache {hit}", fbEvent="bind-cache", hit=uid is not None)
            if uid is None:
                uid = await self.directory.authenticate(login, password)
                if self.cache is not None:
                    self.cache.put(login, password, uid)
            if self.throttle is not None:
                self.throttle.checkEntry(uid)
        except UnauthorizedLogin as e:
            self.log.info("login failed for {login!r} from {peer}: {reason}", login=login, peer=peer, reason=str(e))
            error = e
            if self.throttle is not None:
                error = self._countFailure(throttled, peer, e)
            await self._floor(started)
            raise error from None
        except TooManyAttempts:
            await self._floor(started)
            raise
        if self.throttle is not None:
            self.throttle.succeeded(throttled, uid)
        return uid

    def _countFailure(self, login: str, peer: Optional[str], error: UnauthorizedLogin) -> Exception:
        """
        Count a failed login, for the entry too when the directory named
        one (L{fbtwist.errors.WrongPassword}).

        @return: The error to answer with: C{error}, or L{TooManyAttempts}
            when the entry is locked out (as a right password would get).
        """
        uid = getattr(error, "uid", None)
        if uid is not None:
            try:
                self.throttle.checkEntry(uid)
            except TooManyAttempts as refused:
                return refused
        self.throttle.failed(login, peer, uid)
        return error

    async def _floor(self, started: float) -> None:
        if self.failureFloor is not None:
            await self.failureFloor.wait(started)


class CachedLogin:
    """
    A login L{DirectoryChecker.cachedLogin} found in the bind cache.

    @ivar uid: The avatar id it stands for.
    """

    def __init__(self, checker: DirectoryChecker, uid: str, throttled: str):
        self.uid = uid
        self._checker = checker
        self._throttled = throttled

    def confirm(self) -> str:
        """
        Count and log the login as L{DirectoryChecker.requestAvatarId} does
        for one the cache answers.

        @return: The uid.
        """
        self._checker._cachedLoginConfirmed(self.uid, self._throttled)
        return self.uid
