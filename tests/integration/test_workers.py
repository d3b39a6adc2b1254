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
from tests.helpers import serviceOptions
from tests.integration.test_startup import runTwistd
from tests.processes import FbtwistProcess, basicAuthorization, childPIDs, pidAlive, request


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
