"""
Tests for L{fbtwist.access.realm}: what the realm asks the directory when a
user signs in.
"""

from twisted.cred.checkers import ANONYMOUS
from twisted.cred.portal import Portal
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.python.filepath import FilePath
from twisted.trial import unittest
from twisted.web.resource import IResource

import tests.helpers  # noqa: F401 (ldaptor's import-time warnings, as test_checker)
from fbtwist.access.checker import BindCache, DirectoryChecker
from fbtwist.access.realm import FreeBusyRealm, loginNow, noLogout
from fbtwist.access.visibility import FreeBusyVisibility
from fbtwist.errors import DirectoryUnavailable
from fbtwist.interfaces import IFreeBusyReader
from fbtwist.store.tree import CalendarStore
from tests.unit.test_checker import RecordingDirectory


class _RolesDirectory:
    """
    A directory answering who administers and who delegates which room,
    recording every question.
    """

    def __init__(self):
        self.asked = []
        self.admins = {"alice"}
        self.rooms = {"alice": ["room1"]}
        self.failing = False

    def isMember(self, uid, group):
        self.asked.append(("isMember", uid, group))
        if self.failing:
            return defer.fail(DirectoryUnavailable("down"))
        return defer.succeed(uid in self.admins)

    def delegatedRooms(self, uid):
        self.asked.append(("delegatedRooms", uid))
        return defer.succeed(self.rooms.get(uid, []))


class RolesCacheTests(unittest.SynchronousTestCase):
    """
    A signed-in user's roles (administrator, delegated rooms) are asked of
    the directory once per C{rolesTTL}.
    """

    def setUp(self, rolesSize=2):
        self.clock = Clock()
        self.directory = _RolesDirectory()
        store = CalendarStore(FilePath(self.mktemp()))
        sizes = {} if rolesSize is None else {"rolesSize": rolesSize}
        self.realm = FreeBusyRealm(store, self.directory, adminGroup="cn=admins",
                                   visibility=FreeBusyVisibility(store, None, self.clock),
                                   clock=self.clock, rolesTTL=300.0, **sizes)
        self.realm.registerAvatarFactory(IResource, lambda avatar: avatar)

    def login(self, uid):
        return self.successResultOf(self.realm.requestAvatar(uid, None, IResource))[1]

    def test_secondLoginWithinTTLAsksNothing(self):
        """
        A second login within the TTL asks the directory nothing and gets
        the same roles; one at the TTL asks again and sees the change.
        """
        first = self.login("alice")
        self.assertEqual((first.isAdmin, first.rooms), (True, frozenset({"room1"})))
        self.assertEqual(self.directory.asked, [("isMember", "alice", "cn=admins"), ("delegatedRooms", "alice")])
        self.directory.admins.clear()
        self.directory.rooms.clear()
        self.clock.advance(299)
        again = self.login("alice")
        self.assertEqual(len(self.directory.asked), 2)
        self.assertEqual((again.isAdmin, again.rooms), (True, frozenset({"room1"})))
        self.clock.advance(1)
        later = self.login("alice")
        self.assertEqual(len(self.directory.asked), 4)
        self.assertEqual((later.isAdmin, later.rooms), (False, frozenset()))

    def test_failureNotKept(self):
        """
        A login whose question fails keeps nothing: the next one asks again.
        """
        self.directory.failing = True
        self.failureResultOf(self.realm.requestAvatar("alice", None, IResource), DirectoryUnavailable)
        self.directory.failing = False
        self.assertTrue(self.login("alice").isAdmin)
        self.assertEqual(self.directory.asked.count(("isMember", "alice", "cn=admins")), 2)

    def test_bounded(self):
        """
        At most C{rolesSize} users' roles are kept: the least recently
        signed-in one is asked again.
        """
        for uid in ("alice", "bob", "carol", "bob", "alice"):
            self.login(uid)
        self.assertEqual([q[1] for q in self.directory.asked if q[0] == "isMember"],
                         ["alice", "bob", "carol", "alice"])

    def test_noTTLAsksEveryLogin(self):
        """
        With no TTL (the bind cache switched off) every login asks.
        """
        self.realm.rolesTTL = 0
        self.login("alice")
        self.login("alice")
        self.assertEqual(len(self.directory.asked), 4)


class LoginNowTests(unittest.SynchronousTestCase):
    """
    L{FreeBusyRealm.avatarNow} and L{loginNow}: a login answered without
    waiting is the one the portal would give.
    """

    def setUp(self):
        RolesCacheTests.setUp(self, rolesSize=None)
        self.checker = DirectoryChecker(RecordingDirectory({"alice": "pw"}), cache=BindCache(self.clock))
        self.portal = Portal(self.realm, [self.checker])

    def credentials(self, password=b"pw"):
        from twisted.cred.credentials import UsernamePassword

        return UsernamePassword(b"alice", password)

    def test_avatarNowOnlyWithKeptRoles(self):
        """The realm makes an avatar at once only for a user whose roles it keeps, the same as requestAvatar's."""
        self.assertIsNone(self.realm.avatarNow("alice", IResource))
        viaPortal = self.successResultOf(self.realm.requestAvatar("alice", None, IResource))[1]
        interface, now, logout = self.realm.avatarNow("alice", IResource)
        self.assertEqual((interface, now.uid, now.isAdmin, now.rooms, logout is noLogout),
                         (IResource, "alice", viaPortal.isAdmin, viaPortal.rooms, True))
        self.assertIsNone(self.realm.avatarNow(ANONYMOUS, IResource))
        self.assertIsNone(self.realm.avatarNow("alice", IFreeBusyReader))
        self.clock.advance(300)
        self.assertIsNone(self.realm.avatarNow("alice", IResource))

    def test_loginNow(self):
        """A login is answered at once once the portal has answered it, and only with its password."""
        self.assertIsNone(loginNow(self.portal, self.credentials(), IResource))
        self.successResultOf(self.portal.login(self.credentials(), None, IResource))
        asked = len(self.directory.asked)
        interface, avatar, _ = loginNow(self.portal, self.credentials(), IResource)
        self.assertEqual((interface, avatar.uid, avatar.isAdmin), (IResource, "alice", True))
        self.assertIsNone(loginNow(self.portal, self.credentials(b"other"), IResource))
        self.assertEqual(len(self.directory.asked), asked)
