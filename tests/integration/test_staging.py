"""
The staging folder of the store (L{fbtwist.store.files.STAGING_FOLDER}) with
a real second filesystem: a collection of the tree on a C{tmpfs} mounted
inside it, which no rename from the staging folder can reach (C{EXDEV});
the start's sweep of temporary files, and a new WebDAV lock's look for the
publishes under way, in a large folder.
"""

import os
import subprocess
import tracemalloc

from twisted.python.filepath import FilePath
from twisted.trial import unittest

from fbtwist.store.files import STAGING_FOLDER, etagForContent, isTemporaryOf
from fbtwist.store.tree import CalendarStore


class OtherFilesystemTests(unittest.SynchronousTestCase):
    """
    Writes into a collection on another filesystem than the tree's.
    """

    def setUp(self):
        self.root = FilePath(os.path.abspath(self.mktemp()))
        self.store = CalendarStore(self.root)
        self.store.write(("a.vfb",), b"at the top")
        self.store.makeCollection(("other",))
        self.mounted = self.root.child("other").path

    def mount(self) -> None:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", self.mounted], check=True)
        self.addCleanup(subprocess.run, ["umount", "-l", self.mounted], check=True)

    def staged(self) -> list:
        return os.listdir(self.root.child(STAGING_FOLDER).path)

    def test_besideOnAnotherFilesystem(self):
        """
        The temporary file of an upload into a collection on another
        filesystem is made beside its target, and the upload commits.
        """
        self.mount()
        upload = self.store.openUpload(("other", "b.vfb"))
        upload.write(b"new")
        [name] = os.listdir(self.mounted)
        self.assertTrue(isTemporaryOf(name, "b.vfb"), name)
        self.assertEqual(self.staged(), [])
        self.assertIs(upload.commit(), True)
        self.assertEqual(self.store.read(("other", "b.vfb")), b"new")
        self.store.setDeadProperties(("other", "b.vfb"), {"{urn:x}p": "<p xmlns='urn:x'/>"})
        self.assertEqual(sorted(os.listdir(self.mounted)), [".props.b.vfb.json", "b.vfb"])
        self.assertEqual(self.staged(), [])

    def test_mountedDuringUpload(self):
        """
        An upload begun in the staging folder whose target's collection is
        then mounted from another filesystem (the rename fails with
        C{EXDEV}) commits through a copy beside the target; nothing is
        left in the staging folder.
        """
        upload = self.store.openUpload(("other", "b.vfb"))
        upload.write(b"new " * 10000)
        self.assertEqual(len(self.staged()), 1)
        self.mount()
        self.assertIs(upload.commit(), True)
        self.assertEqual(self.store.read(("other", "b.vfb")), b"new " * 10000)
        self.assertEqual(os.listdir(self.mounted), ["b.vfb"])
        self.assertEqual(self.staged(), [])
        self.assertEqual(self.store.etag(("other", "b.vfb")), etagForContent(b"new " * 10000))


class StartSweepTests(unittest.SynchronousTestCase):
    """
    The sweep of temporary files left by writers that died, as a starting
    server runs it, in a folder of many files.
    """

    def test_largeFolderNotListed(self):
        """
        Sweeping a tree whose top holds 100,000 files (and temporary files
        left at the top, in a collection and in the staging folder) removes
        the temporary files without holding the folder's names: it
        allocates less than 1 MB at any time (a list of them takes some 6 MB).
        """
        root = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(root, "sub"))
        os.makedirs(os.path.join(root, STAGING_FOLDER))
        for i in range(100000):
            path = os.path.join(root, f"f{i}.vfb")
            if i % 50000 == 0:  # hard links (ext4 allows 65,000 to one file)
                first = path
                with open(first, "wb") as f:
                    f.write(b"x")
            else:
                os.link(first, path)
        left = [os.path.join(root, ".f1.vfb.0123456789ab.tmp"), os.path.join(root, "sub", ".a.vfb.0123456789ab.tmp"),
                os.path.join(root, STAGING_FOLDER, ".f2.vfb.0123456789ab.tmp")]
        for path in left:
            with open(path, "wb") as f:
                f.write(b"partial")
        store = CalendarStore(FilePath(root))
        tracemalloc.start()
        self.addCleanup(tracemalloc.stop)
        removed = store.removeStaleTemporaries()
        peak = tracemalloc.get_traced_memory()[1]
        self.assertEqual(removed, 3)
        self.assertEqual([path for path in left if os.path.exists(path)], [])
        self.assertLess(peak, 2**20, "bytes allocated at most while sweeping")


class LockTests(unittest.SynchronousTestCase):
    """
    A new WebDAV lock of a file, which waits for the publishes of the file
    under way, finds them in the staging folder.
    """

    def setUp(self):
        from fbtwist.store.locks import LOCK_DIRECTORY, LockStore, WallClock

        self.root = FilePath(os.path.abspath(self.mktemp()))
        self.store = CalendarStore(self.root)
        self.store.write(("a.vfb",), b"old")
        self.locks = LockStore(self.store.metadataDirectory(LOCK_DIRECTORY), WallClock)
        self.listed = []
        scandir, listdir = os.scandir, os.listdir

        def scanning(path="."):
            self.listed.append(path)
            return scandir(path)

        def listing(path="."):
            self.listed.append(path)
            return listdir(path)

        self.patch(os, "scandir", scanning)
        self.patch(os, "listdir", listing)

    def test_fileLockListsNoFolder(self):
        """
        Taking a lock of a file looks into the staging folder, never into the
        file's folder (which may hold a million files).
        """
        upload = self.store.openUpload(("a.vfb",))
        upload.write(b"new, still arriving")
        lock = self.locks.create(("a.vfb",), "exclusive", "0", "", "bob", 60)
        self.assertEqual(self.locks.covering(("a.vfb",)), [lock])
        self.assertIn(self.root.child(STAGING_FOLDER).path, self.listed)
        self.assertNotIn(self.root.path, self.listed)
        upload.abort()

    def test_folderListedWithoutStaging(self):
        """
        Without a usable staging folder (something else has its name),
        taking a lock of a file looks for its publishes beside it.
        """
        self.root.child(STAGING_FOLDER).remove()
        self.root.child(STAGING_FOLDER).setContent(b"not a folder")
        self.locks.create(("a.vfb",), "exclusive", "0", "", "bob", 60)
        self.assertIn(self.root.path, self.listed)
