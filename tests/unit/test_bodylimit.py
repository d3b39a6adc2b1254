"""
Deterministic tests of L{fbtwist.web.site.BoundedRequest} over a
C{StringTransport}: oversized bodies are refused before they are read.
"""

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial import unittest
from twisted.web.resource import Resource

from fbtwist.web.site import FreeBusySite


class _Recorder(Resource):
    isLeaf = True

    def __init__(self):
        super().__init__()
        self.bodies = []

    def render_PUT(self, request):
        self.bodies.append(request.content.read())
        return b"stored"


class BoundedRequestTests(unittest.SynchronousTestCase):
    """
    The body limit applies to declared and chunked bodies, before any
    resource runs.
    """

    def setUp(self):
        self.resource = _Recorder()
        self.site = FreeBusySite(self.resource, maxUploadSize=100, reactor=Clock())
        self.channel = self.site.buildProtocol(None)
        self.transport = StringTransport()
        self.channel.makeConnection(self.transport)

    def test_declaredTooLarge(self):
        """
        A Content-Length over the limit: 413, no 100 Continue, the
        connection closed, the resource never called.
        """
        self.channel.dataReceived(
            b"PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\nExpect: 100-continue\r\n\r\n"
        )
        written = self.transport.value()
        self.assertTrue(written.startswith(b"HTTP/1.1 413 "), written)
        self.assertNotIn(b"100 Continue", written)
        self.assertTrue(self.transport.disconnecting)
        self.channel.dataReceived(b"x" * 101)
        self.assertEqual(self.resource.bodies, [])
        self.assertEqual(written, self.transport.value())

    def test_chunkedTooLarge(self):
        """
        Chunks past the limit: 413 and the connection closed.
        """
        self.channel.dataReceived(b"PUT /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
        self.channel.dataReceived(b"40\r\n" + b"x" * 64 + b"\r\n")
        self.assertEqual(self.transport.value(), b"")
        self.channel.dataReceived(b"40\r\n" + b"x" * 64 + b"\r\n0\r\n\r\n")
        self.assertTrue(self.transport.value().startswith(b"HTTP/1.1 413 "))
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.resource.bodies, [])

    def test_atTheLimit(self):
        """
        A body of exactly the limit reaches the resource.
        """
        self.channel.dataReceived(b"PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n" + b"y" * 100)
        self.assertEqual(self.resource.bodies, [b"y" * 100])
        self.assertIn(b"200 OK", self.transport.value())
        self.assertIn(b"Server: fbtwist/", self.transport.value())


class _CountingTransport(StringTransport):
    """
    Counts how often reading is paused.
    """

    pauses = 0

    def pauseProducing(self):
        self.pauses += 1
        super().pauseProducing()


class _GuardedRoot(Resource):
    """
    Hands every request to the resource its credentials gave, as
    L{fbtwist.web.auth.BasicAuthGuard} does.
    """

    def getChild(self, name, request):
        return request.avatarResource


class _Guard:
    """
    A guard whose answer the test gives: the credentials' check fires
    C{answer} (already fired, or later).
    """

    def __init__(self, answer):
        self.answer = answer

    def authenticate(self, request):
        return self.answer


class AuthenticateFirstTests(unittest.SynchronousTestCase):
    """
    A body behind credentials is read only once they are checked; the
    connection is paused only while the check is under way.
    """

    def setUp(self):
        self.resource = _Recorder()
        self.site = FreeBusySite(_GuardedRoot(), maxUploadSize=100, reactor=Clock())
        self.channel = self.site.buildProtocol(None)
        self.transport = _CountingTransport()
        self.channel.makeConnection(self.transport)

    def test_knownLoginNotPaused(self):
        """
        Credentials checked at once (a login the bind cache knows): the
        connection reads on without a pause, and the body reaches the
        avatar's resource.
        """
        self.site.guardBodies((b"pub",), _Guard(defer.succeed(self.resource)))
        self.channel.dataReceived(b"PUT /pub/x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n")
        self.assertEqual((self.transport.pauses, self.transport.producerState), (0, "producing"))
        self.channel.dataReceived(b"abc")
        self.assertEqual(self.resource.bodies, [b"abc"])

    def test_pausedWhileChecking(self):
        """
        Credentials the directory has to check: nothing more is read until
        it answered; then the body reaches the avatar's resource.
        """
        answer = defer.Deferred()
        self.site.guardBodies((b"pub",), _Guard(answer))
        self.channel.dataReceived(b"PUT /pub/x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n")
        self.assertEqual((self.transport.pauses, self.transport.producerState), (1, "paused"))
        self.channel.dataReceived(b"abc")
        self.assertEqual(self.resource.bodies, [])
        answer.callback(self.resource)
        self.assertEqual(self.resource.bodies, [b"abc"])
