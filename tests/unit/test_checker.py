"""
L{fbtwist.access.checker.DirectoryChecker}: the bind cache and brute-force
throttling rules, with a L{Clock} and a directory that records its calls.
"""

import os

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

import tests.helpers  # noqa: F401 (ldaptor's import-time warnings)
from fbtwist.access.checker import BindCache, DirectoryChecker, credentialText
from fbtwist.access.throttle import LoginThrottle
from fbtwist.errors import DirectoryUnavailable, TooManyAttempts
from fbtwist.interfaces import IDirectory


@implementer(IDirectory)
class RecordingDirectory:
    """
    A directory with fixed passwords that records every authenticate call.
    """

    def __init__(self, passwords):
        self.passwords = dict(passwords)
        self.calls = []
        self.down = False

    def authenticate(self, login, password):
        self.calls.append(login)
        if self.down:
            return defer.fail(DirectoryUnavailable())
        if self.passwords.get(login) == password and password:
            return defer.succeed(login)
        return defer.fail(UnauthorizedLogin())

    def resolveName(self, name):
        return defer.succeed(name if name in self.passwords else None)

    def isMember(self, uid, groupDN):
        return defer.succeed(False)


def creds(login, password, peer="192.0.2.1"):
    c = UsernamePassword(login.encode("utf-8"), password.encode("utf-8"))
    c.peer = peer
    return c


class CheckerTestMixin:
    def setUp(self):
        self.clock = Clock()
        self.directory = RecordingDirectory({"alice": "old-pw", "bob": "bob-pw"})
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def login(self, checker, login, password, peer="192.0.2.1"):
        return checker.requestAvatarId(creds(login, password, peer))

    def assertUid(self, checker, login, password, uid, peer="192.0.2.1"):
        self.assertEqual(self.successResultOf(self.login(checker, login, password, peer)), uid)

    def assertFails(self, checker, login, password, error=UnauthorizedLogin, peer="192.0.2.1"):
        self.failureResultOf(self.login(checker, login, password, peer), error)


class BindCacheTests(CheckerTestMixin, SynchronousTestCase):
    """
    A successful bind is remembered for the TTL, safely.
    """

    def checker(self, ttl=300, size=1000):
        return DirectoryChecker(self.directory, cache=BindCache(self.clock, ttl, size))

    def test_interface(self):
        """
        DirectoryChecker provides ICredentialsChecker.
        """
        self.assertTrue(verifyObject(ICredentialsChecker, self.checker()))

    def test_hit(self):
        """
        A second login with the same password within the TTL does not ask
        the directory; bind-cache events say miss then hit.
        """
        checker = self.checker()
        self.assertUid(checker, "alice", "old-pw", "alice")
        self.clock.advance(299)
        self.assertUid(checker, "alice", "old-pw", "alice")
        self.assertEqual(self.directory.calls, ["alice"])
        self.assertEqual([e["hit"] for e in self.events if e.get("fbEvent") == "bind-cache"], [False, True])

    def test_expires(self):
        """
        After the TTL the directory is asked again.
        """
        checker = self.checker()
        self.assertUid(checker, "alice", "old-pw", "alice")
        self.clock.advance(300)
        self.assertUid(checker, "alice", "old-pw", "alice")
        self.assertEqual(self.directory.calls, ["alice", "alice"])

    def test_otherPasswordGoesToDirectory(self):
        """
        A different password is never accepted from the cache: the directory
        decides, and says no.
        """
        checker = self.checker()
        self.assertUid(checker, "alice", "old-pw", "alice")
        self.assertFails(checker, "alice", "old-pw ")
        self.assertFails(checker, "alice", "")
        self.assertEqual(self.directory.calls, ["alice", "alice"])

    def test_changedPassword(self):
        """
        A password changed in the directory: the new one works at once and
        replaces the cached one; the old one stops working within the TTL.
        """
        checker = self.checker()
        self.assertUid(checker, "alice", "old-pw", "alice")
        self.directory.passwords["alice"] = "new-pw"
        self.clock.advance(100)
        self.assertUid(checker, "alice", "old-pw", "alice")  # cached, within the TTL
        self.clock.advance(200)
        self.assertFails(checker, "alice", "old-pw")
        self.assertUid(checker, "alice", "new-pw", "alice")

    def test_newPasswordReplacesOld(self):
        """
        Once the new password has bound, the old one is no longer cached.
        """
        checker = self.checker()
        self.assertUid(checker, "alice", "old-pw", "alice")
        self.directory.passwords["alice"] = "new-pw"
        self.assertUid(checker, "alice", "new-pw", "alice")
        self.assertFails(checker, "alice", "old-pw")

    def test_noPlainPassword(self):
        """
        The cache holds no password in plain text, nor the same hash for
        the same password twice.
        """
        cache = BindCache(self.clock)
        cache.put("alice", "old-pw", "alice")
        cache.put("bob", "old-pw", "bob")
        self.assertEqual(len(cache), 2)
        entries = {login: cache.held(login) for login in ("alice", "bob")}
        held = repr(entries)
        self.assertNotIn("old-pw", held)
        self.assertNotIn(b"old-pw".hex(), held)
        self.assertNotEqual(entries["alice"][2], entries["bob"][2])
        self.assertEqual(len(entries["alice"][2]), 32)

    def test_saltsRandomAndAskedAtOnce(self):
        """
        Every entry gets a salt of its own (16 random bytes), but the kernel
        is asked for random bytes once per SALTS_AT_ONCE entries, not once per
        entry.
        """
        asked = []

        def urandom(n):
            asked.append(n)
            return realURandom(n)

        realURandom = os.urandom
        self.patch(os, "urandom", urandom)
        cache = BindCache(self.clock, maxSize=1000)
        count = BindCache.SALTS_AT_ONCE + 1
        for i in range(count):
            cache.put(f"u{i}", "pw", f"u{i}")
        salts = [cache.held(f"u{i}")[1] for i in range(count)]
        self.assertEqual({len(salt) for salt in salts}, {16})
        self.assertEqual(len(set(salts)), count)
        self.assertEqual(asked, [16 * BindCache.SALTS_AT_ONCE] * 2)
        self.assertEqual(cache.get("u7", "pw"), "u7")
        self.assertIsNone(cache.get("u7", "other"))

    def test_bounded(self):
        """
        The cache keeps at most its size, dropping the least recently used.
        """
        self.directory.passwords.update({f"u{i}": "pw" for i in range(3)})
        checker = self.checker(size=2)
        self.assertUid(checker, "u0", "pw", "u0")
        self.assertUid(checker, "u1", "pw", "u1")
        self.assertUid(checker, "u0", "pw", "u0")  # u0 used last
        self.assertUid(checker, "u2", "pw", "u2")
        self.assertEqual(len(checker.cache), 2)
        self.directory.calls.clear()
        self.assertUid(checker, "u0", "pw", "u0")
        self.assertUid(checker, "u1", "pw", "u1")
        self.assertEqual(self.directory.calls, ["u1"])

    def test_outageServedFromCache(self):
        """
        During an outage cached logins still work; others get
        DirectoryUnavailable, not UnauthorizedLogin, and are not cached.
        """
        checker = self.checker()
        self.assertUid(checker, "alice", "old-pw", "alice")
        self.directory.down = True
        self.assertUid(checker, "alice", "old-pw", "alice")
        self.assertFails(checker, "bob", "bob-pw", DirectoryUnavailable)

    def test_off(self):
        """
        Without a cache every login asks the directory.
        """
        checker = DirectoryChecker(self.directory)
        self.assertUid(checker, "alice", "old-pw", "alice")
        self.assertUid(checker, "alice", "old-pw", "alice")
        self.assertEqual(self.directory.calls, ["alice", "alice"])

    def test_credentialText(self):
        """
        Logins arrive as UTF-8 bytes (HTTP) or latin-1-decoded text (FTP);
        both give the same text.
        """
        self.assertEqual(credentialText("sécret".encode("utf-8")), "sécret")
        self.assertEqual(credentialText("sécret".encode("utf-8").decode("latin-1")), "sécret")
        self.assertEqual(credentialText(b"s\xe9cret"), "sécret")


class LoginKeyTests(SynchronousTestCase):
    """
    L{loginKey}'s quick way for printable ASCII gives what the full LDAP
    string preparation gives.
    """

    def test_asciiAsPrepared(self):
        """
        Every ASCII character, alone, between letters and among spaces,
        and logins of several spaces and cases, get the key the full
        preparation gives them.
        """
        from fbtwist.access.throttle import loginKey, preparedKey

        logins = ["alice", "ALICE", " alice ", "a  b", "Alice Smith", "  ", "", "DOMAIN\\User", "u@Example.COM"]
        for code in range(128):
            c = chr(code)
            logins += [c, "a" + c + "B", " " + c + " Z ", c * 3]
        for login in logins:
            self.assertEqual(loginKey(login), preparedKey(login), repr(login))

    def test_othersPrepared(self):
        """
        Logins outside printable ASCII get the full preparation: width,
        case and spaces of other scripts folded, controls dropped.
        """
        from fbtwist.access.throttle import loginKey

        self.assertEqual(loginKey("\uff21lice"), "alice")
        self.assertEqual(loginKey("ALİCE\u00a0 x"), loginKey("ali\u0307ce x"))
        self.assertEqual(loginKey("al\tice"), "al ice")
        self.assertEqual(loginKey("al\x00ice"), "alice")


class ThrottleTests(CheckerTestMixin, SynchronousTestCase):
    """
    Too many failures for one login or from one address lock it out.
    """

    def checker(self, **kw):
        kw = dict(dict(maxFailures=3, maxFailuresPerAddress=5, window=60, lockout=120), **kw)
        return DirectoryChecker(self.directory, cache=BindCache(self.clock), throttle=LoginThrottle(self.clock, **kw))

    def test_loginLockedOut(self):
        """
        After N failures for a login even the right password is refused with
        TooManyAttempts, without asking the directory; logged.
        """
        checker = self.checker()
        for peer in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
            self.assertFails(checker, "alice", "guess", peer=peer)
        calls = len(self.directory.calls)
        self.assertFails(checker, "alice", "old-pw", TooManyAttempts, peer="192.0.2.9")
        self.assertFails(checker, "ALICE", "old-pw", TooManyAttempts, peer="192.0.2.9")
        self.assertEqual(len(self.directory.calls), calls)
        throttled = [e for e in self.events if e.get("fbEvent") == "login-throttled"]
        self.assertEqual([(e["login"], e["peer"]) for e in throttled],
                         [("alice", "192.0.2.9"), ("ALICE", "192.0.2.9")])
        self.assertNotIn("old-pw", repr(self.events))
        self.assertUid(checker, "bob", "bob-pw", "bob")

    def test_lockoutEnds(self):
        """
        The lockout ends after its time; then the right password works.
        """
        checker = self.checker()
        for _ in range(3):
            self.assertFails(checker, "alice", "guess")
        self.clock.advance(119)
        self.assertFails(checker, "alice", "old-pw", TooManyAttempts)
        self.clock.advance(1)
        self.assertUid(checker, "alice", "old-pw", "alice")

    def test_window(self):
        """
        Failures older than the window do not count.
        """
        checker = self.checker()
        for _ in range(2):
            self.assertFails(checker, "alice", "guess")
        self.clock.advance(61)
        self.assertFails(checker, "alice", "guess")
        self.assertUid(checker, "alice", "old-pw", "alice")

    def test_successResetsLogin(self):
        """
        A successful login forgets that login's earlier failures.
        """
        checker = self.checker()
        for _ in range(2):
            self.assertFails(checker, "alice", "guess")
        self.assertUid(checker, "alice", "old-pw", "alice")
        for _ in range(2):
            self.assertFails(checker, "alice", "guess")
        self.assertUid(checker, "alice", "old-pw", "alice")

    def test_addressLockedOut(self):
        """
        Many logins tried from one address (each below the per-login limit)
        lock the address out, whatever login it tries next; other addresses
        are not affected.
        """
        checker = self.checker()
        for name in ("a", "b", "c", "d", "e"):
            self.assertFails(checker, name, "guess")
        self.assertFails(checker, "bob", "bob-pw", TooManyAttempts)
        self.assertUid(checker, "bob", "bob-pw", "bob", peer="198.51.100.7")

    def test_unknownUserSameAnswer(self):
        """
        An unknown login is throttled exactly like a known one.
        """
        checker = self.checker()
        for login in ("alice", "nosuchuser"):
            for _ in range(3):
                self.assertFails(checker, login, "guess", peer=None)
            self.assertFails(checker, login, "x", TooManyAttempts, peer=None)

    def test_emptyPasswordCounts(self):
        """
        Empty passwords count as failures too.
        """
        checker = self.checker()
        for _ in range(3):
            self.assertFails(checker, "alice", "")
        self.assertFails(checker, "alice", "old-pw", TooManyAttempts)

    def test_outageNotCounted(self):
        """
        A directory outage is not a failed login.
        """
        checker = self.checker()
        self.directory.down = True
        for _ in range(5):
            self.assertFails(checker, "bob", "bob-pw", DirectoryUnavailable)
        self.directory.down = False
        self.assertUid(checker, "bob", "bob-pw", "bob")

    def test_boundedMemory(self):
        """
        The throttle tracks a bounded number of logins and addresses.
        """
        throttle = LoginThrottle(self.clock, maxTracked=10)
        for i in range(100):
            throttle.failed(f"user{i}", f"10.0.0.{i}")
        self.assertEqual(len(throttle), 10)


class CachedLoginTests(CheckerTestMixin, SynchronousTestCase):
    """
    L{DirectoryChecker.cachedLogin} answers, without waiting, only the
    logins L{DirectoryChecker.requestAvatarId} would answer from the cache,
    and counts them only once confirmed.
    """

    def checker(self):
        return DirectoryChecker(self.directory, cache=BindCache(self.clock), throttle=LoginThrottle(
            self.clock, maxFailures=3, maxFailuresPerAddress=5, window=60, lockout=120))

    def test_onlyCachedPassword(self):
        """A login is known only after a bind with that very password."""
        checker = self.checker()
        self.assertIsNone(checker.cachedLogin(creds("alice", "old-pw")))
        self.assertUid(checker, "alice", "old-pw", "alice")
        self.assertEqual(checker.cachedLogin(creds("alice", "old-pw")).uid, "alice")
        for login, password in (("alice", "other"), ("alice", ""), ("", "old-pw"), ("alice", "old-pw\x00")):
            self.assertIsNone(checker.cachedLogin(creds(login, password)), (login, password))
        self.clock.advance(300)
        self.assertIsNone(checker.cachedLogin(creds("alice", "old-pw")))

    def test_countedWhenConfirmed(self):
        """Asking logs and counts nothing; confirming logs the cache hit as requestAvatarId does."""
        checker = self.checker()
        self.assertUid(checker, "alice", "old-pw", "alice")
        del self.events[:]
        known = checker.cachedLogin(creds("alice", "old-pw"))
        self.assertEqual([e for e in self.events if e.get("fbEvent")], [])
        self.assertEqual(known.confirm(), "alice")
        self.assertEqual([(e["fbEvent"], e["hit"]) for e in self.events if e.get("fbEvent")], [("bind-cache", True)])

    def test_notWhileThrottled(self):
        """A cached login is not known while its name, its address or its entry is locked out; nothing is logged."""
        checker = self.checker()
        self.assertUid(checker, "alice", "old-pw", "alice")
        for peer in ("192.0.2.5", "192.0.2.6", "192.0.2.7"):
            self.assertFails(checker, "alice", "guess", peer=peer)
        del self.events[:]
        self.assertIsNone(checker.cachedLogin(creds("alice", "old-pw", peer="192.0.2.9")))
        self.assertEqual([e for e in self.events if e.get("fbEvent")], [])
        # The whole way refuses it (and logs that once).
        self.assertFails(checker, "alice", "old-pw", TooManyAttempts, peer="192.0.2.9")
        self.assertEqual([e["fbEvent"] for e in self.events if e.get("fbEvent")], ["login-throttled"])

    def test_requestAvatarIdAnswersAtOnce(self):
        """A cached login's Deferred has fired when requestAvatarId returns, after the same events."""
        checker = self.checker()
        self.assertUid(checker, "alice", "old-pw", "alice")
        d = self.login(checker, "alice", "old-pw")
        self.assertEqual(self.successResultOf(d), "alice")
        self.assertEqual([e["hit"] for e in self.events if e.get("fbEvent") == "bind-cache"], [False, True])
