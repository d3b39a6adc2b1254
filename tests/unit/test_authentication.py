"""
Tests for the checker and realm against the demo directory (ldaptor's
in-memory server) over an in-memory network (L{tests.memory}).
"""

from twisted.cred.checkers import ANONYMOUS
from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer
from twisted.python.filepath import FilePath
from twisted.trial import unittest
from twisted.web.resource import IResource
from twisted.web.server import Request
from zope.interface.verify import verifyObject

from fbtwist.access.checker import DirectoryChecker, credentialText
from fbtwist.access.realm import FreeBusyRealm
from fbtwist.directory import ldapdirectory
from fbtwist.directory.demo import DemoDirectoryService
from fbtwist.directory.ldapdirectory import LDAPDirectory
from fbtwist.directory.ldapurl import parseLDAPURL
from fbtwist.interfaces import IDirectory
from fbtwist.store.tree import CalendarStore
from fbtwist.web.auth import BasicAuthGuard
from tests.helpers import ADMIN_GROUP, DEMO_LDIF, PASSWORDS
from tests.memory import MemoryNetwork, Settled


class CredentialTextTests(unittest.SynchronousTestCase):
    """
    Logins and passwords from HTTP (bytes) and FTP (latin-1 str) become the
    same text.
    """

    def test_forms(self):
        """
        UTF-8 bytes, latin-1-decoded UTF-8 and plain latin-1 all decode.
        """
        password = "sécret-ß"
        self.assertEqual(credentialText(password.encode("utf-8")), password)
        self.assertEqual(credentialText(password.encode("utf-8").decode("latin-1")), password)
        self.assertEqual(credentialText("caf\xe9".encode("latin-1")), "café")
        self.assertEqual(credentialText("€uro"), "€uro")


class DemoDirectoryTestCase(unittest.TestCase):
    """
    Serves the demo LDIF on a port of an in-memory network for each test;
    C{directory} is the directory seen from the test (its answers settled).
    """

    def setUp(self):
        url = parseLDAPURL("ldap://127.0.0.1:1/ou=people,dc=example,dc=com?uid?one")
        self.network = MemoryNetwork()
        self.ldapDirectory = LDAPDirectory(url, self.network, timeout=5)
        self.directory = Settled(self.ldapDirectory, self.network)
        service = DemoDirectoryService(
            DEMO_LDIF, "tcp:0:interface=127.0.0.1", self.network,
            lambda host, port: setattr(self.ldapDirectory, "url", url.withAddress(host, port)),
        )
        service.startService()
        self.addCleanup(service.stopService)
        self.addCleanup(self.directory.close)


class DirectoryCheckerTests(DemoDirectoryTestCase):
    """
    Search-then-bind through L{DirectoryChecker}.
    """

    def setUp(self):
        super().setUp()
        self.checker = Settled(DirectoryChecker(self.ldapDirectory), self.network)

    def login(self, login, password):
        return self.checker.requestAvatarId(UsernamePassword(login, password))

    @defer.inlineCallbacks
    def test_goodPasswords(self):
        """
        Each demo user logs in with bytes or text credentials; the avatar id
        is the uid as the directory spells it.
        """
        verifyObject(IDirectory, self.ldapDirectory)
        for login, password in PASSWORDS.items():
            uid = yield self.login(login.encode(), password.encode("utf-8"))
            self.assertEqual(uid, login)
        self.assertEqual((yield self.login("ALICE", "wonderland")), "alice")

    @defer.inlineCallbacks
    def test_refused(self):
        """
        Wrong or empty passwords, unknown users and filter syntax are
        UnauthorizedLogin.
        """
        for login, password in [
            ("alice", "wrong"), ("alice", ""), ("", "wonderland"), ("nobody", "x"),
            ("*", "wonderland"), ("a*", "wonderland"), ("*)(uid=*", "wonderland"),
            ("alice)(uid=*", "wonderland"), ("\\2a", "wonderland"), ("alice\x00", "wonderland"),
            ("ålice", "wonderland"),
        ]:
            yield self.assertFailure(self.login(login, password), UnauthorizedLogin)


class ResolveNameTests(DemoDirectoryTestCase):
    """
    Lookup names resolve to uids.
    """

    @defer.inlineCallbacks
    def test_names(self):
        """
        A uid, a mail local part (any case) and a full address resolve;
        unknown names and filter syntax do not.
        """
        for name, uid in [("alice", "alice"), ("betty", "bsmith"), ("BETTY", "bsmith"), ("bsmith", "bsmith"),
                          ("betty@example.com", "bsmith"), ("dave@example.org", "dave"),
                          ("nobody", None), ("*", None), ("b*", None), ("betty@*", None), ("", None)]:
            self.assertEqual((yield self.directory.resolveName(name)), uid, name)

    @defer.inlineCallbacks
    def test_groupMembership(self):
        """
        admin is in the admin group, alice is not.
        """
        self.assertTrue((yield self.directory.isMember("admin", ADMIN_GROUP)))
        self.assertFalse((yield self.directory.isMember("alice", ADMIN_GROUP)))
        self.assertFalse((yield self.directory.isMember("alice", "cn=missing,dc=example,dc=com")))


class GroupReadTests(DemoDirectoryTestCase):
    """
    A group's members, read once, answer memberships for a few seconds
    (L{LDAPDirectory.isMember}): a burst of first logins asks the directory
    about the administrators' group once.
    """

    def setUp(self):
        super().setUp()
        self.searched = []
        search = self.ldapDirectory.search

        def counting(filterObject, attributes, *args, **kwargs):
            self.searched.append(kwargs.get("base"))
            return search(filterObject, attributes, *args, **kwargs)

        self.ldapDirectory.search = counting

    def test_burstReadsTheGroupOnce(self):
        """Memberships asked together cost one search of the group; asked again within the time, none."""
        logins = ["admin", "alice", "bsmith", "carol", "admin"]
        asked = [defer.Deferred.fromCoroutine(self.ldapDirectory._isMember(uid, ADMIN_GROUP)) for uid in logins]
        results = self.network.run(defer.gatherResults(asked))
        self.assertEqual(self.successResultOf(results), [True, False, False, False, True])
        self.assertEqual(self.searched.count(ADMIN_GROUP), 1)
        self.assertTrue(self.directory.isMember("admin", ADMIN_GROUP))
        self.assertEqual(self.searched.count(ADMIN_GROUP), 1)

    def test_readAgainAfterItsTime(self):
        """Once GROUP_READ_SECONDS have passed, the group is read again (a change counts then)."""
        self.assertTrue(self.successResultOf(self.directory.isMember("admin", ADMIN_GROUP)))
        self.network.advance(ldapdirectory.GROUP_READ_SECONDS)
        self.assertFalse(self.successResultOf(self.directory.isMember("alice", ADMIN_GROUP)))
        self.assertEqual(self.searched.count(ADMIN_GROUP), 2)

    def test_largeGroupAskedPerUser(self):
        """A group of more than GROUP_READ_MAX values is asked about each user, with the same answers."""
        self.patch(ldapdirectory, "GROUP_READ_MAX", 0)
        self.assertTrue(self.successResultOf(self.directory.isMember("admin", ADMIN_GROUP)))
        self.assertFalse(self.successResultOf(self.directory.isMember("alice", ADMIN_GROUP)))
        # The read of the group, then one membership search per user.
        self.assertEqual(self.searched.count(ADMIN_GROUP), 3)

    def test_missingGroup(self):
        """A group that does not exist has no members, read once."""
        missing = "cn=missing,dc=example,dc=com"
        for uid in ("admin", "alice"):
            self.assertFalse(self.successResultOf(self.directory.isMember(uid, missing)))
        self.assertEqual(self.searched.count(missing), 1)


class RealmTests(DemoDirectoryTestCase):
    """
    The realm builds avatars for registered interfaces.
    """

    @defer.inlineCallbacks
    def test_avatars(self):
        """
        Users get their uid, the admin group member isAdmin, anonymous None.
        """
        store = CalendarStore(FilePath(self.mktemp()))
        realm = Settled(FreeBusyRealm(store, self.ldapDirectory, adminGroup=ADMIN_GROUP), self.network)
        realm.registerAvatarFactory(IResource, lambda avatar: avatar)
        interface, avatar, logout = yield realm.requestAvatar("admin", None, IResource)
        self.assertEqual((interface, avatar.uid, avatar.isAdmin), (IResource, "admin", True))
        interface, avatar, logout = yield realm.requestAvatar("alice", None, IResource)
        self.assertEqual((avatar.uid, avatar.isAdmin), ("alice", False))
        interface, avatar, logout = yield realm.requestAvatar(ANONYMOUS, None, IResource)
        self.assertEqual((avatar.uid, avatar.isAdmin), (None, False))
        logout()
        yield self.assertFailure(realm.requestAvatar("alice", None, IDirectory), TypeError)


class DemoDirectoryServiceTests(unittest.TestCase):
    """
    The demo directory says loudly what it is.
    """

    def test_warns(self):
        """
        Starting it logs a DEMO DIRECTORY warning with its address.
        """
        from twisted.logger import LogLevel, globalLogPublisher

        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        addresses = []
        service = DemoDirectoryService(DEMO_LDIF, "tcp:0:interface=127.0.0.1", MemoryNetwork(),
                                       lambda host, port: addresses.append((host, port)))
        service.startService()
        self.addCleanup(service.stopService)
        warnings = [e for e in events if "DEMO DIRECTORY" in e.get("log_format", "")]
        self.assertEqual(len(warnings), 1)
        self.assertEqual(warnings[0]["log_level"], LogLevel.warn)
        self.assertEqual(addresses[0][0], "127.0.0.1")
        self.assertEqual(warnings[0]["port"], addresses[0][1])


class GuardLogoutTests(unittest.SynchronousTestCase):
    """
    The Basic authentication guard calls a realm's logout once the request
    is answered, and waits for no answer when the avatar needs none.
    """

    def setUp(self):
        from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
        from twisted.cred.portal import IRealm, Portal
        from twisted.web.static import Data
        from zope.interface import implementer

        from fbtwist.access.realm import noLogout

        self.loggedOut = []
        self.logout = lambda: self.loggedOut.append(True)
        test = self

        @implementer(IRealm)
        class Realm:
            def requestAvatar(self, avatarId, mind, *interfaces):
                resource = Data(b"hello", "text/plain")
                resource.isLeaf = True
                return IResource, resource, test.logout

        self.noLogout = noLogout
        checker = InMemoryUsernamePasswordDatabaseDontUse(alice=b"wonderland")
        self.guard = BasicAuthGuard(Portal(Realm(), [checker]), "fbtwist")
        self.finishNotified = []
        notifyFinish = Request.notifyFinish
        self.patch(Request, "notifyFinish", lambda request: self.finishNotified.append(1) or notifyFinish(request))

    def get(self):
        from treq.testing import StubTreq

        http = StubTreq(self.guard)
        response = self.successResultOf(
            http.get("http://fb.example/x", headers={b"Authorization": [b"Basic YWxpY2U6d29uZGVybGFuZA=="]}))
        self.assertEqual(self.successResultOf(response.content()), b"hello")
        http.flush()

    def test_logoutAfterAnswer(self):
        """
        A logout the realm gives runs once the request is answered.
        """
        self.get()
        self.assertEqual((self.loggedOut, self.finishNotified), ([True], [1]))

    def test_noLogout(self):
        """
        With L{noLogout}, the guard does not wait for the request's end.
        """
        self.logout = self.noLogout
        self.get()
        self.assertEqual((self.loggedOut, self.finishNotified), ([], []))
