"""
Conformance mixins: the contract of an interface as tests, to mix into a
L{SynchronousTestCase} for each implementation.

- L{CalendarStoreConformanceMixin}: L{fbtwist.interfaces.ICalendarStore}.
- L{FTPShellConformanceMixin}: Twisted's L{twisted.protocols.ftp.IFTPShell}
  as a logged-in user who may publish in a writable directory.
"""

from twisted.internet.interfaces import IConsumer
from twisted.protocols import ftp
from twisted.python.filepath import FilePath
from zope.interface import implementer
from zope.interface.verify import verifyObject

from fbtwist.errors import NotFound
from fbtwist.interfaces import ICalendarStore, IUpload


class CalendarStoreConformanceMixin:
    """
    What every L{ICalendarStore} does.  The test case provides
    C{makeStore()}, an empty store.
    """

    def setUp(self):
        super().setUp()
        self.store = self.makeStore()

    def test_provides(self):
        """
        The store provides ICalendarStore, and its uploads IUpload.
        """
        self.assertTrue(verifyObject(ICalendarStore, self.store))
        upload = self.store.openUpload(("a.vfb",))
        self.addCleanup(upload.abort)
        self.assertTrue(verifyObject(IUpload, upload))

    def test_writeReadStat(self):
        """
        A written file reads back as written; stat gives its size and says
        it is no collection; nothing at a path is None.
        """
        self.store.write(("a.vfb",), b"content")
        self.assertEqual(self.store.read(("a.vfb",)), b"content")
        info = self.store.stat(("a.vfb",))
        self.assertEqual((info.path, info.size, info.isCollection), (("a.vfb",), 7, False))
        self.assertIsNone(self.store.stat(("nothing.vfb",)))
        self.assertRaises(NotFound, self.store.read, ("nothing.vfb",))

    def test_etag(self):
        """
        The entity tag is strong, the same for the same bytes and new for
        new ones.
        """
        self.store.write(("a.vfb",), b"one")
        self.store.write(("b.vfb",), b"one")
        first = self.store.etag(("a.vfb",))
        self.assertTrue(first.startswith('"') and first.endswith('"'), first)
        self.assertEqual(self.store.etag(("b.vfb",)), first)
        self.store.write(("a.vfb",), b"two")
        self.assertNotEqual(self.store.etag(("a.vfb",)), first)

    def test_snapshot(self):
        """
        A snapshot holds the file's info, entity tag and bytes together;
        there is none of nothing.
        """
        self.store.write(("a.vfb",), b"content")
        snapshot = self.store.snapshot(("a.vfb",))
        self.assertEqual((snapshot.data, snapshot.etag, snapshot.info.size),
                         (b"content", self.store.etag(("a.vfb",)), 7))
        self.assertIsNone(self.store.snapshot(("nothing.vfb",)))

    def test_upload(self):
        """
        An upload is invisible until committed; an aborted one leaves the
        old version.
        """
        self.store.write(("a.vfb",), b"old")
        upload = self.store.openUpload(("a.vfb",))
        upload.write(b"new ")
        upload.write(b"version")
        self.assertEqual((upload.path, upload.size, upload.contents()), (("a.vfb",), 11, b"new version"))
        self.assertEqual(self.store.read(("a.vfb",)), b"old")
        upload.commit()
        self.assertEqual(self.store.read(("a.vfb",)), b"new version")
        upload = self.store.openUpload(("a.vfb",))
        upload.write(b"never")
        upload.abort()
        self.assertEqual(self.store.read(("a.vfb",)), b"new version")

    def test_collections(self):
        """
        A collection lists its children by path; delete removes a file and
        a collection.
        """
        self.store.makeCollection(("team",))
        self.store.write(("team", "a.vfb"), b"a")
        self.store.write(("team", "b.vfb"), b"b")
        self.assertTrue(self.store.stat(("team",)).isCollection)
        self.assertEqual(sorted(info.path for info in self.store.children(("team",))),
                         [("team", "a.vfb"), ("team", "b.vfb")])
        self.store.delete(("team", "a.vfb"))
        self.assertIsNone(self.store.stat(("team", "a.vfb")))
        self.store.delete(("team",))
        self.assertIsNone(self.store.stat(("team",)))
        self.assertEqual(list(self.store.children(())), [])

    def test_deadProperties(self):
        """
        Dead properties start empty and read back as set.
        """
        self.store.write(("a.vfb",), b"a")
        self.assertEqual(self.store.deadProperties(("a.vfb",)), {})
        properties = {"{urn:example}colour": '<colour xmlns="urn:example">blue</colour>'}
        self.store.setDeadProperties(("a.vfb",), properties)
        self.assertEqual(self.store.deadProperties(("a.vfb",)), properties)

    def test_copyAndMove(self):
        """
        Copy and move carry content and dead properties; a move leaves
        nothing behind.
        """
        properties = {"{urn:example}colour": '<colour xmlns="urn:example">blue</colour>'}
        self.store.write(("a.vfb",), b"a")
        self.store.setDeadProperties(("a.vfb",), properties)
        self.store.copy(("a.vfb",), ("b.vfb",))
        self.store.move(("a.vfb",), ("c.vfb",))
        self.assertIsNone(self.store.stat(("a.vfb",)))
        for path in (("b.vfb",), ("c.vfb",)):
            self.assertEqual(self.store.read(path), b"a")
            self.assertEqual(self.store.deadProperties(path), properties)

    def test_metadataDirectory(self):
        """
        The metadata directory is a FilePath kept out of the listings.
        """
        self.store.write(("a.vfb",), b"a")
        directory = self.store.metadataDirectory("conformance")
        self.assertIsInstance(directory, FilePath)
        self.assertEqual([info.path for info in self.store.children(())], [("a.vfb",)])


@implementer(IConsumer)
class _Collect:
    """
    A consumer keeping what it is written, pulling from a pull producer
    until it unregisters.
    """

    def __init__(self):
        self.chunks = []
        self.producer = None

    def registerProducer(self, producer, streaming):
        self.producer = producer
        while not streaming and self.producer is producer:
            producer.resumeProducing()

    def unregisterProducer(self):
        self.producer = None

    def write(self, data):
        self.chunks.append(data)


class FTPShellConformanceMixin:
    """
    What every L{ftp.IFTPShell} does for a logged-in user.  The test case
    provides C{makeShell()} and C{writable}, a directory (list of names) of
    that shell where the user may create C{name}, a file name the shell
    accepts, with C{content} as its bytes.
    """

    def setUp(self):
        super().setUp()
        self.shell = self.makeShell()

    def publish(self) -> list:
        """
        Write C{content} to C{writable + [name]} through the shell.

        @return: The file's path.
        """
        path = self.writable + [self.name]
        writer = self.successResultOf(self.shell.openForWriting(path))
        self.assertTrue(verifyObject(ftp.IWriteFile, writer))
        consumer = self.successResultOf(writer.receive())
        self.assertTrue(verifyObject(IConsumer, consumer))
        consumer.write(self.content)
        self.successResultOf(writer.close())
        return path

    def test_provides(self):
        """
        The shell provides IFTPShell.
        """
        self.assertTrue(verifyObject(ftp.IFTPShell, self.shell))

    def test_writeThenRead(self):
        """
        A file written through the shell is listed, stat-ed with its size
        and read back whole.
        """
        path = self.publish()
        names = [name for name, _ in self.successResultOf(self.shell.list(self.writable, ("size",)))]
        self.assertIn(self.name, names)
        (size,) = self.successResultOf(self.shell.stat(path, ("size",)))
        self.assertEqual(size, len(self.content))
        reader = self.successResultOf(self.shell.openForReading(path))
        self.assertTrue(verifyObject(ftp.IReadFile, reader))
        consumer = _Collect()
        self.successResultOf(reader.send(consumer))
        self.assertEqual(b"".join(consumer.chunks), self.content)

    def test_listKeys(self):
        """
        A listing gives each entry the values of the keys asked for, in
        order.
        """
        self.publish()
        for name, values in self.successResultOf(self.shell.list(self.writable, ("size", "directory"))):
            if name == self.name:
                self.assertEqual(list(values), [len(self.content), False])

    def test_missing(self):
        """
        Access, stat, read and removal of nothing fail with an FTP command
        error (a reply, not a crash).
        """
        path = self.writable + ["nothing-here-" + self.name]
        for d in (self.shell.access(path), self.shell.stat(path, ("size",)), self.shell.openForReading(path),
                  self.shell.removeFile(path)):
            self.failureResultOf(d, ftp.FTPCmdError)

    def test_accessWritable(self):
        """
        The writable directory is accessible.
        """
        self.assertIsNone(self.successResultOf(self.shell.access(self.writable)))

    def test_removeFile(self):
        """
        A removed file is gone.
        """
        path = self.publish()
        self.successResultOf(self.shell.removeFile(path))
        self.failureResultOf(self.shell.access(path), ftp.FTPCmdError)
