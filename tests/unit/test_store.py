"""
Tests for L{fbtwist.store.tree}: name validation, atomic writes, containment.
"""

import errno
import os
import resource
import signal
import threading
import time
from contextlib import contextmanager
from typing import Iterator

from twisted.internet import defer
from twisted.python.filepath import FilePath
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from fbtwist.errors import AlreadyExists, Conflict, InsufficientStorage, InvalidName, NotFound, PermissionDenied
from fbtwist.interfaces import ICalendarStore, IUpload
from fbtwist.store import files, tree
from fbtwist.store.files import STAGING_FOLDER, etagForContent, isTemporaryOf, stagedTarget, startWriteback
from fbtwist.store.paths import validateName, validatePath
from fbtwist.store.tree import CalendarStore
from tests.helpers import treeNames


@contextmanager
def noRoomPast(size: int) -> Iterator[None]:
    """
    While in the block, this process cannot make a file longer than
    C{size} bytes: a write past it fails with C{EFBIG}, which the store
    takes, like C{ENOSPC} and C{EDQUOT}, for a full disk.
    """
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    # Without this the kernel would end the process (SIGXFSZ).
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, limits[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, handler)


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
        self.assertEqual(treeNames(self.root.path), ["a.vfb"])

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
        self.assertEqual(treeNames(self.root.path), ["a.vfb"])

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
        Temporary files no live writer holds are removed whatever their age;
        real files stay.
        """
        self.store.write(("a.vfb",), b"x")
        old = self.root.child(".a.vfb.0123456789ab.tmp")
        old.setContent(b"partial")
        os.utime(old.path, (0, 0))
        recent = self.root.child(".a.vfb.ba9876543210.tmp")
        recent.setContent(b"partial")
        self.assertEqual(self.store.removeStaleTemporaries(), 2)
        self.assertFalse(old.exists())
        self.assertFalse(recent.exists())
        self.assertTrue(self.root.child("a.vfb").exists())

    def test_heldTemporaryKept(self):
        """
        The temporary file of an upload under way is kept, and the upload
        still commits.
        """
        upload = self.store.openUpload(("a.vfb",))
        upload.write(b"partial")
        self.assertEqual(CalendarStore(self.root).removeStaleTemporaries(), 0)
        upload.write(b" and the rest")
        upload.commit()
        self.assertEqual(self.root.child("a.vfb").getContent(), b"partial and the rest")
        self.assertEqual([n for n in treeNames(self.root.path) if n.endswith(".tmp")], [])

    def test_removedBeforeLocked(self):
        """
        A temporary file that a starting server removed between its
        creation and its lock (the server saw no writer holding it) is
        given up for another, which the upload writes and commits.
        """
        from fbtwist.store import files

        lock, swept = files._lockTemporary, []

        def sweptFirst(fd, *mode):
            if not swept:
                path = os.readlink(f"/proc/self/fd/{fd}")
                swept.append(path)
                self.assertEqual(CalendarStore(self.root).removeStaleTemporaries(), 1)
            return lock(fd, *mode)

        self.patch(files, "_lockTemporary", sweptFirst)
        upload = self.store.openUpload(("a.vfb",))
        upload.write(b"new")
        self.assertEqual(CalendarStore(self.root).removeStaleTemporaries(), 0)
        upload.commit()
        self.assertEqual(len(swept), 1)
        self.assertEqual(self.root.child("a.vfb").getContent(), b"new")
        self.assertEqual(treeNames(self.root.path), ["a.vfb"])

    def test_ageRuleWithoutLocks(self):
        """
        On a filesystem without locks, only temporary files older than an
        hour are removed.
        """
        import fcntl

        def noLocks(fd, operation):
            raise OSError(errno.ENOLCK, "no locks here")

        self.patch(fcntl, "flock", noLocks)
        old = self.root.child(".a.vfb.0123456789ab.tmp")
        old.setContent(b"partial")
        os.utime(old.path, (0, 0))
        recent = self.root.child(".a.vfb.ba9876543210.tmp")
        recent.setContent(b"partial")
        self.assertEqual(self.store.removeStaleTemporaries(), 1)
        self.assertFalse(old.exists())
        self.assertTrue(recent.exists())

    def test_diskFull(self):
        """
        A full disk is InsufficientStorage, and the old file stays.
        """
        self.store.write(("a.vfb",), b"old")
        upload = self.store.openUpload(("a.vfb",))
        with noRoomPast(1):
            self.assertRaises(InsufficientStorage, upload.write, b"new")
        self.assertEqual(self.store.read(("a.vfb",)), b"old")
        self.assertEqual(treeNames(self.root.path), ["a.vfb"])


class FilesStateTests(unittest.SynchronousTestCase):
    """
    CalendarStore.filesState: what any change of a person's files through
    any of their names changes.
    """

    def setUp(self):
        from fbtwist.store import tree

        self.root = FilePath(self.mktemp())
        self.store = CalendarStore(self.root)
        self.store.write(("alice.vfb",), b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n")
        self.path = os.path.join(self.root.path, "alice.vfb")
        # The files' last changes long ago (a state is told only then).
        self.later = 2 * tree.UNSETTLED_NS
        self.patch(tree, "_nowNs", lambda: time.time_ns() + self.later)

    def state(self):
        return self.store.filesState("alice.vfb", "alice.ics")

    def test_missingFile(self):
        """A missing file has a state of its own: none."""
        state = self.state()
        self.assertEqual(len(state), 2)
        self.assertEqual(state[1], ())
        self.assertNotEqual(state[0], ())

    def test_sameWhileUnchanged(self):
        """Looked at again, unchanged: the same state."""
        self.assertEqual(self.state(), self.state())

    def test_eachChangeSeen(self):
        """
        A write in place of the same size, a link made elsewhere, an
        attribute set, a new file, the other file published: each changes
        the state.
        """
        other = self.mktemp()
        changes = [
            lambda: open(self.path, "r+b").write(b"BEGIN:VCALENDAR\r\nEND:VCALENDaR\r\n"),
            lambda: os.link(self.path, other),
            lambda: os.unlink(other),
            lambda: os.setxattr(self.path, "user.test", b"1"),
            lambda: self.store.write(("alice.vfb",), b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"),
            lambda: self.store.write(("alice.ics",), b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"),
        ]
        seen = [self.state()]
        for change in changes:
            time.sleep(0.01)  # past a tick of the kernel's clock of file times
            change()
            seen.append(self.state())
        self.assertEqual(len(set(seen)), len(seen), seen)

    def test_justChanged(self):
        """A file changed within UNSETTLED_NS: not told."""
        self.later = 0
        self.assertIsNone(self.state())

    def test_badName(self):
        """A name that is no file's name at the top (a path, a hidden name): not told."""
        for name in ("../alice.vfb", "sub/alice.vfb", ".alice.vfb", ""):
            self.assertIsNone(self.store.filesState("alice.vfb", name), name)

    def test_notAPlainFile(self):
        """A symbolic link or a folder in a file's place: not told."""
        os.symlink(self.path, os.path.join(self.root.path, "alice.ics"))
        self.assertIsNone(self.state())
        os.unlink(os.path.join(self.root.path, "alice.ics"))
        os.mkdir(os.path.join(self.root.path, "alice.ics"))
        self.assertIsNone(self.state())

    def since(self, before):
        return self.store.filesStateSince(before, "alice.vfb", "alice.ics")

    def test_sinceAttributeSet(self):
        """
        An extended attribute set (as an answer kept with the file): the
        state now, its change time new, told even right after the change.
        """
        before = self.state()
        time.sleep(0.01)  # past a tick of the kernel's clock of file times
        os.setxattr(self.path, "user.fbtwist.kept", b"answer")
        self.later = 0
        now = self.since(before)
        self.assertIsNotNone(now)
        self.assertNotEqual(now, before)
        self.later = 2 * tree.UNSETTLED_NS
        self.assertEqual(now, self.state())
        self.assertEqual(self.since(before), now)
        self.assertEqual(self.since(now), now)

    def test_sinceOtherChanges(self):
        """
        Anything else changed since (content, modification time, mode,
        links, a file replaced, removed or come): C{None}.
        """
        other = self.mktemp()
        ics = os.path.join(self.root.path, "alice.ics")
        st = os.stat(self.path)
        changes = [
            lambda: open(self.path, "r+b").write(b"BEGIN:VCALENDAR\r\nEND:VCALENDaR\r\n"),
            lambda: os.utime(self.path, ns=(st.st_atime_ns, st.st_mtime_ns + 1)),
            lambda: os.chmod(self.path, 0o600 if st.st_mode & 0o777 != 0o600 else 0o644),
            lambda: os.link(self.path, other),
            lambda: self.store.write(("alice.vfb",), b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"),
            lambda: self.store.write(("alice.ics",), b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"),
            lambda: os.unlink(ics),
            lambda: os.unlink(self.path),
        ]
        for change in changes:
            before = self.state()
            self.assertIsNotNone(before)
            change()
            self.assertIsNone(self.since(before), change)
            if os.path.exists(other):
                os.unlink(other)

    def test_sinceOtherNames(self):
        """A state of other names (another count): C{None}."""
        self.assertIsNone(self.store.filesStateSince(self.state(), "alice.vfb"))


class StagingTests(unittest.SynchronousTestCase):
    """
    Temporary files are made in the tree's staging folder, never beside
    their targets (whose folder may hold a million files), and renamed
    from there into place.
    """

    def setUp(self):
        self.root = FilePath(self.mktemp())
        self.store = CalendarStore(self.root)
        self.staging = self.root.child(STAGING_FOLDER)

    def staged(self) -> list:
        return sorted(os.listdir(self.staging.path)) if self.staging.isdir() else []

    def test_uploadStaged(self):
        """
        An upload's temporary file is in the staging folder, named after
        its target, and its target's folder holds none; the commit renames
        it into place and leaves nothing behind.
        """
        self.store.write(("a.vfb",), b"old")
        upload = self.store.openUpload(("a.vfb",))
        upload.write(b"new")
        [name] = self.staged()
        self.assertTrue(isTemporaryOf(name, "a.vfb"), name)
        self.assertEqual(stagedTarget(name), ("a.vfb",))
        self.assertEqual(treeNames(self.root.path), [STAGING_FOLDER + "/" + name, "a.vfb"])
        self.assertEqual(self.store.read(("a.vfb",)), b"old")
        self.assertEqual(upload.commit(), False)
        self.assertEqual(self.store.read(("a.vfb",)), b"new")
        self.assertEqual(self.store.etag(("a.vfb",)), etagForContent(b"new"))
        self.assertEqual(treeNames(self.root.path), ["a.vfb"])

    def test_nestedUploadStaged(self):
        """
        The temporary file of a file in a collection is in the staging folder
        at the top of the tree too, its name telling the whole path.
        """
        self.store.makeCollection(("sub",))
        upload = self.store.openUpload(("sub", "a.vfb"))
        upload.write(b"new")
        [name] = self.staged()
        self.assertEqual(stagedTarget(name), ("sub", "a.vfb"))
        self.assertEqual(os.listdir(self.root.child("sub").path), [])
        self.assertEqual(upload.commit(), True)
        self.assertEqual(self.store.read(("sub", "a.vfb")), b"new")
        self.assertEqual(self.staged(), [])

    def test_otherWritersStaged(self):
        """
        Dead properties and what is derived from a file are written through
        the staging folder too, not beside the file.
        """
        from fbtwist.store import files

        made, create = [], files._createTemporaryLocked

        def recording(target, shared=False, place=None, checkLinks=True):
            created = create(target, shared, place, checkLinks)
            made.append(os.path.dirname(created[0]))
            return created

        self.patch(files, "_createTemporaryLocked", recording)
        self.store.write(("a.vfb",), b"x")
        self.store.setDeadProperties(("a.vfb",), {"{urn:x}p": "<p xmlns='urn:x'/>"})
        self.store.setDerived(("a.vfb",), b"derived")
        self.assertEqual(made, [self.staging.path] * 3)
        self.assertEqual(self.store.derived(("a.vfb",)), b"derived")
        self.assertEqual(self.store.deadProperties(("a.vfb",)), {"{urn:x}p": "<p xmlns='urn:x'/>"})
        self.assertEqual(self.staged(), [])

    def test_stagingHidden(self):
        """
        The staging folder, with an upload under way in it, is no member of
        the tree and no name a client may ask for.
        """
        upload = self.store.openUpload(("a.vfb",))
        upload.write(b"new")
        self.assertTrue(self.staging.isdir())
        self.assertEqual(list(self.store.children(())), [])
        self.assertEqual([info for info, _, _ in self.store.listing((), etags=True, deadProperties=True)], [])
        self.assertRaises(InvalidName, self.store.stat, (STAGING_FOLDER,))
        self.assertRaises(InvalidName, self.store.openUpload, (STAGING_FOLDER, "a.vfb"))
        upload.abort()
        self.assertEqual(self.staged(), [])

    def test_madeAgain(self):
        """
        A staging folder removed while the server runs is made again by the
        next write.
        """
        self.store.write(("a.vfb",), b"old")
        self.staging.remove()
        self.store.write(("a.vfb",), b"new")
        self.assertEqual(self.store.read(("a.vfb",)), b"new")
        self.assertTrue(self.staging.isdir())
        self.assertEqual(treeNames(self.root.path), ["a.vfb"])

    def test_besideWithoutStagingFolder(self):
        """
        When the staging folder cannot be made (something else has its
        name), temporary files are made beside their targets, as before.
        """
        self.root.child(STAGING_FOLDER).setContent(b"not a folder")
        store = CalendarStore(self.root)
        upload = store.openUpload(("a.vfb",))
        upload.write(b"new")
        [name] = [n for n in os.listdir(self.root.path) if n != STAGING_FOLDER]
        self.assertTrue(isTemporaryOf(name, "a.vfb"), name)
        upload.commit()
        store.setDeadProperties(("a.vfb",), {"{urn:x}p": "<p xmlns='urn:x'/>"})
        self.assertEqual(store.read(("a.vfb",)), b"new")
        self.assertEqual(sorted(os.listdir(self.root.path)), [".props.a.vfb.json", STAGING_FOLDER, "a.vfb"])

    def test_besideWhenStagingUnwritable(self):
        """
        When the staging folder cannot take a file (here: it became a
        file after the store started), the upload is made beside its
        target and commits.
        """
        self.store.write(("a.vfb",), b"old")
        self.staging.remove()
        self.staging.setContent(b"not a folder")
        upload = self.store.openUpload(("a.vfb",))
        upload.write(b"new")
        self.assertEqual(len([n for n in os.listdir(self.root.path) if isTemporaryOf(n, "a.vfb")]), 1)
        upload.commit()
        self.assertEqual(self.store.read(("a.vfb",)), b"new")

    def test_longPathBeside(self):
        """
        A path whose segments together are too long for one name in the
        staging folder has its temporary file beside its target.
        """
        folder = ("f" * 200,)
        self.store.makeCollection(folder)
        path = folder + ("a" * 100 + ".vfb",)
        upload = self.store.openUpload(path)
        upload.write(b"new")
        self.assertEqual(self.staged(), [])
        self.assertEqual(len(os.listdir(self.root.child(folder[0]).path)), 1)
        upload.commit()
        self.assertEqual(self.store.read(path), b"new")
        self.assertEqual(os.listdir(self.root.child(folder[0]).path), [path[1]])

    def test_staleStagedSwept(self):
        """
        A starting store removes the staged temporary files no live writer
        holds, and keeps an upload's still under way, which then commits.
        """
        self.store.write(("a.vfb",), b"old")
        self.staging.child(".b.vfb.0123456789ab.tmp").setContent(b"left by a writer that died")
        upload = self.store.openUpload(("a.vfb",))
        upload.write(b"new")
        self.assertEqual(CalendarStore(self.root).removeStaleTemporaries(), 1)
        [name] = self.staged()
        self.assertEqual(stagedTarget(name), ("a.vfb",))
        upload.commit()
        self.assertEqual(self.store.read(("a.vfb",)), b"new")
        self.assertEqual(treeNames(self.root.path), ["a.vfb"])

    def test_stagedNames(self):
        """
        L{stagedTarget} reads back the path of a staged temporary file's
        name, and nothing from other names.
        """
        self.assertEqual(stagedTarget(".a.vfb.0123456789ab.tmp"), ("a.vfb",))
        self.assertEqual(stagedTarget(".sub\\a b.vfb.0123456789ab.tmp"), ("sub", "a b.vfb"))
        for name in ("a.vfb", ".a.vfb.tmp", ".0123456789ab.tmp", ".props.json", ".a.vfb.0123.tmp"):
            self.assertIsNone(stagedTarget(name), name)


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
    L{fbtwist.store.uploads.Upload.commitAsync} writes and syncs through the store's
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
        elsewhere; the rename and the directory's sync come in the same one
        call of C{runBlocking}; the result says whether the file is new.
        """
        synced = []
        fsync = self.store._directoryFsyncs._fsync
        self.store._directoryFsyncs._fsync = lambda path: synced.append(path) or fsync(path)
        d = self.store.openUpload(("a.vfb",)).commitAsync(b"new")
        self.assertNoResult(d)
        self.assertEqual(self.store.read(("a.vfb",)), b"old")
        self.assertEqual(synced, [])
        self.runner.finish()
        self.assertEqual(self.store.read(("a.vfb",)), b"new")
        self.assertEqual(self.store.etag(("a.vfb",)), etagForContent(b"new"))
        self.assertEqual(synced, [self.root.path])
        self.assertEqual(self.runner.pending, [])
        self.assertIs(self.successResultOf(d), False)
        self.assertEqual(treeNames(self.root.path), ["a.vfb"])

    def test_syncRunningElsewhere(self):
        """
        When another commit's fsync of the directory runs as the rename is
        made, the commit fires only after one more call of C{runBlocking}
        (the reactor's group commit), which fsyncs the directory again.
        """
        from fbtwist.store.files import _Syncs

        synced = []
        fsync = self.store._directoryFsyncs._fsync
        self.store._directoryFsyncs._fsync = lambda path: synced.append(path) or fsync(path)
        running = self.store._directoryFsyncs._directories[self.root.path] = _Syncs()
        running.running = True
        d = self.store.openUpload(("a.vfb",)).commitAsync(b"new")
        self.runner.finish()
        self.assertEqual(self.store.read(("a.vfb",)), b"new")
        self.assertEqual(synced, [])
        self.assertNoResult(d)
        running.running = False
        self.runner.finish()
        self.assertEqual(synced, [self.root.path])
        self.assertIs(self.successResultOf(d), False)

    def test_eachTripSyncsWhenNoneRuns(self):
        """
        Commits whose calls run one after another each fsync the directory
        in their one call of C{runBlocking}: none asks for another.
        """
        names = [("a.vfb",), ("b.vfb",), ("c.vfb",)]
        synced = []
        fsync = self.store._directoryFsyncs._fsync
        self.store._directoryFsyncs._fsync = lambda path: synced.append(path) or fsync(path)
        commits = [self.store.openUpload(name).commitAsync(b"new") for name in names]
        for _ in names:
            self.runner.finish()
        self.assertEqual([self.store.read(name) for name in names], [b"new"] * 3)
        self.assertEqual(synced, [self.root.path] * 3)
        self.assertEqual([self.successResultOf(d) for d in commits], [False, True, True])
        self.assertEqual(self.runner.pending, [])

    def test_directoryFsyncFails(self):
        """
        A directory fsync that fails after the rename refuses the commit
        (the rename may not survive a crash): a full disk is
        InsufficientStorage, an I/O error stays an OSError.
        """
        for error, expected in ((errno.ENOSPC, InsufficientStorage), (errno.EIO, OSError)):

            def failing(path, error=error):
                raise OSError(error, os.strerror(error), path)

            self.store._directoryFsyncs._fsync = failing
            d = self.store.openUpload(("a.vfb",)).commitAsync(b"new %d" % error)
            self.runner.finish()
            failure = self.failureResultOf(d, expected)
            if expected is OSError:
                self.assertEqual(failure.value.errno, errno.EIO)
        self.assertEqual(treeNames(self.root.path), ["a.vfb"])

    def test_onePieceLockedOnce(self):
        """
        A publish sent in one piece creates its temporary file locked
        exclusively, and its commit takes no second lock of it (one
        C{flock} in all); a WebDAV lock's look at it would wait.
        """
        import fcntl

        from fbtwist.store import files, locks
        from fbtwist.store.locks import LOCK_DIRECTORY, LockStore, WallClock

        lockStore = LockStore(self.store.metadataDirectory(LOCK_DIRECTORY), WallClock)
        modes, flock = [], fcntl.flock

        def counting(fd, mode):
            modes.append(mode)
            return flock(fd, mode)

        self.patch(files.fcntl, "flock", counting)
        self.patch(locks.fcntl, "flock", counting)
        seen = []

        def check():
            [name] = os.listdir(self.root.child(STAGING_FOLDER).path)
            fd = os.open(self.root.child(STAGING_FOLDER).child(name).path, os.O_RDONLY)
            try:
                flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                seen.append("not locked")
            except BlockingIOError:
                seen.append("locked")
            finally:
                os.close(fd)

        # The first publish makes the lock index (under the mutex).
        self.store.openUpload(("a.vfb",)).commitAsync(b"first", exclusive=lockStore.exclusive)
        self.runner.finish()
        del modes[:]
        d = self.store.openUpload(("a.vfb",)).commitAsync(b"new", check, exclusive=lockStore.exclusive)
        self.runner.finish()
        self.assertIs(self.successResultOf(d), False)
        self.assertEqual(seen, ["locked"])
        self.assertEqual(modes, [fcntl.LOCK_EX | fcntl.LOCK_NB])
        self.assertEqual(self.store.read(("a.vfb",)), b"new")
        self.assertEqual(self.store.etag(("a.vfb",)), etagForContent(b"new"))

    def test_onePieceSweptBeforeLocked(self):
        """
        A publish sent in one piece whose temporary file a starting server
        removed before it was locked writes another and commits it.
        """
        from fbtwist.store import files

        staging, lock, swept = self.root.child(STAGING_FOLDER).path, files._lockTemporary, []

        def sweptFirst(fd, mode):
            if not swept:
                for name in os.listdir(staging):
                    os.unlink(os.path.join(staging, name))
                    swept.append(name)
            return lock(fd, mode)

        self.patch(files, "_lockTemporary", sweptFirst)
        d = self.store.openUpload(("a.vfb",)).commitAsync(b"new")
        self.runner.finish()
        self.assertIs(self.successResultOf(d), False)
        self.assertEqual(len(swept), 1)
        self.assertEqual(self.store.read(("a.vfb",)), b"new")
        self.assertEqual(self.store.etag(("a.vfb",)), etagForContent(b"new"))
        self.assertEqual(os.listdir(staging), [])

    def test_renameFails(self):
        """
        A rename that fails (here: the target became a folder meanwhile)
        refuses the commit in its one trip: nothing is fsynced for it, the
        temporary file goes, and the next commit fsyncs on its own.
        """
        synced = []
        fsync = self.store._directoryFsyncs._fsync
        self.store._directoryFsyncs._fsync = lambda path: synced.append(path) or fsync(path)
        d = self.store.openUpload(("b.vfb",)).commitAsync(b"new")
        os.mkdir(self.root.child("b.vfb").path)
        os.mkdir(self.root.child("b.vfb").child("inside").path)
        self.runner.finish()
        self.failureResultOf(d)
        self.assertEqual(synced, [])
        self.assertEqual(os.listdir(self.root.child(STAGING_FOLDER).path), [])
        self.assertEqual(self.store._directoryFsyncs._directories[self.root.path].arriving, 0)
        d = self.store.openUpload(("a.vfb",)).commitAsync(b"new")
        self.runner.finish()
        self.assertIs(self.successResultOf(d), False)
        self.assertEqual(synced, [self.root.path])

    def test_directoryFsyncUnsupported(self):
        """
        A filesystem that cannot fsync a directory (C{EINVAL}) commits as
        before: there is nothing more it can do.
        """
        from fbtwist.store.files import _syncDirectoryOrFail

        self.patch(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.EINVAL, "not supported")))
        _syncDirectoryOrFail(self.root.path)
        self.patch(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
        self.assertRaises(OSError, _syncDirectoryOrFail, self.root.path)

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
        self.assertEqual(treeNames(self.root.path), ["a.vfb"])

    def test_abortWhileWriting(self):
        """
        An abort (the client went away) while another thread writes the file
        takes effect once it is done: nothing is renamed, the temporary file
        goes.
        """
        upload = self.store.openUpload(("a.vfb",))
        d = upload.commitAsync(b"new")
        upload.abort()
        self.runner.finish()
        self.failureResultOf(d, defer.CancelledError)
        self.assertEqual(self.store.read(("a.vfb",)), b"old")
        self.assertEqual(treeNames(self.root.path), ["a.vfb"])

    def test_diskFull(self):
        """
        A full disk while writing is InsufficientStorage, and the old file
        stays.
        """
        upload = self.store.openUpload(("a.vfb",))
        d = upload.commitAsync(b"new")
        with noRoomPast(1):
            self.runner.finish()
        self.failureResultOf(d, InsufficientStorage)
        self.assertEqual(self.store.read(("a.vfb",)), b"old")
        self.assertEqual(treeNames(self.root.path), ["a.vfb"])


class SnapshotTests(unittest.SynchronousTestCase):
    """
    L{CalendarStore.snapshot} serves a file from memory only while the file
    is unchanged.
    """

    def setUp(self):
        self.root = FilePath(self.mktemp())
        self.store = CalendarStore(self.root)

    def test_contentAndValidators(self):
        """
        A snapshot holds the file's bytes, its info and the entity tag that
        C{etag} gives.
        """
        self.store.write(("alice.vfb",), b"one")
        snapshot = self.store.snapshot(("alice.vfb",))
        self.assertEqual(snapshot.data, b"one")
        self.assertEqual(snapshot.etag, self.store.etag(("alice.vfb",)))
        self.assertEqual(snapshot.info, self.store.stat(("alice.vfb",)))

    def test_cachedWhileUnchanged(self):
        """
        An unchanged file is not read again.
        """
        self.store.write(("alice.vfb",), b"one")
        first = self.store.snapshot(("alice.vfb",))
        again = self.store.snapshot(("alice.vfb",))
        # The very bytes read the first time, and the same answer.
        self.assertIs(again.data, first.data)
        self.assertEqual(again, first)

    def test_cacheNotWalkedByGarbageCollector(self):
        """
        Files kept in memory are nothing the garbage collector follows once
        it has seen them: a full collection walks no more objects with a
        thousand files cached than before (it walked three per file).
        """
        import gc

        names = [f"user{i}.vfb" for i in range(1000)]
        for name in names:
            self.store.write((name,), b"BEGIN:VCALENDAR\r\n" + name.encode())
        gc.collect()
        before = len(gc.get_objects())
        for name in names:
            self.store.snapshot((name,))
        # One level of nested tuples a pass (a file's entry, and the cache's
        # tuple around it), as the younger generations' passes do before a
        # full one.
        gc.collect()
        gc.collect()
        self.assertLess(len(gc.get_objects()) - before, 100)
        # Still served from memory, unchanged.
        self.assertEqual(self.store.snapshot((names[7],)).data, b"BEGIN:VCALENDAR\r\nuser7.vfb")

    def test_replaced(self):
        """
        A publish (a new file renamed over the old) is seen at once.
        """
        self.store.write(("alice.vfb",), b"one")
        self.store.snapshot(("alice.vfb",))
        self.store.write(("alice.vfb",), b"two")
        snapshot = self.store.snapshot(("alice.vfb",))
        self.assertEqual(snapshot.data, b"two")
        self.assertEqual(snapshot.etag, etagForContent(b"two"))

    def test_grewWhileRead(self):
        """
        A file that grew between its stat and its read (written in place)
        is read whole, and not kept: it is read again next time.
        """
        content = bytes(range(256)) * 40
        self.store.write(("alice.vfb",), content)
        original = os.fstat
        reads = []

        def shrunk(fd):
            reads.append(fd)
            st = original(fd)
            return os.stat_result((st.st_mode, st.st_ino, st.st_dev, st.st_nlink, st.st_uid, st.st_gid, 100,
                                   st.st_atime, st.st_mtime, st.st_ctime))

        self.patch(os, "fstat", shrunk)
        self.assertEqual(self.store.snapshot(("alice.vfb",)).data, content)
        self.assertEqual(self.store.snapshot(("alice.vfb",)).data, content)
        self.assertEqual(len(reads), 2)

    def test_staleNameLookedUpAgain(self):
        """
        A name that the filesystem answers C{ESTALE} for (on GlusterFS or
        NFS, a file another machine has just replaced) is looked up again,
        and the file found.
        """
        self.store.write(("alice.vfb",), b"one")
        for name in ("lstat", "stat"):
            self.patch(os, name, staleOnce(getattr(os, name)))
        self.assertEqual(self.store.snapshot(("alice.vfb",)).data, b"one")
        self.assertEqual(self.store.read(("alice.vfb",)), b"one")

    def test_staleForEver(self):
        """
        A name that stays stale is an error, not a missing file.
        """
        self.store.write(("alice.vfb",), b"one")

        def stale(*args, **kwargs):
            raise OSError(errno.ESTALE, os.strerror(errno.ESTALE))

        self.patch(os, "lstat", stale)
        error = self.assertRaises(OSError, self.store.snapshot, ("alice.vfb",))
        self.assertEqual(error.errno, errno.ESTALE)

    def test_editedInPlace(self):
        """
        Another program rewriting the file in place, same size and even the
        same modification time, is seen (its change time moves).  (Its entity
        tag is another matter: the one remembered with the file is believed
        while size and modification time match, as L{CalendarStore.etag}
        does.)
        """
        self.store.write(("alice.vfb",), b"one")
        path = self.root.child("alice.vfb").path
        before = os.stat(path)
        self.store.snapshot(("alice.vfb",))
        with open(path, "r+b") as f:
            f.write(b"two")
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        self.assertEqual(self.store.snapshot(("alice.vfb",)).data, b"two")

    def test_gone(self):
        """
        A removed file has no snapshot; nor has a collection or a name that
        was never there.
        """
        self.store.write(("alice.vfb",), b"one")
        self.store.snapshot(("alice.vfb",))
        self.store.delete(("alice.vfb",))
        self.assertIsNone(self.store.snapshot(("alice.vfb",)))
        self.store.makeCollection(("folder",))
        self.assertIsNone(self.store.snapshot(("folder",)))
        self.assertIsNone(self.store.snapshot(("nobody.vfb",)))

    def test_nested(self):
        """
        Files in collections have snapshots too.
        """
        self.store.makeCollection(("folder",))
        self.store.write(("folder", "alice.vfb"), b"one")
        self.assertEqual(self.store.snapshot(("folder", "alice.vfb")).data, b"one")

    def test_linkOutside(self):
        """
        A symbolic link out of the tree is refused, as for every read.
        """
        outside = FilePath(self.mktemp())
        outside.setContent(b"secret")
        os.symlink(outside.path, self.root.child("evil.vfb").path)
        self.assertRaises(PermissionDenied, self.store.snapshot, ("evil.vfb",))

    def test_bounded(self):
        """
        The cache holds at most its byte budget, and no file over its
        per-file limit; what it dropped is read again, correctly.
        """
        store = CalendarStore(self.root, snapshotBytes=10, snapshotFileBytes=6)
        first = {}
        for name, content in [("a.vfb", b"aaaa"), ("b.vfb", b"bbbb"), ("c.vfb", b"cccc"), ("big.vfb", b"b" * 7)]:
            store.write((name,), content)
            first[name] = store.snapshot((name,))
        # Answered from memory: the very same bytes; read again: new ones.
        again = {name: store.snapshot((name,)) for name in ("b.vfb", "c.vfb", "a.vfb", "big.vfb")}
        self.assertIs(again["b.vfb"].data, first["b.vfb"].data)
        self.assertIs(again["c.vfb"].data, first["c.vfb"].data)
        self.assertIsNot(again["a.vfb"].data, first["a.vfb"].data)
        self.assertIsNot(again["big.vfb"].data, first["big.vfb"].data)
        self.assertEqual(again["b.vfb"], first["b.vfb"])
        self.assertEqual(again["a.vfb"].data, b"aaaa")
        self.assertEqual(again["big.vfb"].data, b"b" * 7)


class StartWritebackTests(unittest.SynchronousTestCase):
    """
    L{startWriteback} asks the kernel to start writing files' data.
    """

    def written(self):
        path = self.mktemp()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        self.addCleanup(os.close, fd)
        os.write(fd, b"data" * 1024)
        return fd

    def test_kernelTakesIt(self):
        """On Linux the C library's call is found and takes the arguments as given (0: done)."""
        call = files._syncFileRange()
        self.assertIsNotNone(call)
        self.assertEqual(call(self.written(), 0, 0, files._SYNC_FILE_RANGE_WRITE), 0)
        # A descriptor that is not open fails (the arguments do reach the call).
        self.assertEqual(call(-1, 0, 0, files._SYNC_FILE_RANGE_WRITE), -1)

    def test_eachFile(self):
        """Each file's whole data is asked for, without waiting."""
        calls = []
        self.patch(files, "_syncFileRange", lambda: lambda *args: calls.append(args) or 0)
        one, two = self.written(), self.written()
        startWriteback([one, two])
        self.assertEqual(calls, [(one, 0, 0, 2), (two, 0, 0, 2)])

    def test_none(self):
        """Without the call, nothing is done (the fsyncs do it all)."""
        self.patch(files, "_syncFileRange", lambda: None)
        startWriteback([self.written()])


class DirectorySyncsTests(unittest.SynchronousTestCase):
    """
    Commits into one directory share its fsyncs (group commit), without
    any commit being told its rename is durable before an fsync that began
    after the rename has ended.
    """

    def setUp(self):
        from fbtwist.store.files import _DirectorySyncs

        self.started = []
        self.syncs = _DirectorySyncs(self.fsync)

    def fsync(self, path):
        d = defer.Deferred()
        self.started.append((path, d))
        return d

    def test_alone(self):
        """
        With nothing running, a sync starts at once and fires when it ends.
        """
        done = self.syncs.sync("/d")
        self.assertEqual([p for p, _ in self.started], ["/d"])
        self.assertNoResult(done)
        self.started[0][1].callback(None)
        self.successResultOf(done)

    def test_latecomersShareTheNext(self):
        """
        Commits arriving while an fsync runs wait for the next one (which
        began after their renames), and one fsync serves them all.
        """
        first = self.syncs.sync("/d")
        later = [self.syncs.sync("/d") for _ in range(5)]
        self.assertEqual(len(self.started), 1)
        self.started[0][1].callback(None)
        self.successResultOf(first)
        for d in later:
            self.assertNoResult(d)
        self.assertEqual(len(self.started), 2)
        self.started[1][1].callback(None)
        for d in later:
            self.successResultOf(d)
        self.assertEqual(len(self.started), 2)
        # All quiet: the next commit starts a sync of its own.
        again = self.syncs.sync("/d")
        self.assertEqual(len(self.started), 3)
        self.started[2][1].callback(None)
        self.successResultOf(again)

    def test_directoriesIndependent(self):
        """
        Another directory's sync neither waits for nor serves this one's.
        """
        a = self.syncs.sync("/a")
        b = self.syncs.sync("/b")
        self.assertEqual([p for p, _ in self.started], ["/a", "/b"])
        self.started[1][1].callback(None)
        self.successResultOf(b)
        self.assertNoResult(a)

    def test_failure(self):
        """
        A sync that fails fails for everyone it served.
        """
        first = self.syncs.sync("/d")
        later = self.syncs.sync("/d")
        self.started[0][1].errback(OSError("disk gone"))
        self.failureResultOf(first, OSError)
        self.started[1][1].errback(OSError("disk gone"))
        self.failureResultOf(later, OSError)



class DirectoryFsyncsTests(unittest.TestCase):
    """
    The store's threads fsync a directory one at a time: a commit's thread
    syncs at once when none runs, waits for the next otherwise (or, committing,
    does not wait), and no caller returns before an fsync that began after
    its call has ended.
    """

    def setUp(self):
        from fbtwist.store.files import DirectoryFsyncs

        self.started = []
        self.condition = threading.Condition()
        self.syncs = DirectoryFsyncs(self.fsync)

    def fsync(self, path):
        """
        An fsync that runs until the test lets it end (or fail).
        """
        release = threading.Event()
        entry = [path, release, None]
        with self.condition:
            self.started.append(entry)
            self.condition.notify_all()
        release.wait(10)
        if entry[2] is not None:
            raise entry[2]

    def waitFor(self, test, what):
        with self.condition:
            self.assertTrue(self.condition.wait_for(test, 10), what)

    def syncing(self, path):
        """
        Call C{sync(path)} in a thread of its own: the
        thread, and a list that gets the outcome when the call returns.
        """
        outcome = []

        def run():
            try:
                self.syncs.sync(path)
                outcome.append("synced")
            except Exception as e:
                outcome.append(e)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.addCleanup(thread.join, 10)
        self.addCleanup(lambda: [entry[1].set() for entry in self.started])
        return thread, outcome

    def end(self, index, error=None):
        self.started[index][2] = error
        self.started[index][1].set()

    def test_alone(self):
        """
        With nothing running, the caller syncs at once and returns when it ends.
        """
        thread, outcome = self.syncing("/d")
        self.waitFor(lambda: len(self.started) == 1, "no fsync began")
        self.assertEqual(self.started[0][0], "/d")
        self.assertEqual(outcome, [])
        self.end(0)
        thread.join(10)
        self.assertEqual(outcome, ["synced"])

    def test_latecomersShareTheNext(self):
        """
        Commits arriving while an fsync runs wait for the next one (which
        begins after their renames), and one fsync serves them all.
        """
        first, firstOutcome = self.syncing("/d")
        self.waitFor(lambda: len(self.started) == 1, "no fsync began")
        later = [self.syncing("/d") for _ in range(5)]
        self.waitFor(lambda: self.syncs.waiting("/d") == 5, "latecomers not waiting")
        self.assertEqual(len(self.started), 1)
        self.end(0)
        first.join(10)
        self.assertEqual(firstOutcome, ["synced"])
        self.waitFor(lambda: len(self.started) == 2, "the next fsync did not begin")
        for _, outcome in later:
            self.assertEqual(outcome, [])
        self.end(1)
        for thread, outcome in later:
            thread.join(10)
            self.assertEqual(outcome, ["synced"])
        self.assertEqual(len(self.started), 2)
        # All quiet: the next commit syncs on its own.
        again, outcome = self.syncing("/d")
        self.waitFor(lambda: len(self.started) == 3, "no fsync began")
        self.end(2)
        again.join(10)
        self.assertEqual(outcome, ["synced"])

    def test_directoriesIndependent(self):
        """
        Another directory's sync neither waits for nor serves this one's.
        """
        a, aOutcome = self.syncing("/a")
        self.waitFor(lambda: len(self.started) == 1, "no fsync of /a began")
        b, bOutcome = self.syncing("/b")
        self.waitFor(lambda: len(self.started) == 2, "no fsync of /b began")
        self.assertEqual([entry[0] for entry in self.started], ["/a", "/b"])
        self.end(1)
        b.join(10)
        self.assertEqual((aOutcome, bOutcome), ([], ["synced"]))
        self.end(0)

    def test_failure(self):
        """
        A sync that fails fails for its caller and serves no one waiting:
        they sync again.
        """
        first, firstOutcome = self.syncing("/d")
        self.waitFor(lambda: len(self.started) == 1, "no fsync began")
        later, laterOutcome = self.syncing("/d")
        self.waitFor(lambda: self.syncs.waiting("/d") == 1, "the latecomer is not waiting")
        self.end(0, OSError("disk gone"))
        first.join(10)
        self.assertIsInstance(firstOutcome[0], OSError)
        self.waitFor(lambda: len(self.started) == 2, "the latecomer did not sync again")
        self.assertEqual(laterOutcome, [])
        self.end(1)
        later.join(10)
        self.assertEqual(laterOutcome, ["synced"])

    def joining(self, path, value):
        """
        Call C{syncOrJoin(path, value)} in a thread of its own, then the
        work of an L{Afterwards} it returns: the thread, and a list that
        gets what the call returned (or raised), then C{"afterwards done"}.
        """
        from fbtwist.store.pool import Afterwards

        outcome = []

        def run():
            try:
                result = self.syncs.syncOrJoin(path, value)
            except Exception as e:
                outcome.append(e)
                return
            outcome.append(result)
            if type(result) is Afterwards:
                result.work()
                outcome.append("afterwards done")

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.addCleanup(thread.join, 10)
        self.addCleanup(lambda: [entry[1].set() for entry in self.started])
        return thread, outcome

    def test_syncOrJoin(self):
        """
        A commit's thread fsyncs at once when no fsync runs; while one runs,
        later commits join without waiting (a L{Later}); the first hands its
        value over, then runs one fsync for all who joined, which gives them
        their values.
        """
        from fbtwist.store.pool import Afterwards, Later

        first, firstOutcome = self.joining("/d", "a")
        self.waitFor(lambda: len(self.started) == 1, "no fsync began")
        joined = []
        for value in ("b", "c"):
            thread, outcome = self.joining("/d", value)
            thread.join(10)
            self.assertEqual(len(outcome), 1)
            self.assertIs(type(outcome[0]), Later)
            self.assertIsNone(outcome[0].settled())
            joined.append(outcome[0])
        self.assertEqual(firstOutcome, [])
        self.end(0)
        self.waitFor(lambda: len(self.started) == 2, "no fsync for those who joined")
        self.assertIs(type(firstOutcome[0]), Afterwards)
        self.assertEqual(firstOutcome[0].value, "a")
        self.assertEqual([later.settled() for later in joined], [None, None])
        self.end(1)
        first.join(10)
        self.assertEqual(firstOutcome[1:], ["afterwards done"])
        self.assertEqual([later.settled() for later in joined], [("b", False), ("c", False)])
        # All quiet: the next commit syncs on its own and gives its value.
        again, outcome = self.joining("/d", "d")
        self.waitFor(lambda: len(self.started) == 3, "no fsync began")
        self.end(2)
        again.join(10)
        self.assertEqual(outcome, ["d"])

    def test_joinedFsyncFails(self):
        """
        When the fsync serving commits that joined fails, each gets the
        failure (none is told its rename is durable); its runner goes on.
        """
        first, firstOutcome = self.joining("/d", "a")
        self.waitFor(lambda: len(self.started) == 1, "no fsync began")
        thread, outcome = self.joining("/d", "b")
        thread.join(10)
        later = outcome[0]
        self.end(0)
        self.waitFor(lambda: len(self.started) == 2, "no fsync for the one who joined")
        self.end(1, OSError(errno.EIO, "I/O error"))
        first.join(10)
        self.assertEqual(firstOutcome[1:], ["afterwards done"])
        result, failed = later.settled()
        self.assertTrue(failed)
        self.assertEqual(result.value.errno, errno.EIO)

    def test_lastArrivingSyncsForAll(self):
        """
        A commit that renames while another into the same directory is
        still being written joins without an fsync; the last one runs one
        fsync for both.
        """
        from fbtwist.store.files import DirectoryFsyncs
        from fbtwist.store.pool import Later

        synced = []
        syncs = DirectoryFsyncs(synced.append)
        syncs.arriving("/d")
        syncs.arriving("/d")
        first = syncs.syncOrJoin("/d", "a", arrived=True)
        self.assertIs(type(first), Later)
        self.assertEqual(synced, [])
        self.assertEqual(syncs.syncOrJoin("/d", "b", arrived=True), "b")
        self.assertEqual(synced, ["/d"])
        self.assertEqual(first.settled(), ("a", False))

    def test_groupBounded(self):
        """
        However many commits are still being written, no more than
        C{GROUP} wait for one: the next runs the fsync.
        """
        from fbtwist.store.files import DirectoryFsyncs

        synced = []
        syncs = DirectoryFsyncs(synced.append)
        for _ in range(syncs.GROUP + 2):
            syncs.arriving("/d")
        joined = [syncs.syncOrJoin("/d", n, arrived=True) for n in range(syncs.GROUP)]
        self.assertEqual(synced, [])
        self.assertEqual(syncs.syncOrJoin("/d", "last", arrived=True), "last")
        self.assertEqual(synced, ["/d"])
        self.assertEqual([later.settled() for later in joined], [(n, False) for n in range(syncs.GROUP)])

    def test_leaveServesJoined(self):
        """
        When the last commit being written fails before its rename, those
        that joined get their fsync at once.
        """
        from fbtwist.store.files import DirectoryFsyncs

        synced = []
        syncs = DirectoryFsyncs(synced.append)
        syncs.arriving("/d")
        syncs.arriving("/d")
        first = syncs.syncOrJoin("/d", "a", arrived=True)
        self.assertEqual(synced, [])
        syncs.leave("/d")
        self.assertEqual(synced, ["/d"])
        self.assertEqual(first.settled(), ("a", False))

    def test_syncServesJoined(self):
        """
        A blocking L{sync} that runs an fsync also runs the next for the
        commits that joined meanwhile.
        """
        first, firstOutcome = self.syncing("/d")
        self.waitFor(lambda: len(self.started) == 1, "no fsync began")
        thread, outcome = self.joining("/d", "b")
        thread.join(10)
        self.end(0)
        self.waitFor(lambda: len(self.started) == 2, "no fsync for the one who joined")
        self.end(1)
        first.join(10)
        self.assertEqual(firstOutcome, ["synced"])
        self.assertEqual(outcome[0].settled(), ("b", False))

def staleOnce(call):
    """
    C{call}, failing with C{ESTALE} the first time it is given each path of
    a file named C{alice.vfb}.
    """
    seen = set()

    def stale(path, *args, **kwargs):
        if path not in seen and str(path).endswith("alice.vfb"):
            seen.add(path)
            raise OSError(errno.ESTALE, os.strerror(errno.ESTALE), path)
        return call(path, *args, **kwargs)

    return stale
