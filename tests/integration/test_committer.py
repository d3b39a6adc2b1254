"""
Tests for L{fbtwist.store.committer} and L{fbtwist.store.commitchild}: a
real child process committing publishes into a real tree, with the
reactor trial runs.
"""

import errno
import os
import signal

from twisted.internet import defer, reactor, task
from twisted.python.filepath import FilePath
from twisted.trial import unittest

from fbtwist.errors import Conflict
from fbtwist.store import commitchild, committer
from fbtwist.store.commitchild import FALLBACK
from fbtwist.store.files import DirectoryFsyncs, isTemporaryOf
from fbtwist.store.locks import EXCLUSIVE, LOCK_DIRECTORY, LockStore, WallClock
from fbtwist.store.tree import CalendarStore

BODY = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VFREEBUSY\r\nEND:VFREEBUSY\r\nEND:VCALENDAR\r\n"


class _Tree:
    def makeTree(self):
        self.store = CalendarStore(FilePath(self.mktemp()))
        self.lockFolder = self.store.metadataDirectory(LOCK_DIRECTORY, create=False).path
        self.locks = LockStore(FilePath(self.lockFolder), WallClock)

    def place(self, name):
        return self.store._temporaryPlace((name,), self.store._rootDevice)

    def target(self, name):
        return os.path.join(self.store.root.path, name)

    def temporaries(self):
        found = []
        for folder, _, names in os.walk(self.store.root.path):
            found += [os.path.join(folder, name) for name in names if isTemporaryOf(name)]
        return found


class CommitOneTests(_Tree, unittest.SynchronousTestCase):
    """
    L{commitchild.commitOne} commits as the store's threads do, or gives a
    publish back unchanged.
    """

    def setUp(self):
        self.makeTree()

    def commit(self, name, data, existed=None):
        return commitchild.commitOne(self.locks, DirectoryFsyncs(), self.target(name), self.place(name), (name,),
                                     data, '"tag"', existed)

    def test_createsThenReplaces(self):
        """A new file is created (C{True}), then replaced (C{False}); its label is the store's; nothing is left."""
        self.assertIs(self.commit("alice.vfb", b"one"), True)
        self.assertIs(self.commit("alice.vfb", BODY), False)
        with open(self.target("alice.vfb"), "rb") as f:
            self.assertEqual(f.read(), BODY)
        st = os.stat(self.target("alice.vfb"))
        self.assertEqual(os.getxattr(self.target("alice.vfb"), "user.fbtwist.etag"),
                         b'"tag"|%d|%d' % (st.st_size, st.st_mtime_ns))
        self.assertEqual(self.temporaries(), [])

    def test_lockMayApply(self):
        """With a WebDAV lock on the file, the publish is given back and the old version stays."""
        self.commit("alice.vfb", b"old")
        self.locks.create(("alice.vfb",), EXCLUSIVE, "0", "", "bob", 600)
        self.assertEqual(self.commit("alice.vfb", b"new"), FALLBACK)
        with open(self.target("alice.vfb"), "rb") as f:
            self.assertEqual(f.read(), b"old")
        self.assertEqual(self.temporaries(), [])

    def test_missingFolder(self):
        """A target whose folder is missing fails with ENOENT, leaving nothing."""
        with self.assertRaises(OSError) as caught:
            commitchild.commitOne(self.locks, DirectoryFsyncs(), self.target("gone/alice.vfb"), None,
                                  ("gone", "alice.vfb"), b"x", '"tag"', None)
        self.assertEqual(caught.exception.errno, errno.ENOENT)
        self.assertEqual(self.temporaries(), [])

    def test_answer(self):
        """An answer carries the request's id and the outcome, or the error's number."""
        request = {"id": 7, "target": self.target("alice.vfb"), "place": list(self.place("alice.vfb")),
                   "path": ["alice.vfb"], "etag": '"t"', "existed": None}
        gone = dict(request, id=8, target=self.target("gone/alice.vfb"), place=None, path=["gone", "alice.vfb"])
        self.assertEqual(commitchild.answers([(request, b"x"), (gone, b"x")], self.locks, DirectoryFsyncs()),
                         [{"id": 7, "created": True},
                          {"id": 8, "errno": errno.ENOENT, "message": "No such file or directory"}])

    def batch(self, *publishes, fsyncs=None):
        return commitchild.commitBatch(self.locks, fsyncs or DirectoryFsyncs(), [
            commitchild.Publish(self.target(name), self.place(name) if "/" not in name else None,
                                tuple(name.split("/")), data, '"tag"', None)
            for name, data in publishes])

    def content(self, name):
        with open(self.target(name), "rb") as f:
            return f.read()

    def test_batch(self):
        """
        A batch commits each publish, saying whether its file is new, and
        fsyncs the folder they were renamed into once.
        """
        self.commit("bob.vfb", b"old")
        synced = []
        fsyncs = DirectoryFsyncs(fsync=synced.append)
        outcomes = self.batch(("alice.vfb", b"a"), ("bob.vfb", b"b"), ("carol.vfb", b"c"), fsyncs=fsyncs)
        self.assertEqual(outcomes, [True, False, True])
        self.assertEqual([self.content(n) for n in ("alice.vfb", "bob.vfb", "carol.vfb")], [b"a", b"b", b"c"])
        self.assertEqual(synced, [self.store.root.path])
        self.assertEqual(self.temporaries(), [])

    def test_batchOrder(self):
        """Two publishes of one file in a batch: the last stays, and the second replaced the first."""
        self.assertEqual(self.batch(("alice.vfb", b"first"), ("alice.vfb", b"second")), [True, False])
        self.assertEqual(self.content("alice.vfb"), b"second")
        self.assertEqual(self.temporaries(), [])

    def test_batchOutcomesOwn(self):
        """
        A publish refused or given back in a batch changes nothing, and
        nothing of the others.
        """
        self.commit("bob.vfb", b"old")
        self.locks.create(("bob.vfb",), EXCLUSIVE, "0", "", "carol", 600)
        outcomes = self.batch(("alice.vfb", b"a"), ("gone/x.vfb", b"x"), ("bob.vfb", b"new"), ("dave.vfb", b"d"))
        self.assertEqual(outcomes[0], True)
        self.assertIsInstance(outcomes[1], OSError)
        self.assertEqual(outcomes[1].errno, errno.ENOENT)
        self.assertEqual(outcomes[2:], [FALLBACK, True])
        self.assertEqual([self.content(n) for n in ("alice.vfb", "bob.vfb", "dave.vfb")], [b"a", b"old", b"d"])
        self.assertEqual(self.temporaries(), [])

    def test_batchFsyncFails(self):
        """
        A file whose fsync fails is not renamed: its publish fails with
        the error and its old version stays; the others are committed.
        """
        self.commit("bob.vfb", b"old")
        realFsync = os.fsync

        def fsync(fd):
            if os.fstat(fd).st_size == len(b"refused"):
                raise OSError(errno.EIO, "Input/output error")
            realFsync(fd)

        self.patch(os, "fsync", fsync)
        outcomes = self.batch(("alice.vfb", b"a"), ("bob.vfb", b"refused"), ("carol.vfb", b"c"))
        self.assertEqual([outcomes[0], outcomes[2]], [True, True])
        self.assertEqual(outcomes[1].errno, errno.EIO)
        self.assertEqual([self.content(n) for n in ("alice.vfb", "bob.vfb", "carol.vfb")], [b"a", b"old", b"c"])
        self.assertEqual(self.temporaries(), [])

    def test_batchWritebackFirst(self):
        """
        The writing of every file of a batch is started before the first
        of their fsyncs waits for the disk.
        """
        calls = []
        realFsync = os.fsync
        self.patch(commitchild, "startWriteback", lambda fds: calls.append(("writeback", len(fds))))

        def fsync(fd):
            calls.append("fsync")
            realFsync(fd)

        self.patch(os, "fsync", fsync)
        self.batch(("alice.vfb", b"a"), ("bob.vfb", b"b"), ("carol.vfb", b"c"))
        # Three files, then their folder.
        self.assertEqual(calls, [("writeback", 3), "fsync", "fsync", "fsync", "fsync"])

    def test_frames(self):
        """Frames read back as they were written, however the bytes are cut."""
        data = commitchild.frame({"id": 1, "target": "caf\udce9"}, b"\x00body") + commitchild.frame({"id": 2})
        first = (b'{"id": 1, "target": "caf\\udce9"}', b"\x00body")
        self.assertEqual(commitchild.FrameReader().feed(data), [first, (b'{"id": 2}', b"")])
        for cut in range(len(data) + 1):
            reader = commitchild.FrameReader()
            frames = reader.feed(data[:cut])
            frames += reader.feed(data[cut:])
            self.assertEqual(frames, [first, (b'{"id": 2}', b"")])
        # A large publish, read in the pieces a pipe gives.
        body = bytes(range(256)) * 4096
        large = commitchild.frame({"id": 3}, body) + commitchild.frame({"id": 4})
        reader, frames = commitchild.FrameReader(), []
        for at in range(0, len(large), 65536):
            frames += reader.feed(large[at:at + 65536])
        self.assertEqual(frames, [(b'{"id": 3}', body), (b'{"id": 4}', b"")])
        reader = commitchild.FrameReader()
        self.assertEqual(reader.feed(data[:-3]), [first])
        self.assertEqual(reader.feed(b""), [])
        self.assertEqual(reader.feed(data[-3:]), [(b'{"id": 2}', b"")])


class CommitProcessTests(_Tree, unittest.TestCase):
    """
    L{committer.CommitProcess} with a real child.
    """

    def setUp(self):
        self.makeTree()
        self.committer = committer.CommitProcess(reactor, self.lockFolder, 2)
        self.committer.startService()
        self.addCleanup(self.committer.stopService)

    def commit(self, name, data, existed=None):
        return self.committer.commit(self.target(name), self.place(name), (name,), data, '"tag"', existed)

    @defer.inlineCallbacks
    def test_commits(self):
        """Publishes of several files at once are committed, each saying whether it was new."""
        first = yield defer.gatherResults([self.commit(f"user{n}.vfb", b"v1 %d" % n) for n in range(20)])
        self.assertEqual(first, [True] * 20)
        again = yield defer.gatherResults([self.commit(f"user{n}.vfb", b"v2 %d" % n) for n in range(20)])
        self.assertEqual(again, [False] * 20)
        for n in range(20):
            with open(self.target(f"user{n}.vfb"), "rb") as f:
                self.assertEqual(f.read(), b"v2 %d" % n)
        self.assertEqual((self.committer.committed, self.committer.fellBack), (40, 0))
        self.assertEqual(self.temporaries(), [])

    @defer.inlineCallbacks
    def test_error(self):
        """What refuses a commit fails its Deferred with the same OSError."""
        d = self.committer.commit(self.target("gone/alice.vfb"), None, ("gone", "alice.vfb"), b"x", '"t"', None)
        failure = yield self.assertFailure(d, OSError)
        self.assertEqual(failure.errno, errno.ENOENT)

    @defer.inlineCallbacks
    def test_childKilled(self):
        """
        A child killed with commits outstanding gives them back; publishes
        within a second of its end are given back at once, then a new
        child commits.
        """
        self.assertIs((yield self.commit("alice.vfb", b"one")), True)
        pending = self.commit("alice.vfb", b"two")
        self.committer._child.transport.signalProcess(signal.SIGKILL)
        self.assertEqual((yield pending), FALLBACK)
        self.assertEqual((yield self.commit("alice.vfb", b"three")), FALLBACK)
        with open(self.target("alice.vfb"), "rb") as f:
            self.assertEqual(f.read(), b"one")
        yield task.deferLater(reactor, committer.RESTART_DELAY + 0.1, lambda: None)
        self.assertIs((yield self.commit("alice.vfb", b"four")), False)
        with open(self.target("alice.vfb"), "rb") as f:
            self.assertEqual(f.read(), b"four")

    @defer.inlineCallbacks
    def test_stopSignalsLeftToTheServer(self):
        """
        The signals that stop a server's processes (systemd's SIGTERM to all
        of them, a terminal's SIGINT) do not end the child: it commits on
        until the server closes its input.
        """
        self.assertIs((yield self.commit("alice.vfb", b"one")), True)
        child = self.committer._child
        child.transport.signalProcess(signal.SIGTERM)
        child.transport.signalProcess(signal.SIGINT)
        yield task.deferLater(reactor, 0.2, lambda: None)
        self.assertIs((yield self.commit("alice.vfb", b"two")), False)
        self.assertIs(self.committer._child, child)
        self.assertEqual((self.committer.committed, self.committer.fellBack), (2, 0))

    @defer.inlineCallbacks
    def test_stopWaitsForCommits(self):
        """Stopping lets the child finish what it was sent; later publishes are given back."""
        sent = [self.commit(f"user{n}.vfb", b"x") for n in range(10)]
        yield self.committer.stopService()
        self.assertEqual((yield defer.gatherResults(sent)), [True] * 10)
        self.assertIsNone(self.committer._child)
        self.assertEqual((yield self.commit("late.vfb", b"x")), FALLBACK)
        self.assertFalse(os.path.exists(self.target("late.vfb")))


class StartTests(_Tree, unittest.TestCase):
    """
    The child is started at the first publish, or, with C{startEarly},
    when the reactor runs.
    """

    def committerFor(self, startEarly: bool):
        self.makeTree()
        committing = committer.CommitProcess(reactor, self.lockFolder, 2, startEarly=startEarly)
        committing.startService()
        self.addCleanup(committing.stopService)
        return committing

    @defer.inlineCallbacks
    def test_early(self):
        """Started with the service: the first publish is committed by the child, none given back."""
        committing = self.committerFor(True)
        # The test runs before trial's reactor does: its next turn.
        yield task.deferLater(reactor, 0, lambda: None)
        self.assertIsNotNone(committing._child)
        name = "alice.vfb"
        created = yield committing.commit(self.target(name), self.place(name), (name,), BODY, '"t"', None)
        self.assertIs(created, True)
        self.assertEqual((committing.committed, committing.fellBack), (1, 0))

    def test_atFirstPublish(self):
        """Without startEarly nothing is started before the first publish."""
        self.assertIsNone(self.committerFor(False)._child)

    def test_notAfterStop(self):
        """A service stopped before the reactor ran starts no child when it runs."""
        clock = task.Clock()
        started = []
        committing = committer.CommitProcess(clock, "/nonexistent", 1, startEarly=True)
        committing._running = lambda: started.append(True)
        # Clock has no callWhenRunning: the reactor is not running yet.
        clock.callWhenRunning = lambda f, *a, **kw: clock.callLater(0, f, *a, **kw)
        committing.startService()
        committing.stopService()
        clock.advance(0)
        self.assertEqual(started, [])


class WiringTests(unittest.SynchronousTestCase):
    """
    The server starts its commit process with itself, but for the master of
    C{--workers}, whose workers publish: each of them starts its own.
    """

    def committerOf(self, *args, adoptedFDs=None):
        from fbtwist.tap import makeService
        from tests.helpers import serviceOptions

        options = serviceOptions("--http", "tcp:0:interface=127.0.0.1", "--ftp", "none", "--root", self.mktemp(),
                                 *args)
        # Built, not started: nothing listens, nothing is spawned.
        return makeService(options, reactor=reactor, adoptedFDs=adoptedFDs).store.committer

    def test_alone(self):
        """One process: started with the server."""
        self.assertTrue(self.committerOf().startEarly)

    def test_master(self):
        """The master of --workers: only at a publish it is sent itself."""
        self.assertFalse(self.committerOf("--workers", "2").startEarly)

    def test_worker(self):
        """A worker (it serves listening sockets its master made): started with it."""
        import socket

        listening = socket.socket()
        self.addCleanup(listening.close)
        listening.bind(("127.0.0.1", 0))
        listening.listen(1)
        self.assertTrue(self.committerOf("--workers", "2", adoptedFDs=[listening.fileno()]).startEarly)


class UploadTests(_Tree, unittest.TestCase):
    """
    L{fbtwist.store.uploads.Upload.commitAsync} hands plain publishes sent
    in one piece to the store's committer, and commits the rest itself.
    """

    def setUp(self):
        self.makeTree()
        self.committer = committer.CommitProcess(reactor, self.lockFolder, 2)
        self.committer.startService()
        self.addCleanup(self.committer.stopService)
        self.store.committer = self.committer

    @defer.inlineCallbacks
    def test_plainCommittedByChild(self):
        """A plain publish is committed by the child, with the entity tag the store gives its content."""
        created = yield self.store.openUpload(("alice.vfb",)).commitAsync(BODY, exclusive=self.locks.exclusive,
                                                                          plain=True)
        self.assertIs(created, True)
        self.assertEqual(self.committer.committed, 1)
        self.assertEqual(self.store.read(("alice.vfb",)), BODY)
        upload = self.store.openUpload(("bob.vfb",))
        upload.write(BODY)
        yield upload.commitAsync(b"", exclusive=self.locks.exclusive)
        self.assertEqual(self.store.etag(("alice.vfb",)), self.store.etag(("bob.vfb",)))

    @defer.inlineCallbacks
    def test_notPlain(self):
        """A publish with conditions, or streamed, is committed here."""
        yield self.store.openUpload(("alice.vfb",)).commitAsync(BODY, exclusive=self.locks.exclusive)
        upload = self.store.openUpload(("bob.vfb",))
        upload.write(BODY)
        yield upload.commitAsync(b"", exclusive=self.locks.exclusive, plain=True)
        self.assertEqual(self.committer.committed, 0)
        self.assertEqual(self.store.read(("alice.vfb",)), BODY)
        self.assertEqual(self.store.read(("bob.vfb",)), BODY)

    @defer.inlineCallbacks
    def test_lockedCheckedHere(self):
        """A publish a lock applies to is given back, and refused here by the check."""
        self.locks.create(("alice.vfb",), EXCLUSIVE, "0", "", "bob", 600)

        def check():
            raise Conflict("locked")

        d = self.store.openUpload(("alice.vfb",)).commitAsync(BODY, check, exclusive=self.locks.exclusive,
                                                               plain=True)
        yield self.assertFailure(d, Conflict)
        self.assertEqual((self.committer.committed, self.committer.fellBack), (0, 1))
        self.assertIsNone(self.store.stat(("alice.vfb",)))

    @defer.inlineCallbacks
    def test_errorMapped(self):
        """The child's error becomes the store's (a missing folder: a conflict)."""
        upload = self.store.openUpload(("alice.vfb",))
        os.rename(self.store.root.path, self.store.root.path + ".moved")
        self.addCleanup(os.rename, self.store.root.path + ".moved", self.store.root.path)
        d = upload.commitAsync(BODY, exclusive=self.locks.exclusive, plain=True)
        yield self.assertFailure(d, Conflict)
