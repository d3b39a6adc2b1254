"""
Graceful shutdown: listeners close first, work in flight gets the grace
period, what is left is dropped cleanly, and SIGTERM to a real twistd during
a slow upload leaves the old file and no temporary file.
"""

import base64
import signal

from twisted.application.service import Service
from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.task import Clock, deferLater
from twisted.python.filepath import FilePath
from twisted.trial import unittest

from fbtwist.ops.shutdown import GracefulService
from tests.helpers import httpClient, inline, outlookVFB, startServer, treeNames
from tests.processes import startTwistd


class _Recorder(Service):
    def __init__(self, name, log):
        self.name = name
        self.log = log

    def stopService(self):
        super().stopService()
        self.log.append("stop " + self.name)


class GracefulServiceTests(unittest.SynchronousTestCase):
    """
    The top service stops listeners, then waits for the hooks within the
    grace period, then stops the late services.
    """

    def setUp(self):
        self.clock = Clock()
        self.log = []
        self.top = GracefulService(self.clock, grace=5)
        _Recorder("http", self.log).setServiceParent(self.top)
        late = _Recorder("ldap-demo", self.log)
        late.setServiceParent(self.top)
        self.top.stopLate(late)
        self.top.startService()

    def test_order(self):
        """
        Listeners stop before the hooks run; late services after they finish.
        """
        work = defer.Deferred()

        def hook():
            self.log.append("hook")
            return work

        self.top.onShutdown(hook)
        stopped = self.top.stopService()
        self.assertEqual(self.log, ["stop http", "hook"])
        self.assertNoResult(stopped)
        work.callback(None)
        self.assertEqual(self.log, ["stop http", "hook", "stop ldap-demo"])
        self.successResultOf(stopped)

    def test_graceOver(self):
        """
        A hook still busy when the grace period ends is cancelled, and the
        shutdown goes on.
        """
        cancelled = []
        self.top.onShutdown(lambda: defer.Deferred(cancelled.append))
        stopped = self.top.stopService()
        self.clock.advance(4.9)
        self.assertNoResult(stopped)
        self.clock.advance(0.2)
        self.assertEqual(len(cancelled), 1)
        self.successResultOf(stopped)
        self.assertEqual(self.log, ["stop http", "stop ldap-demo"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_failingHook(self):
        """
        A hook that fails is logged and does not stop the shutdown.
        """
        self.top.onShutdown(lambda: 1 / 0)
        self.successResultOf(self.top.stopService())
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertEqual(self.log, ["stop http", "stop ldap-demo"])


class _Slow(protocol.Protocol):
    """
    Sends what it is told, when it is told, and collects the answer.
    """

    def __init__(self):
        self.received = b""
        self.closed = defer.Deferred()

    def dataReceived(self, data):
        self.received += data

    def connectionLost(self, reason):
        self.closed.callback(self.received)


def _putHead(body: bytes, login="alice", password="wonderland") -> bytes:
    token = base64.b64encode(f"{login}:{password}".encode())
    return (
        b"PUT /pub/calendar/alice.vfb HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Authorization: Basic " + token + b"\r\nContent-Type: text/calendar\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )


async def _startSlowUpload(port: int, body: bytes) -> _Slow:
    """
    Begin a PUT and send only half of its body.
    """
    proto = await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), _Slow())
    proto.transport.write(_putHead(body) + body[: len(body) // 2])
    return proto


def _temporaries(root: FilePath):
    return [n for n in treeNames(root.path) if n.endswith(".tmp")]


class SiteDrainTests(unittest.TestCase):
    """
    The site's shutdown hook waits for requests in flight, and drops them
    when cancelled.
    """

    @inline
    async def test_waitsForUpload(self):
        """
        An upload under way when the drain starts finishes and is published.
        """
        server = await startServer(self)
        body = outlookVFB("alice@example.com")
        slow = await _startSlowUpload(server.port, body)
        site = server.service.site
        while not site.inFlight:
            await deferLater(reactor, 0.01)
        drained = site.drain()
        self.assertFalse(drained.called)
        slow.transport.write(body[len(body) // 2:])
        await drained
        answer = await slow.closed
        self.assertIn(b" 201 ", answer.split(b"\r\n")[0])
        self.assertEqual(server.store.read(("alice.vfb",)), body)

    @inline
    async def test_cancelDropsUpload(self):
        """
        Cancelling the drain aborts the upload: the old file stays, and no
        temporary file is left.
        """
        server = await startServer(self)
        old = outlookVFB("old@example.com")
        server.store.write(("alice.vfb",), old)
        slow = await _startSlowUpload(server.port, outlookVFB("new@example.com"))
        site = server.service.site
        while not site.inFlight:
            await deferLater(reactor, 0.01)
        drained = site.drain()
        drained.cancel()
        self.failureResultOf(drained, defer.CancelledError)
        await slow.closed
        self.assertEqual(server.store.read(("alice.vfb",)), old)
        self.assertEqual(_temporaries(server.store.root), [])
        self.assertEqual(site.inFlight, set())


async def _answered(testCase, server) -> None:
    """
    Wait until the server has answered a request sent after everything
    sent so far (so the slow upload's first half has been read).
    """
    response = await httpClient(testCase).get(server.url("/healthz"))
    await response.content()


class SIGTERMTests(unittest.TestCase):
    """
    SIGTERM to a real C{twistd -n freebusy}.
    """

    @inline
    async def test_slowUploadDropped(self):
        """
        An upload still arriving when the grace period ends is dropped: the
        process exits, the old file is intact and no temporary file is left.
        """
        root = FilePath(self.mktemp())
        root.makedirs()
        old = outlookVFB("old@example.com")
        root.child("alice.vfb").setContent(old)
        server = await startTwistd(self, "--shutdown-grace", "0.5", root=root.path)
        slow = await _startSlowUpload(server.port, outlookVFB("new@example.com"))
        await _answered(self, server)
        server.signal()
        self.assertIn(await server.exited(), (0, -signal.SIGTERM))
        await slow.closed
        self.assertEqual(root.child("alice.vfb").getContent(), old)
        self.assertEqual(_temporaries(root), [])
        self.assertIn("work still in flight after 0.5 seconds was dropped", server.log())

    @inline
    async def test_uploadFinishesWithinGrace(self):
        """
        An upload whose body arrives during the grace period is published and
        answered; new connections are refused meanwhile.
        """
        server = await startTwistd(self, "--shutdown-grace", "15")
        body = outlookVFB("new@example.com")
        slow = await _startSlowUpload(server.port, body)
        await _answered(self, server)
        server.signal()
        # The listener closes at once.
        for _ in range(100):
            try:
                probe = await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", server.port), _Slow())
            except Exception:
                break
            probe.transport.loseConnection()
            await deferLater(reactor, 0.05)
        else:
            self.fail("the listener stayed open after SIGTERM")
        slow.transport.write(body[len(body) // 2:])
        answer = await slow.closed
        self.assertIn(b" 201 ", answer.split(b"\r\n")[0])
        self.assertIn(await server.exited(), (0, -signal.SIGTERM))
        root = FilePath(server.root)
        self.assertEqual(root.child("alice.vfb").getContent(), body)
        self.assertEqual(_temporaries(root), [])
