"""
Brute-force throttling that cannot be sidestepped: logins counted the way
the directory matches them and per directory entry, lockouts that a flood
cannot push out, the real remaining time in HTTP's C{Retry-After} and
FTP's 421, and failed logins that take as long whether or not the login
exists.  All with a L{Clock}; HTTP through treq's L{StubTreq}, FTP over a
L{StringTransport} (how a real slapd names the entry of a wrong password:
L{tests.integration.test_throttle}).
"""

import base64

from treq.testing import StubTreq
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import IRealm, Portal
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import IResource, Resource
from zope.interface import implementer

import tests.helpers  # noqa: F401 (ldaptor's import-time warnings)
from fbtwist.access.checker import DirectoryChecker
from fbtwist.access.latency import LatencyFloor
from fbtwist.access.throttle import LoginThrottle, loginKey
from fbtwist.errors import TooManyAttempts, WrongPassword
from fbtwist.interfaces import IDirectory
from fbtwist.web.auth import BasicAuthGuard
from fbtwist.web.responses import httpErrorFor
from tests.unit.test_checker import creds
from tests.unit.test_ftpserver import Session


@implementer(IDirectory)
class AliasDirectory:
    """
    A directory matching logins as LDAP does (L{loginKey}), where one entry
    has several names; a wrong password for an existing entry fails with
    L{WrongPassword} naming it.
    """

    passwords = {"alice": "wonderland", "bob": "builder"}
    names = {"alice": "alice", "bob": "bob", "robert@example.com": "bob", "example\\bob": "bob"}

    def __init__(self):
        self.calls = []

    def authenticate(self, login, password):
        self.calls.append(login)
        uid = self.names.get(loginKey(login))
        if uid is None:
            return defer.fail(UnauthorizedLogin("no such user"))
        if self.passwords[uid] != password:
            return defer.fail(WrongPassword("wrong password", uid))
        return defer.succeed(uid)

    def resolveName(self, name):
        return defer.succeed(None)

    def isMember(self, uid, groupDN):
        return defer.succeed(False)


class LoginKeyTests(SynchronousTestCase):
    """
    L{loginKey} is LDAP's string preparation for C{caseIgnoreMatch}.
    """

    def test_insignificantSpaces(self):
        """
        Leading, trailing and repeated spaces of any kind do not matter.
        """
        for login in ["alice", " alice", "alice ", "  alice\t", "\u00a0alice\u3000", "alice\n"]:
            self.assertEqual(loginKey(login), "alice", repr(login))
        self.assertEqual(loginKey(" alice   smith "), "alice smith")
        self.assertEqual(loginKey("alice\u2003smith"), "alice smith")

    def test_caseAndCompatibilityForms(self):
        """
        Case, full-width and other compatibility forms are folded.
        """
        for login in ["ALICE", "Alice", "\uff41\uff4c\uff49\uff43\uff45", "\uff21lice"]:
            self.assertEqual(loginKey(login), "alice", repr(login))
        self.assertEqual(loginKey("STRASSE"), loginKey("straße"))

    def test_ignoredCharacters(self):
        """
        Soft hyphens, zero-width and other formatting or control characters
        and variation selectors are dropped.
        """
        for login in ["al\u00adice", "\u200balice", "ali\u200dce", "alice\ufe0f", "al\x7fice", "a\u034flice"]:
            self.assertEqual(loginKey(login), "alice", repr(login))

    def test_distinctStaysDistinct(self):
        """
        Logins a directory tells apart keep apart.
        """
        self.assertNotEqual(loginKey("alice"), loginKey("alice2"))
        self.assertNotEqual(loginKey("al ice"), loginKey("alice"))


class LockoutTableTests(SynchronousTestCase):
    """
    The bounded table never forgets an active lockout.
    """

    def setUp(self):
        self.clock = Clock()

    def lockOut(self, throttle, login, peer=None):
        for _ in range(throttle.maxFailures):
            throttle.failed(login, peer)

    def test_floodKeepsLockout(self):
        """
        Failures for many made-up names from many addresses do not lift a
        victim's lockout.
        """
        throttle = LoginThrottle(self.clock, maxFailures=3, maxTracked=10)
        self.lockOut(throttle, "alice", "192.0.2.1")
        for i in range(1000):
            self.clock.advance(0.01)
            throttle.failed(f"made-up-{i}", f"10.0.{i // 250}.{i % 250}")
        self.assertRaises(TooManyAttempts, throttle.check, "alice", "198.51.100.1")
        self.assertLessEqual(len(throttle), 10)

    def test_fullOfLockoutsRefusesNewcomers(self):
        """
        When every place holds an active lockout, an untracked login is
        refused until the first lockout ends, with that time to wait.
        """
        throttle = LoginThrottle(self.clock, maxFailures=2, maxFailuresPerAddress=0, lockout=100, maxTracked=3)
        for name in ("a", "b", "c"):
            self.lockOut(throttle, name)
            self.clock.advance(10)
        with self.assertRaises(TooManyAttempts) as caught:
            throttle.check("alice", "192.0.2.1")
        self.assertEqual(caught.exception.retryAfter, 70)
        throttle.failed("alice", None)
        self.assertEqual(len(throttle), 3)
        self.clock.advance(70)
        throttle.check("alice", "192.0.2.1")
        self.assertRaises(TooManyAttempts, throttle.check, "b", None)

    def test_countingMakesRoom(self):
        """
        Names only counting failures give way to new ones, least recently
        failed first; lockouts stay.
        """
        throttle = LoginThrottle(self.clock, maxFailures=2, maxFailuresPerAddress=0, maxTracked=3)
        self.lockOut(throttle, "victim")
        throttle.failed("old", None)
        self.clock.advance(1)
        throttle.failed("newer", None)
        throttle.failed("newest", None)
        self.assertEqual(len(throttle), 3)
        throttle.failed("old", None)  # forgotten: counts 1 again, not 2
        throttle.check("old", None)
        self.assertRaises(TooManyAttempts, throttle.check, "victim", None)

    def test_expiredLockoutsFreed(self):
        """
        Lockouts that ended free their places.
        """
        throttle = LoginThrottle(self.clock, maxFailures=1, maxFailuresPerAddress=0, lockout=5, maxTracked=100)
        for i in range(50):
            throttle.failed(f"user{i}", None)
        self.clock.advance(5)
        throttle.failed("another", None)
        self.assertEqual(len(throttle), 1)

    def test_retryAfterIsRemainingLockout(self):
        """
        A refusal carries the seconds left of the lockout (the longest,
        when the login and the address are both locked out), and says it.
        """
        throttle = LoginThrottle(self.clock, maxFailures=2, maxFailuresPerAddress=3, lockout=300)
        self.lockOut(throttle, "alice", "192.0.2.1")
        self.clock.advance(100)
        with self.assertRaises(TooManyAttempts) as caught:
            throttle.check("alice", "198.51.100.1")
        self.assertEqual(caught.exception.retryAfter, 200)
        self.assertEqual(caught.exception.reason, "Too many failed logins: try again in 4 minutes.")
        throttle.failed("bob", "192.0.2.1")
        self.clock.advance(250)
        with self.assertRaises(TooManyAttempts) as caught:
            throttle.check("alice", "192.0.2.1")
        self.assertEqual(caught.exception.retryAfter, 50)
        self.assertEqual(caught.exception.reason, "Too many failed logins: try again in 50 seconds.")


class CheckerThrottleTests(SynchronousTestCase):
    """
    The checker counts failures under the identity the directory matches.
    """

    def setUp(self):
        self.clock = Clock()
        self.directory = AliasDirectory()
        self.checker = DirectoryChecker(
            self.directory, throttle=LoginThrottle(self.clock, maxFailures=3, maxFailuresPerAddress=100)
        )

    def login(self, login, password, peer="192.0.2.1"):
        return self.checker.requestAvatarId(creds(login, password, peer))

    def test_spacingAndCaseShareCount(self):
        """
        Failures as 'alice', ' alice' and 'ALICE ' lock out every form the
        directory would accept for alice.
        """
        for login in ("alice", " alice", "ALICE "):
            self.failureResultOf(self.login(login, "guess"), UnauthorizedLogin)
        for login in ("alice", "alice ", " alice", "Alice\u00a0"):
            self.failureResultOf(self.login(login, "wonderland"), TooManyAttempts)

    def test_entryCountsOverAliases(self):
        """
        Failures under an entry's different names add up; once it is locked
        out any of its names is refused, with the right password or a wrong
        one alike.
        """
        for login in ("bob", "robert@example.com", "EXAMPLE\\bob"):
            self.failureResultOf(self.login(login, "guess"), UnauthorizedLogin)
        for password in ("builder", "guess"):
            failure = self.failureResultOf(self.login("Robert@Example.com ", password), TooManyAttempts)
            self.assertGreater(failure.value.retryAfter, 0)
        self.assertEqual(self.successResultOf(self.login("alice", "wonderland")), "alice")

    def test_successForgetsEntry(self):
        """
        A successful login forgets its entry's earlier failures.
        """
        for login in ("bob", "robert@example.com"):
            self.failureResultOf(self.login(login, "guess"), UnauthorizedLogin)
        self.assertEqual(self.successResultOf(self.login("bob", "builder")), "bob")
        for login in ("robert@example.com", "example\\bob"):
            self.failureResultOf(self.login(login, "guess"), UnauthorizedLogin)
        self.assertEqual(self.successResultOf(self.login("robert@example.com", "builder")), "bob")


class FailureFloorTests(SynchronousTestCase):
    """
    A failed login is answered no sooner than the floor, whether or not
    the login exists; a successful one at once.
    """

    def setUp(self):
        self.clock = Clock()
        self.checker = DirectoryChecker(
            AliasDirectory(), throttle=LoginThrottle(self.clock, maxFailures=3),
            failureFloor=LatencyFloor(self.clock, 0.2, jitter=0.1, random=lambda: 0.5),
        )

    def test_failuresWaitForFloor(self):
        """
        A wrong password, an unknown login and an empty password all fail
        only once floor and jitter (0.2 + 0.05 s here) have passed.
        """
        for login, password in [("alice", "guess"), ("nobody", "guess"), ("alice", "")]:
            d = self.checker.requestAvatarId(creds(login, password))
            self.assertNoResult(d)
            self.clock.advance(0.249)
            self.assertNoResult(d)
            self.clock.advance(0.001)
            self.failureResultOf(d, UnauthorizedLogin)

    def test_lockedEntryWaitsToo(self):
        """
        A locked-out entry's refusal, which comes after the directory was
        asked, waits for the floor as well.
        """
        for _ in range(3):
            d = self.checker.requestAvatarId(creds("robert@example.com", "guess"))
            self.clock.advance(1)
            self.failureResultOf(d, UnauthorizedLogin)
        d = self.checker.requestAvatarId(creds("example\\bob", "builder"))
        self.assertNoResult(d)
        self.clock.advance(0.25)
        self.failureResultOf(d, TooManyAttempts)

    def test_successAtOnce(self):
        """
        A right password is answered without waiting.
        """
        self.assertEqual(self.successResultOf(self.checker.requestAvatarId(creds("alice", "wonderland"))), "alice")

    def test_slowWorkWaitsForNextStep(self):
        """
        Work that outlasted the floor is held to the next doubling of it,
        so its time is told only in steps.
        """
        floor = LatencyFloor(self.clock, 0.2, jitter=0, random=lambda: 0.0)
        self.clock.advance(10)
        self.assertAlmostEqual(floor.delay(10 - 0.05), 0.15)
        self.assertAlmostEqual(floor.delay(10 - 0.3), 0.1)
        self.assertAlmostEqual(floor.delay(10 - 0.5), 0.3)
        self.assertEqual(LatencyFloor(self.clock, 0).delay(10), 0)


@implementer(IRealm)
class _Realm:
    def requestAvatar(self, avatarId, mind, *interfaces):
        resource = Resource()
        resource.isLeaf = True
        resource.render = lambda request: avatarId.encode("utf-8")
        return IResource, resource, lambda: None


class RetryAfterTests(SynchronousTestCase):
    """
    HTTP's 429 says how long the lockout really lasts.
    """

    def setUp(self):
        self.clock = Clock()
        checker = DirectoryChecker(AliasDirectory(), throttle=LoginThrottle(self.clock, maxFailures=3, lockout=300))
        self.http = StubTreq(BasicAuthGuard(Portal(_Realm(), [checker]), "fbtwist"))

    def get(self, login, password):
        token = base64.b64encode(f"{login}:{password}".encode("utf-8"))
        response = self.successResultOf(
            self.http.get("http://fb.example/x", headers={b"Authorization": [b"Basic " + token]}))
        self.http.flush()
        return response, self.successResultOf(response.content())

    def test_remainingLockout(self):
        """
        Retry-After is the lockout's remaining time, rounded up; the body
        says it too.
        """
        for login in ("alice", "alice ", " ALICE"):
            self.assertEqual(self.get(login, "guess")[0].code, 401)
        self.clock.advance(0.5)
        response, body = self.get("alice", "wonderland")
        self.assertEqual(response.code, 429)
        self.assertEqual(response.headers.getRawHeaders(b"Retry-After"), [b"300"])
        self.assertEqual(body, b"Too many failed logins: try again in 5 minutes.\n")
        self.clock.advance(240)
        response, body = self.get("alice", "wonderland")
        self.assertEqual(response.headers.getRawHeaders(b"Retry-After"), [b"60"])
        self.clock.advance(60)
        self.assertEqual(self.get("alice", "wonderland")[0].code, 200)

    def test_tableDefaultWithoutTime(self):
        """
        A refusal that knows no time keeps the table's default Retry-After.
        """
        self.assertEqual(httpErrorFor(TooManyAttempts()).headers, [(b"Retry-After", b"30")])
        self.assertEqual(httpErrorFor(TooManyAttempts(retryAfter=0.2)).headers, [(b"Retry-After", b"1")])


class FTPThrottleTests(SynchronousTestCase):
    """
    FTP logins share the throttle, and its refusal says when to come back.
    """

    def test_spacedLoginRefusedWithTime(self):
        """
        After failures as alice, 'USER  alice ' is refused with 421 and the
        remaining time, once, not 'try again later' twice.
        """
        clock = Clock()
        checker = DirectoryChecker(AliasDirectory(), throttle=LoginThrottle(clock, maxFailures=2, lockout=120))
        for _ in range(2):
            session = Session(self, checker=checker)
            session.send("USER alice")
            self.assertEqual(session.command("PASS guess")[-1], "530 Login incorrect.")
        session = Session(self, checker=checker)
        session.send("USER  alice ")
        self.assertEqual(session.command("PASS wonderland")[-1], "421 Too many failed logins: try again in 2 minutes.")
        self.assertTrue(session.transport.disconnecting)


class RefusesTests(SynchronousTestCase):
    """
    L{LoginThrottle.refuses} tells what L{LoginThrottle.check} and
    L{LoginThrottle.checkEntry} would decide, without logging.
    """

    def test_sameDecisionNothingLogged(self):
        """A locked-out name, entry or address is refused, the others not, and asking logs nothing."""
        from twisted.logger import globalLogPublisher

        throttle = LoginThrottle(Clock(), maxFailures=2, maxFailuresPerAddress=3)
        throttle.failed("alice", "192.0.2.1", "uid-alice")
        throttle.failed("alice", "192.0.2.2", "uid-alice")
        for peer in ("192.0.2.7", "192.0.2.7", "192.0.2.7"):
            throttle.failed("bob", peer)
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        asked = [throttle.refuses("alice", "192.0.2.3"), throttle.refuses(None, None, "uid-alice"),
                 throttle.refuses("carol", "192.0.2.7"), throttle.refuses("carol", "192.0.2.8"),
                 throttle.refuses(None, None, "uid-carol")]
        self.assertEqual(asked, [True, True, True, False, False])
        self.assertEqual(events, [])
        self.assertRaises(TooManyAttempts, throttle.check, "alice", "192.0.2.3")
        self.assertRaises(TooManyAttempts, throttle.checkEntry, "uid-alice")
        throttle.check("carol", "192.0.2.8")
