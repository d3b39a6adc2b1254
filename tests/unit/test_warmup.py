"""
The warm-up of the kernel's cache of the tree's names at start
(L{fbtwist.store.warmnames}, L{fbtwist.store.warmup}); the child itself
runs in tests/integration/test_warmup.py.
"""

import os
import sys

from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.interfaces import IReactorProcess
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from fbtwist.store.warmnames import namesToWarm, warm, warmSiblings
from fbtwist.store.warmup import NameWarmup, worthWarming


class NamesTests(SynchronousTestCase):
    """
    The names asked for: both names a lookup asks for, of every free/busy
    or calendar file at the top of the tree.
    """

    def setUp(self):
        self.root = self.mktemp()
        os.makedirs(os.path.join(self.root, ".davlocks"))
        os.makedirs(os.path.join(self.root, "folder.vfb"))
        for name in ("alice.vfb", "bob.ics", "carol.vfb", "carol.ics", ".hidden.vfb", "notes.txt", "README"):
            with open(os.path.join(self.root, name), "w") as f:
                f.write("x")

    def test_bothNamesOfEachOwner(self):
        """
        Each owner's two names, once each; hidden files and other files
        are left alone (a folder whose name ends in .vfb is asked for as a
        lookup would).
        """
        names = sorted(os.path.basename(p) for p in namesToWarm(self.root))
        self.assertEqual(names, ["alice.ics", "alice.vfb", "bob.ics", "bob.vfb", "carol.ics", "carol.vfb",
                                 "folder.ics", "folder.vfb"])
        self.assertTrue(all(os.path.dirname(p) == self.root for p in namesToWarm(self.root)))

    def test_warmCounts(self):
        """
        C{warm} looks each name up, missing or not, and says how many.
        """
        self.assertEqual(warm(self.root), 8)

    def test_missingRoot(self):
        """
        A tree that cannot be listed is an error of the child (which ends
        with a message), not a crash of the server.
        """
        self.assertRaises(OSError, warm, os.path.join(self.root, "nothing-here"))


class NewPublisherTests(SynchronousTestCase):
    """
    A file published for the first time has its other name asked for by
    the thread that published it.
    """

    def test_siblingsOfNewFile(self):
        """
        The first publish of a .vfb looks up its .ics (and of an .ics, its
        .vfb), from the store's commit; a publish replacing a file does not.
        """
        from twisted.python.filepath import FilePath

        from fbtwist.store.tree import CalendarStore

        root = FilePath(self.mktemp())
        store = CalendarStore(root)
        asked, original = [], os.lstat

        def counting(path, *args, **kwargs):
            asked.append(os.path.basename(path))
            return original(path, *args, **kwargs)

        self.patch(os, "lstat", counting)
        store.write(("alice.vfb",), b"one")
        self.assertIn("alice.ics", asked)
        del asked[:]
        store.write(("alice.vfb",), b"two")
        self.assertNotIn("alice.ics", asked)
        store.write(("bob.ics",), b"one")
        self.assertIn("bob.vfb", asked)

    def test_otherNames(self):
        """
        Names a lookup never asks for beside others are left alone.
        """
        asked = []
        self.patch(os, "lstat", lambda path: asked.append(path))
        for path in ("/t/.hidden.vfb", "/t/notes.txt", "/t/README"):
            warmSiblings(path)
        self.assertEqual(asked, [])
        warmSiblings("/t/carol.ics")
        self.assertEqual(asked, ["/t/carol.vfb"])


class _Process:
    def __init__(self):
        self.signals = []

    def signalProcess(self, name):
        self.signals.append(name)


@implementer(IReactorProcess)
class _ProcessReactor:
    def __init__(self):
        self.spawned = []

    def spawnProcess(self, processProtocol, executable, args=(), env=None, path=None, uid=None, gid=None,
                     usePTY=False, childFDs=None):
        process = _Process()
        self.spawned.append((processProtocol, executable, list(args), childFDs, process))
        return process


class ServiceTests(SynchronousTestCase):
    """
    L{NameWarmup} starts the child once, for a folder large enough, stops
    it with the server, and logs how it went.
    """

    def setUp(self):
        self.root = self.mktemp()
        os.makedirs(self.root)
        self.reactor = _ProcessReactor()
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def test_startsChild(self):
        """
        Started, it runs the child module on the tree with this Python; the
        child's output is read, its input closed.
        """
        service = NameWarmup(self.root, self.reactor, minimumFolderBytes=0)
        service.startService()
        [(_, executable, args, childFDs, _)] = self.reactor.spawned
        self.assertEqual(executable, sys.executable)
        self.assertEqual(args, [sys.executable, "-m", "fbtwist.store.warmnames", self.root])
        self.assertEqual(childFDs, {0: "w", 1: "r", 2: "r"})

    def test_smallFolderSkipped(self):
        """
        A top folder of a few names is not worth a process.
        """
        NameWarmup(self.root, self.reactor).startService()
        self.assertEqual(self.reactor.spawned, [])

    def test_worthWarming(self):
        """
        Whether the service warms a tree (and logs it), as a benchmark waiting
        for that line asks: a folder at least the size given, not a smaller
        or missing one.
        """
        size = os.stat(self.root).st_size
        self.assertTrue(worthWarming(self.root, size))
        self.assertFalse(worthWarming(self.root, size + 1))
        self.assertFalse(worthWarming(os.path.join(self.root, "missing"), 0))

    def test_noProcesses(self):
        """
        A reactor that cannot start processes (the tests' memory network)
        starts none.
        """
        from twisted.internet.task import Clock

        NameWarmup(self.root, Clock(), minimumFolderBytes=0).startService()

    def test_stoppedWithServer(self):
        """
        A child still running when the service stops is killed; its end is
        not reported as a failure then.
        """
        service = NameWarmup(self.root, self.reactor, minimumFolderBytes=0)
        service.startService()
        [(protocol, _, _, _, process)] = self.reactor.spawned
        service.stopService()
        self.assertEqual(process.signals, ["KILL"])
        protocol.processEnded(Failure(ProcessTerminated(signal=9)))
        self.assertEqual([e for e in self.events if e.get("log_level") and e["log_level"].name == "warn"], [])

    def test_reportsDone(self):
        """
        The child's count and time are logged when it ends well.
        """
        service = NameWarmup(self.root, self.reactor, minimumFolderBytes=0)
        service.startService()
        [(protocol, _, _, _, _)] = self.reactor.spawned
        protocol.outReceived(b"2000 1.25\n")
        protocol.processEnded(Failure(ProcessDone(0)))
        self.assertEqual(service.exitCode, 0)
        [event] = [e for e in self.events if "count" in e]
        self.assertEqual((event["count"], event["seconds"]), ("2000", "1.25"))

    def test_reportsFailure(self):
        """
        A child that failed is a warning saying why; nothing else changes.
        """
        service = NameWarmup(self.root, self.reactor, minimumFolderBytes=0)
        service.startService()
        [(protocol, _, _, _, _)] = self.reactor.spawned
        protocol.errReceived(b"cannot list /x: Permission denied\n")
        protocol.processEnded(Failure(ProcessTerminated(exitCode=1)))
        [event] = [e for e in self.events if "reason" in e]
        self.assertEqual(event["reason"], "cannot list /x: Permission denied")
