"""
Tests for L{fbtwist.store.cachedlookup} and its use: the reactor thread
looks up only names the kernel has cached, and leaves the others (whose
lookup may wait for a directory a publish holds) to the store's threads.
"""

import ctypes
import errno
import os
import sys
from datetime import datetime, timezone

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.python.filepath import FilePath
from twisted.trial import unittest

from fbtwist.access.visibility import ANONYMOUS_VIEWER, Detail, FreeBusyVisibility, Person
from fbtwist.calendar.freebusy import TimeRange
from fbtwist.directory.nameindex import NameIndex
from fbtwist.store import cachedlookup, tree
from fbtwist.store.cachedlookup import NotCached, lookUp, lstatCached
from fbtwist.store.tree import CalendarStore
from tests.helpers import outlookVFB

_DAY = TimeRange(datetime(2026, 1, 6, tzinfo=timezone.utc), datetime(2026, 1, 7, tzinfo=timezone.utc))


class _RecordingRunner:
    """
    A store's C{runBlocking} that runs at once and remembers what it ran.
    """

    def __init__(self):
        self.calls = []

    def __call__(self, f, *args):
        self.calls.append((f, args))
        return defer.maybeDeferred(f, *args)


class LstatCachedTests(unittest.SynchronousTestCase):
    """
    L{lstatCached} answers from the kernel's cache or says it cannot.
    """

    def setUp(self):
        self.folder = self.mktemp()
        os.mkdir(self.folder)

    def test_available(self):
        """
        On Linux the kernel can tell a cached name from one that is not.
        """
        self.assertEqual(cachedlookup.available(), sys.platform.startswith("linux"))

    def test_notCachedYet(self):
        """
        A name never looked up raises NotCached naming it; once a thread
        looked it up, a missing name raises FileNotFoundError as lstat does.
        """
        path = os.path.join(self.folder, "alice.ics")
        e = self.assertRaises(NotCached, lstatCached, path)
        self.assertEqual(e.path, path)
        lookUp(path)
        self.assertRaises(FileNotFoundError, lstatCached, path)

    def test_cachedFile(self):
        """
        A cached name is answered with what os.lstat gives: a file, and a
        symbolic link itself rather than what it points to.
        """
        path = os.path.join(self.folder, "alice.vfb")
        with open(path, "wb") as f:
            f.write(b"busy")
        link = os.path.join(self.folder, "bob.vfb")
        os.symlink(path, link)
        for name in (path, link):
            lookUp(name)
            st = lstatCached(name)
            self.assertEqual((st.st_ino, st.st_mode, st.st_size), (os.lstat(name).st_ino, os.lstat(name).st_mode,
                                                                   os.lstat(name).st_size))

    def test_withoutOpenat2(self):
        """
        Where the kernel has no openat2, every name is looked up as os.lstat
        does (waiting if need be), and it is not asked again.
        """
        calls = []

        def refused(*args):
            calls.append(args)
            ctypes.set_errno(errno.ENOSYS)
            return -1

        self.patch(cachedlookup, "_syscall", refused)
        path = os.path.join(self.folder, "carol.ics")
        self.assertRaises(FileNotFoundError, lstatCached, path)
        self.assertRaises(FileNotFoundError, lstatCached, path)
        self.assertEqual(len(calls), 1)


class StoreNowTests(unittest.SynchronousTestCase):
    """
    The store's C{stat} and C{snapshot} with C{now} never wait for a lookup.
    """

    def setUp(self):
        self.runner = _RecordingRunner()
        self.store = CalendarStore(FilePath(self.mktemp()), runBlocking=self.runner)

    def test_statNow(self):
        """
        stat with now raises NotCached for a name not cached; lookUpInThread
        looks it up in a thread of the store; then stat with now answers.
        """
        e = self.assertRaises(NotCached, self.store.stat, ("alice.ics",), now=True)
        self.successResultOf(self.store.lookUpInThread(e))
        self.assertEqual(self.runner.calls, [(lookUp, (e.path,))])
        self.assertIsNone(self.store.stat(("alice.ics",), now=True))

    def test_snapshotNowOfAPublishedFile(self):
        """
        A file just published is cached: snapshot with now reads it.
        """
        self.store.write(("alice.vfb",), b"BEGIN:VCALENDAR\r\n")
        self.assertEqual(self.store.snapshot(("alice.vfb",), now=True).data, b"BEGIN:VCALENDAR\r\n")


class LookupOffTheReactorTests(unittest.SynchronousTestCase):
    """
    A lookup of someone whose names the kernel has not cached is answered
    with the names looked up in the store's threads, not in the reactor's.
    """

    def setUp(self):
        self.runner = _RecordingRunner()
        self.store = CalendarStore(FilePath(self.mktemp()), runBlocking=self.runner)
        self.store.write(("alice.vfb",), outlookVFB())
        self.clock = Clock()

        class Directory:
            nameIndex = NameIndex({"alice": "alice"}, 1)

        self.visibility = FreeBusyVisibility(self.store, Directory(), self.clock, groupBase="dc=example,dc=com")

    def ask(self):
        d = defer.Deferred.fromCoroutine(self.visibility.freeBusyFor(ANONYMOUS_VIEWER, Person("alice"), _DAY,
                                                                     Detail.BUSY))
        self.clock.advance(1)
        return self.successResultOf(d)

    def test_uncachedGoesToAThread(self):
        """
        freeBusyForNow leaves the lookup to freeBusyFor while alice.ics was
        never looked up; freeBusyFor has a thread look it up, and answers;
        then freeBusyForNow gives the same answer at once.
        """
        self.assertIsNone(self.visibility.freeBusyForNow(ANONYMOUS_VIEWER, Person("alice"), _DAY))
        answer = self.ask()
        self.assertEqual([os.path.basename(args[0]) for f, args in self.runner.calls if f is lookUp], ["alice.ics"])
        self.assertEqual(answer.owner, "alice")
        self.assertEqual(self.visibility.freeBusyForNow(ANONYMOUS_VIEWER, Person("alice"), _DAY), answer)

    def test_evictedEachTime(self):
        """
        When the name is never found cached, even after a thread looked it
        up, the lookup is done where it is needed after a few attempts: the
        answer comes all the same.
        """

        def neverCached(path):
            if path.endswith(".ics"):
                raise NotCached(path)
            return lstatCached(path)

        self.patch(tree, "lstatCached", neverCached)
        self.assertEqual(self.ask().owner, "alice")
        self.assertEqual(len([f for f, _ in self.runner.calls if f is lookUp]), 3)
