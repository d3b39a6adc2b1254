"""
A folder's version (L{fbtwist.store.watch}), and values read from a hidden
folder of the tree, remembered while the folder is unchanged
(L{fbtwist.access.folderwatch}), as users' calendar feeds use
them (L{fbtwist.access.feeds.FeedStore.hasBusyTime}, asked for every
lookup); users' visibility choices are tested in L{tests.unit.test_whosees}.
"""

import os
from datetime import datetime, timezone

from twisted.internet.task import Clock
from twisted.python.filepath import FilePath
from twisted.trial import unittest

from fbtwist.access.feeds import Feed, FeedStore
from fbtwist.access.folderwatch import FolderMemo
from fbtwist.calendar.busytime import Derivation
from fbtwist.calendar.freebusy import Period
from fbtwist.store.tree import CalendarStore
from fbtwist.store.watch import MISSING, FolderWatch, ReactorTurns

#: A wall clock long after any folder of a test was changed.
LATER = 4_000_000_000.0


def utc(hour: int) -> datetime:
    return datetime(2021, 1, 5, hour, tzinfo=timezone.utc)


def changing(path: str, change) -> None:
    """
    Run C{change()} of the folder C{path}; when it left the folder's time
    as it was (within one tick of the filesystem's clock: tests are fast),
    move that time on by 10 ms, as a later tick would have.
    """
    before = os.stat(path).st_mtime_ns if os.path.exists(path) else None
    change()
    stamp = os.stat(path)
    if stamp.st_mtime_ns == before:
        os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 10_000_000))


class FolderWatchTests(unittest.SynchronousTestCase):
    """
    A folder's version changes with its entries, and is not trusted while
    the folder has just changed.
    """

    def setUp(self):
        self.path = self.mktemp()
        self.now = LATER
        self.watch = FolderWatch(self.path, clock=lambda: self.now)

    def test_versions(self):
        """A missing folder has a version; adding, replacing and removing an entry each give a new one."""
        self.assertEqual(self.watch.version(), MISSING)
        os.mkdir(self.path)
        seen = [self.watch.version()]
        entry = os.path.join(self.path, "a.json")
        for change in (lambda: FilePath(entry).setContent(b"1"), lambda: FilePath(entry).setContent(b"2"),
                       lambda: os.remove(entry)):
            changing(self.path, change)
            seen.append(self.watch.version())
        self.assertEqual(len(set(seen)), 4)
        self.assertEqual(self.watch.version(), seen[-1])

    def test_recentNotTrusted(self):
        """A folder changed less than the margin ago has no version, and is not asked again before then."""
        os.mkdir(self.path)
        mtime = os.stat(self.path).st_mtime
        self.now = mtime + 1
        self.assertIsNone(self.watch.version())
        os.rmdir(self.path)
        self.assertIsNone(self.watch.version())  # not asked: still recent
        self.now = mtime + 2.5
        self.assertEqual(self.watch.version(), MISSING)


def countStats(testCase) -> list:
    """
    The paths of the C{os.stat} calls of C{testCase} from now on.
    """
    calls, original = [], os.stat

    def counting(path, *args, **kwargs):
        calls.append(path)
        return original(path, *args, **kwargs)

    testCase.patch(os, "stat", counting)
    return calls


class TurnsTests(unittest.SynchronousTestCase):
    """
    With the reactor's turns, a folder is looked at once per turn: a
    change is seen from the next turn on; outside the reactor's thread,
    at every question.
    """

    def setUp(self):
        self.path = self.mktemp()
        os.mkdir(self.path)
        self.clock = Clock()
        self.inReactorThread = True
        self.turns = ReactorTurns(self.clock, lambda: self.inReactorThread)
        self.watch = FolderWatch(self.path, clock=lambda: LATER, turns=self.turns)

    def test_oncePerTurn(self):
        """Three questions of a turn: one stat, one call scheduled to end the turn; the next turn looks again."""
        stats = countStats(self)
        first = [self.watch.version() for _ in range(3)]
        self.assertEqual(stats, [self.path])
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.assertEqual(len(set(first)), 1)
        changing(self.path, lambda: FilePath(self.path).child("a.json").setContent(b"1"))
        del stats[:]  # changing's own
        self.assertEqual(self.watch.version(), first[0])  # this turn: as it was
        self.assertEqual(stats, [])
        self.clock.advance(0)
        self.assertNotEqual(self.watch.version(), first[0])
        self.assertEqual(stats, [self.path])

    def test_lookAgain(self):
        """After lookAgain (this process changed the folder) the folder is looked at within the same turn."""
        before = self.watch.version()
        changing(self.path, lambda: FilePath(self.path).child("a.json").setContent(b"1"))
        self.watch.lookAgain()
        self.assertNotEqual(self.watch.version(), before)

    def test_otherThreads(self):
        """Outside the reactor's thread every question looks at the folder, and no call is scheduled."""
        self.inReactorThread = False
        stats = countStats(self)
        for _ in range(3):
            self.watch.version()
        self.assertEqual(stats, [self.path] * 3)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class FolderMemoTests(unittest.SynchronousTestCase):
    """
    A value is computed once while the folder is unchanged, afresh after a
    change, and every time while the folder has just changed.
    """

    def test_computedOncePerVersion(self):
        """Unchanged folder: computed once; a change in it: computed again; forget: computed again."""
        path = self.mktemp()
        os.mkdir(path)
        now = [LATER]
        computed = []
        memo = FolderMemo(lambda: path, lambda key: computed.append(key) or len(computed), clock=lambda: now[0])
        self.assertEqual([memo.get("a"), memo.get("a"), memo.get("b")], [1, 1, 2])
        memo.forget("a")
        self.assertEqual(memo.get("a"), 3)
        FilePath(path).child("a.json").setContent(b"{}")
        self.assertEqual([memo.get("a"), memo.get("b"), memo.get("b")], [4, 5, 5])
        now[0] = os.stat(path).st_mtime + 0.5
        FilePath(path).child("b.json").setContent(b"{}")
        self.assertEqual([memo.get("b"), memo.get("b")], [6, 7])


class FolderMemoNamesTests(unittest.SynchronousTestCase):
    """
    With the name of each key's file, a key whose file is not in the
    folder gets the value of no file without any look at a file, however
    many keys there are: the folder's names are listed once per version.
    """

    def setUp(self):
        self.path = self.mktemp()
        self.now = [LATER]
        self.computed = []

    def memo(self, **kwargs) -> FolderMemo:
        return FolderMemo(lambda: self.path, lambda key: self.computed.append(key) or "chosen",
                          size=1, clock=lambda: self.now[0], fileOf=lambda key: key + ".json",
                          absent="nothing", **kwargs)

    def test_missingFolder(self):
        """No folder: every key has no file, nothing is computed."""
        memo = self.memo()
        self.assertEqual([memo.get(k) for k in ("a", "b", "c", "a")], ["nothing"] * 4)
        self.assertEqual(self.computed, [])

    def test_onlyKeysWithFiles(self):
        """Only keys whose file is there are computed (once each while the folder is unchanged)."""
        os.mkdir(self.path)
        FilePath(self.path).child("b.json").setContent(b"{}")
        memo = self.memo()
        self.assertEqual([memo.get(k) for k in ("a", "b", "c", "b")], ["nothing", "chosen", "nothing", "chosen"])
        self.assertEqual(self.computed, ["b"])
        # A file added since: the folder's next version lists it.
        changing(self.path, lambda: FilePath(self.path).child("a.json").setContent(b"{}"))
        self.assertEqual(memo.get("a"), "chosen")
        self.assertEqual(self.computed, ["b", "a"])

    def test_listedOncePerVersion(self):
        """The folder is listed once while it is unchanged, whatever the number of questions."""
        os.mkdir(self.path)
        memo = self.memo()
        listed, original = [], os.scandir

        def counting(path):
            listed.append(path)
            return original(path)

        self.patch(os, "scandir", counting)
        for key in ("a", "b", "c", "d"):
            self.assertEqual(memo.get(key), "nothing")
        self.assertEqual(listed, [self.path])

    def test_tooManyNames(self):
        """A folder of more names than are listed: every key is computed, as without names."""
        os.mkdir(self.path)
        for name in ("a", "b", "c"):
            FilePath(self.path).child(name + ".json").setContent(b"{}")
        memo = self.memo(maxListed=2)
        self.assertEqual([memo.get(k) for k in ("x", "a")], ["chosen", "chosen"])
        self.assertEqual(self.computed, ["x", "a"])

    def test_recentlyChanged(self):
        """While the folder has just changed, every key is computed, with or without a file."""
        os.mkdir(self.path)
        self.now[0] = os.stat(self.path).st_mtime + 0.5
        memo = self.memo()
        self.assertEqual([memo.get(k) for k in ("a", "a")], ["chosen", "chosen"])
        self.assertEqual(self.computed, ["a", "a"])


class FeedsTests(unittest.SynchronousTestCase):
    """
    Whether a user's feeds give busy time costs one stat of the feeds'
    folder while it is unchanged, and a feed saved by another server
    sharing the tree is seen.
    """

    def setUp(self):
        self.store = CalendarStore(FilePath(self.mktemp()))
        self.now = LATER
        self.first = FeedStore(self.store, clock=lambda: self.now)
        self.second = FeedStore(self.store, clock=lambda: self.now)

    def feed(self, busy: bool) -> Feed:
        derivation = Derivation("e1", utc(0), utc(0), utc(23), [Period(utc(7), utc(8))]) if busy else None
        return Feed("f1", "https://calendar.example.com/alice.ics", ok=busy, busy=derivation)

    def test_otherServersFeedSeen(self):
        """A feed with busy time saved by another server counts at this server's next lookup, and its removal too."""
        folder = self.store.metadataDirectory("feeds", create=False).path
        self.assertFalse(self.first.hasBusyTime("alice"))
        changing(folder, lambda: self.second.save("alice", [self.feed(busy=False)]))
        self.assertFalse(self.first.hasBusyTime("alice"))
        changing(folder, lambda: self.second.save("alice", [self.feed(busy=True)]))
        self.assertTrue(self.first.hasBusyTime("alice"))
        changing(folder, lambda: self.second.remove("alice", "f1"))
        self.assertFalse(self.first.hasBusyTime("alice"))

    def test_ownSaveSeenWithinTheTurn(self):
        """
        With the reactor's turns: this server's own save counts at once,
        even within the turn that found no folder; another server's from
        the next turn on.
        """
        clock = Clock()
        turns = ReactorTurns(clock, lambda: True)
        first = FeedStore(self.store, clock=lambda: self.now, turns=turns)
        self.assertFalse(first.hasBusyTime("alice"))
        first.save("alice", [self.feed(busy=True)])
        self.assertTrue(first.hasBusyTime("alice"))
        folder = self.store.metadataDirectory("feeds", create=False).path
        changing(folder, lambda: self.second.save("bsmith", [self.feed(busy=True)]))
        self.assertFalse(first.hasBusyTime("bsmith"))
        clock.advance(0)
        self.assertTrue(first.hasBusyTime("bsmith"))

    def test_oneStatOfTheFolder(self):
        """For people without feeds, each question costs one stat of the folder, none of their file."""
        self.second.save("bsmith", [self.feed(busy=True)])
        self.assertFalse(self.first.hasBusyTime("alice"))
        folder = self.store.metadataDirectory("feeds", create=False).path
        calls = countStats(self)
        for _ in range(3):
            self.assertFalse(self.first.hasBusyTime("alice"))
            self.assertTrue(self.first.hasBusyTime("bsmith"))
        self.assertEqual(calls, [folder] * 6)
