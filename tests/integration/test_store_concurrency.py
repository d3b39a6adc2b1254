"""
The store with real threads and real processes: concurrent commits through
the reactor's thread pool (grouped directory fsyncs, the lock mutex between
a commit and a WebDAV lock), and writer processes killed with SIGKILL in
the middle of an upload.  The rest of the store is tested in memory, in
L{tests.unit.test_store}.
"""

import os

from twisted.internet import defer
from twisted.internet.task import deferLater
from twisted.python.filepath import FilePath
from twisted.trial import unittest

from fbtwist.errors import PermissionDenied
from fbtwist.store.tree import CalendarStore
from tests.helpers import inline, treeNames


class GroupCommitTests(unittest.TestCase):
    """
    Concurrent commits through the thread pool are all durable and correct.
    """

    def test_concurrentCommits(self):
        """
        Forty commits at once (sharing directory fsyncs): every file holds
        what its commit wrote.
        """
        from twisted.internet import reactor

        from fbtwist.tap import threadRunner

        store = CalendarStore(FilePath(self.mktemp()), runBlocking=threadRunner(reactor))
        commits = []
        for i in range(40):
            upload = store.openUpload((f"u{i}.vfb",))
            commits.append(upload.commitAsync(b"version %d" % i))

        def check(_):
            for i in range(40):
                self.assertEqual(store.read((f"u{i}.vfb",)), b"version %d" % i)

        return defer.gatherResults(commits).addCallback(check)

    @inline
    async def test_oneTripGroupedFsync(self):
        """
        Through the store's pool, each commit takes one trip: while one
        thread fsyncs the directory, commits renamed meanwhile join the
        next fsync, which that thread runs once it has handed its own
        outcome over; they fire once it has ended, without a trip of
        their own.
        """
        import threading

        from twisted.internet import reactor

        from fbtwist.store.pool import StorePool

        pool = StorePool(reactor, 3)
        self.addCleanup(pool.stopService)
        trips = []

        def runBlocking(f, *args):
            trips.append(f)
            return pool.runBlocking(f, *args)

        store = CalendarStore(FilePath(self.mktemp()), runBlocking=runBlocking)
        fsyncs, releases = [], [threading.Event() for _ in range(3)]
        everyFsync = threading.Semaphore(0)

        def fsync(path):
            release = releases[len(fsyncs)]
            fsyncs.append(path)
            everyFsync.release()
            self.assertTrue(release.wait(30))

        store._directoryFsyncs._fsync = fsync
        first = store.openUpload(("a.vfb",)).commitAsync(b"a")
        self.assertTrue(everyFsync.acquire(timeout=30))
        others = [store.openUpload((name,)).commitAsync(b"later") for name in ("b.vfb", "c.vfb")]
        syncs = store._directoryFsyncs._directories[store.root.path]
        for _ in range(3000):
            if len(syncs.joined) == 2:
                break
            await deferLater(reactor, 0.01)
        # The others renamed and joined: their threads are free again.
        self.assertEqual(len(syncs.joined), 2)
        self.assertEqual(len(fsyncs), 1)
        self.assertFalse(any(d.called for d in others))
        releases[0].set()
        self.assertIs(await first, True)
        self.assertTrue(everyFsync.acquire(timeout=30))
        self.assertEqual(len(fsyncs), 2)
        self.assertFalse(any(d.called for d in others))
        releases[1].set()
        self.assertEqual(await defer.gatherResults(others), [True, True])
        self.assertEqual(len(fsyncs), 2)
        self.assertEqual(len(trips), 3)
        self.assertEqual([store.read((n,)) for n in ("a.vfb", "b.vfb", "c.vfb")], [b"a", b"later", b"later"])

    def _lockedStore(self):
        from twisted.internet import reactor

        from fbtwist.store.locks import LOCK_DIRECTORY, LockStore, WallClock
        from fbtwist.tap import threadRunner

        store = CalendarStore(FilePath(self.mktemp()), runBlocking=threadRunner(reactor))
        store.write(("a.vfb",), b"old")
        return store, LockStore(store.metadataDirectory(LOCK_DIRECTORY), WallClock)

    def test_renameUnderExclusive(self):
        """
        When a lock may apply to the file, a commit's check and rename wait
        while another holder (another server taking a WebDAV lock, say) has
        the lock mutex; the new version appears once it is released.
        """
        from twisted.internet import reactor
        from twisted.internet.task import deferLater

        store, locks = self._lockedStore()
        locks.create(("a.vfb",), "shared", "0", "", "bob", 60)
        held = locks.exclusive()
        held.__enter__()
        checked = []
        d = store.openUpload(("a.vfb",)).commitAsync(b"new", lambda: checked.append(1), exclusive=locks.exclusive)

        def stillOld(_):
            self.assertEqual((store.read(("a.vfb",)), checked), (b"old", []))
            self.assertNoResult(d)
            held.__exit__(None, None, None)
            return d

        def new(created):
            self.assertIs(created, False)
            self.assertEqual((store.read(("a.vfb",)), checked), (b"new", [1]))

        return deferLater(reactor, 0.3).addCallback(stillOld).addCallback(new)

    def test_noMutexWhenNoLockApplies(self):
        """
        A commit of a file no lock can apply to (only another file is
        locked) does not wait for the lock mutex.
        """
        store, locks = self._lockedStore()
        locks.create(("b.vfb",), "exclusive", "0", "", "bob", 60)
        held = locks.exclusive()
        held.__enter__()
        self.addCleanup(held.__exit__, None, None, None)
        checked = []
        d = store.openUpload(("a.vfb",)).commitAsync(b"new", lambda: checked.append(1), exclusive=locks.exclusive)

        def new(created):
            self.assertIs(created, False)
            self.assertEqual((store.read(("a.vfb",)), checked), (b"new", [1]))

        return d.addCallback(new)

    def test_lockWaitsForCommitThatLookedBefore(self):
        """
        A publish that found no lock and has not renamed yet holds up a LOCK
        of its file taken meanwhile (through another lock store, as another
        server would) until its new version is in place: the lock never
        sees a write it did not allow.
        """
        import threading

        from twisted.internet import reactor
        from twisted.internet.task import deferLater
        from twisted.internet.threads import deferToThread

        store, locks = self._lockedStore()
        inCheck, release = threading.Event(), threading.Event()

        def check():
            inCheck.set()
            release.wait(10)

        d = store.openUpload(("a.vfb",)).commitAsync(b"new", check, exclusive=locks.exclusive)
        other = type(locks)(locks.directory, locks.clock)
        seen = []

        def lockNow(inside):
            self.assertTrue(inside)
            seen.append(deferToThread(other.create, ("a.vfb",), "exclusive", "0", "", "bob", 60))
            return deferLater(reactor, 0.3)

        def stillWaiting(_):
            seen.append((seen[0].called, store.read(("a.vfb",))))
            release.set()
            return defer.gatherResults([d, seen[0]])

        def locked(results):
            self.assertEqual(seen[1], (False, b"old"))
            self.assertEqual(store.read(("a.vfb",)), b"new")
            self.assertEqual(other.covering(("a.vfb",)), [results[1]])

        return deferToThread(inCheck.wait, 10).addCallback(lockNow).addCallback(stillWaiting).addCallback(locked)

    def _heldCommit(self, store, locks, path):
        """
        Start a commit of C{path} that holds in its check (after looking at
        the index, before its rename) until the returned event is set.

        @return: The commit's Deferred, a Deferred firing once it is in its
            check, and the event releasing it.
        """
        import threading

        from twisted.internet.threads import deferToThread

        inCheck, release = threading.Event(), threading.Event()

        def check():
            inCheck.set()
            release.wait(10)

        d = store.openUpload(path).commitAsync(b"new", check, exclusive=locks.exclusive)
        self.addCleanup(release.set)
        return d, deferToThread(inCheck.wait, 10), release

    @inline
    async def test_collectionLockWaitsForStagedCommit(self):
        """
        An infinite-depth lock of a collection taken while a member's
        publish, which found no lock, is between its check and its rename
        (its temporary file in the staging folder at the top of the tree)
        is granted only once the new version is in place.
        """
        from twisted.internet import reactor
        from twisted.internet.task import deferLater
        from twisted.internet.threads import deferToThread

        store, locks = self._lockedStore()
        store.makeCollection(("sub",))
        store.write(("sub", "a.vfb"), b"old")
        d, inCheck, release = self._heldCommit(store, locks, ("sub", "a.vfb"))
        self.assertTrue(await inCheck)
        other = type(locks)(locks.directory, locks.clock)
        lock = deferToThread(other.create, ("sub",), "exclusive", "infinity", "", "bob", 60)
        await deferLater(reactor, 0.3)
        self.assertEqual((lock.called, store.read(("sub", "a.vfb"))), (False, b"old"))
        release.set()
        await d
        granted = await lock
        self.assertEqual(store.read(("sub", "a.vfb")), b"new")
        self.assertEqual(other.covering(("sub", "a.vfb")), [granted])

    @inline
    async def test_lockWaitsForBesideCommit(self):
        """
        Without a staging folder (something else has its name), a publish's
        temporary file is beside its target, and a lock of the file taken
        while the publish is between its check and its rename still waits
        for it.
        """
        from twisted.internet import reactor
        from twisted.internet.task import deferLater
        from twisted.internet.threads import deferToThread

        from fbtwist.store.files import STAGING_FOLDER
        from fbtwist.store.locks import LOCK_DIRECTORY, LockStore, WallClock
        from fbtwist.tap import threadRunner

        root = FilePath(self.mktemp())
        root.makedirs()
        root.child(STAGING_FOLDER).setContent(b"not a folder")
        store = CalendarStore(root, runBlocking=threadRunner(reactor))
        store.write(("a.vfb",), b"old")
        locks = LockStore(store.metadataDirectory(LOCK_DIRECTORY), WallClock)
        d, inCheck, release = self._heldCommit(store, locks, ("a.vfb",))
        self.assertTrue(await inCheck)
        self.assertEqual(len([n for n in os.listdir(root.path) if n.endswith(".tmp")]), 1)
        other = type(locks)(locks.directory, locks.clock)
        lock = deferToThread(other.create, ("a.vfb",), "exclusive", "0", "", "bob", 60)
        await deferLater(reactor, 0.3)
        self.assertEqual((lock.called, store.read(("a.vfb",))), (False, b"old"))
        release.set()
        await d
        granted = await lock
        self.assertEqual(store.read(("a.vfb",)), b"new")
        self.assertEqual(other.covering(("a.vfb",)), [granted])

    @inline
    async def test_otherLockDoesNotWait(self):
        """
        A lock of another file is granted at once while a publish is
        between its check and its rename.
        """
        from twisted.internet.threads import deferToThread

        store, locks = self._lockedStore()
        d, inCheck, release = self._heldCommit(store, locks, ("a.vfb",))
        self.assertTrue(await inCheck)
        other = type(locks)(locks.directory, locks.clock)
        granted = await deferToThread(other.create, ("b.vfb",), "exclusive", "0", "", "bob", 60)
        self.assertEqual(other.covering(("b.vfb",)), [granted])
        self.assertEqual(store.read(("a.vfb",)), b"old")
        release.set()
        await d
        self.assertEqual(store.read(("a.vfb",)), b"new")

    def test_commitAfterLockSeesIt(self):
        """
        A publish still being written when a lock is taken does not hold the
        lock up, and at its commit finds the lock (its check runs under the
        mutex and refuses).
        """
        store, locks = self._lockedStore()
        upload = store.openUpload(("a.vfb",))
        upload.write(b"new, still arriving")
        lock = locks.create(("a.vfb",), "exclusive", "0", "", "bob", 60)

        def check():
            if locks.affecting(("a.vfb",), membership=True):
                raise PermissionDenied("locked")

        d = upload.commitAsync(b"", check, exclusive=locks.exclusive)

        def refused(failure):
            failure.trap(PermissionDenied)
            self.assertEqual(store.read(("a.vfb",)), b"old")
            self.assertEqual(locks.covering(("a.vfb",)), [lock])

        return d.addCallbacks(lambda _: self.fail("committed over a lock"), refused)


_WRITER = """
import sys
from twisted.python.filepath import FilePath
from fbtwist.store.tree import CalendarStore
upload = CalendarStore(FilePath(sys.argv[1])).openUpload((sys.argv[2],))
upload.write(b"partial " * 1000)
print("writing", flush=True)
sys.stdin.readline()
upload.write(b"end")
upload.commit()
print("committed", flush=True)
"""


class KilledWriterTests(unittest.SynchronousTestCase):
    """
    Real writer processes killed with SIGKILL in the middle of an upload.
    """

    def startWriter(self, root: str, name: str):
        import subprocess
        import sys

        process = subprocess.Popen([sys.executable, "-c", _WRITER, root, name], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, cwd=os.path.dirname(os.path.dirname(__file__)))
        self.addCleanup(process.wait)
        self.addCleanup(lambda: process.poll() is None and process.kill())
        self.addCleanup(process.stdout.close)
        self.addCleanup(process.stdin.close)
        self.assertEqual(process.stdout.readline(), b"writing\n")
        return process

    def test_killedWritersSweptAtOnce(self):
        """
        A starting store removes at once the temporary files of writers
        killed mid-upload, and leaves a live writer's, which then commits.
        """
        import signal

        root = os.path.abspath(self.mktemp())
        os.makedirs(root)
        for round in range(5):
            killed = [self.startWriter(root, f"user{i}.vfb") for i in range(3)]
            for process in killed:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
        live = self.startWriter(root, "live.vfb")
        temporaries = [n for n in treeNames(root) if n.endswith(".tmp")]
        self.assertEqual(len(temporaries), 16)
        self.assertEqual(CalendarStore(FilePath(root)).removeStaleTemporaries(), 15)
        self.assertEqual([n for n in treeNames(root) if n.endswith(".tmp")],
                         [n for n in temporaries if os.path.basename(n).startswith(".live.vfb.")])
        live.stdin.write(b"commit\n")
        live.stdin.flush()
        self.assertEqual(live.stdout.readline(), b"committed\n")
        self.assertEqual(treeNames(root), ["live.vfb"])
        with open(os.path.join(root, "live.vfb"), "rb") as f:
            self.assertEqual(f.read(), b"partial " * 1000 + b"end")

