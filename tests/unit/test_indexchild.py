"""
L{fbtwist.directory.indexchild.ChildIndexBuild.mapKept}: the index file an
earlier run kept, mapped at once at start when fresh and sound; the builds
by a child process against slapd are in
L{tests.integration.test_indexchild}.
"""

import os
import time

from twisted.internet.task import Clock
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

import tests.helpers  # noqa: F401 (ldaptor's import-time warnings)
from fbtwist.directory.indexchild import ChildIndexBuild
from fbtwist.directory.mappedindex import MappedNameIndex, privateDirectory, writeIndexFile
from fbtwist.directory.nameindex import indexOf
from tests.unit.test_mappedindex import RECORDS


class _Directory:
    nameIndex = None


class MapKeptTests(SynchronousTestCase):
    """
    The kept file is used when younger than the refresh interval and sound.
    """

    def setUp(self):
        self.path = os.path.join(privateDirectory(self.mktemp()), "names.idx")
        self.directory = _Directory()
        self.build = ChildIndexBuild(self.directory, Clock(), self.path, ["unused"])
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def warnings(self) -> list:
        return [e for e in self.events if e.get("log_level") == LogLevel.warn]

    def test_fresh(self):
        """
        A kept file younger than the refresh interval becomes the index at
        once.
        """
        writeIndexFile(indexOf(RECORDS), self.path)
        index = self.build.mapKept(maxAge=600)
        self.assertIsInstance(index, MappedNameIndex)
        self.addCleanup(index.close)
        self.assertIs(self.directory.nameIndex, index)
        self.assertEqual(index.get("alice"), (True, "alice"))
        self.assertEqual(self.warnings(), [])

    def test_missing(self):
        """
        Without a kept file there is no index until the first build, and no
        warning.
        """
        self.assertIsNone(self.build.mapKept(maxAge=600))
        self.assertIsNone(self.directory.nameIndex)
        self.assertEqual(self.warnings(), [])

    def test_stale(self):
        """
        A kept file older than the refresh interval is not used: a user
        deleted since could resolve for longer than a running server allows.
        """
        writeIndexFile(indexOf(RECORDS), self.path)
        old = time.time() - 601
        os.utime(self.path, (old, old))
        self.assertIsNone(self.build.mapKept(maxAge=600))
        self.assertIsNone(self.directory.nameIndex)

    def test_damaged(self):
        """
        A damaged kept file is not used: one warning, and it is removed for
        the build to replace.
        """
        writeIndexFile(indexOf(RECORDS), self.path)
        with open(self.path, "r+b") as f:
            f.truncate(os.path.getsize(self.path) - 3)
        self.assertIsNone(self.build.mapKept(maxAge=600))
        self.assertIsNone(self.directory.nameIndex)
        self.assertFalse(os.path.exists(self.path))
        self.assertEqual(len(self.warnings()), 1)
        self.assertIn("cannot be used", self.warnings()[0]["log_format"])


class BuildProcessExitTests(SynchronousTestCase):
    """
    The process that builds the index ends as soon as it has.
    """

    def test_exitsAtOnce(self):
        """
        Once built (or failed), the build's process leaves with the build's
        status through C{os._exit}, its output flushed first: no teardown
        of the interpreter delays the end its parent waits for.
        """
        from fbtwist import worker

        calls = []

        class _Output:
            def __init__(self, name):
                self.name = name

            def flush(self):
                calls.append(("flush", self.name))

        def build(argv):
            calls.append(("build", list(argv)))
            return 3

        self.patch(worker, "buildNameIndex", build)
        self.patch(worker.sys, "stdout", _Output("stdout"))
        self.patch(worker.sys, "stderr", _Output("stderr"))
        class _Exited(Exception):
            pass

        def exit(status):
            calls.append(("exit", status))
            raise _Exited()

        self.patch(worker.os, "_exit", exit)
        self.assertRaises(_Exited, worker.main, ["worker", "--build-name-index", "names.idx", "60"])
        self.assertEqual(calls, [("build", ["worker", "--build-name-index", "names.idx", "60"]),
                                 ("flush", "stdout"), ("flush", "stderr"), ("exit", 3)])
