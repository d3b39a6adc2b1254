"""
Deterministic tests of what an HTTP connection is held to
(L{fbtwist.web.connection}) and of what L{fbtwist.web.site.BoundedRequest} checks
before a body is read, over a C{StringTransport} and a C{Clock}, and on a
whole fbtwist in memory (L{tests.memory}).
"""

import base64
import time

from twisted.cred.checkers import AllowAnonymousAccess, InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.portal import Portal
from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial import unittest
from twisted.web.resource import IResource, Resource
from zope.interface import implementer

from fbtwist.web.auth import BasicAuthGuard
from fbtwist.web.connection import ConnectionLimits
from fbtwist.web.site import FreeBusySite
from tests.helpers import inline, statusOf
from tests.memory import startMemoryServer


class _Recorder(Resource):
    isLeaf = True

    def __init__(self):
        super().__init__()
        self.bodies = []

    def render(self, request):
        self.bodies.append(request.content.read())
        return b"stored"


@implementer(IUsernamePassword)
class _Realm:
    def __init__(self, resource):
        self.resource = resource

    def requestAvatar(self, avatarId, mind, *interfaces):
        return IResource, self.resource, lambda: None


class _PendingChecker:
    """
    A checker whose answers the test gives (a directory that is slow).
    """

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self):
        self.pending = []

    def requestAvatarId(self, credentials):
        d = defer.Deferred()
        self.pending.append(d)
        return d


def _auth(login: bytes, password: bytes) -> bytes:
    return b"Authorization: Basic " + base64.b64encode(login + b":" + password) + b"\r\n"


def _connect(site, host="192.0.2.7"):
    address = IPv4Address("TCP", host, 40000)
    connection = site.buildProtocol(address)
    transport = StringTransport(peerAddress=address)
    connection.makeConnection(transport)
    return connection, transport


class _SiteTestCase(unittest.SynchronousTestCase):
    limits = ConnectionLimits()

    def setUp(self):
        self.clock = Clock()
        self.resource = _Recorder()
        self.checker = InMemoryUsernamePasswordDatabaseDontUse(alice=b"wonderland")
        portal = Portal(_Realm(self.resource), [self.checker, AllowAnonymousAccess()])
        self.guard = BasicAuthGuard(portal, "test", anonymousAllowed=lambda request: request.method == b"OPTIONS")
        root = Resource()
        pub = Resource()
        root.putChild(b"pub", pub)
        pub.putChild(b"calendar", self.guard)
        root.putChild(b"open", _Recorder())
        self.site = FreeBusySite(root, maxUploadSize=1 << 20, limits=self.limits, reactor=self.clock)
        self.site.guardBodies((b"pub", b"calendar"), self.guard)
        self.connection, self.transport = _connect(self.site)

    def send(self, data: bytes) -> None:
        self.connection.dataReceived(data)


class AuthenticationBeforeBodyTests(_SiteTestCase):
    """
    A publish body is not read before its credentials are good.
    """

    def test_noCredentials(self):
        """
        A PUT without credentials gets 401 as soon as its headers are in,
        with no 100 Continue; its body is never parsed and the connection
        closes.
        """
        self.send(b"PUT /pub/calendar/alice.vfb HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        written = self.transport.value()
        self.assertTrue(written.startswith(b"HTTP/1.1 401 "), written)
        self.assertIn(b"WWW-Authenticate: Basic", written)
        self.assertNotIn(b"100 Continue", written)
        self.assertTrue(self.transport.disconnecting)
        self.send(b"x" * 5000)
        self.assertEqual(self.resource.bodies, [])
        self.assertEqual(self.transport.value(), written)

    def test_wrongPasswordChunked(self):
        """
        Wrong credentials on a chunked PUT: 401 before any chunk is parsed.
        """
        self.send(b"PROPPATCH /pub/calendar/alice.vfb HTTP/1.1\r\nHost: h\r\n"
                  + _auth(b"alice", b"wrong") + b"Transfer-Encoding: chunked\r\n\r\n")
        self.assertTrue(self.transport.value().startswith(b"HTTP/1.1 401 "), self.transport.value())
        self.send(b"1\r\nx\r\n" * 1000)
        self.assertEqual(self.resource.bodies, [])

    def test_quotedPathIsGuarded(self):
        """
        A percent-encoded path to the publishing tree is guarded as
        traversal will see it.
        """
        self.send(b"PUT /p%75b/calendar/alice.vfb HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n")
        self.assertTrue(self.transport.value().startswith(b"HTTP/1.1 401 "))

    def test_pausedUntilTheDirectoryAnswers(self):
        """
        While the credentials are checked the connection is paused and no
        100 Continue is sent; once they are good, 100 Continue goes out,
        reading resumes and the body reaches the avatar's resource.
        """
        slow = _PendingChecker()
        self.guard.portal = Portal(_Realm(self.resource), [slow])
        self.send(b"PUT /pub/calendar/alice.vfb HTTP/1.1\r\nHost: h\r\n" + _auth(b"alice", b"wonderland")
                  + b"Content-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        self.assertEqual(self.transport.value(), b"")
        self.assertEqual(self.transport.producerState, "paused")
        slow.pending[0].callback(b"alice")
        self.assertEqual(self.transport.value(), b"HTTP/1.1 100 Continue\r\n\r\n")
        self.assertEqual(self.transport.producerState, "producing")
        self.send(b"hello")
        self.assertEqual(self.resource.bodies, [b"hello"])
        self.assertIn(b"200 OK", self.transport.value())

    def test_bodyAlreadyBuffered(self):
        """
        A body that arrived with the headers waits for the credentials,
        then is answered once.
        """
        slow = _PendingChecker()
        self.guard.portal = Portal(_Realm(self.resource), [slow])
        self.send(b"PUT /pub/calendar/alice.vfb HTTP/1.1\r\nHost: h\r\n" + _auth(b"alice", b"wonderland")
                  + b"Content-Length: 5\r\n\r\nhello")
        self.assertEqual(self.resource.bodies, [])
        slow.pending[0].callback(b"alice")
        self.assertEqual(self.resource.bodies, [b"hello"])
        self.assertEqual(self.transport.value().count(b"HTTP/1.1 200 "), 1)

    def test_goodCredentialsSynchronous(self):
        """
        Good credentials (answered at once): 100 Continue, then the body
        is stored; the login is not repeated when the resource runs.
        """
        self.send(b"PUT /pub/calendar/alice.vfb HTTP/1.1\r\nHost: h\r\n" + _auth(b"alice", b"wonderland")
                  + b"Content-Length: 3\r\nExpect: 100-continue\r\n\r\n")
        self.assertEqual(self.transport.value(), b"HTTP/1.1 100 Continue\r\n\r\n")
        self.send(b"abc")
        self.assertEqual(self.resource.bodies, [b"abc"])

    def test_unguardedPathUnchanged(self):
        """
        A body to a URL without credentials is read as before.
        """
        self.send(b"PUT /open HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nok")
        self.assertIn(b"100 Continue", self.transport.value())
        self.assertIn(b"200 OK", self.transport.value())

    def test_bodilessRequestAnsweredNormally(self):
        """
        A request without a body is challenged the usual way, on a
        connection that stays open.
        """
        self.send(b"GET /pub/calendar/ HTTP/1.1\r\nHost: h\r\n\r\n")
        self.assertTrue(self.transport.value().startswith(b"HTTP/1.1 401 "))
        self.assertFalse(self.transport.disconnecting)


class LocalAddressTests(_SiteTestCase):
    """
    A connection's local address is asked of its transport once.
    """

    def test_getHostOnce(self):
        """
        Three requests on one connection see its local address and ask the
        transport for it once.
        """
        asked = []
        getHost = self.transport.getHost
        self.transport.getHost = lambda: asked.append(1) or getHost()
        for _ in range(3):
            self.send(b"GET /open HTTP/1.1\r\nHost: h\r\n\r\n")
        self.assertEqual(self.transport.value().count(b"HTTP/1.1 200 "), 3)
        self.assertEqual(len(asked), 1)
        self.assertEqual(self.connection.getHost(), getHost())


class ChunkTests(_SiteTestCase):
    """
    Chunked bodies cost what their size says.
    """

    def test_tinyChunksRefused(self):
        """
        A body of 1-byte chunks is answered 400 after a few hundred chunks,
        whatever follows.
        """
        self.send(b"PUT /open HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
        self.send(b"1\r\nx\r\n" * 1000)
        written = self.transport.value()
        self.assertTrue(written.startswith(b"HTTP/1.1 400 "), written)
        self.assertIn(b"too many small chunks", written)
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.site.resource.children[b"open"].bodies, [])

    def test_pipelinedAfterChunkedBody(self):
        """
        A request pipelined after a large chunked body in the same read is
        answered too.
        """
        body = (b"400\r\n" + b"c" * 1024 + b"\r\n") * 20 + b"0\r\n\r\n"
        self.send(b"PUT /open HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + body
                  + b"GET /open HTTP/1.1\r\nHost: h\r\n\r\n")
        self.assertEqual(self.transport.value().count(b"200 OK"), 2)
        self.assertEqual(self.site.resource.children[b"open"].bodies, [b"c" * 20480, b""])

    def test_ordinaryChunksAccepted(self):
        """
        Chunks of a few dozen bytes (a calendar sent line by line) are
        accepted.
        """
        line = b"FREEBUSY:20261125T090000Z/20261125T103000Z\r\n"
        self.send(b"PUT /open HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
        self.send((b"%x\r\n" % len(line) + line + b"\r\n") * 2000 + b"0\r\n\r\n")
        self.assertTrue(self.site.resource.children[b"open"].bodies == [line * 2000], self.transport.value()[:80])

    def test_tinyChunksCostLittle(self):
        """
        A megabyte of 1-byte chunks (3 s of CPU to parse whole) is refused
        for a few milliseconds.
        """
        body = b"1\r\nx\r\n" * (1 << 20)
        self.send(b"PUT /open HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
        started = time.process_time()
        for offset in range(0, len(body), 65536):
            self.send(body[offset:offset + 65536])
        self.assertLess(time.process_time() - started, 0.1)
        self.assertTrue(self.transport.value().startswith(b"HTTP/1.1 400 "))


class DeadlineTests(_SiteTestCase):
    """
    Each stage of a request has a deadline that trickled bytes do not move.
    """

    limits = ConnectionLimits(idleTimeout=60, headerTimeout=20, minBodyRate=100)

    def test_idle(self):
        """
        A connection where no request starts is closed after the idle
        timeout, with nothing written.
        """
        self.clock.advance(59)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(1)
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.transport.value(), b"")

    def test_trickledHeaders(self):
        """
        Headers trickled a byte a second are answered 408 once the header
        timeout has passed since the request's first byte.
        """
        for byte in b"GET / HTTP/1.1\r\nX-Slow: " + b"a" * 30:
            self.send(bytes([byte]))
            self.clock.advance(1)
            if self.transport.disconnecting:
                break
        self.assertTrue(self.transport.value().startswith(b"HTTP/1.1 408 "), self.transport.value())
        self.assertEqual(self.clock.seconds(), 20)

    def test_slowBody(self):
        """
        A body slower than the minimum rate is answered 408 once past the
        grace period.
        """
        self.send(b"PUT /open HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\n")
        for second in range(60):
            self.send(b"x" * 10)
            self.clock.advance(1)
            if self.transport.disconnecting:
                break
        self.assertTrue(self.transport.value().startswith(b"HTTP/1.1 408 "), self.transport.value())
        # 20 s of grace plus a second per 100 bytes: 10 bytes a second
        # falls behind at about 22 s.
        self.assertLess(self.clock.seconds(), 25)

    def test_steadyBody(self):
        """
        A body that keeps the minimum rate is read to its end.
        """
        self.send(b"PUT /open HTTP/1.1\r\nHost: h\r\nContent-Length: 6000\r\n\r\n")
        for second in range(40):
            self.send(b"x" * 150)
            self.clock.advance(1)
        self.assertIn(b"200 OK", self.transport.value())
        self.assertEqual(self.site.resource.children[b"open"].bodies, [b"x" * 6000])

    def test_bodyClockAfterCredentials(self):
        """
        A publish body's deadline starts when the credentials are checked,
        not when the headers arrived.
        """
        slow = _PendingChecker()
        self.guard.portal = Portal(_Realm(self.resource), [slow])
        self.send(b"PUT /pub/calendar/alice.vfb HTTP/1.1\r\nHost: h\r\n" + _auth(b"alice", b"wonderland")
                  + b"Content-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        self.clock.advance(15)
        slow.pending[0].callback(b"alice")
        self.clock.advance(10)
        self.assertFalse(self.transport.disconnecting)
        self.send(b"hello")
        self.assertEqual(self.resource.bodies, [b"hello"])

    def test_slowServerNoDeadline(self):
        """
        While the server works on a request, no deadline runs; the idle
        one starts when it has answered.
        """
        slow = _PendingChecker()
        self.guard.portal = Portal(_Realm(self.resource), [slow])
        self.send(b"GET /pub/calendar/x HTTP/1.1\r\nHost: h\r\n" + _auth(b"alice", b"wonderland") + b"\r\n")
        self.clock.advance(600)
        self.assertFalse(self.transport.disconnecting)
        slow.pending[0].callback(b"alice")
        self.assertIn(b"200 OK", self.transport.value())
        self.clock.advance(59)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(1)
        self.assertTrue(self.transport.disconnecting)

    def test_keepAliveRequests(self):
        """
        Several requests on one connection each get their own deadlines.
        """
        for n in range(3):
            self.clock.advance(50)
            self.send(b"GET /open HTTP/1.1\r\nHost: h\r\n\r\n")
        self.assertEqual(self.transport.value().count(b"200 OK"), 3)
        self.assertFalse(self.transport.disconnecting)


class SizeTests(_SiteTestCase):
    """
    Overlong request lines and header blocks get their own status codes.
    """

    def test_longRequestLine(self):
        """
        A request line over the limit: 414, in one piece or trickled.
        """
        self.send(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: h\r\n\r\n")
        self.assertTrue(self.transport.value().startswith(b"HTTP/1.1 414 "), self.transport.value()[:40])
        self.assertTrue(self.transport.disconnecting)
        connection, transport = _connect(self.site)
        for _ in range(20):
            connection.dataReceived(b"a" * 500)
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 414 "))

    def test_largeHeaders(self):
        """
        Headers over the limit: 431, in one piece or in many.
        """
        self.send(b"GET / HTTP/1.1\r\nHost: h\r\n" + b"X-Big: " + b"b" * 17000 + b"\r\nX-More: 1\r\n\r\n")
        self.assertTrue(self.transport.value().startswith(b"HTTP/1.1 431 "), self.transport.value()[:40])
        connection, transport = _connect(self.site)
        connection.dataReceived(b"GET / HTTP/1.1\r\n")
        for n in range(400):
            connection.dataReceived(b"X-H%d: %s\r\n" % (n, b"v" * 40))
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 431 "), transport.value()[:40])

    def test_manyHeaders(self):
        """
        More header lines than the limit: 431 (Twisted would close with a
        bare 400).
        """
        self.send(b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 300 + b"\r\n")
        self.assertTrue(self.transport.value().startswith(b"HTTP/1.1 431 "), self.transport.value()[:40])

    def test_largeBodyIsNotHeaders(self):
        """
        Body bytes arriving with the headers do not count as headers.
        """
        self.send(b"PUT /open HTTP/1.1\r\nHost: h\r\nContent-Length: 30000\r\n\r\n" + b"z" * 30000)
        self.assertIn(b"200 OK", self.transport.value())


class PerAddressTests(_SiteTestCase):
    """
    Connections from one address are capped; loopback is not.
    """

    limits = ConnectionLimits(maxPerAddress=3)

    def test_cap(self):
        """
        The connection over the cap gets 503 with Retry-After and is
        closed; once one closes, a new one is served again.
        """
        others = [_connect(self.site) for _ in range(2)]
        refused, transport = _connect(self.site)
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 503 "), transport.value())
        self.assertIn(b"Retry-After: ", transport.value())
        self.assertTrue(transport.disconnecting)
        for connection, t in [(self.connection, self.transport)] + others:
            self.assertEqual(t.value(), b"")
        refused.connectionLost(None)
        others[0][0].connectionLost(None)
        connection, transport = _connect(self.site)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(self.site.connectionsFrom("192.0.2.7"), 3)

    def test_otherAddressesAndLoopback(self):
        """
        Other addresses and loopback clients have their own (or no) limit.
        """
        for _ in range(3):
            _connect(self.site)
        connection, transport = _connect(self.site, "192.0.2.8")
        self.assertEqual(transport.value(), b"")
        for _ in range(10):
            connection, transport = _connect(self.site, "127.0.0.1")
            self.assertEqual(transport.value(), b"")

    def test_exemptNetworks(self):
        """
        An address in the exempt networks is not counted.
        """
        import ipaddress

        limits = ConnectionLimits(maxPerAddress=1, exemptNetworks=(ipaddress.ip_network("192.0.2.0/24"),))
        self.assertTrue(limits.isExempt("192.0.2.7"))
        self.assertFalse(limits.isExempt("127.0.0.1"))
        self.assertTrue(limits.isExempt("::ffff:192.0.2.9"))


class WholeServerTests(unittest.TestCase):
    """
    The limits on a whole fbtwist (in memory).
    """

    @inline
    async def test_unauthenticatedBodyNotRead(self):
        """
        A client that sends a large body without credentials and without
        waiting for 100 Continue gets its 401.
        """
        server = startMemoryServer(self)
        response = await server.rawRequest(
            b"PUT /pub/calendar/alice.vfb HTTP/1.1\r\nHost: h\r\nContent-Length: 900000\r\n\r\n" + b"x" * 900000,
        )
        self.assertEqual(statusOf(response), 401)

    @inline
    async def test_trickledHeadersTimedOut(self):
        """
        Headers trickled slower than --http-header-timeout get 408.
        """
        from twisted.internet import protocol

        server = startMemoryServer(self, "--http-header-timeout", "1")

        class Trickle(protocol.Protocol):
            def __init__(self):
                self.received = b""
                self.done = defer.Deferred()

            def dataReceived(self, data):
                self.received += data

            def connectionLost(self, reason):
                self.done.callback(self.received)

        client = server.connect(Trickle())
        for byte in b"GET / HTTP/1.1\r\nX: abcdefgh":
            if client.done.called:
                break
            client.transport.write(bytes([byte]))
            server.network.advance(0.1)
            server.network.settle()
        # Answered while the headers were still trickling in (2.6 s).
        self.assertEqual(statusOf(client.received), 408)
        self.assertEqual(statusOf(self.successResultOf(server.network.run(client.done))), 408)
