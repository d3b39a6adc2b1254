"""
Tests for L{fbtwist.ops.workers}: C{--workers N}, a master binding the HTTP
socket and worker processes adopting it.
"""

import os
import signal
import socket
import time

from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.internet.testing import MemoryReactor
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from fbtwist.ops.workers import WorkerMaster, workerArguments
from fbtwist.tap import Options, makeService
from tests.helpers import outlookVFB, serviceOptions
from tests.integration.test_startup import runTwistd
from tests.processes import FbtwistProcess, basicAuthorization, childPIDs, pidAlive, request

FIRST = outlookVFB(busy="20210105T070000Z/20210105T073000Z")
SECOND = outlookVFB(busy="20210106T080000Z/20210106T083000Z")


def waitUntil(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.05)


class WorkerOptionsTests(SynchronousTestCase):
    """
    The C{--workers} option and what the master passes to its workers.
    """

    def test_default(self):
        """
        Without C{--workers}, fbtwist serves in one process.
        """
        self.assertEqual(serviceOptions().config.workers, 0)

    def test_invalid(self):
        """
        A count that is not a small number is refused with a sentence.
        """
        for text in ("-1", "many", "65"):
            with self.assertRaises(usage.UsageError):
                serviceOptions("--workers", text)

    def test_tlsEndpointRefused(self):
        """
        Workers adopt plain TCP sockets: an ssl: endpoint is refused.
        """
        with self.assertRaises(usage.UsageError) as raised:
            serviceOptions("--workers", "2", "--http", "unix:fb.sock")
        self.assertIn("tcp", str(raised.exception))

    def test_workerArguments(self):
        """
        A worker gets the master's settings (repeatable ones once per value)
        and not C{--workers}.
        """
        options = serviceOptions(
            "--workers", "3", "--http", "tcp:8080", "--http", "tcp:8081", "--root", "/srv/fb",
            "--ldap", "ldap://127.0.0.1:389/dc=example,dc=com",
        )
        args = workerArguments(options)
        self.assertNotIn("--workers", args)
        self.assertEqual(args[:4], ["--http", "tcp:8080", "--http", "tcp:8081"])
        self.assertIn("/srv/fb", args)
        reparsed = Options()
        reparsed.parseOptions(args)
        self.assertEqual(reparsed.config.http, ("tcp:8080", "tcp:8081"))
        self.assertEqual(reparsed.config.workers, 0)

    def test_answerSlots(self):
        """
        The workers share room for as many answers as all their answer
        memories would hold of a page each; nothing without workers or
        answer memory.  A worker whose inherited memory cannot be mapped
        keeps answers of its own.
        """
        from fbtwist.tap import answerSlotsFor, sharedAnswerSlots

        self.assertEqual(answerSlotsFor(serviceOptions("--workers", "2").config), 2 * 512 * 2**20 // 4096)
        self.assertEqual(answerSlotsFor(serviceOptions().config), 0)
        self.assertEqual(answerSlotsFor(serviceOptions("--workers", "2", "--answer-memory", "0").config), 0)
        self.assertIsNone(sharedAnswerSlots(None))
        empty = os.memfd_create("empty")
        self.addCleanup(os.close, empty)
        self.assertIsNone(sharedAnswerSlots(empty))

    def test_masterOnly(self):
        """
        With C{--workers}, this process serves no HTTP itself: the master
        holds the sockets for the workers, and keeps FTP.
        """
        top = makeService(serviceOptions("--workers", "2", "--http", "tcp:0"), reactor=MemoryReactor())
        master = top.getServiceNamed("workers")
        self.assertIsInstance(master, WorkerMaster)
        self.assertEqual(master.count, 2)
        names = [s.name for s in top]
        self.assertIn("ftp", names)
        self.assertNotIn("http", names)


class WorkerProcessTests(SynchronousTestCase):
    """
    A real master with two real workers.
    """

    def setUp(self):
        root = os.path.abspath(self.mktemp())
        os.makedirs(root)
        self.server = FbtwistProcess(os.path.join(root, "tree"), extraArgs=["--workers", "2"]).start()
        self.addCleanup(self.server.stop)
        waitUntil(lambda: len(childPIDs(self.server.pid)) == 2, 20, "two workers starting")
        self.workers = childPIDs(self.server.pid)
        # Each worker must have adopted the socket before it is tested.
        waitUntil(lambda: all("fbtwist.worker" in open(f"/proc/{p}/cmdline").read() for p in self.workers),
                  10, "workers running")
        self.addCleanup(self._continueWorkers)

    def _continueWorkers(self):
        for pid in self.workers:
            if pidAlive(pid):
                os.kill(pid, signal.SIGCONT)

    def _answeredWhileOthersFrozen(self, pid: int) -> None:
        others = [p for p in self.workers if p != pid]
        for other in others:
            os.kill(other, signal.SIGSTOP)
        try:
            for _ in range(3):
                status, body = request(self.server.port, "GET", "/", timeout=10)
                self.assertEqual(status, 200)
                self.assertIn(b"fbtwist", body)
        finally:
            for other in others:
                os.kill(other, signal.SIGCONT)

    def test_bothWorkersAnswer(self):
        """
        Each worker serves the shared socket: with the other frozen, every
        request is still answered.
        """
        deadline = time.monotonic() + 20
        while True:
            # A worker may still be starting: wait until it serves alone.
            try:
                for pid in self.workers:
                    self._answeredWhileOthersFrozen(pid)
                break
            except (OSError, AssertionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def test_logFromInfoUp(self):
        """
        Workers log as the master does: from info up (a publish's directory
        calls are debug events, for the metrics only).
        """
        body = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VFREEBUSY\r\nEND:VFREEBUSY\r\nEND:VCALENDAR\r\n"
        status, _ = request(self.server.port, "PUT", "/pub/calendar/alice.vfb", body,
                            {"Authorization": basicAuthorization("alice", "wonderland")}, timeout=20)
        self.assertIn(status, (201, 204))
        waitUntil(lambda: "PUT /pub/calendar/alice.vfb" in open(self.server.logPath).read(), 10, "the access line")
        log = open(self.server.logPath).read()
        self.assertIn("published alice.vfb", log)
        self.assertNotIn("#debug]", log)

    def _onlyThrough(self, pid: int):
        """
        Freeze every worker but C{pid} (until the next call, or the test's
        end), so that the next connections are C{pid}'s.
        """
        for other in self.workers:
            os.kill(other, signal.SIGCONT if other == pid else signal.SIGSTOP)

    def test_answersShared(self):
        """
        The workers share their answers: a person asked of one worker after
        the other answered is given the other's answer (its metrics count
        it), and after a publish each worker gives the new file.
        """
        waitUntil(lambda: open(self.server.logPath).read().count("FreeBusySite starting on") >= 2, 30,
                  "both workers serving")
        first, second = self.workers
        alice = {"Authorization": basicAuthorization("alice", "wonderland")}
        status, _ = request(self.server.port, "PUT", "/pub/calendar/alice.vfb", FIRST, alice, timeout=20)
        self.assertIn(status, (201, 204))
        # Each worker's watch of the files opens at its first lookup: an
        # answer made before is not given there (changes before are
        # unknown to it).
        for pid in self.workers:
            self._onlyThrough(pid)
            request(self.server.port, "GET", "/calendar/bsmith.vfb", timeout=10)
        # An answer is shared when its files' state can be told: a second
        # after their last change (fbtwist.store.tree.UNSETTLED_NS).
        time.sleep(1.1)
        self._onlyThrough(first)
        status, made = request(self.server.port, "GET", "/calendar/alice.vfb", timeout=10)
        self.assertEqual((status, b"20210105T070000Z" in made), (200, True))
        time.sleep(0.2)
        # The next lookup shares what the first made (past the delay).
        self.assertEqual(request(self.server.port, "GET", "/calendar/alice.vfb", timeout=10), (200, made))
        self._onlyThrough(second)
        self.assertEqual(request(self.server.port, "GET", "/calendar/alice.vfb", timeout=10), (200, made))
        _, metrics = request(self.server.port, "GET", "/metrics", timeout=10)
        self.assertIn(b"fbtwist_answer_memory_shared_total 1.0", metrics)
        status, _ = request(self.server.port, "PUT", "/pub/calendar/alice.vfb", SECOND, alice, timeout=20)
        self.assertIn(status, (201, 204))
        for pid in (second, first):
            self._onlyThrough(pid)
            status, body = request(self.server.port, "GET", "/calendar/alice.vfb", timeout=10)
            self.assertEqual((status, b"20210106T080000Z" in body), (200, True))

    def test_killingTheMasterStopsTheWorkers(self):
        """
        kill -9 of the master closes the workers' pipe: they stop on their
        own, and the port is free again.
        """
        # Both serving first (on a loaded machine a worker took 13 s to
        # start; killed while starting, it stops only once it has started).
        waitUntil(lambda: open(self.server.logPath).read().count("FreeBusySite starting on") >= 2, 30,
                  "both workers serving")
        self.server.kill()
        waitUntil(lambda: not any(pidAlive(p) for p in self.workers), 15, "workers stopping")
        with self.assertRaises(OSError):
            request(self.server.port, "GET", "/", timeout=2)

    def test_deadWorkerReplaced(self):
        """
        A worker that dies is started again; the service keeps answering.
        """
        os.kill(self.workers[0], signal.SIGKILL)
        waitUntil(
            lambda: len(childPIDs(self.server.pid)) == 2 and self.workers[0] not in childPIDs(self.server.pid),
            15, "a new worker starting",
        )
        status, _ = request(self.server.port, "GET", "/", timeout=10)
        self.assertEqual(status, 200)


class WorkerPortInUseTests(SynchronousTestCase):
    """
    A master that cannot bind a --http endpoint ends as a single process
    does: one sentence, no traceback, no worker started.
    """

    def test_portInUse(self):
        """
        twistd freebusy --workers 2 on a port in use prints the sentence of
        the single-process listeners and exits non-zero, every port closed.
        """
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        free = socket.socket()
        free.bind(("127.0.0.1", 0))
        freePort = free.getsockname()[1]
        free.close()
        result = runTwistd(self, "--workers", "2", "--http", f"tcp:{freePort}:interface=127.0.0.1",
                           "--http", f"tcp:{port}:interface=127.0.0.1", "--ftp", "none",
                           "--root", os.path.abspath(self.mktemp()))
        self.assertNotEqual(result.returncode, 0)
        output = result.stdout + result.stderr
        self.assertNotIn("Traceback", output)
        self.assertNotIn("started worker", output)
        (line,) = [line for line in output.splitlines() if "cannot listen" in line]
        self.assertTrue(line.endswith(
            f"fbtwist cannot listen on --http tcp:{port}:interface=127.0.0.1: Address already in use; "
            "stop what uses that port or give --http another endpoint"), line)


class WorkerMasterBindTests(TestCase):
    """
    The master's own binding, with the real reactor and no workers.
    """

    async def _closesWhatItBound(self):
        from twisted.internet import reactor

        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        first = socket.socket()
        first.bind(("127.0.0.1", 0))
        firstPort = first.getsockname()[1]
        first.close()
        master = WorkerMaster(reactor, [f"tcp:{firstPort}:interface=127.0.0.1",
                                        f"tcp:{taken.getsockname()[1]}:interface=127.0.0.1"], 2, [])
        with self.assertRaises(SystemExit) as raised:
            master.privilegedStartService()
        self.assertIn("fbtwist cannot listen on --http tcp:", str(raised.exception))
        self.assertEqual((master.ports, master.workers), ([], {}))
        # A port stops listening on the reactor's next turn.
        await deferLater(reactor, 0.01, lambda: None)
        again = socket.socket()
        self.addCleanup(again.close)
        again.bind(("127.0.0.1", firstPort))

    def test_closesWhatItBound(self):
        """
        The endpoints bound before the one that failed are closed again.
        """
        return Deferred.fromCoroutine(self._closesWhatItBound())


class OneAcceptAtATimeTests(SynchronousTestCase):
    """
    A worker takes one waiting connection each time its socket is readable,
    so that a burst of connections spreads over the workers.
    """

    def test_oneAtATime(self):
        """
        Three connections waiting: each read of the port accepts one, and
        the limit stays one (Twisted's own port raises it).
        """
        import socket

        from twisted.internet import reactor
        from twisted.internet.protocol import Factory, Protocol

        from fbtwist.ops.workers import AdoptedPortService

        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(10)
        self.addCleanup(listener.close)
        built = []

        class Counting(Factory):
            def buildProtocol(self, addr):
                built.append(Protocol())
                return built[-1]

        service = AdoptedPortService(reactor, listener.fileno(), Counting())
        service.startService()
        self.addCleanup(service.stopService)
        self.addCleanup(lambda: [p.transport.abortConnection() for p in built])
        clients = [socket.create_connection(listener.getsockname()) for _ in range(3)]
        for client in clients:
            self.addCleanup(client.close)
        for expected in (1, 2, 3):
            service.port.doRead()
            self.assertEqual((len(built), service.port.numberAccepts), (expected, 1))


class SharedAnswersMemoryTests(SynchronousTestCase):
    """
    The memory of answers the master makes for its workers
    (L{fbtwist.access.sharedanswers}) and hands to each, on a reactor that
    records what it would spawn.
    """

    def spawn(self, answerSlots: int):
        spawned = []

        class Transport:
            pid = 4242

        class Reactor:
            def spawnProcess(self, protocol, executable, argv, env, path, childFDs):
                spawned.append((env, childFDs))
                return Transport()

        class Port:
            def fileno(self):
                return 17

        master = WorkerMaster(Reactor(), [], 2, ["--root", "/srv/fb"], answerSlots=answerSlots)
        master.ports = [Port()]
        master.startService()
        if master.answersFD is not None:
            self.addCleanup(os.close, master.answersFD)
        return master, spawned

    def test_eachWorkerInherits(self):
        """
        Each worker inherits the one memory, of the slots asked for, at the
        descriptor its environment names (after the listening sockets).
        """
        from fbtwist.access.sharedanswers import SLOT
        from fbtwist.ops.workers import SHARED_ANSWERS

        master, spawned = self.spawn(16)
        self.assertEqual(os.fstat(master.answersFD).st_size, 16 * SLOT)
        self.assertEqual(len(spawned), 2)
        for env, childFDs in spawned:
            self.assertEqual(env[SHARED_ANSWERS], "4")
            self.assertEqual(childFDs[3], 17)
            self.assertEqual(childFDs[4], master.answersFD)

    def test_none(self):
        """
        Without answer memory, no memory is made and the workers are told
        of none (not even one named in the master's own environment).
        """
        from fbtwist.ops.workers import SHARED_ANSWERS

        self.patch(os, "environ", dict(os.environ, **{SHARED_ANSWERS: "9"}))
        master, spawned = self.spawn(0)
        self.assertIsNone(master.answersFD)
        for env, childFDs in spawned:
            self.assertNotIn(SHARED_ANSWERS, env)
            self.assertEqual(sorted(childFDs), [0, 1, 2, 3])

    def test_cannotMake(self):
        """
        When the memory cannot be made, it is said once, and the workers
        start, each with answers of its own.
        """
        import errno

        from fbtwist.access import sharedanswers

        def refused(slots):
            raise OSError(errno.EMFILE, "Too many open files")

        self.patch(sharedanswers, "createMemory", refused)
        logged = []
        from twisted.logger import globalLogPublisher

        globalLogPublisher.addObserver(logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, logged.append)
        master, spawned = self.spawn(16)
        self.assertIsNone(master.answersFD)
        self.assertEqual(len(spawned), 2)
        warnings = [event for event in logged if "cannot share" in event.get("log_format", "")]
        self.assertEqual(len(warnings), 1)
        self.assertEqual(warnings[0]["error"], "Too many open files")
