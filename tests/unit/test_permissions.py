"""
Tests for L{fbtwist.access.permissions} and the avatar that applies it.
"""

from twisted.python.filepath import FilePath
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from fbtwist.access.avatar import CalendarAvatar
from fbtwist.access.permissions import Action, authorize, listableNames, ownFileName, visibleMembers
from fbtwist.access.values import Preconditions
from fbtwist.errors import PermissionDenied, PreconditionFailed
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
        self.failureResultOf(avatar.read(("bob.vfb",)), PermissionDenied)
        self.failureResultOf(avatar.openUpload(("bob.vfb",)), PermissionDenied)
        self.failureResultOf(avatar.delete(("bob.vfb",)), PermissionDenied)
        self.failureResultOf(avatar.makeCollection(("sub",)), PermissionDenied)
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
            return sorted(info.name for info in self.successResultOf(avatar.list(())))

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
        self.assertEqual(self.successResultOf(avatar.read(("bob.vfb",))), b"bob's")
        upload = self.successResultOf(avatar.openUpload(("bob.vfb",)))
        upload.write(b"new")
        self.assertFalse(self.successResultOf(avatar.commitUpload(upload)))
        self.assertEqual(self.successResultOf(avatar.read(("bob.vfb",))), b"new")
        self.successResultOf(avatar.delete(("bob.vfb",)))
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
        lock = self.successResultOf(self.alice.lock(("alice.vfb",), "exclusive", "0", "", 60)).lock
        self.assertIsNone(self.successResultOf(self.alice.refreshLock(("alice.vfb",), 120)))
        held = Preconditions(tokens=frozenset([lock.token]))
        refreshed = self.successResultOf(self.alice.refreshLock(("alice.vfb",), 120, held))
        self.assertEqual(refreshed.lock.token, lock.token)
        self.assertEqual(refreshed.lock.timeout, 120)
        self.assertFalse(self.successResultOf(self.alice.unlock(("alice.vfb",), "opaquelocktoken:nosuch")))
        self.assertTrue(self.successResultOf(self.alice.unlock(("alice.vfb",), lock.token)))
        self.assertEqual(self.successResultOf(self.alice.activeLocks()).locks, [])

    def test_othersLocks(self):
        """
        Another user may neither lock nor unlock someone's file, nor refresh
        their lock; an administrator may unlock it.
        """
        lock = self.successResultOf(self.alice.lock(("alice.vfb",), "exclusive", "0", "", 60)).lock
        bob = CalendarAvatar("bob", False, self.store)
        self.failureResultOf(bob.lock(("alice.vfb",), "shared", "0", "", 60), PermissionDenied)
        self.failureResultOf(bob.refreshLock(("alice.vfb",), 60, Preconditions(tokens={lock.token})),
                             PermissionDenied)
        self.failureResultOf(bob.unlock(("alice.vfb",), lock.token), PermissionDenied)
        self.assertTrue(self.successResultOf(CalendarAvatar("root", True, self.store).unlock(("alice.vfb",),
                                                                                             lock.token)))


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
        Another user's file is refused before anything is written; a
        precondition that does not hold keeps the old version.
        """
        self.failureResultOf(self.alice.publish(("bob.vfb",), b"x"), PermissionDenied)
        self.assertIsNone(self.store.stat(("bob.vfb",)))
        self.successResultOf(self.alice.publish(("alice.vfb",), b"old"))
        self.failureResultOf(self.alice.publish(("alice.vfb",), b"new", Preconditions(ifMatch=b'"other"')),
                             PreconditionFailed)
        self.assertEqual(self.store.read(("alice.vfb",)), b"old")


class ListableNamesTests(unittest.SynchronousTestCase):
    """
    L{listableNames} names exactly the members L{authorize} lets a viewer
    list, so that a listing may skip the others unseen.
    """

    def test_sameAsAuthorize(self):
        """
        For administrators, users (with and without rooms) and the
        anonymous reader, in the top folder and below it, a file or
        collection may be listed only when its name is among those named,
        and a file so named may be listed.
        """
        viewers = [("admin", True, False, ()), ("alice", False, False, ()), ("carol", False, False, ("orion",)),
                   (None, False, False, ()), (None, False, True, ())]
        names = ["alice.vfb", "ALICE.VFB", "alice.ics", "alice.avail.ics", "alice.txt", "bob.vfb", "orion.vfb",
                 "Orion.Ics", "carol.vfb", "x"]
        for uid, isAdmin, anonymousReads, rooms in viewers:
            for collection in [(), ("folder",)]:
                listable = listableNames(uid, isAdmin, collection, anonymousReads, rooms)
                for name in names:
                    for isCollection in (False, True):
                        try:
                            authorize(uid, isAdmin, Action.LIST, collection + (name,), isCollection,
                                      anonymousReads, rooms)
                            allowed = True
                        except PermissionDenied:
                            allowed = False
                        named = listable is None or name.lower() in listable
                        case = (uid, collection, name, isCollection)
                        if allowed:
                            self.assertTrue(named, case)
                        if named and not isCollection:
                            self.assertTrue(allowed, case)
