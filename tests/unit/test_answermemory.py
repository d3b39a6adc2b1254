"""
Anonymous lookups' answers remembered in memory (C{--answer-memory}:
L{fbtwist.access.answers}, told of changes by L{fbtwist.store.changes}):
the kernel's real inotify on real folders, the memory's own rules with a
watch of the test's, and whole servers in memory (L{tests.memory}) on real
files changed behind their back, as another worker, the commit process or
an administrator would.
"""

import os
import re
import struct
import threading
import time

from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.python import threadable
from twisted.trial import unittest

from fbtwist.access import answers
from fbtwist.access.answers import ENTRY_OVERHEAD, NAME_WEIGHT, RememberedAnswers
from fbtwist.access.settings import SETTINGS_FOLDER, Audience, SettingsStore, Shown, VisibilitySettings
from fbtwist.store import changes
from fbtwist.store.changes import (
    IN_ATTRIB,
    IN_IGNORED,
    IN_MODIFY,
    IN_Q_OVERFLOW,
    FolderChanges,
    Mount,
    filesystemType,
    mountOf,
)
from tests.helpers import outlookVFB
from tests.memory import AnswerClient, startMemoryServer

_DATE = re.compile(rb"\r\nDate: [^\r]*")

QUICK = b"GET /calendar/{name}.vfb HTTP/1.1\r\nHost: x\r\n\r\n"
WHOLE = b"GET /calendar/{name}.vfb HTTP/1.1\r\nHost: x\r\nX-Whole-Way: 1\r\n\r\n"

FIRST = outlookVFB(busy="20210105T070000Z/20210105T073000Z")
SECOND = outlookVFB(busy="20210106T080000Z/20210106T083000Z")


class Told:
    """
    What a watch told: the names, and how often everything.
    """

    def __init__(self):
        self.names = []
        self.attributesOnly = []
        self.everything = 0

    def changed(self, name, attributesOnly):
        self.names.append(name)
        self.attributesOnly.append(attributesOnly)

    def all(self):
        self.everything += 1


class FolderChangesTests(unittest.TestCase):
    """
    L{FolderChanges} on a real folder, with the kernel's inotify.
    """

    def setUp(self):
        self.folder = self.mktemp()
        os.makedirs(self.folder)
        self.told = Told()
        self.watch = FolderChanges.open(self.folder, self.told.changed, self.told.all, local=lambda path: True)
        self.assertIsNotNone(self.watch)
        self.addCleanup(self.watch.close)

    def path(self, name):
        return os.path.join(self.folder, name)

    def test_nothingQueued(self):
        """With nothing changed, nothing is told and the watch goes on."""
        self.assertTrue(self.watch.drain())
        self.assertEqual((self.told.names, self.told.everything), ([], 0))

    def test_eachChangeTold(self):
        """A create, a rename over a file, a write in place, new times, an attribute, a removal: each told."""
        for action in (
            lambda: open(self.path("alice.vfb"), "wb").close(),
            lambda: (open(self.path("new"), "wb").close(), os.rename(self.path("new"), self.path("alice.vfb"))),
            lambda: open(self.path("alice.vfb"), "r+b").write(b"x"),
            lambda: os.utime(self.path("alice.vfb"), (1, 1)),
            lambda: os.setxattr(self.path("alice.vfb"), "user.test", b"1"),
            lambda: os.unlink(self.path("alice.vfb")),
        ):
            del self.told.names[:]
            action()
            self.assertTrue(self.watch.drain())
            self.assertIn("alice.vfb", self.told.names)
        self.assertEqual(self.told.everything, 0)

    def test_attributesOnlyTold(self):
        """
        A change of a member's attributes alone (an extended attribute, its
        mode, its times) is told as such; a change of its content or name
        is not.
        """
        open(self.path("alice.vfb"), "wb").close()
        self.watch.drain()
        for action, attributesOnly in (
            (lambda: os.setxattr(self.path("alice.vfb"), "user.fbtwist.kept", b"1"), True),
            (lambda: os.chmod(self.path("alice.vfb"), 0o600), True),
            (lambda: os.utime(self.path("alice.vfb"), (1, 1)), True),
            (lambda: open(self.path("alice.vfb"), "r+b").write(b"x"), False),
            (lambda: (open(self.path("new"), "wb").close(), os.rename(self.path("new"), self.path("alice.vfb"))),
             False),
            (lambda: os.unlink(self.path("alice.vfb")), False),
        ):
            del self.told.names[:], self.told.attributesOnly[:]
            action()
            self.assertTrue(self.watch.drain())
            self.assertIn("alice.vfb", self.told.names)
            self.assertEqual(set(self.told.attributesOnly), {attributesOnly}, self.told.names)

    def test_hiddenNamesNotTold(self):
        """Hidden names (temporary files, properties) are not told; the name they are renamed to is."""
        with open(self.path(".alice.vfb.1.tmp"), "wb") as f:
            f.write(b"x")
        self.watch.drain()
        self.assertEqual(self.told.names, [])
        os.rename(self.path(".alice.vfb.1.tmp"), self.path("alice.vfb"))
        self.watch.drain()
        self.assertEqual(self.told.names, ["alice.vfb"])

    def test_folderGone(self):
        """The folder removed: everything told, and the watch ends (nothing more is told)."""
        os.rmdir(self.folder)
        self.assertFalse(self.watch.drain())
        self.assertGreaterEqual(self.told.everything, 1)
        self.assertTrue(self.watch.ended)
        self.assertFalse(self.watch.drain())

    def test_notLocal(self):
        """A folder on a filesystem other machines write to is not watched."""
        self.assertIsNone(FolderChanges.open(self.folder, self.told.changed, self.told.all,
                                             local=lambda path: False))

    def test_missingFolder(self):
        """A folder that does not exist cannot be watched."""
        self.assertIsNone(FolderChanges.open(self.path("none"), self.told.changed, self.told.all,
                                             local=lambda path: True))


class QueuedEventsTests(unittest.TestCase):
    """
    L{FolderChanges.drain} reading events written by the test (into a
    pipe) as the kernel writes them: what a real watch rarely shows.
    """

    def drained(self, *events):
        read, write = os.pipe()
        os.set_blocking(read, False)
        self.addCleanup(os.close, write)
        for mask, name in events:
            encoded = name.encode() + b"\0" * (-len(name) % 16 or 16) if name else b""
            os.write(write, struct.pack("iIII", 1, mask, 0, len(encoded)) + encoded)
        told = Told()
        watch = FolderChanges("/nowhere", read, told.changed, told.all)
        self.addCleanup(watch.close)
        return watch, watch.drain(), told

    def test_names(self):
        """Names padded with NULs, several events in one read."""
        _, going, told = self.drained((IN_MODIFY, "alice.vfb"), (IN_MODIFY, "bob.ics"))
        self.assertTrue(going)
        self.assertEqual(told.names, ["alice.vfb", "bob.ics"])

    def test_attributesOnly(self):
        """Only an event of attributes alone (IN_ATTRIB) is told as one."""
        _, _, told = self.drained((IN_ATTRIB, "alice.vfb"), (IN_ATTRIB | IN_MODIFY, "alice.vfb"),
                                  (IN_MODIFY, "alice.vfb"))
        self.assertEqual(told.attributesOnly, [True, False, False])

    def test_overflow(self):
        """Events lost (the queue overflowed): everything told, the watch goes on."""
        watch, going, told = self.drained((IN_MODIFY, "alice.vfb"), (IN_Q_OVERFLOW, ""))
        self.assertTrue(going)
        self.assertEqual((told.names, told.everything), (["alice.vfb"], 1))
        self.assertFalse(watch.ended)

    def test_watchEnded(self):
        """The kernel ended the watch (IN_IGNORED): everything told, the watch over."""
        watch, going, told = self.drained((IN_IGNORED, ""))
        self.assertFalse(going)
        self.assertEqual(told.everything, 1)
        self.assertTrue(watch.ended)


MOUNTINFO = """\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 0:40 / /srv/calendar rw,relatime shared:9 - nfs4 server:/export rw,vers=4.2
31 22 0:41 / /srv/gluster\\040volume rw - fuse.glusterfs node1:/fb rw
"""


class FilesystemTypeTests(unittest.TestCase):
    """
    L{filesystemType}: the type of the mount holding a path.
    """

    def test_byPrefix(self):
        """A path's mount found by the longest mount point above it (escaped spaces read)."""
        self.patch(os, "stat", lambda path: os.stat_result((0,) * 10))
        self.patch(os.path, "realpath", lambda path: path)
        self.assertEqual(filesystemType("/srv/calendar/tree", MOUNTINFO), "nfs4")
        self.assertEqual(filesystemType("/srv/gluster volume/x", MOUNTINFO), "fuse.glusterfs")
        self.assertEqual(filesystemType("/srv/calendarx", MOUNTINFO), "ext4")

    def test_byDevice(self):
        """The mount of the path's own device wins (a path through a symbolic link, a bind mount)."""
        self.patch(os, "stat", lambda path: os.stat_result((0, 0, os.makedev(0, 41)) + (0,) * 7))
        self.patch(os.path, "realpath", lambda path: path)
        self.assertEqual(filesystemType("/somewhere/else", MOUNTINFO), "fuse.glusterfs")

    def test_mountOf(self):
        """
        L{mountOf} gives the mount's type, source and point; of a device
        mounted at several points, the one holding the path.
        """
        self.patch(os, "stat", lambda path: os.stat_result((0, 0, os.makedev(254, 0)) + (0,) * 7))
        self.patch(os.path, "realpath", lambda path: path)
        table = MOUNTINFO + "40 22 254:0 / /run/netns rw - ext4 /dev/vda rw\n"
        self.assertEqual(mountOf("/var/tmp", table), Mount("ext4", "/dev/vda", "/"))
        self.assertEqual(mountOf("/run/netns/x", table), Mount("ext4", "/dev/vda", "/run/netns"))
        self.assertEqual(mountOf("/srv/gluster volume", MOUNTINFO.replace("0:41", "254:0")),
                         Mount("fuse.glusterfs", "node1:/fb", "/srv/gluster volume"))

    def test_thisMachine(self):
        """The test's own folder has a type, and nothing at all has none."""
        self.assertIsNotNone(filesystemType(self.mktemp().rpartition("/")[0] or "."))
        self.assertIsNone(filesystemType(os.path.join(self.mktemp(), "none")))


class FakeWatch:
    """
    A watch the test tells what changed.
    """

    def __init__(self):
        self.queued = []
        self.going = True
        self.opened = 0

    def open(self, changed, everything):
        self.opened += 1
        self.changed, self.everything = changed, everything
        return self

    def drain(self):
        queued, self.queued = self.queued, []
        for name in queued:
            if name is None:
                self.everything()
            elif isinstance(name, tuple):
                self.changed(*name)
            else:
                self.changed(name, False)
        return self.going


class RememberedAnswersTests(unittest.TestCase):
    """
    L{RememberedAnswers}' own rules.
    """

    def setUp(self):
        self.watch = FakeWatch()
        self.versions = ("v1",)
        self.inReactor = True
        self.now = 1000.0
        self.answers = RememberedAnswers(self.watch.open, lambda: self.versions, 10 * (100 + ENTRY_OVERHEAD),
                                         lambda: self.now, inReactorThread=lambda: self.inReactor)

    def remember(self, uid, body=b"x" * 100):
        answer, ticket = self.answers.get(uid)
        self.assertIsNone(answer)
        self.assertIsNotNone(ticket)
        self.answers.put(ticket, ("etag", body, 1.0))

    def test_heldUntilItsFileChanges(self):
        """An answer is given back until a file of its owner's (.vfb or .ics) is told changed."""
        self.remember("alice")
        self.assertEqual(self.answers.get("alice")[0], ("etag", b"x" * 100, 1.0))
        for name in ("alice.vfb", "alice.ics"):
            self.watch.queued.append(name)
            self.assertEqual(self.answers.get("alice")[0], None)
            self.remember("alice")
        self.assertEqual(self.watch.opened, 1)

    def test_othersKept(self):
        """A change of another's file, or of a file no answer is made of, forgets nothing else."""
        self.remember("alice")
        self.watch.queued += ["bob.vfb", "alice.props", "alice.avail.ics"]
        self.assertIsNotNone(self.answers.get("alice")[0])

    def test_madeWhileChanged(self):
        """An answer made while a change was told (it may be of the old file) is not held."""
        answer, ticket = self.answers.get("alice")
        self.watch.queued.append("alice.vfb")
        self.assertIsNone(self.answers.get("bob")[0])
        self.answers.put(ticket, ("etag", b"old", 1.0))
        self.assertIsNone(self.answers.get("alice")[0])

    def test_everything(self):
        """Told it cannot say what changed: every answer goes."""
        self.remember("alice")
        self.watch.queued.append(None)
        self.assertIsNone(self.answers.get("alice")[0])

    def test_versionsChanged(self):
        """The choices' or the feeds' versions changed: every answer goes."""
        self.remember("alice")
        self.versions = ("v2",)
        self.assertIsNone(self.answers.get("alice")[0])

    def test_versionsNotPromised(self):
        """While the versions cannot be promised nothing is given nor held."""
        self.remember("alice")
        self.versions = None
        self.assertEqual(self.answers.get("alice"), (None, None))

    def test_bounded(self):
        """No more than its bytes are held: the oldest go first; an answer made again is new."""
        for n in range(12):
            self.remember(f"user{n}")
        self.assertEqual(self.answers.held, 10)
        self.assertEqual(self.answers.counts()[3], 10 * (100 + ENTRY_OVERHEAD))
        self.assertIsNone(self.answers.get("user0")[0])
        self.assertIsNotNone(self.answers.get("user2")[0])
        self.watch.queued.append("user2.vfb")
        self.remember("user2")
        self.remember("user12")
        self.assertIsNone(self.answers.get("user3")[0])
        self.assertIsNotNone(self.answers.get("user2")[0])
        self.assertEqual(self.answers.held, 10)

    def test_heldAtMostMaxAge(self):
        """No answer is held longer than maxAge, changed or not."""
        self.remember("alice")
        self.now += RememberedAnswers.maxAge - 1
        self.assertIsNotNone(self.answers.get("alice")[0])
        self.now += 1
        self.assertIsNone(self.answers.get("alice")[0])

    def stateKept(self):
        """
        Answers whose owners' files' state is C{self.states[uid]} (taken
        at each ask, in C{self.stateAsked}).
        """
        self.states, self.stateAsked = {}, []

        def state(uid, before):
            self.stateAsked.append(uid)
            return self.states.get(uid)

        self.answers = RememberedAnswers(self.watch.open, lambda: self.versions, 10 * (100 + ENTRY_OVERHEAD),
                                         lambda: self.now, inReactorThread=lambda: self.inReactor, state=state)

    def test_heldAgainWhileFilesUnchanged(self):
        """
        Past maxAge, an answer whose owner's files are in the state they
        were in before it was made is held as long again (one look at
        them), then looked at again.
        """
        self.stateKept()
        self.states["alice"] = ("inode", 1)
        self.remember("alice")
        self.assertEqual(self.stateAsked, ["alice"])
        self.now += RememberedAnswers.maxAge
        self.assertEqual(self.answers.get("alice")[0], ("etag", b"x" * 100, 1.0))
        self.assertEqual((self.stateAsked, self.answers.renewed, self.answers.hits), (["alice"] * 2, 1, 1))
        self.now += RememberedAnswers.maxAge - 1
        self.assertIsNotNone(self.answers.get("alice")[0])
        self.assertEqual(len(self.stateAsked), 2)
        self.now += 1
        self.assertIsNotNone(self.answers.get("alice")[0])
        self.assertEqual((len(self.stateAsked), self.answers.renewed), (3, 2))

    def stateSinceKept(self):
        """
        As L{stateKept}, and the files' state since a state as
        C{self.since[(uid, before)]} (asked in C{self.sinceAsked}).
        """
        self.stateKept()
        self.since, self.sinceAsked = {}, []

        def stateSince(uid, before):
            self.sinceAsked.append((uid, before))
            return self.since.get((uid, before))

        self.answers._stateSince = stateSince

    def test_attributesOnlyKept(self):
        """
        Told that only the attributes of a file of its owner's changed (the
        answer kept with it, say), while their state differs from the one
        it was made at only in what that changes: the answer stays, with
        the new state, which vouches for it past maxAge.
        """
        self.stateSinceKept()
        self.states["alice"] = ("inode", 1)
        self.remember("alice")
        self.since[("alice", ("inode", 1))] = ("inode", 1, "attribute set")
        self.watch.queued.append(("alice.vfb", True))
        self.assertEqual(self.answers.get("alice")[0], ("etag", b"x" * 100, 1.0))
        self.assertEqual(self.sinceAsked, [("alice", ("inode", 1))])
        self.states["alice"] = ("inode", 1, "attribute set")
        self.now += RememberedAnswers.maxAge
        self.assertIsNotNone(self.answers.get("alice")[0])
        self.assertEqual(self.answers.renewed, 1)

    def test_attributesOnlyButChanged(self):
        """
        Told that only attributes changed, but the files are not as the
        answer was made of them (a new modification time, a link...): it
        goes, and an answer being made meanwhile is not held.
        """
        self.stateSinceKept()
        self.states["alice"] = ("inode", 1)
        self.remember("alice")
        _, ticket = self.answers.get("bob")
        self.watch.queued.append(("alice.vfb", True))
        self.assertIsNone(self.answers.get("alice")[0])
        self.assertEqual(self.sinceAsked, [("alice", ("inode", 1))])
        self.answers.put(ticket, ("etag", b"bob", 1.0))
        self.assertIsNone(self.answers.get("bob")[0])

    def test_attributesOnlyNoState(self):
        """
        An answer held without a state (its files had just changed), or one
        not held, is not vouched for by an attribute change: it goes.
        """
        self.stateSinceKept()
        self.remember("alice")
        self.watch.queued += [("alice.vfb", True), ("bob.vfb", True)]
        self.assertIsNone(self.answers.get("alice")[0])
        self.assertEqual(self.sinceAsked, [])

    def test_contentChangeNotAsked(self):
        """A change of content or name: the answer goes, its state not asked."""
        self.stateSinceKept()
        self.states["alice"] = ("inode", 1)
        self.remember("alice")
        self.since[("alice", ("inode", 1))] = ("inode", 1)
        self.watch.queued.append(("alice.ics", False))
        self.assertIsNone(self.answers.get("alice")[0])
        self.assertEqual(self.sinceAsked, [])

    def test_madeAnewWhenFilesChangedUntold(self):
        """
        Past maxAge, an answer whose owner's files changed (through a name
        the watch does not see: nothing was told) is made anew, with the
        state taken before.
        """
        self.stateKept()
        self.states["alice"] = ("inode", 1)
        self.remember("alice")
        self.states["alice"] = ("inode", 2)
        self.assertIsNotNone(self.answers.get("alice")[0])
        self.now += RememberedAnswers.maxAge
        answer, ticket = self.answers.get("alice")
        self.assertIsNone(answer)
        self.assertEqual(ticket.state, ("inode", 2))
        self.assertEqual((self.answers.held, self.answers.renewed), (0, 0))
        self.answers.put(ticket, ("etag2", b"y" * 100, 2.0))
        self.now += RememberedAnswers.maxAge
        self.assertEqual(self.answers.get("alice")[0], ("etag2", b"y" * 100, 2.0))

    def test_stateUnknown(self):
        """Files whose state cannot be told: an answer is held maxAge at most, as without states."""
        self.stateKept()
        self.remember("alice")
        self.now += RememberedAnswers.maxAge
        self.assertIsNone(self.answers.get("alice")[0])

    def remote(self, address, token):
        """
        getRemote of C{address}, the federation's fresh result now C{token}
        (C{None}: none): the tokens told fresh are those in L{fresh}, each
        asked recorded in L{askedFresh}.
        """
        def stillFresh(held):
            self.askedFresh.append(held)
            return held in self.fresh

        return self.answers.getRemote(address, stillFresh, lambda asked: token if asked == address else None)

    def test_noStateOfRemote(self):
        """Another organisation's address has no files: no state asked, held maxAge at most."""
        self.stateKept()
        fetched = object()
        self.fresh, self.askedFresh = [fetched], []
        _, ticket = self.remote("bob@partner.example", fetched)
        self.assertIsNone(ticket.state)
        self.answers.put(ticket, ("etag", b"remote", 1.0))
        self.now += RememberedAnswers.maxAge
        answer, ticket = self.remote("bob@partner.example", fetched)
        self.assertIsNone(answer)
        self.assertIsNone(ticket.state)
        self.assertEqual(self.stateAsked, [])
        # Past maxAge, the cache is not asked (it would count a hit).
        self.assertEqual(self.askedFresh, [])

    def test_remote(self):
        """
        Another organisation's answer is given back while the fetch result it was made of is still fresh in the
        federation's cache (its token told so, and only then); else the ticket carries the fresh result now.
        """
        fetched, again = object(), object()
        self.fresh, self.askedFresh = [fetched], []
        answer, ticket = self.remote("bob@partner.example", fetched)
        self.assertIsNone(answer)
        self.assertTrue(ticket.remote)
        self.assertIs(ticket.token, fetched)
        self.answers.put(ticket, ("etag", b"remote", 1.0))
        self.assertEqual(self.remote("bob@partner.example", None)[0], ("etag", b"remote", 1.0))
        self.assertEqual(self.askedFresh, [fetched])
        self.assertEqual((self.answers.hits, self.answers.misses), (1, 1))
        # Fetched again: the held answer is not fresh any more.
        self.fresh = [again]
        answer, ticket = self.remote("bob@partner.example", again)
        self.assertIsNone(answer)
        self.assertIs(ticket.token, again)
        self.assertFalse(self.answers.get("bob@partner.example")[1].remote)
        # A file of that name changed: the remote answer is not a file's.
        self.watch.queued.append("bob@partner.example.vfb")
        self.answers.put(ticket, ("etag", b"new", 1.0))
        self.assertEqual(self.remote("bob@partner.example", again)[0], ("etag", b"new", 1.0))
        # Another spelling is another address: not this one's answer.
        self.assertIsNone(self.remote("Bob@partner.example", again)[0])

    def test_remoteNotFresh(self):
        """
        With no fresh result in the federation's cache, nothing is given nor may be remembered, and the answer
        held (no longer fresh) goes.
        """
        fetched = object()
        self.fresh, self.askedFresh = [fetched], []
        _, ticket = self.remote("bob@partner.example", fetched)
        self.answers.put(ticket, ("etag", b"remote", 1.0))
        self.assertEqual(self.answers.held, 1)
        self.fresh = []
        self.assertEqual(self.remote("bob@partner.example", None), (None, None))
        self.assertEqual(self.answers.held, 0)
        self.assertEqual(self.remote("bob@partner.example", None), (None, None))

    def test_uidsOfOneIndex(self):
        """
        A name's uid is given back while the name index is the one it was
        told of; another index (a new load) forgets them all.
        """
        first, second = object(), object()
        self.assertIsNone(self.answers.uidOf("betty", first))
        self.answers.rememberUid("betty", first, "bsmith")
        self.assertEqual(self.answers.uidOf("betty", first), "bsmith")
        self.assertIsNone(self.answers.uidOf("betty", second))
        self.assertIsNone(self.answers.uidOf("betty", None))
        self.answers.rememberUid("alice", second, "alice")
        self.assertIsNone(self.answers.uidOf("betty", first))
        self.assertEqual(self.answers.uidOf("alice", second), "alice")

    def assertNamesHeld(self, quarterHolds: int, held: int):
        """
        With NAMES_HELD 3 and a memory a quarter of which holds
        C{quarterHolds} names: C{held} names' uids are held, then all
        forgotten for the next one.
        """
        self.patch(answers, "NAMES_HELD", 3)
        self.answers.maxBytes = 4 * NAME_WEIGHT * quarterHolds
        self.assertEqual(self.answers.namesHeld, held)
        index = object()
        for n in range(held):
            self.answers.rememberUid(f"name{n}", index, f"uid{n}")
        self.assertEqual([self.answers.uidOf(f"name{n}", index) for n in range(held)], [f"uid{n}" for n in range(held)])
        self.answers.rememberUid("one more", index, "uid")
        self.assertIsNone(self.answers.uidOf("name0", index))
        self.assertEqual(self.answers.uidOf("one more", index), "uid")

    def test_uidsBounded(self):
        """At most NAMES_HELD names' uids are held (then all forgotten) when a quarter of the memory holds fewer."""
        self.assertNamesHeld(2, 3)

    def test_uidsHeldAsMemoryAllows(self):
        """
        A memory large enough holds as many names as a quarter of it does
        (a memory for everyone's answers holds everyone's names too).
        """
        self.assertNamesHeld(10, 10)

    def test_uidsCountedWithTheAnswers(self):
        """The names' uids held count in the memory: answers make room for them."""
        self.patch(answers, "NAMES_HELD", 0)
        for n in range(10):
            self.remember(f"person{n}")
        self.assertEqual(self.answers.held, 10)
        index = object()
        # The memory was full: three names take part of an answer's room.
        for n in range(3):
            self.answers.rememberUid(f"name{n}", index, f"uid{n}")
        self.assertEqual(self.answers.counts()[3], 10 * (100 + ENTRY_OVERHEAD) + 3 * NAME_WEIGHT)
        self.remember("one more")
        # Two answers went: one for the new one, one for the names.
        self.assertEqual(self.answers.held, 9)
        self.assertIsNone(self.answers.get("person0")[0])
        self.assertIsNone(self.answers.get("person1")[0])
        self.assertIsNotNone(self.answers.get("person2")[0])
        self.assertLessEqual(self.answers.counts()[3], self.answers.maxBytes)

    def test_onlyTheReactorThread(self):
        """Outside the reactor's thread nothing is given nor held."""
        self.remember("alice")
        self.inReactor = False
        self.assertEqual(self.answers.get("alice"), (None, None))

    def test_noWatch(self):
        """No watch (a shared filesystem): nothing is ever held, and the watch is asked for once."""
        answers = RememberedAnswers(lambda changed, everything: None, lambda: (), 1 << 20, lambda: 0.0,
                                    inReactorThread=lambda: True)
        for _ in range(3):
            self.assertEqual(answers.get("alice"), (None, None))

    def test_watchEnded(self):
        """A watch that ended: nothing more is given nor held."""
        self.remember("alice")
        self.watch.going = False
        self.assertEqual(self.answers.get("alice"), (None, None))
        self.watch.going = True
        self.assertEqual(self.answers.get("alice"), (None, None))


class NamesPastTheIndexTests(unittest.TestCase):
    """
    FreeBusyVisibility._uidPastIndex: a name the name index does not have
    (another organisation's address), asked of the cache of names once
    while that cache learns no uid.
    """

    def setUp(self):
        from fbtwist.access.visibility import FreeBusyVisibility
        from fbtwist.web.lookupcache import NameCache

        self.now = 0.0
        self.names = NameCache(clock=lambda: self.now)
        self.asked = []
        get = self.names.get
        self.patch(self.names, "get", lambda name: (self.asked.append(name), get(name))[1])
        self.visibility = FreeBusyVisibility(None, None, lambda: self.now, names=self.names)

    def test_askedOnceWhileNothingLearnt(self):
        """A name with no uid is not asked of the cache again while it learns none."""
        self.names.put("nobody@partner.example", None)
        for _ in range(3):
            self.assertIsNone(self.visibility._uidPastIndex("bob@partner.example"))
            self.assertIsNone(self.visibility._uidPastIndex("nobody@partner.example"))
        self.assertEqual(self.asked, ["bob@partner.example", "nobody@partner.example"])
        # Learning that some name is nobody's learns no uid.
        self.names.put("other@partner.example", None)
        self.assertIsNone(self.visibility._uidPastIndex("bob@partner.example"))
        self.assertEqual(len(self.asked), 2)

    def test_askedAgainOnceAUidIsLearnt(self):
        """Once the cache learns a uid (for any name), every name is asked of it again."""
        self.assertIsNone(self.visibility._uidPastIndex("bob@partner.example"))
        self.names.put("carol", "carol")
        self.assertIsNone(self.visibility._uidPastIndex("bob@partner.example"))
        self.assertEqual(len(self.asked), 2)
        # The directory (searched since) says the address is a user's here.
        self.names.put("bob@partner.example", "bob")
        self.assertEqual(self.visibility._uidPastIndex("bob@partner.example"), "bob")
        self.assertEqual(self.visibility._uidPastIndex("bob@partner.example"), "bob")
        self.assertEqual(len(self.asked), 4)

    def test_anotherCache(self):
        """Another cache of names (with as many uids learnt) is asked again."""
        from fbtwist.web.lookupcache import NameCache

        self.assertIsNone(self.visibility._uidPastIndex("bob@partner.example"))
        self.visibility.names = other = NameCache()
        other.put("bob@partner.example", "bob")
        self.names.learned = other.learned
        self.assertEqual(self.visibility._uidPastIndex("bob@partner.example"), "bob")

    def test_noCache(self):
        """No cache of names: no uid."""
        self.visibility.names = None
        self.assertIsNone(self.visibility._uidPastIndex("bob@partner.example"))

    def test_bounded(self):
        """At most _NO_UID_HELD names are held (then all forgotten)."""
        from fbtwist.access import visibility

        self.patch(visibility, "_NO_UID_HELD", 2)
        for name in ("a@x.example", "b@x.example", "c@x.example", "a@x.example"):
            self.visibility._uidPastIndex(name)
        self.assertEqual(self.asked, ["a@x.example", "b@x.example", "c@x.example", "a@x.example"])


class ServerTests(unittest.TestCase):
    """
    Whole servers in memory on real files: an answer given from memory is
    never one its client could know is old.
    """

    def setUp(self):
        # The test's thread is the reactor's (as twistd's is), for this
        # test only: else nothing is remembered.
        self.patch(threadable, "ioThread", threadable.getThreadID())
        self.server = startMemoryServer(self)
        self.root = self.server.store.root.path
        self.server.store.write(("alice.vfb",), FIRST)
        self.path = os.path.join(self.root, "alice.vfb")
        self.client = None

    @property
    def answers(self):
        return self.server.service.portal.realm.visibility.answers

    def ask(self, name="alice", request=QUICK):
        if self.client is None:
            self.client = AnswerClient()
            self.server.network.run(connectProtocol(
                TCP4ClientEndpoint(self.server.network, "127.0.0.1", self.server.port), self.client))
        self.server.network.run(self.client.send(request.replace(b"{name}", name.encode())))
        return _DATE.sub(b"\r\nDate: -", b"".join(self.client.received))

    def replaceBehind(self, data):
        """
        A new version renamed over the file, as the commit process or
        another worker publishes it.
        """
        temporary = os.path.join(self.root, ".alice.vfb.test.tmp")
        with open(temporary, "wb") as f:
            f.write(data)
        os.rename(temporary, self.path)

    def test_givenFromMemory(self):
        """Asked again, the same answer, given from memory (no file looked at)."""
        first = self.ask()
        self.assertIn(b" 200 OK\r\n", first)
        self.assertEqual(self.ask(), first)
        looked = []
        realStat = os.stat

        def counted(path, *args, **kwargs):
            if isinstance(path, str) and path.startswith(self.root):
                looked.append(path)
            return realStat(path, *args, **kwargs)

        self.patch(os, "stat", counted)
        self.patch(os, "lstat", counted)
        hits = self.answers.hits
        for request in (QUICK, WHOLE, QUICK):
            self.assertEqual(self.ask(request=request), first)
        self.assertEqual(self.answers.hits, hits + 3)
        self.assertEqual([path for path in looked if "alice" in path], [])

    def test_replacedBehindItsBack(self):
        """A version renamed over the file by another process: the very next lookup has it."""
        self.assertIn(b"20210105T070000Z", self.ask())
        self.ask()
        self.replaceBehind(SECOND)
        for request in (QUICK, WHOLE):
            answer = self.ask(request=request)
            self.assertIn(b"20210106T080000Z", answer)
            self.assertNotIn(b"20210105T070000Z", answer)

    def test_writtenInPlace(self):
        """The file written in place (by an editor, say): the next lookup reads it again."""
        self.ask()
        self.ask()
        st = os.stat(self.path)
        edited = FIRST.replace(b"20210105T07", b"20210105T09")
        self.assertEqual(len(edited), len(FIRST))
        with open(self.path, "r+b") as f:
            f.write(edited)
        # Its time moved, as a write moves it (a file system's clock may
        # not have moved yet).
        os.utime(self.path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
        self.assertIn(b"20210105T090000Z", self.ask())

    def test_removed(self):
        """The file removed: the next lookup finds nothing."""
        self.ask()
        self.ask()
        os.unlink(self.path)
        self.assertIn(b" 404 ", self.ask().partition(b"\r\n")[0])

    def test_calendarPublishedSince(self):
        """A full calendar (.ics) published since: the next lookup merges it, not the old answer."""
        first = self.ask()
        self.ask()
        with open(os.path.join(self.root, "alice.ics"), "wb") as f:
            f.write(b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:1\r\n"
                    b"DTSTAMP:20210101T000000Z\r\nDTSTART:20210107T100000Z\r\nDTEND:20210107T110000Z\r\n"
                    b"END:VEVENT\r\nEND:VCALENDAR\r\n")
        self.assertNotEqual(self.ask(), first)

    def test_ownerHidesElsewhere(self):
        """The owner hides through another process: the next lookup no longer shows them."""
        self.ask()
        self.ask()
        SettingsStore(self.server.store).save("alice", VisibilitySettings(Audience.NOBODY, Shown.FULL))
        for request in (QUICK, WHOLE):
            answer = self.ask(request=request)
            self.assertIn(b" 404 ", answer.partition(b"\r\n")[0])
            self.assertNotIn(b"FREEBUSY", answer)

    def test_choiceMadeLongAgo(self):
        """
        A choice saved by another process and already seconds old when next
        asked (its folder's version promised, and another): the next lookup
        follows it.
        """
        self.ask()
        self.ask()
        SettingsStore(self.server.store).save("alice", VisibilitySettings(Audience.NOBODY, Shown.FULL))
        folder = self.server.store.metadataDirectory(SETTINGS_FOLDER, create=False).path
        past = os.stat(folder).st_mtime - 60
        os.utime(folder, (past, past))
        self.assertIn(b" 404 ", self.ask().partition(b"\r\n")[0])

    def test_detailChosenElsewhere(self):
        """The owner chooses busy only through another process: the next lookup shows busy only."""
        self.server.store.write(("alice.vfb",), FIRST.replace(b"FREEBUSY:", b"FREEBUSY;FBTYPE=BUSY-TENTATIVE:"))
        self.assertIn(b"BUSY-TENTATIVE", self.ask())
        self.ask()
        SettingsStore(self.server.store).save("alice", VisibilitySettings(Audience.EVERYONE, Shown.BUSY))
        self.assertNotIn(b"BUSY-TENTATIVE", self.ask())

    def test_fileOfSeveralNames(self):
        """
        A file with another name (a hard link elsewhere, through which it
        may change unseen) is never answered from memory.
        """
        other = self.mktemp()
        os.link(self.path, other)
        self.addCleanup(os.unlink, other)
        for _ in range(3):
            self.assertIn(b" 200 OK\r\n", self.ask())
        self.assertEqual((self.answers.hits, self.answers.held), (0, 0))
        with open(other, "r+b") as f:
            f.write(FIRST.replace(b"20210105T07", b"20210105T09"))
        self.assertIn(b"20210105T090000Z", self.ask())

    def passMaxAge(self):
        """Move the memory's clock past the age of every answer held."""
        held = self.answers._held
        for key, entry in list(held.items()):
            held[key] = entry[:2] + (0.0,) + entry[3:]

    def settled(self):
        """The files' last changes seen as long ago (as a state is told only then)."""
        from fbtwist.store import tree

        self.patch(tree, "_nowNs", lambda: time.time_ns() + 2 * tree.UNSETTLED_NS)

    def test_heldAgainUnchanged(self):
        """
        Past the longest an answer is held unlooked at, the owner's files
        unchanged: the answer is given from memory again, after one look
        at them.
        """
        self.settled()
        first = self.ask()
        self.ask()
        hits = self.answers.hits
        self.assertEqual(self.ask(), first)
        self.assertEqual(self.answers.hits, hits + 1)
        self.passMaxAge()
        self.assertEqual(self.ask(), first)
        self.assertEqual((self.answers.hits, self.answers.renewed), (hits + 2, 1))

    def test_keptAnswerNoChange(self):
        """
        The answer kept with the file as it was rendered (an extended
        attribute set: the watch tells an attribute changed) leaves the
        answer in memory: the next lookup is given from it, and so after
        its age (the files' new state taken), as after another worker
        keeps one.
        """
        self.settled()
        misses = self.answers.misses
        first = self.ask()
        self.assertTrue(os.getxattr(self.path, "user.fbtwist.kept"))
        self.assertEqual((self.answers.misses, self.answers.hits), (misses + 1, 0))
        self.assertEqual(self.ask(), first)
        self.assertEqual((self.answers.misses, self.answers.hits), (misses + 1, 1))
        self.passMaxAge()
        self.assertEqual(self.ask(), first)
        self.assertEqual((self.answers.misses, self.answers.renewed), (misses + 1, 1))
        os.setxattr(self.path, "user.fbtwist.kept", os.getxattr(self.path, "user.fbtwist.kept"))
        self.assertEqual(self.ask(), first)
        self.assertEqual(self.answers.misses, misses + 1)

    def test_newTimeIsAChange(self):
        """A new modification time (an attribute change too) is a change: the answer is made anew."""
        self.settled()
        first = self.ask()
        self.assertEqual(self.ask(), first)
        misses = self.answers.misses
        st = os.stat(self.path)
        os.utime(self.path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        again = self.ask()
        self.assertEqual(self.answers.misses, misses + 1)
        self.assertNotEqual(again, first)  # its Last-Modified

    def test_changedThroughAnotherName(self):
        """
        A file changed through a hard link made in another folder (no
        change the watch of the tree's top sees) is answered anew once the
        answer is past its age: its state changed.
        """
        self.settled()
        first = self.ask()
        self.ask()
        self.assertEqual(self.ask(), first)
        held = self.answers.hits
        other = self.mktemp()
        os.link(self.path, other)
        self.addCleanup(os.unlink, other)
        # Written in place through the other name, the same size.
        with open(other, "r+b") as f:
            f.write(FIRST.replace(b"20210105T07", b"20210105T09"))
        self.answers._changes.drain()
        self.assertIn("alice", self.answers._held)
        self.passMaxAge()
        self.assertIn(b"20210105T090000Z", self.ask())
        self.assertEqual((self.answers.hits, self.answers.renewed), (held, 0))

    def recordStates(self):
        """The names whose state the store is asked for, in a list."""
        asked = []
        store = self.server.store
        filesState = store.filesState
        self.patch(store, "filesState", lambda *names: (asked.append(names), filesState(*names))[1])
        return asked

    def test_missingFileNotLookedAgain(self):
        """
        Past its age, only the owner's files that were there are looked at
        again: a missing one can come only by a name the watch sees.
        """
        self.settled()
        asked = self.recordStates()
        first = self.ask()
        self.ask()
        self.assertEqual(asked[-1], ("alice.vfb", "alice.ics"))
        del asked[:]
        self.passMaxAge()
        self.assertEqual(self.ask(), first)
        self.assertEqual((asked, self.answers.renewed), ([("alice.vfb",)], 1))

    def test_presentFilesLookedAgain(self):
        """
        Given a state in which both files were there, both are looked at
        again; without one, both.
        """
        asked = self.recordStates()
        visibility = self.server.service.portal.realm.visibility
        visibility._filesState("alice", (("inode",), ("inode",)))
        visibility._filesState("alice")
        visibility._filesState("alice", ((), ()))
        self.assertEqual(asked, [("alice.vfb", "alice.ics")] * 2 + [("alice.vfb",)])

    def test_notHeldAgainJustChanged(self):
        """
        Files changed within the last second (whose times a change in the
        same tick of the kernel's clock would not move) are not vouched
        for: past its age, the answer is made anew.
        """
        first = self.ask()
        self.ask()
        self.assertEqual(self.ask(), first)
        hits = self.answers.hits
        self.passMaxAge()
        self.assertEqual(self.ask(), first)
        self.assertEqual((self.answers.hits, self.answers.renewed), (hits, 0))

    def test_newNameIndex(self):
        """
        A new name index (the directory read again) giving a name another
        uid: the next lookup of that name answers with the other's file.
        """
        from fbtwist.directory.nameindex import NameIndexBuilder

        self.server.store.write(("bsmith.vfb",), SECOND)
        directory = self.server.service.portal.realm.visibility.directory
        builder = NameIndexBuilder()
        builder.add("alice", ["alice@example.com"])
        builder.add("bsmith", ["bsmith@example.com"])
        directory.nameIndex = builder.build()
        self.assertIn(b"20210105T070000Z", self.ask("alice@example.com"))
        self.assertIn(b"20210105T070000Z", self.ask("alice@example.com"))
        builder = NameIndexBuilder()
        builder.add("bsmith", ["alice@example.com"])
        directory.nameIndex = builder.build()
        self.assertIn(b"20210106T080000Z", self.ask("alice@example.com"))

    def test_nameNotIndexedLearnt(self):
        """
        A name the name index does not have: resolved as before at each
        lookup past the index (a directory search may learn it since).
        """
        from fbtwist.directory.nameindex import NameIndexBuilder

        realm = self.server.service.portal.realm
        builder = NameIndexBuilder()
        builder.add("bsmith", ["bsmith@example.com"])
        realm.visibility.directory.nameIndex = builder.build()
        self.assertIn(b" 404 ", self.ask("newcomer").partition(b"\r\n")[0])
        self.assertIs(realm.visibility.answers.uidOf("newcomer", realm.visibility.directory.nameIndex),
                      answers.NOT_INDEXED)
        # The directory (searched since) says the name is alice's.
        realm.visibility.names.put("newcomer", "alice")
        self.assertIn(b"20210105T070000Z", self.ask("newcomer"))

    def test_onlyAnonymous(self):
        """A reader who logged in is never answered from memory (what they may see is theirs)."""
        self.ask()
        hits = self.answers.hits
        from base64 import b64encode

        login = b"Authorization: Basic " + b64encode(b"bsmith:bsmith") + b"\r\n"
        answer = self.ask(request=QUICK.replace(b"\r\n\r\n", b"\r\n" + login + b"\r\n"))
        self.assertIn(b" 200 OK\r\n", answer)
        self.assertEqual(self.answers.hits, hits)

    def test_switchedOff(self):
        """--answer-memory 0: nothing remembered, answers the same."""
        other = startMemoryServer(self, "--root", self.root, "--answer-memory", "0")
        self.assertIsNone(other.service.portal.realm.visibility.answers)

    def test_sharedFilesystem(self):
        """A tree on a filesystem other machines write to: nothing held, changes seen all the same."""
        self.patch(changes, "filesystemType", lambda path: "fuse.glusterfs")
        other = startMemoryServer(self, "--root", self.root)
        self.server = other
        self.ask()
        self.ask()
        self.assertEqual((self.answers.hits, self.answers.held), (0, 0))
        self.replaceBehind(SECOND)
        self.assertIn(b"20210106T080000Z", self.ask())

    def test_otherThreads(self):
        """Asked outside the reactor's thread (no such caller today), nothing is given from memory."""
        self.ask()
        found = []
        thread = threading.Thread(target=lambda: found.append(self.answers.get("alice")))
        thread.start()
        thread.join()
        self.assertEqual(found, [(None, None)])
