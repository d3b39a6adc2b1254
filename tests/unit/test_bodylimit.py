"""
Deterministic tests of L{fbtwist.web.site.BoundedRequest} over a
C{StringTransport}: oversized bodies are refused before they are read.
"""

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
