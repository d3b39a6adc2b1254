"""
L{fbtwist.directory.indexchild}: the name index built by a child process
(C{python -m fbtwist.worker --build-name-index}) from a real slapd, mapped
by the process that started it; the kept file of an earlier run mapped at
start (its checks: L{tests.unit.test_indexchild}); deletions and renames
seen by the next build; a failing, slow, cancelled or orphaned child.
"""

import os
import subprocess
import sys
import time

from twisted.application import service
from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

import tests.helpers  # noqa: F401 (ldaptor's import-time warnings)
from fbtwist.directory.indexchild import ChildIndexBuild
from fbtwist.directory.mappedindex import MappedNameIndex
from fbtwist.directory.nameindex import NameIndexRefresher
from fbtwist.errors import DirectoryUnavailable
from fbtwist.tap import Options, buildDirectory, buildNameIndexChild, nameIndexFile
from tests.integration.test_nameindex import LimitedSlapd
from tests.names import LDIF, NAMES, PEOPLE


def _sleep(seconds: float) -> defer.Deferred:
    d = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie not yet reaped counts as gone.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ", 1)[1].startswith("Z")


class ChildIndexBuildTests(TestCase):
    """
    The name index built in a child process against slapd.
    """

    def setUp(self):
        self.slapd = LimitedSlapd(self.mktemp(), LDIF, sizeLimit=3)
        self.slapd.start()
        self.addCleanup(self.slapd.stop)
        self.folder = os.path.abspath(self.mktemp())
        self.options = self.optionsFor(self.slapd.port)
        self.directory = buildDirectory(self.options.config, reactor, service.MultiService())
        self.addCleanup(self.directory.close)
        self.path = nameIndexFile(self.options.config, self.directory)

    def optionsFor(self, port: int) -> Options:
        options = Options()
        options.parseOptions(["--root", os.path.abspath(self.mktemp()), "--ftp", "none", "--http", "tcp:0",
                              "--ldap", f"ldap://127.0.0.1:{port}/{PEOPLE}?uid?one", "--ldap-timeout", "3",
                              "--name-index-dir", self.folder])
        return options

    def build(self, options=None) -> ChildIndexBuild:
        build = buildNameIndexChild(options or self.options, self.directory, self.path, reactor)
        self.addCleanup(build.stop)
        return build

    async def test_build(self):
        """
        The child writes the file and exits; this process maps it as the
        directory's index, whose answers are the directory search's, and
        logins bind without a search.
        """
        build = self.build()
        index = await build.loadNameIndex()
        self.assertIsInstance(index, MappedNameIndex)
        self.assertIs(self.directory.nameIndex, index)
        self.assertIsNone(build.childPID)
        for name in NAMES:
            found, uid = index.get(name)
            expected = await self.directory.resolveName(name)
            self.assertEqual(uid if found else None, expected, name)
        self.assertEqual(index.login("alice"), ("alice", f"uid=alice,{PEOPLE}"))
        self.assertEqual(await self.directory.authenticate("alice", "alice-pw"), "alice")

    async def test_deletedAndRenamed(self):
        """
        A user deleted or renamed in the directory stops resolving by the
        index once the next build ends.
        """
        build = self.build()
        await build.loadNameIndex()
        self.assertEqual(self.directory.nameIndex.get("alice"), (True, "alice"))
        self.assertEqual(self.directory.nameIndex.get("robert"), (True, "robert"))
        self.slapd.modify(f"dn: uid=alice,{PEOPLE}\nchangetype: delete\n\n"
                          f"dn: uid=robert,{PEOPLE}\nchangetype: modrdn\nnewrdn: uid=roberta\ndeleteoldrdn: 1\n")
        await build.loadNameIndex()
        index = self.directory.nameIndex
        self.assertEqual(index.get("alice"), (False, None))
        self.assertEqual(index.login("alice"), None)
        self.assertEqual(index.get("roberta"), (True, "roberta"))
        self.assertEqual(index.login("roberta"), ("roberta", f"uid=roberta,{PEOPLE}"))
        self.assertEqual(index.get("robert"), (True, "bob"))

    async def test_refreshBound(self):
        """
        Driven by the refresher, a deleted user stops resolving within the
        refresh interval plus one build.
        """
        build = self.build()
        refresher = NameIndexRefresher(build, 1.0, reactor)
        refresher.start()
        self.addCleanup(refresher.stop)
        while self.directory.nameIndex is None:
            await _sleep(0.1)
        self.assertEqual(self.directory.nameIndex.get("alice"), (True, "alice"))
        self.slapd.modify(f"dn: uid=alice,{PEOPLE}\nchangetype: delete\n")
        deleted = time.monotonic()
        while self.directory.nameIndex.get("alice") != (False, None):
            self.assertLess(time.monotonic() - deleted, 1.0 + 20.0, "alice still resolves")
            await _sleep(0.1)

    async def test_kept(self):
        """
        The file of an earlier run is mapped at once when the next one
        starts, before any build.
        """
        await self.build().loadNameIndex()
        self.directory.nameIndex = None
        self.build()
        self.assertIsInstance(self.directory.nameIndex, MappedNameIndex)
        self.assertEqual(self.directory.nameIndex.get("alice"), (True, "alice"))

    async def test_failed(self):
        """
        A child that cannot reach the directory fails the build with one
        sentence saying why; the index stays as it was.
        """
        self.slapd.stop()
        build = self.build()
        with self.assertRaises(DirectoryUnavailable) as caught:
            await build.loadNameIndex()
        message = str(caught.exception)
        self.assertNotIn("\n", message)
        self.assertIn("127.0.0.1", message)
        self.assertNotIn("Traceback", message)
        self.assertIsNone(self.directory.nameIndex)
        self.assertGreater(build.retryDelay(), 0)

    async def test_pagingRefused(self):
        """
        A directory whose size limit also caps paged searches fails the
        build with the sentence saying how to allow it; no index is used.
        """
        self.slapd.stop()
        self.slapd = LimitedSlapd(self.mktemp(), LDIF, sizeLimit=3, paging=False)
        self.slapd.start()
        self.addCleanup(self.slapd.stop)
        options = self.optionsFor(self.slapd.port)
        build = self.build(options)
        with self.assertRaises(DirectoryUnavailable) as caught:
            await build.loadNameIndex()
        self.assertIn("size.prtotal", str(caught.exception))
        self.assertIsNone(self.directory.nameIndex)

    async def test_slowerThanTimeout(self):
        """
        The child's directory calls may take longer than C{--ldap-timeout}
        (a page of its search is up to 200,000 entries): a directory
        that answers after more than that still gives the index.
        """
        options = Options()
        options.parseOptions(["--root", os.path.abspath(self.mktemp()), "--ftp", "none", "--http", "tcp:0",
                              "--ldap", f"ldap://127.0.0.1:{self.slapd.port}/{PEOPLE}?uid?one",
                              "--ldap-timeout", "0.4", "--name-index-dir", self.folder])
        self.slapd.pause()
        resumed = []
        self.addCleanup(lambda: resumed or self.slapd.resume())
        build = self.build(options)
        d = build.loadNameIndex()
        await _sleep(3.0)
        self.slapd.resume()
        resumed.append(True)
        index = await d
        self.assertEqual(index.login("alice"), ("alice", f"uid=alice,{PEOPLE}"))

    async def test_timeout(self):
        """
        A child that takes longer than its time is killed, and the build
        fails saying so.
        """
        self.slapd.pause()
        self.addCleanup(self.slapd.resume)
        build = self.build()
        build.timeout = 2.0
        d = build.loadNameIndex()
        pid = build.childPID
        with self.assertRaises(DirectoryUnavailable) as caught:
            await d
        self.assertIn("took longer than 2s", str(caught.exception))
        self.assertTrue(_gone(pid))

    async def test_cancelled(self):
        """
        Cancelling a build (fbtwist stopping) kills the child.
        """
        self.slapd.pause()
        self.addCleanup(self.slapd.resume)
        build = self.build()
        d = build.loadNameIndex()
        pid = build.childPID
        ended = defer.Deferred()
        reactor.callLater(0.5, ended.callback, None)
        await ended
        d.cancel()
        with self.assertRaises(defer.CancelledError):
            await d
        for _ in range(50):
            if build.childPID is None:
                break
            wait = defer.Deferred()
            reactor.callLater(0.1, wait.callback, None)
            await wait
        self.assertIsNone(build.childPID)
        self.assertTrue(_gone(pid))

    def test_orphaned(self):
        """
        A child whose parent is gone (its standard input closed) stops at
        once, even while the directory does not answer.
        """
        self.slapd.pause()
        self.addCleanup(self.slapd.resume)
        argv = self.build().argv
        child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: child.poll() is None and child.kill())
        time.sleep(2.0)
        self.assertIsNone(child.poll())
        child.stdin.close()
        self.assertEqual(child.wait(timeout=10), -9)
        self.assertEqual(argv[:4], [sys.executable, "-m", "fbtwist.worker", "--build-name-index"])


class LeftoverTests(TestCase):
    """
    What a child that did not finish leaves in the index directory.
    """

    async def test_temporaryFileRemoved(self):
        """
        The temporary file of a child that ended without writing the index
        (killed while writing) is removed; another writer's is not.
        """
        folder = os.path.abspath(self.mktemp())
        os.mkdir(folder, 0o700)
        other = os.path.join(folder, ".names-1-other")
        open(other, "w").close()
        script = ("import os, sys; open(os.path.join(sys.argv[1], f'.names-{os.getpid()}-abc'), 'w').close(); "
                  "sys.exit(1)")
        build = ChildIndexBuild(_Directory(), reactor, os.path.join(folder, "names.idx"),
                                [sys.executable, "-c", script, folder])
        with self.assertRaises(DirectoryUnavailable):
            await build.loadNameIndex()
        self.assertEqual(os.listdir(folder), [".names-1-other"])


class _Directory:
    nameIndex = None
    server = "ldap://127.0.0.1:389"
