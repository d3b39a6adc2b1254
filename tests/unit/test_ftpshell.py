"""
Tests of L{fbtwist.ftp.shell}: the FTP view of the tree and the permissions
it asks the avatar for.
"""

from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from fbtwist.access.avatar import CalendarAvatar
from fbtwist.ftp.shell import FTPReplyError, ftpAvatarFactory
from fbtwist.store.locks import LOCK_DIRECTORY, LockStore, WallClock
from fbtwist.store.tree import CalendarStore
from tests.helpers import outlookVFB, publicAnswer
from tests.unit.test_store import HeldRunner

CAL = ["pub", "calendar"]


class ShellTests(SynchronousTestCase):
    """
    L{CalendarFTPShell} over a real store.
    """

    def setUp(self):
        self.store = CalendarStore(FilePath(self.mktemp()))
        self.store.write(("alice.vfb",), outlookVFB())
        self.store.write(("bob.vfb",), outlookVFB())

    def shell(self, uid="alice", isAdmin=False, anonymousReads=False, maxUpload=1 << 20):
        return ftpAvatarFactory(maxUpload, anonymousReads)(CalendarAvatar(uid, isAdmin, self.store))

    def result(self, d):
        return self.successResultOf(d)

    def error(self, d) -> FTPReplyError:
        return self.failureResultOf(d, FTPReplyError).value

    def test_virtualDirectories(self):
        """
        / holds pub, /pub holds calendar, /pub/calendar is the store root,
        where a user sees their own files only (as in a WebDAV PROPFIND).
        """
        shell = self.shell()
        self.assertEqual([n for n, _ in self.result(shell.list([]))], ["pub"])
        self.assertEqual([n for n, _ in self.result(shell.list(["pub"]))], ["calendar"])
        self.assertEqual([n for n, _ in self.result(shell.list(CAL))], ["alice.vfb"])
        self.assertIsNone(self.result(shell.access(["Pub", "Calendar"])))

    def test_whoAndWhat(self):
        """
        The shell says who logged in and an upload which store path it
        writes, so that the protocol needs neither's insides.
        """
        self.assertEqual(self.shell().uid, "alice")
        self.assertIsNone(self.shell(uid=None, anonymousReads=True).uid)
        upload = self.result(self.shell().openForWriting(CAL + ["alice.vfb"]))
        self.assertEqual(upload.path, ("alice.vfb",))
        upload.abort()

    def test_outsideTheView(self):
        """
        Paths outside the view do not exist (/etc/passwd, /tmp).
        """
        shell = self.shell()
        for path in (["etc", "passwd"], ["tmp"], ["pub", "other"]):
            self.assertEqual(self.error(shell.openForReading(path)).code, "550")
            self.assertEqual(self.error(shell.access(path)).code, "550")
            self.assertEqual(self.error(shell.openForWriting(path)).code, "550")

    def test_invalidNames(self):
        """
        Names the store refuses (backslashes, leading dots, control
        characters) are 553.
        """
        shell = self.shell()
        for name in ("..\\..\\alice.vfb", ".alice.vfb", "al\x01ice.vfb", "..%2f"):
            self.assertEqual(self.error(shell.openForWriting(CAL + [name])).code, "553", name)

    def test_symlinkOutside(self):
        """
        A symbolic link in the tree that leads outside is neither read nor
        written through.
        """
        outside = FilePath(self.mktemp())
        outside.setContent(b"secret")
        outside.linkTo(self.store.root.child("carol.vfb"))
        shell = self.shell("carol")
        self.assertEqual(self.error(shell.openForReading(CAL + ["carol.vfb"])).code, "550")
        self.assertEqual(self.error(shell.openForWriting(CAL + ["carol.vfb"])).code, "550")
        self.assertEqual(outside.getContent(), b"secret")

    def test_readOwnOnly(self):
        """
        A user reads their own file, not another user's.
        """
        shell = self.shell()
        self.assertEqual(self.result(shell.openForReading(CAL + ["alice.vfb"])).data, outlookVFB())
        self.assertIn("alice may only publish", self.error(shell.openForReading(CAL + ["bob.vfb"])).text)

    def test_writeOwnOnly(self):
        """
        openForWriting accepts the user's own file only; nothing changes
        until the upload is closed.
        """
        shell = self.shell()
        upload = self.result(shell.openForWriting(CAL + ["Alice.vfb"]))
        upload.write(outlookVFB(busy="20220101T000000Z/20220101T010000Z"))
        self.assertEqual(self.store.read(("alice.vfb",)), outlookVFB())
        self.assertFalse(self.result(upload.close()))
        self.assertIn(b"20220101T000000Z", self.store.read(("alice.vfb",)))
        self.assertEqual(self.error(shell.openForWriting(CAL + ["bob.vfb"])).code, "550")
        self.assertEqual(self.error(shell.openForWriting(["pub", "alice.vfb"])).code, "550")

    def test_lockTakenWhileWriting(self):
        """
        A WebDAV lock taken while an upload is being written to disk (in a
        thread, in the server) wins: the upload is refused with 550 and the
        old file stays.
        """
        runner = HeldRunner()
        self.store.runBlocking = runner
        upload = self.result(self.shell().openForWriting(CAL + ["alice.vfb"]))
        upload.write(outlookVFB("new@example.com"))
        closing = upload.close()
        LockStore(self.store.metadataDirectory(LOCK_DIRECTORY), WallClock).create(
            ("alice.vfb",), "exclusive", "0", "admin", "admin", 60)
        runner.finish()
        error = self.error(closing)
        self.assertEqual((error.code, error.reason), ("550", "locked"))
        self.assertEqual(self.store.read(("alice.vfb",)), outlookVFB())
        self.assertEqual(runner.pending, [])

    def test_uploadLimit(self):
        """
        Writing past the limit raises 552 and discards the upload.
        """
        shell = self.shell(maxUpload=10)
        upload = self.result(shell.openForWriting(CAL + ["alice.vfb"]))
        with self.assertRaises(FTPReplyError) as raised:
            upload.write(b"x" * 11)
        self.assertEqual(raised.exception.code, "552")
        self.assertEqual(raised.exception.reason, "too-large")
        self.assertEqual(self.error(upload.close()).code, "451")
        self.assertEqual(self.store.read(("alice.vfb",)), outlookVFB())

    def test_deleteOwn(self):
        """
        DELE removes the user's own file, never another's.
        """
        shell = self.shell()
        self.assertEqual(self.error(shell.removeFile(CAL + ["bob.vfb"])).code, "550")
        self.result(shell.removeFile(CAL + ["alice.vfb"]))
        self.assertIsNone(self.store.stat(("alice.vfb",)))

    def test_collectionsRefused(self):
        """
        MKD, RMD and renames to other names than their own are refused for
        normal users.
        """
        shell = self.shell()
        self.assertEqual(self.error(shell.makeDirectory(CAL + ["new"])).code, "550")
        self.store.makeCollection(("old",))
        self.assertEqual(self.error(shell.removeDirectory(CAL + ["old"])).code, "550")
        self.assertEqual(self.error(shell.rename(CAL + ["alice.vfb"], CAL + ["x.vfb"])).code, "550")
        self.assertEqual(self.error(shell.rename(CAL + ["alice.vfb"], CAL + ["old", "alice.vfb"])).code, "550")
        self.assertEqual(self.error(shell.rename(CAL + ["old"], CAL + ["alice.vfb"])).code, "550")
        self.assertIsNotNone(self.store.stat(("old",)))
        self.assertEqual(self.store.read(("alice.vfb",)), outlookVFB())

    def test_renameOwn(self):
        """
        A user may rename their own files into each other, as with a WebDAV
        MOVE; a rename onto the same file changes nothing; a file that is
        not valid under its new name is refused.
        """
        shell = self.shell()
        self.result(shell.rename(CAL + ["alice.vfb"], CAL + ["Alice.vfb"]))
        self.assertEqual(self.store.read(("alice.vfb",)), outlookVFB())
        error = self.error(shell.rename(CAL + ["alice.vfb"], CAL + ["alice.ics"]))
        self.assertEqual((error.code, error.reason), ("550", "invalid-calendar"))
        self.store.write(("alice.ics",), outlookVFB(busy="20220101T000000Z/20220101T010000Z"))
        self.result(shell.rename(CAL + ["alice.ics"], CAL + ["alice.vfb"]))
        self.assertIn(b"20220101T000000Z", self.store.read(("alice.vfb",)))
        self.assertIsNone(self.store.stat(("alice.ics",)))

    def test_adminManages(self):
        """
        Administrators may make and remove directories and rename files.
        """
        shell = self.shell("admin", isAdmin=True)
        self.result(shell.makeDirectory(CAL + ["archive"]))
        self.result(shell.rename(CAL + ["bob.vfb"], CAL + ["archive", "bob.vfb"]))
        self.assertEqual(self.store.read(("archive", "bob.vfb")), outlookVFB())
        self.assertIsNone(self.store.stat(("bob.vfb",)))
        self.assertEqual(self.error(shell.removeDirectory(CAL)).code, "550")

    def test_anonymousReadOnly(self):
        """
        With --ftp-anonymous, the anonymous user lists and reads but never
        writes or deletes; without it, nothing.
        """
        shell = self.shell(None, anonymousReads=True)
        self.assertEqual(len(self.result(shell.list(CAL))), 2)
        self.assertEqual(self.result(shell.openForReading(CAL + ["bob.vfb"])).data,
                         publicAnswer(self.store, "bob"))
        self.assertEqual(self.error(shell.openForWriting(CAL + ["bob.vfb"])).code, "550")
        self.assertEqual(self.error(shell.removeFile(CAL + ["bob.vfb"])).code, "550")
        closed = self.shell(None, anonymousReads=False)
        self.assertEqual(self.error(closed.list(CAL)).code, "550")
