"""
Tests for L{fbtwist.access.permissions} and the avatar that applies it.
"""

from twisted.python.filepath import FilePath
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from fbtwist.access.avatar import CalendarAvatar
from fbtwist.access.permissions import Action, authorize, ownFileName, visibleMembers
from fbtwist.errors import PermissionDenied
from fbtwist.interfaces import ICalendarAvatar
from fbtwist.store.tree import CalendarStore


class AuthorizeTests(unittest.SynchronousTestCase):
    """
    The one decision function.
    """

    def test_ownFile(self):
        """
        A user may read and write their own .vfb at the top of the tree.
        """
        for action in (Action.LIST, Action.READ, Action.WRITE):
            authorize("alice", False, action, ("alice.vfb",))
            authorize("alice", False, action, ("ALICE.VFB",))

    def test_othersFiles(self):
        """
        Another user's file, other names and deeper paths are refused.
        """
        for path in [("bob.vfb",), ("alice.txt",), ("alice",), ("sub", "alice.vfb"), ("alice.vfb.vfb",)]:
            for action in (Action.READ, Action.WRITE):
                self.assertRaises(PermissionDenied, authorize, "alice", False, action, path)

    def test_collections(self):
        """
        Users may list the root but change no collection.
        """
        authorize("alice", False, Action.LIST, ())
        self.assertRaises(PermissionDenied, authorize, "alice", False, Action.MANAGE, ("sub",))
        self.assertRaises(PermissionDenied, authorize, "alice", False, Action.WRITE, ("alice.vfb",), True)
        self.assertRaises(PermissionDenied, authorize, "alice", False, Action.WRITE, ())

    def test_anonymous(self):
        """
        Anonymous users may do nothing in the publishing tree.
        """
        for action in Action:
            self.assertRaises(PermissionDenied, authorize, None, False, action, ())

    def test_admin(self):
        """
        Administrators may do anything.
        """
        for action in Action:
            authorize("admin", True, action, ("sub", "bob.vfb"))

    def test_ownFileName(self):
        """
        The canonical spelling of one's own file.
        """
        self.assertEqual(ownFileName("alice", "Alice.VFB"), "alice.vfb")
        self.assertIsNone(ownFileName("alice", "bob.vfb"))


class CalendarAvatarTests(unittest.SynchronousTestCase):
    """
    The avatar asks L{authorize} before every store operation.
    """

    def setUp(self):
        self.store = CalendarStore(FilePath(self.mktemp()))
        self.store.write(("bob.vfb",), b"bob's")

    def test_interface(self):
        """
        The avatar provides L{ICalendarAvatar}.
        """
        verifyObject(ICalendarAvatar, CalendarAvatar("alice", False, self.store))

    def test_canonicalPath(self):
        """
        A user's own file name is spelled as the uid.
        """
        avatar = CalendarAvatar("alice", False, self.store)
        self.assertEqual(avatar.path(["Alice.vfb"]), ("alice.vfb",))
        self.assertEqual(avatar.path(["Bob.vfb"]), ("Bob.vfb",))

    def test_refusedOperations(self):
        """
        Reading, writing and deleting another user's file are refused.
        """
        avatar = CalendarAvatar("alice", False, self.store)
        self.assertRaises(PermissionDenied, avatar.read, ("bob.vfb",))
        self.assertRaises(PermissionDenied, avatar.openUpload, ("bob.vfb",))
        self.assertRaises(PermissionDenied, avatar.delete, ("bob.vfb",))
        self.assertRaises(PermissionDenied, avatar.makeCollection, ("sub",))
        self.assertEqual(self.store.read(("bob.vfb",)), b"bob's")

    def test_childrenOwnOnly(self):
        """
        The members of a collection a user sees (WebDAV PROPFIND and FTP
        LIST alike) are their own files; an administrator and the anonymous
        FTP reader see all.
        """
        self.store.write(("alice.vfb",), b"alice's")
        self.store.makeCollection(("sub",))

        def names(avatar):
            return sorted(info.name for info in avatar.children(()))

        self.assertEqual(names(CalendarAvatar("alice", False, self.store)), ["alice.vfb"])
        self.assertEqual(names(CalendarAvatar("carol", False, self.store)), [])
        self.assertEqual(names(CalendarAvatar("admin", True, self.store)), ["alice.vfb", "bob.vfb", "sub"])
        reader = CalendarAvatar(None, False, self.store)
        reader.anonymousReads = True
        self.assertEqual(names(reader), ["alice.vfb", "bob.vfb", "sub"])
        self.assertEqual([m.name for m in visibleMembers("bob", False, self.store.children(()))], ["bob.vfb"])

    def test_ownOperations(self):
        """
        The owner reads, writes and deletes their file.
        """
        avatar = CalendarAvatar("bob", False, self.store)
        self.assertEqual(avatar.read(("bob.vfb",)), b"bob's")
        upload = avatar.openUpload(("bob.vfb",))
        upload.write(b"new")
        upload.commit()
        self.assertEqual(avatar.read(("bob.vfb",)), b"new")
        avatar.delete(("bob.vfb",))
        self.assertIsNone(self.store.stat(("bob.vfb",)))


class AvatarLockTests(unittest.TestCase):
    """
    Taking, refreshing and removing WebDAV locks is decided inside the
    avatar.
    """

    def setUp(self):
        self.store = CalendarStore(FilePath(self.mktemp()))
        self.store.write(("alice.vfb",), b"x")
        self.alice = CalendarAvatar("alice", False, self.store)

    def test_ownLocks(self):
        """
        A user locks, refreshes (with the token) and unlocks their own file.
        """
        lock = self.alice.takeLock(self.alice.lockStore(), ("alice.vfb",), "exclusive", "0", "", 60)
        self.assertIsNone(self.alice.refreshLock(self.alice.lockStore(), ("alice.vfb",), set(), 120))
        refreshed = self.alice.refreshLock(self.alice.lockStore(), ("alice.vfb",), {lock.token}, 120)
        self.assertEqual(refreshed.token, lock.token)
        self.assertFalse(self.alice.unlock(("alice.vfb",), "opaquelocktoken:nosuch"))
        self.assertTrue(self.alice.unlock(("alice.vfb",), lock.token))
        self.assertEqual(self.alice.lockStore().all(), [])

    def test_othersLocks(self):
        """
        Another user may neither lock nor unlock someone's file, nor refresh
        their lock; an administrator may unlock it.
        """
        lock = self.alice.takeLock(self.alice.lockStore(), ("alice.vfb",), "exclusive", "0", "", 60)
        bob = CalendarAvatar("bob", False, self.store)
        self.assertRaises(PermissionDenied, bob.takeLock, bob.lockStore(), ("alice.vfb",), "shared", "0", "", 60)
        self.assertRaises(PermissionDenied, bob.refreshLock, bob.lockStore(), ("alice.vfb",), {lock.token}, 60)
        self.assertRaises(PermissionDenied, bob.unlock, ("alice.vfb",), lock.token)
        self.assertTrue(CalendarAvatar("root", True, self.store).unlock(("alice.vfb",), lock.token))


class AvatarPublishTests(unittest.TestCase):
    """
    L{CalendarAvatar.publish}: authorized, atomic, refused by its check.
    """

    def setUp(self):
        self.store = CalendarStore(FilePath(self.mktemp()))
        self.alice = CalendarAvatar("alice", False, self.store)

    def test_publishOwn(self):
        """
        A user publishes their own file, created then replaced.
        """
        self.assertTrue(self.successResultOf(self.alice.publish(("alice.vfb",), b"one")))
        self.assertFalse(self.successResultOf(self.alice.publish(("alice.vfb",), b"two")))
        self.assertEqual(self.store.read(("alice.vfb",)), b"two")

    def test_refused(self):
        """
        Another user's file is refused before anything is written; a check
        that raises keeps the old version.
        """
        self.assertRaises(PermissionDenied, self.alice.publish, ("bob.vfb",), b"x")
        self.assertIsNone(self.store.stat(("bob.vfb",)))
        self.successResultOf(self.alice.publish(("alice.vfb",), b"old"))

        def check():
            raise PermissionDenied("no")

        self.failureResultOf(self.alice.publish(("alice.vfb",), b"new", check), PermissionDenied)
        self.assertEqual(self.store.read(("alice.vfb",)), b"old")
