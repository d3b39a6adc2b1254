"""
Tests for L{fbtwist.store}: name validation, atomic writes, containment.
"""

import errno
import os

from twisted.internet import defer
from twisted.python.filepath import FilePath
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from fbtwist.errors import AlreadyExists, Conflict, InsufficientStorage, InvalidName, NotFound, PermissionDenied
from fbtwist.interfaces import ICalendarStore, IUpload
from fbtwist.store import CalendarStore, etagForContent, validateName, validatePath


class ValidateNameTests(unittest.SynchronousTestCase):
    """
    Only plain names are valid.
    """

    def test_plainNames(self):
        """
        Ordinary file names, including non-ASCII ones, pass unchanged.
        """
        for name in ["alice.vfb", "Bob Smith.vfb", "müller.vfb", "a" * 200]:
            self.assertEqual(validateName(name), name)

    def test_refused(self):
        """
        Empty, dot-names, separators, NUL, control characters and overlong
        names are refused.
        """
        for name in ["", ".", "..", ".hidden", "a/b", "a\\b", "a\x00b", "a\nb", "a\x7fb", "a\u202eb", "x" * 256,
                     "é" * 128]:
            self.assertRaises(InvalidName, validateName, name)

    def test_pathTrailingSlash(self):
        """
        A trailing empty segment (a URL ending in /) is dropped; inner empty
        segments are refused; depth is bounded.
        """
        self.assertEqual(validatePath(["a", ""]), ("a",))
        self.assertEqual(validatePath([""]), ())
        self.assertRaises(InvalidName, validatePath, ["a", "", "b"])
        self.assertRaises(InvalidName, validatePath, ["a"] * 17)


class CalendarStoreTests(unittest.SynchronousTestCase):
    """
    The filesystem tree.
    """

    def setUp(self):
        self.root = FilePath(self.mktemp())
        self.store = CalendarStore(self.root)

    def test_interface(self):
        """
        The store provides L{ICalendarStore}; an upload L{IUpload}.
        """
        verifyObject(ICalendarStore, self.store)
        upload = self.store.openUpload(("a.vfb",))
        verifyObject(IUpload, upload)
        upload.abort()

    def test_createsRoot(self):
        """
        A missing root is created.
        """
        self.assertTrue(self.root.isdir())

    def test_writeAndRead(self):
        """
        write() reports creation, read() returns the bytes, stat() the size.
        """
        self.assertTrue(self.store.write(("a.vfb",), b"one"))
        self.assertFalse(self.store.write(("a.vfb",), b"two!"))
        self.assertEqual(self.store.read(("a.vfb",)), b"two!")
        info = self.store.stat(("a.vfb",))
        self.assertEqual((info.size, info.isCollection, info.name), (4, False, "a.vfb"))

    def test_readMissing(self):
        """
        Reading nothing is NotFound; stat() is None.
        """
        self.assertRaises(NotFound, self.store.read, ("nope.vfb",))
        self.assertIsNone(self.store.stat(("nope.vfb",)))

    def test_abortKeepsOldFile(self):
        """
        An aborted upload leaves the old content and no temporary file.
        """
        self.store.write(("a.vfb",), b"old")
        upload = self.store.openUpload(("a.vfb",))
        upload.write(b"half of the new")
        self.assertEqual(upload.contents(), b"half of the new")
        self.assertEqual(self.store.read(("a.vfb",)), b"old")
        upload.abort()
        upload.abort()
        self.assertEqual(self.store.read(("a.vfb",)), b"old")
        self.assertEqual(os.listdir(self.root.path), ["a.vfb"])

    def test_uploadInvisibleUntilCommit(self):
        """
        Readers see the old version until commit(), then the new one; the
        temporary file is hidden from listings.
        """
        self.store.write(("a.vfb",), b"old")
        upload = self.store.openUpload(("a.vfb",))
        upload.write(b"new")
        self.assertEqual([i.name for i in self.store.children(())], ["a.vfb"])
        self.assertEqual(self.store.read(("a.vfb",)), b"old")
        upload.commit()
        self.assertEqual(self.store.read(("a.vfb",)), b"new")
        self.assertEqual(os.listdir(self.root.path), ["a.vfb"])

    def test_etag(self):
        """
        The ETag follows the content: the same bytes give the same tag, and
        a file changed by another program gets a fresh one.
        """
        self.store.write(("a.vfb",), b"content")
        self.assertEqual(self.store.etag(("a.vfb",)), etagForContent(b"content"))
        self.store.write(("b.vfb",), b"content")
        self.assertEqual(self.store.etag(("b.vfb",)), self.store.etag(("a.vfb",)))
        with open(self.root.child("a.vfb").path, "r+b") as f:
            f.write(b"CONTENT")
        os.utime(self.root.child("a.vfb").path, ns=(1, 1))
        self.assertEqual(self.store.etag(("a.vfb",)), etagForContent(b"CONTENT"))

    def test_symlinkEscape(self):
        """
        A symbolic link leading outside the root is neither read nor written
        through.
        """
        outside = FilePath(self.mktemp())
        outside.setContent(b"secret")
        outside.linkTo(self.root.child("evil.vfb"))
        self.assertRaises(PermissionDenied, self.store.read, ("evil.vfb",))
        self.assertRaises(PermissionDenied, self.store.stat, ("evil.vfb",))
        self.assertRaises(PermissionDenied, self.store.openUpload, ("evil.vfb",))
        outsideDir = FilePath(self.mktemp())
        outsideDir.makedirs()
        outsideDir.linkTo(self.root.child("dir"))
        self.assertRaises(PermissionDenied, self.store.openUpload, ("dir", "x.vfb"))
        self.assertEqual(outside.getContent(), b"secret")
        self.assertEqual(outsideDir.listdir(), [])

    def test_statThroughLinkInside(self):
        """
        stat of a name that is a link within the tree describes its target;
        of a plain file, a collection or nothing, what is there.
        """
        self.store.write(("real.vfb",), b"content")
        self.root.child("real.vfb").linkTo(self.root.child("alias.vfb"))
        self.store.makeCollection(("c",))
        self.assertEqual(self.store.stat(("alias.vfb",)).size, 7)
        self.assertFalse(self.store.stat(("alias.vfb",)).isCollection)
        self.assertEqual(self.store.stat(("real.vfb",)).size, 7)
        self.assertTrue(self.store.stat(("c",)).isCollection)
        self.assertIsNone(self.store.stat(("missing.vfb",)))
        self.assertIsNone(self.store.stat(("real.vfb", "below")))
        os.mkfifo(self.root.child("fifo").path)
        self.assertIsNone(self.store.stat(("fifo",)))
        self.assertRaises(InvalidName, self.store.stat, (".hidden",))

    def test_collections(self):
        """
        Collections are made, listed lazily, and deleted with their content;
        a file under a missing parent is a Conflict.
        """
        self.assertRaises(Conflict, self.store.openUpload, ("sub", "a.vfb"))
        self.store.makeCollection(("sub",))
        self.assertRaises(AlreadyExists, self.store.makeCollection, ("sub",))
        self.store.write(("sub", "a.vfb"), b"x")
        self.assertRaises(AlreadyExists, self.store.openUpload, ("sub",))
        self.assertEqual([i.path for i in self.store.children(("sub",))], [("sub", "a.vfb")])
        self.assertTrue(self.store.stat(("sub",)).isCollection)
        self.store.delete(("sub",))
        self.assertIsNone(self.store.stat(("sub",)))
        self.assertRaises(NotFound, self.store.delete, ("sub",))
        self.assertRaises(PermissionDenied, self.store.delete, ())

    def test_invalidNames(self):
        """
        Every operation validates its path.
        """
        for path in [("..",), ("a", ".."), ("a/b",), (".x",)]:
            self.assertRaises(InvalidName, self.store.stat, path)
            self.assertRaises(InvalidName, self.store.openUpload, path)

    def test_staleTemporaries(self):
        """
        Old temporary files left by a dead writer are removed; recent ones
        (another server may be writing) and real files stay.
        """
        self.store.write(("a.vfb",), b"x")
        old = self.root.child(".a.vfb.0123456789ab.tmp")
        old.setContent(b"partial")
        os.utime(old.path, (0, 0))
        recent = self.root.child(".a.vfb.ba9876543210.tmp")
        recent.setContent(b"partial")
        self.assertEqual(self.store.removeStaleTemporaries(), 1)
        self.assertFalse(old.exists())
        self.assertTrue(recent.exists())
        self.assertTrue(self.root.child("a.vfb").exists())

    def test_diskFull(self):
        """
        A full disk is InsufficientStorage, and the old file stays.
        """
        import errno

        self.store.write(("a.vfb",), b"old")
        upload = self.store.openUpload(("a.vfb",))

        class FullFile:
            def write(self, data):
                raise OSError(errno.ENOSPC, "No space left on device")

            def close(self):
                pass

        upload._file.close()
        upload._file = FullFile()
        self.assertRaises(InsufficientStorage, upload.write, b"new")
        self.assertEqual(self.store.read(("a.vfb",)), b"old")
        self.assertEqual(os.listdir(self.root.path), ["a.vfb"])


class HeldRunner:
    """
    A store's C{runBlocking} that runs nothing until told: each call waits
    in C{pending} until L{finish} runs it, as a thread pool that has not got
    to it yet would.
    """

    def __init__(self):
        self.pending = []

    def __call__(self, f, *args):
        d = defer.Deferred()
        self.pending.append((d, f, args))
        return d

    def finish(self):
        """
        Run the oldest waiting call and fire its Deferred with the outcome.
        """
        d, f, args = self.pending.pop(0)
        try:
            result = f(*args)
        except BaseException:
            d.errback()
        else:
            d.callback(result)


class CommitAsyncTests(unittest.SynchronousTestCase):
    """
    L{fbtwist.store.Upload.commitAsync} writes and syncs through the store's
    C{runBlocking}, and renames in the caller's thread after its check.
    """

    def setUp(self):
        self.root = FilePath(self.mktemp())
        self.runner = HeldRunner()
        self.store = CalendarStore(self.root, runBlocking=self.runner)
        self.store.write(("a.vfb",), b"old")

    def test_defaultRunsAtOnce(self):
        """
        Without a C{runBlocking} the commit happens before commitAsync
        returns.
        """
        store = CalendarStore(FilePath(self.mktemp()))
        d = store.openUpload(("a.vfb",)).commitAsync(b"new")
        self.assertIs(self.successResultOf(d), True)
        self.assertEqual(store.read(("a.vfb",)), b"new")

    def test_oldVersionUntilWritten(self):
        """
        Readers see the old version while the new one is written and synced
        elsewhere; the rename comes once that is done, then the directory
        sync; the result says whether the file is new.
        """
        d = self.store.openUpload(("a.vfb",)).commitAsync(b"new")
        self.assertNoResult(d)
        self.assertEqual(self.store.read(("a.vfb",)), b"old")
        self.runner.finish()
        self.assertEqual(self.store.read(("a.vfb",)), b"new")
        self.assertEqual(self.store.etag(("a.vfb",)), etagForContent(b"new"))
        self.assertNoResult(d)
        self.runner.finish()
        self.assertIs(self.successResultOf(d), False)
        self.assertEqual(os.listdir(self.root.path), ["a.vfb"])

    def test_checkRefuses(self):
        """
        A check that raises, once the file is written, keeps the old version
        and removes the temporary file.
        """
        calls = []

        def check():
            calls.append(self.store.read(("a.vfb",)))
            raise Conflict("changed meanwhile")

        d = self.store.openUpload(("a.vfb",)).commitAsync(b"new", check)
        self.assertEqual(calls, [])
        self.runner.finish()
        self.assertEqual(calls, [b"old"])
        self.failureResultOf(d, Conflict)
        self.assertEqual(self.store.read(("a.vfb",)), b"old")
        self.assertEqual(os.listdir(self.root.path), ["a.vfb"])

    def test_abortWhileWriting(self):
        """
        An abort (the client went away) while another thread writes the file
        takes effect once it is done: nothing is renamed, the temporary file
        goes.
        """
        upload = self.store.openUpload(("a.vfb",))
        d = upload.commitAsync(b"new")
        upload.abort()
        self.assertEqual(len(os.listdir(self.root.path)), 2)
        self.runner.finish()
        self.failureResultOf(d, defer.CancelledError)
        self.assertEqual(self.store.read(("a.vfb",)), b"old")
        self.assertEqual(os.listdir(self.root.path), ["a.vfb"])

    def test_diskFull(self):
        """
        A full disk while writing is InsufficientStorage, and the old file
        stays.
        """
        upload = self.store.openUpload(("a.vfb",))

        def full():
            raise OSError(errno.ENOSPC, "No space left on device")

        upload._file.flush = full
        d = upload.commitAsync(b"new")
        self.runner.finish()
        self.failureResultOf(d, InsufficientStorage)
        self.assertEqual(self.store.read(("a.vfb",)), b"old")
        self.assertEqual(os.listdir(self.root.path), ["a.vfb"])
