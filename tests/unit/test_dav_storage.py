"""
Tests for the WebDAV state kept in the tree: dead properties
(L{fbtwist.store.tree.CalendarStore}) and locks (L{fbtwist.store.locks}).
"""

import os

from twisted.internet.task import Clock
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from fbtwist.errors import AlreadyExists, Conflict, NotFound
from fbtwist.store.locks import (
    EXCLUSIVE,
    INFINITY,
    MAX_TIMEOUT,
    SHARED,
    LockConflict,
    LockStore,
    _markerName,
    parseTimeout,
)
from fbtwist.store.tree import CalendarStore

WIN32 = "{urn:schemas-microsoft-com:}Win32FileAttributes"
WIN32_XML = '<ns0:Win32FileAttributes xmlns:ns0="urn:schemas-microsoft-com:">00000020</ns0:Win32FileAttributes>'


class DeadPropertyTests(SynchronousTestCase):
    """
    Dead properties are JSON beside the file (inside a collection), never
    visible as members, and travel with their resource.
    """

    def setUp(self):
        self.store = CalendarStore(FilePath(self.mktemp()))
        self.store.write(("alice.vfb",), b"")

    def test_roundTrip(self):
        """
        What is set is read back, by a new store over the same tree too.
        """
        self.store.setDeadProperties(("alice.vfb",), {WIN32: WIN32_XML, "plain": "<plain>é\U00010000</plain>"})
        again = CalendarStore(self.store.root)
        self.assertEqual(again.deadProperties(("alice.vfb",)),
                         {WIN32: WIN32_XML, "plain": "<plain>é\U00010000</plain>"})
        self.assertEqual([c.name for c in again.children(())], ["alice.vfb"])

    def test_notPickle(self):
        """
        The file is JSON text.
        """
        self.store.setDeadProperties(("alice.vfb",), {WIN32: WIN32_XML})
        names = [n for n in os.listdir(self.store.root.path) if n.startswith(".props")]
        self.assertEqual(len(names), 1)
        with open(os.path.join(self.store.root.path, names[0]), encoding="utf-8") as f:
            self.assertIn('"{urn:schemas-microsoft-com:}Win32FileAttributes"', f.read())

    def test_missingResource(self):
        """
        A resource that does not exist has no properties to read or write.
        """
        self.assertRaises(NotFound, self.store.deadProperties, ("nobody.vfb",))
        self.assertRaises(NotFound, self.store.setDeadProperties, ("nobody.vfb",), {WIN32: WIN32_XML})

    def test_deletedWithFile(self):
        """
        Deleting a file deletes its properties; a new file of that name has none.
        """
        self.store.setDeadProperties(("alice.vfb",), {WIN32: WIN32_XML})
        self.store.delete(("alice.vfb",))
        self.store.write(("alice.vfb",), b"")
        self.assertEqual(self.store.deadProperties(("alice.vfb",)), {})

    def test_movedWithFile(self):
        """
        A move takes the properties along.
        """
        self.store.setDeadProperties(("alice.vfb",), {WIN32: WIN32_XML})
        self.store.move(("alice.vfb",), ("bob.vfb",))
        self.assertEqual(self.store.deadProperties(("bob.vfb",)), {WIN32: WIN32_XML})
        self.assertIsNone(self.store.stat(("alice.vfb",)))
        self.store.write(("alice.vfb",), b"")
        self.assertEqual(self.store.deadProperties(("alice.vfb",)), {})

    def test_copiedWithCollection(self):
        """
        A deep copy of a collection copies members and the properties of both.
        """
        self.store.makeCollection(("c",))
        self.store.write(("c", "f"), b"data")
        self.store.setDeadProperties(("c",), {"a": "<a/>"})
        self.store.setDeadProperties(("c", "f"), {"b": "<b/>"})
        self.store.copy(("c",), ("d",))
        self.assertEqual(self.store.deadProperties(("d",)), {"a": "<a/>"})
        self.assertEqual(self.store.deadProperties(("d", "f")), {"b": "<b/>"})
        self.assertEqual(self.store.read(("d", "f")), b"data")
        self.store.copy(("c",), ("e",), recursive=False)
        self.assertEqual(list(self.store.children(("e",))), [])

    def test_copyAndMoveRefuseExistingAndOrphans(self):
        """
        The destination must not exist and its parent must.
        """
        self.store.write(("x",), b"")
        self.assertRaises(AlreadyExists, self.store.copy, ("alice.vfb",), ("x",))
        self.assertRaises(AlreadyExists, self.store.move, ("alice.vfb",), ("x",))
        self.assertRaises(Conflict, self.store.move, ("alice.vfb",), ("no", "x"))
        self.assertRaises(NotFound, self.store.copy, ("missing",), ("y",))


class LockStoreTests(SynchronousTestCase):
    """
    Locks are files in the tree: two stores over one directory (two
    servers) see the same locks, and expired locks disappear.
    """

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1000)
        self.directory = FilePath(self.mktemp())
        self.directory.makedirs()
        self.locks = LockStore(self.directory, self.clock)

    def test_sharedBetweenStores(self):
        """
        A lock taken through one store is seen and honoured by another.
        """
        lock = self.locks.create(("alice.vfb",), EXCLUSIVE, "0", "<D:owner/>", "alice", 600)
        other = LockStore(self.directory, self.clock)
        self.assertEqual(other.get(lock.token), lock)
        self.assertRaises(LockConflict, other.create, ("alice.vfb",), SHARED, "0", "", "bob", 600)

    def test_expiry(self):
        """
        A lock past its timeout is gone, and its file with it.
        """
        lock = self.locks.create(("alice.vfb",), EXCLUSIVE, "0", "", "alice", 60)
        self.clock.advance(59)
        self.assertEqual(self.locks.covering(("alice.vfb",)), [lock])
        self.clock.advance(2)
        self.assertEqual(self.locks.covering(("alice.vfb",)), [])
        self.assertEqual([n for n in os.listdir(self.directory.path) if n.endswith(".lock")], [])
        self.locks.create(("alice.vfb",), EXCLUSIVE, "0", "", "bob", 60)

    def test_timeoutBounded(self):
        """
        No lock lasts longer than the maximum, Infinite included.
        """
        lock = self.locks.create(("a",), EXCLUSIVE, "0", "", "alice", 10 ** 9)
        self.assertEqual(lock.timeout, MAX_TIMEOUT)
        self.assertEqual(parseTimeout(b"Infinite, Second-4100000000"), MAX_TIMEOUT)
        self.assertEqual(parseTimeout(b"Second-3600"), min(3600, MAX_TIMEOUT))
        self.assertEqual(parseTimeout(b"Second-x, Second-60"), 60)

    def test_refresh(self):
        """
        A refresh restarts the timeout.
        """
        lock = self.locks.create(("a",), EXCLUSIVE, "0", "", "alice", 60)
        self.clock.advance(50)
        refreshed = self.locks.refresh(lock.token, 60)
        self.assertEqual(refreshed.expires, self.clock.seconds() + 60)
        self.clock.advance(50)
        self.assertIsNotNone(self.locks.get(lock.token))
        self.assertIsNone(self.locks.refresh("opaquelocktoken:00000000-0000-0000-0000-000000000000", 60))

    def test_sharedAndExclusive(self):
        """
        Shared locks coexist; an exclusive one conflicts with any other.
        """
        self.locks.create(("a",), SHARED, "0", "", "alice", 60)
        self.locks.create(("a",), SHARED, "0", "", "bob", 60)
        self.assertRaises(LockConflict, self.locks.create, ("a",), EXCLUSIVE, "0", "", "carol", 60)

    def test_depthInfinity(self):
        """
        A depth-infinity lock covers members and conflicts with locks below
        it, and a new one conflicts with locks inside.
        """
        coll = self.locks.create(("c",), EXCLUSIVE, INFINITY, "", "admin", 60)
        self.assertEqual(self.locks.covering(("c", "f")), [coll])
        self.assertRaises(LockConflict, self.locks.create, ("c", "f"), EXCLUSIVE, "0", "", "admin", 60)
        self.locks.remove(coll.token)
        self.locks.create(("c", "f"), EXCLUSIVE, "0", "", "admin", 60)
        self.assertRaises(LockConflict, self.locks.create, ("c",), SHARED, INFINITY, "", "admin", 60)
        self.locks.create(("c",), SHARED, "0", "", "admin", 60)

    def test_affecting(self):
        """
        A change needs the tokens of locks on the path, below it when
        recursive, and on the parent when membership changes.
        """
        parent = self.locks.create(("c",), EXCLUSIVE, "0", "", "admin", 60)
        child = self.locks.create(("c", "d", "f"), EXCLUSIVE, "0", "", "admin", 60)
        self.assertEqual(self.locks.affecting(("c", "d")), [])
        self.assertEqual(self.locks.affecting(("c", "d"), recursive=True), [child])
        self.assertEqual(self.locks.affecting(("c", "d"), membership=True), [parent])

    def test_removeWithin(self):
        """
        Deleting a tree removes the locks rooted in it, no others.
        """
        inside = self.locks.create(("c", "f"), EXCLUSIVE, "0", "", "admin", 60)
        outside = self.locks.create(("cc",), EXCLUSIVE, "0", "", "admin", 60)
        self.locks.removeWithin(("c",))
        self.assertIsNone(self.locks.get(inside.token))
        self.assertIsNotNone(self.locks.get(outside.token))

    def test_badTokens(self):
        """
        Tokens that are not ours name no lock (and no file).
        """
        for token in ["", "opaquelocktoken:../../etc/passwd", "urn:uuid:x", "opaquelocktoken:"]:
            self.assertIsNone(self.locks.get(token))

    def test_locksPerPrincipalBounded(self):
        """
        One user cannot fill the tree with lock files.
        """
        from fbtwist.store.locks import MAX_LOCKS_PER_PRINCIPAL, TooManyLocks

        for i in range(MAX_LOCKS_PER_PRINCIPAL):
            self.locks.create(("a",), SHARED, "0", "", "alice", 60)
        self.assertRaises(TooManyLocks, self.locks.create, ("a",), SHARED, "0", "", "alice", 60)
        self.locks.create(("a",), SHARED, "0", "", "bob", 60)


class LockIndexTests(SynchronousTestCase):
    """
    Whether a lock can apply to a path is answered from the index of locked
    paths, without reading the locks; the index follows the locks.
    """

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1000)
        self.directory = FilePath(self.mktemp())
        self.directory.makedirs()
        self.locks = LockStore(self.directory, self.clock)

    def entries(self):
        return sorted(name for name in os.listdir(self.directory.path) if name.endswith(".held"))

    def test_noLockReadWhenNoneCanApply(self):
        """
        With locks elsewhere in the tree, asking which locks a change of an
        unlocked file needs reads none of them; for a locked one they are
        read.
        """
        lock = self.locks.create(("b.vfb",), EXCLUSIVE, "0", "", "bob", 60)
        self.locks.create(("c", "d.vfb"), EXCLUSIVE, INFINITY, "", "bob", 60)
        reads = []
        everything = LockStore.all

        def counted(store):
            reads.append(1)
            return everything(store)

        self.patch(LockStore, "all", counted)
        other = LockStore(self.directory, self.clock)
        self.assertEqual(other.affecting(("a.vfb",), membership=True), [])
        self.assertEqual(other.covering(("c", "e.vfb")), [])
        self.assertEqual(reads, [])
        self.assertEqual(other.affecting(("b.vfb",), membership=True), [lock])
        self.assertEqual(reads, [1])

    def settle(self, seconds=60):
        """
        Make the lock directory's last change C{seconds} old, as time
        passing would.
        """
        found = os.stat(self.directory.path)
        os.utime(self.directory.path, ns=(found.st_atime_ns, found.st_mtime_ns - int(seconds * 1e9)))

    def test_otherStoreSeen(self):
        """
        Two lock stores on one directory (two servers sharing the tree): a
        lock one takes is seen by the other at its next question, after the
        other kept its listing of the index.
        """
        other = LockStore(self.directory, self.clock)
        self.locks.create(("b.vfb",), EXCLUSIVE, "0", "", "bob", 60)
        self.settle()
        self.assertFalse(other.mayApply(("a.vfb",)))
        self.assertTrue(other.mayApply(("b.vfb",)))
        lock = self.locks.create(("a.vfb",), EXCLUSIVE, "0", "", "alice", 60)
        self.settle()
        self.assertTrue(other.mayApply(("a.vfb",)))
        self.assertEqual(other.affecting(("a.vfb",)), [lock])
        self.locks.remove(lock.token)
        self.assertFalse(other.mayApply(("a.vfb",)))
        self.settle()
        self.assertFalse(other.mayApply(("a.vfb",)))
        self.assertTrue(other.mayApply(("b.vfb",)))

    def test_listingKeptWhileUnchanged(self):
        """
        Once the directory's last change is old, its listing is kept as long
        as its modification time stays: an entry appearing without changing
        it is not looked for (which no server can make happen).
        """
        self.locks.create(("b.vfb",), EXCLUSIVE, "0", "", "bob", 60)
        self.settle()
        self.assertFalse(self.locks.mayApply(("a.vfb",)))
        before = os.stat(self.directory.path)
        open(os.path.join(self.directory.path, _markerName(("a.vfb",))), "w").close()
        os.utime(self.directory.path, ns=(before.st_atime_ns, before.st_mtime_ns))
        self.assertFalse(self.locks.mayApply(("a.vfb",)))
        self.settle()
        self.assertTrue(self.locks.mayApply(("a.vfb",)))

    def test_recentChangeNotKept(self):
        """
        While the directory's last change is recent, nothing is kept: an
        entry made in the same tick of the filesystem's clock (the
        modification time unchanged) is still found.
        """
        self.locks.create(("b.vfb",), EXCLUSIVE, "0", "", "bob", 60)
        self.assertFalse(self.locks.mayApply(("a.vfb",)))
        before = os.stat(self.directory.path)
        open(os.path.join(self.directory.path, _markerName(("a.vfb",))), "w").close()
        os.utime(self.directory.path, ns=(before.st_atime_ns, before.st_mtime_ns))
        self.assertTrue(self.locks.mayApply(("a.vfb",)))

    def test_recentChangeNotAskedAgain(self):
        """
        While the directory's last change is recent, the index answers from
        the names themselves and does not stat the directory again before
        that change may be trusted (the one rule of fbtwist.store.watch).
        """
        self.locks.create(("b.vfb",), EXCLUSIVE, "0", "", "bob", 60)
        asked = []
        stat = os.stat

        def counting(path, *args, **kwargs):
            if path == self.directory.path:
                asked.append(path)
            return stat(path, *args, **kwargs)

        self.patch(os, "stat", counting)
        self.assertFalse(self.locks.mayApply(("a.vfb",)))
        self.assertTrue(self.locks.mayApply(("b.vfb",)))
        self.assertFalse(self.locks.mayApply(("a.vfb",)))
        self.assertEqual(asked, [self.directory.path])

    def test_indexFollowsLocks(self):
        """
        A locked path has one index entry however many locks it holds; it
        goes with the last lock, also one that expired.
        """
        first = self.locks.create(("a",), SHARED, "0", "", "alice", 60)
        second = self.locks.create(("a",), SHARED, "0", "", "bob", 600)
        self.locks.create(("c", "f"), EXCLUSIVE, "0", "", "bob", 60)
        self.assertEqual(len(self.entries()), 2)
        self.locks.remove(first.token)
        self.assertEqual(len(self.entries()), 2)
        self.locks.removeWithin(("c",))
        self.assertEqual(len(self.entries()), 1)
        self.clock.advance(601)
        self.assertEqual(self.locks.covering(("a",)), [])
        # The entry of a lock that expired goes with the next lock taken (or
        # the next publish that finds it).
        self.assertIsNone(self.locks.get(second.token))
        self.locks.create(("z",), SHARED, "0", "", "alice", 60)
        self.assertEqual(self.entries(), [_markerName(("z",))])

    def test_publishPrunesEntryOfExpiredLock(self):
        """
        A publish that finds the index entry of a lock that has expired
        takes the mutex once and removes the entry, so the next publish of
        that file takes no mutex.
        """
        store = CalendarStore(self.directory.child("tree"))
        locks = LockStore(store.metadataDirectory("davlocks"), self.clock)
        locks.create(("a.vfb",), EXCLUSIVE, "0", "", "alice", 60)
        self.clock.advance(61)
        upload = store.openUpload(("a.vfb",))
        self.assertIs(self.successResultOf(upload.commitAsync(b"new", exclusive=locks.exclusive)), True)
        self.assertEqual([name for name in os.listdir(locks.directory.path) if name.endswith(".held")], [])
        self.assertEqual(store.read(("a.vfb",)), b"new")

    def test_locksWithoutIndexEntries(self):
        """
        Locks kept before the index existed (no entries) are still honoured:
        the first look of a process gives them their entries.
        """
        from fbtwist.store import locks as module

        lock = self.locks.create(("a",), EXCLUSIVE, INFINITY, "", "alice", 60)
        for name in self.entries():
            os.unlink(self.directory.child(name).path)
        module._indexed.discard(self.directory.path)
        self.assertEqual(LockStore(self.directory, self.clock).affecting(("a", "b"), membership=True), [lock])
        self.assertEqual(len(self.entries()), 1)


class StoreInterfaceTests(SynchronousTestCase):
    """
    The store still provides its interface with the DAV additions.
    """

    def test_provides(self):
        """
        L{CalendarStore} provides L{ICalendarStore}.
        """
        from zope.interface.verify import verifyObject

        from fbtwist.interfaces import ICalendarStore

        self.assertTrue(verifyObject(ICalendarStore, CalendarStore(FilePath(self.mktemp()))))
