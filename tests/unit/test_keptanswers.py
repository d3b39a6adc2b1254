"""
Answers kept with the file they were rendered from (C{--keep-answers}:
L{fbtwist.store.tree.CalendarStore.keep},
L{fbtwist.web.lookup.LookupResource._plainAnswer}): a lookup's rendered
answer is kept in an extended attribute of that version of the file, and a
server that has nothing in memory (another worker, another node, a restart)
answers from it, byte for byte as it would render it, and only while the
file, its owner and the detail shown are the same.  Whole servers in memory
(L{tests.memory}) on real files.
"""

import errno
import os
import re

from twisted.internet import defer
from twisted.trial import unittest

from fbtwist.access.settings import Audience, SettingsStore, Shown, VisibilitySettings
from fbtwist.store import tree
from fbtwist.store.paths import FileSnapshot
from fbtwist.store.tree import CalendarStore
from tests.helpers import outlookVFB
from tests.memory import startMemoryServer

_KEPT = "user.fbtwist.kept"
_DATE = re.compile(rb"\r\nDate: [^\r]*")

#: alice's free/busy: busy, and out of office (shown as busy at the detail
#: "busy only").
ALICE_VFB = outlookVFB(busy="20210105T070000Z/20210105T073000Z").replace(
    b"FREEBUSY:20210105T070000Z/20210105T073000Z",
    b"FREEBUSY:20210105T070000Z/20210105T073000Z\r\nFREEBUSY;FBTYPE=BUSY-UNAVAILABLE:20210105T090000Z/20210105T100000Z")

#: Lookups as a calendar client sends them: the quick path
#: (L{fbtwist.web.fastlookup}) and the whole machinery (a header it leaves
#: to Twisted).
QUICK = b"GET /calendar/{name}.vfb HTTP/1.1\r\nHost: x\r\n\r\n"
WHOLE = b"GET /calendar/{name}.vfb HTTP/1.1\r\nHost: x\r\nX-Whole-Way: 1\r\n\r\n"
QUERY = b"GET /calendar/{name}.vfb?start=20210105&end=20210106 HTTP/1.1\r\nHost: x\r\n\r\n"


def kept(path: str):
    """
    The kept attribute of the file at C{path}, or C{None}.
    """
    try:
        return os.getxattr(path, _KEPT)
    except OSError:
        return None


class KeptAnswerTests(unittest.TestCase):
    """
    A lookup keeps its answer with the file; another server answers from it.
    """

    def setUp(self):
        self.server = startMemoryServer(self)
        self.root = self.server.store.root.path
        self.server.store.write(("alice.vfb",), ALICE_VFB)
        self.path = os.path.join(self.root, "alice.vfb")

    def another(self, *args):
        """
        A second server on the same tree, with nothing in memory (as
        another worker, node or a restarted server).
        """
        return startMemoryServer(self, "--root", self.root, *args)

    def ask(self, server, name="alice", request=QUICK):
        """
        The response to one lookup, its C{Date} blanked.
        """
        from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

        from tests.memory import AnswerClient

        client = AnswerClient()
        server.network.run(connectProtocol(TCP4ClientEndpoint(server.network, "127.0.0.1", server.port), client))
        server.network.run(client.send(request.replace(b"{name}", name.encode())))
        return _DATE.sub(b"\r\nDate: -", b"".join(client.received))

    def test_keptWithTheFile(self):
        """The first lookup keeps its body and entity tag with the file, stamped with its size and time."""
        self.assertIsNone(kept(self.path))
        answer = self.ask(self.server)
        self.assertIn(b" 200 OK\r\n", answer)
        st = os.stat(self.path)
        value = kept(self.path)
        self.assertIsNotNone(value)
        self.assertTrue(value.startswith(b"%d|%d\n" % (st.st_size, st.st_mtime_ns)), value[:80])
        self.assertTrue(value.endswith(answer.partition(b"\r\n\r\n")[2]))
        etag = re.search(rb"\r\nETag: ([^\r]*)", answer).group(1)
        self.assertIn(b"\n" + etag + b"\n", value)

    def test_anotherServerAnswersFromIt(self):
        """A server with nothing in memory answers from what was kept, without reading the file's times."""
        self.ask(self.server)
        st = os.stat(self.path)
        # Mark what was kept: the answer shows the mark only if it is read.
        value = kept(self.path).replace(b"BUSY-UNAVAILABLE", b"BUSY-KEPTMARK")
        os.setxattr(self.path, _KEPT, value)
        os.utime(self.path, ns=(st.st_atime_ns, st.st_mtime_ns))
        for request in (QUICK, WHOLE):
            self.assertIn(b"BUSY-KEPTMARK", self.ask(self.another(), request=request))

    def test_answeredWithoutReadingTheFile(self):
        """A lookup answered from what was kept does not open the file (bytes changed in place unseen)."""
        first = self.ask(self.server)
        st = os.stat(self.path)
        with open(self.path, "r+b") as f:
            f.write(b"X" * st.st_size)
        os.utime(self.path, ns=(st.st_atime_ns, st.st_mtime_ns))
        opened = []
        realOpen = os.open

        def counted(path, *args, **kwargs):
            if path == self.path:
                opened.append(path)
            return realOpen(path, *args, **kwargs)

        self.patch(os, "open", counted)
        for request in (QUICK, WHOLE):
            self.assertEqual(self.ask(self.another(), request=request), first)
        self.assertEqual(opened, [])

    def test_sameBytesAsRendered(self):
        """The answer from what was kept equals, byte for byte, one rendered by a server that keeps nothing."""
        self.ask(self.server)
        self.assertIsNotNone(kept(self.path))
        fromKept = [self.ask(self.another(), request=request) for request in (QUICK, WHOLE)]
        rendered = [self.ask(self.another("--keep-answers", "no"), request=request) for request in (QUICK, WHOLE)]
        self.assertEqual(fromKept, rendered)
        self.assertEqual(fromKept[0], fromKept[1])

    def test_keepAnswersNo(self):
        """With --keep-answers no nothing is written to the file."""
        server = self.another("--keep-answers", "no")
        self.assertIn(b" 200 OK\r\n", self.ask(server))
        self.assertIsNone(kept(self.path))

    def test_newVersionRendersAgain(self):
        """A new version of the file has nothing kept: its own times are served, then kept."""
        self.ask(self.server)
        self.server.store.write(("alice.vfb",), outlookVFB(busy="20210107T070000Z/20210107T073000Z"))
        self.assertIsNone(kept(self.path))
        for server in (self.server, self.another()):
            answer = self.ask(server)
            self.assertIn(b"20210107T070000Z", answer)
            self.assertNotIn(b"20210105T070000Z", answer)
        self.assertIn(b"20210107T070000Z", kept(self.path))

    def test_editedInPlaceIgnored(self):
        """A file edited in place (same inode, new time) is rendered again, not answered from what was kept."""
        self.ask(self.server)
        before = kept(self.path)
        data = ALICE_VFB.replace(b"20210105T070000Z/20210105T073000Z", b"20210105T080000Z/20210105T083000Z")
        self.assertEqual(len(data), len(ALICE_VFB))
        with open(self.path, "r+b") as f:
            f.write(data)
        st = os.stat(self.path)
        os.utime(self.path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
        self.assertEqual(os.getxattr(self.path, _KEPT), before)
        answer = self.ask(self.another())
        self.assertIn(b"20210105T080000Z", answer)
        self.assertNotIn(b"20210105T070000Z", answer)

    def test_detailChosenLaterIsHonoured(self):
        """An answer kept at full detail is not shown once the owner chooses busy only (and the other way round)."""
        full = self.ask(self.server)
        self.assertIn(b"FBTYPE=BUSY-UNAVAILABLE", full)
        SettingsStore(self.server.store).save("alice", VisibilitySettings(Audience.EVERYONE, Shown.BUSY))
        for request in (QUICK, WHOLE):
            busy = self.ask(self.another(), request=request)
            self.assertIn(b" 200 OK\r\n", busy)
            self.assertNotIn(b"BUSY-UNAVAILABLE", busy)
            self.assertIn(b"20210105T090000Z/20210105T100000Z", busy)
        SettingsStore(self.server.store).save("alice", VisibilitySettings(Audience.EVERYONE, Shown.FULL))
        self.assertEqual(self.ask(self.another()), full)

    def test_hiddenOwnerNotServed(self):
        """What was kept is never served once the owner hides from the viewer."""
        self.ask(self.server)
        self.assertIsNotNone(kept(self.path))
        SettingsStore(self.server.store).save("alice", VisibilitySettings(Audience.NOBODY, Shown.FULL))
        for request in (QUICK, WHOLE):
            answer = self.ask(self.another(), request=request)
            self.assertIn(b" 404 ", answer.partition(b"\r\n")[0])
            self.assertNotIn(b"FREEBUSY", answer)

    def test_unreadableFileIsAMiss(self):
        """A published file that is not free/busy times (put there by other means) is a 404, on every path."""
        self.server.store.write(("alice.vfb",), b"BEGIN:VCALENDAR\r\nnonsense\r\n")
        nobody = self.ask(self.server, "zzyzx")
        for request in (QUICK, WHOLE, QUERY):
            answer = self.ask(self.server, request=request)
            self.assertEqual(answer.partition(b"\r\n")[0], nobody.partition(b"\r\n")[0])
            self.assertIn(b" 404 ", answer.partition(b"\r\n")[0])
        self.assertIsNone(kept(self.path))

    def test_anotherOwnersKeptAnswerNotServed(self):
        """A file carrying another owner's kept answer (a copy, times and all) is rendered for its own owner."""
        aliceBody = self.ask(self.server).partition(b"\r\n\r\n")[2]
        other = os.path.join(self.root, "bsmith.vfb")
        with open(other, "wb") as f:
            f.write(ALICE_VFB)
        st = os.stat(self.path)
        os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.setxattr(other, _KEPT, kept(self.path))
        answer = self.ask(self.another(), "bsmith")
        rendered = self.ask(self.another("--keep-answers", "no"), "bsmith")
        self.assertEqual(answer, rendered)
        self.assertNotEqual(answer.partition(b"\r\n\r\n")[2], aliceBody)


class StoreKeepTests(unittest.SynchronousTestCase):
    """
    L{CalendarStore.keep} on its own: one try per version, bounded work,
    nothing kept (and nothing failing) where the filesystem refuses.
    """

    def setUp(self):
        from twisted.python.filepath import FilePath

        self.store = CalendarStore(FilePath(self.mktemp()))
        self.store.write(("a.vfb",), b"one")
        self.path = os.path.join(self.store.root.path, "a.vfb")

    def test_snapshotGivesItBack(self):
        """What was kept comes back with the snapshot of the same version, and not with the next."""
        self.store.keep(self.store.snapshot(("a.vfb",)), b"rendered")
        self.assertEqual(self.store.snapshot(("a.vfb",)).kept, b"rendered")
        # Read from the file, not only from memory.
        self.assertEqual(CalendarStore(self.store.root).snapshot(("a.vfb",)).kept, b"rendered")
        self.store.write(("a.vfb",), b"two")
        self.assertIsNone(self.store.snapshot(("a.vfb",)).kept)

    def test_keptOnlyWithoutTheContent(self):
        """A snapshot asked for not whole gives what was kept and the file's info, and reads no content."""
        self.store.keep(self.store.snapshot(("a.vfb",)), b"rendered")
        st = os.stat(self.path)
        with open(self.path, "r+b") as f:
            f.write(b"new")
        os.utime(self.path, ns=(st.st_atime_ns, st.st_mtime_ns))
        fresh = CalendarStore(self.store.root)
        snapshot = fresh.snapshot(("a.vfb",), whole=False)
        self.assertEqual((snapshot.kept, snapshot.data, snapshot.etag), (b"rendered", None, None))
        self.assertEqual((snapshot.info.path, snapshot.info.size, snapshot.info.modified),
                         (("a.vfb",), 3, st.st_mtime))
        self.assertEqual(fresh.snapshot(("a.vfb",)).data, b"new")

    def test_keptOnlyReadsWholeWithoutKept(self):
        """A snapshot asked for not whole is read whole when nothing is kept, or what is kept is another version's."""
        self.assertEqual(self.store.snapshot(("a.vfb",), whole=False).data, b"one")
        os.setxattr(self.path, _KEPT, b"3|1\nrendered")
        snapshot = CalendarStore(self.store.root).snapshot(("a.vfb",), whole=False)
        self.assertEqual((snapshot.data, snapshot.kept), (b"one", None))
        self.assertIsNone(CalendarStore(self.store.root).snapshot(("b.vfb",), whole=False))

    def test_onceAVersion(self):
        """A version is tried once: a second keep of it writes nothing."""
        snapshot = self.store.snapshot(("a.vfb",))
        self.store.keep(snapshot, b"first")
        self.store.keep(snapshot, b"second")
        self.assertTrue(kept(self.path).endswith(b"\nfirst"))

    def test_anotherVersionNotKept(self):
        """A keep for a version the file no longer is writes nothing on the new one."""
        snapshot = self.store.snapshot(("a.vfb",))
        self.store.write(("a.vfb",), b"two")
        self.store.keep(snapshot, b"old")
        self.assertIsNone(kept(self.path))

    def test_severalNamesNotKept(self):
        """A file of several names (hard links) is not kept with: each name's reader may make another answer."""
        os.link(self.path, os.path.join(self.store.root.path, "b.vfb"))
        self.store.keep(self.store.snapshot(("a.vfb",)), b"k")
        self.assertIsNone(kept(self.path))

    def test_tooLargeNotKept(self):
        """More than MAX_KEPT_BYTES is not kept."""
        self.store.keep(self.store.snapshot(("a.vfb",)), b"x" * (tree.MAX_KEPT_BYTES + 1))
        self.assertIsNone(kept(self.path))

    def test_keptTogetherAndBounded(self):
        """Keeps written by one call at a time; they wait for it together (a bounded number, the rest skipped)."""
        self.patch(tree, "_MAX_KEEPS_WAITING", 4)
        calls = []

        def runBlocking(f, *args):
            calls.append(defer.Deferred())
            calls[-1].addCallback(lambda _: f(*args))
            return calls[-1]

        self.store.runBlocking = runBlocking
        for index in range(10):
            self.store.write((f"f{index}.vfb",), b"x")
            self.store.keep(self.store.snapshot((f"f{index}.vfb",)), b"k")
        self.assertEqual(len(calls), 1)
        calls[0].callback(None)
        # The first file's, then the four that waited; the other five skipped.
        self.assertEqual(len(calls), 2)
        calls[1].callback(None)
        keptFiles = [index for index in range(10)
                     if kept(os.path.join(self.store.root.path, f"f{index}.vfb")) is not None]
        self.assertEqual(keptFiles, [0, 1, 2, 3, 4])
        self.assertEqual(self.store.snapshot(("f4.vfb",)).kept, b"k")

    def test_refusedByFilesystem(self):
        """A filesystem without extended attributes keeps nothing, fails nothing, and says so once."""
        events = []
        from twisted.logger import globalLogPublisher

        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)

        def refuse(*args):
            raise OSError(errno.ENOTSUP, os.strerror(errno.ENOTSUP))

        self.patch(os, "setxattr", refuse)
        self.store.write(("b.vfb",), b"x")
        for name in ("a.vfb", "b.vfb"):
            self.store.keep(self.store.snapshot((name,)), b"k")
        self.assertEqual(self.store.keepsRefused, os.strerror(errno.ENOTSUP))
        said = [e for e in events if "not kept" in e.get("log_format", "")]
        self.assertEqual(len(said), 1)
        self.assertIsNone(self.store.snapshot(("a.vfb",)).kept)

    def test_sameBytesNotWrittenAgain(self):
        """A snapshot already holding the same bytes asks for no write."""
        calls = []
        self.store.runBlocking = lambda f, *args: calls.append(f) or defer.succeed(None)
        snapshot = self.store.snapshot(("a.vfb",))
        self.store.keep(FileSnapshot(snapshot.info, snapshot.etag, snapshot.data, b"same"), b"same")
        self.assertEqual(calls, [])
