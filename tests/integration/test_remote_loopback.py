"""
L{fbtwist.remote} against real servers on loopback: a Twisted web server
(HTTP, and HTTPS with certificates made for the test) serving good, slow,
huge, wrong, redirecting and missing answers, fetched by a real
L{Fetcher} over real sockets.  Each outcome is asserted, and each fetch is
bounded in time.
"""

import ipaddress
import time

from cryptography.hazmat.primitives import serialization
from icalendar import Calendar
from twisted.internet import defer, reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import Certificate, PrivateCertificate
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase
from twisted.web.resource import NoResource, Resource
from twisted.web.server import NOT_DONE_YET, Site

from fbtwist.remote.cache import FetchCache
from fbtwist.remote.calendars import freeBusyCalendar
from fbtwist.remote.credentials import Credentials
from fbtwist.remote.federation import parseTrustRoot
from fbtwist.remote.fetcher import Fetcher, FetchError
from fbtwist.remote.metrics import CountingMetrics
from fbtwist.remote.policy import AddressPolicy
from tests.helpers import outlookVFB
from tests.slapd import _pem, _TestPKI

LOOPBACK = AddressPolicy([ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128")])
GOOD = outlookVFB()
TIMEOUT = 1.0


class Good(Resource):
    isLeaf = True

    def __init__(self):
        super().__init__()
        self.requests = []

    def render_GET(self, request):
        self.requests.append(request)
        request.setHeader(b"Content-Type", b"text/calendar")
        request.setHeader(b"ETag", b'"v1"')
        if request.getHeader(b"if-none-match") == b'"v1"':
            request.setResponseCode(304)
            return b""
        return GOOD


class Trickle(Resource):
    """
    A calendar a byte at a time, 20 bytes a second: far slower than the
    deadline.
    """

    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"Content-Type", b"text/calendar")
        data = iter(GOOD)
        pending = []

        def write():
            request.write(bytes([next(data)]))
            pending[:] = [reactor.callLater(0.05, write)]

        request.notifyFinish().addBoth(lambda _: pending.pop().cancel())
        write()
        return NOT_DONE_YET


class Huge(Resource):
    """
    A large body: with a Content-Length, or chunked, 64 KiB at a time,
    counting what was sent.
    """

    isLeaf = True
    chunk = b"X" * 65536

    def __init__(self, total, declare):
        super().__init__()
        self.total = total
        self.declare = declare
        self.sent = 0

    def render_GET(self, request):
        request.setHeader(b"Content-Type", b"text/calendar")
        if self.declare:
            request.setHeader(b"Content-Length", str(self.total).encode())
        pending = []

        def more():
            pending.clear()
            if self.sent >= self.total:
                request.finish()
                return
            request.write(self.chunk)
            self.sent += len(self.chunk)
            pending.append(reactor.callLater(0.001, more))

        request.notifyFinish().addErrback(lambda _: [call.cancel() for call in pending])
        request.write(b"BEGIN:VCALENDAR\r\n")
        more()
        return NOT_DONE_YET


class Static(Resource):
    isLeaf = True

    def __init__(self, body, status=200, headers=()):
        super().__init__()
        self.body = body
        self.status = status
        self.headers = headers

    def render_GET(self, request):
        request.setResponseCode(self.status)
        for name, value in self.headers:
            request.setHeader(name, value)
        return self.body


def redirect(location, status=302):
    return Static(b"", status, [(b"Location", location.encode())])


class Hops(Resource):
    """
    C{/hop/N} redirects to C{/hop/N+1}, for ever.
    """

    def getChild(self, name, request):
        return redirect(f"/hop/{int(name) + 1}")


class Guarded(Resource):
    """
    A calendar for C{alice:secret} only; every Authorization seen is kept.
    """

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.seen = []

    def render_GET(self, request):
        self.seen.append(request.getHeader(b"authorization"))
        if (request.getUser(), request.getPassword()) != (b"alice", b"secret"):
            request.setResponseCode(401)
            return b""
        return GOOD


class TrackingSite(Site):
    """
    A site whose connections can be waited for, so that each test ends
    with none open.
    """

    def __init__(self, resource):
        super().__init__(resource)
        self.connections = {}

    def buildProtocol(self, addr):
        protocol = super().buildProtocol(addr)
        lost = protocol.connectionLost
        done = self.connections[protocol] = defer.Deferred()

        def connectionLost(reason):
            lost(reason)
            if not done.called:
                done.callback(None)

        protocol.connectionLost = connectionLost
        return protocol

    async def closed(self):
        """
        Close the connections still open, and wait until all are.
        """
        for protocol, done in self.connections.items():
            transport = getattr(protocol, "transport", None)
            if transport is not None:
                transport.abortConnection()
            elif not done.called:  # TLS refused before it reached HTTP
                done.callback(None)
        await defer.DeferredList(list(self.connections.values()))


class NotHTTP(Protocol):
    def connectionMade(self):
        self.transport.write(b"SSH-2.0-OpenSSH_9.2\r\n" * 20)
        self.transport.loseConnection()


class EndlessHeaders(Protocol):
    """
    Answers with headers that never end.
    """

    def connectionMade(self):
        self.transport.write(b"HTTP/1.1 200 OK\r\n")
        self.more()

    def more(self):
        if self.transport.connected:
            self.transport.write(b"X-Filler: " + b"x" * 1000 + b"\r\n")
            self.call = reactor.callLater(0, self.more)

    def connectionLost(self, reason):
        if getattr(self, "call", None) is not None and self.call.active():
            self.call.cancel()


class LoopbackTests(TestCase):
    """
    Fetches from real servers on 127.0.0.1.
    """

    timeout = 30

    def setUp(self):
        self.root = Resource()
        self.good = Good()
        self.guarded = Guarded()
        self.hugeDeclared = Huge(2 << 20, declare=True)
        self.hugeChunked = Huge(8 << 20, declare=False)
        for name, child in [
            (b"good.vfb", self.good),
            (b"slow.vfb", Trickle()),
            (b"huge.vfb", self.hugeDeclared),
            (b"chunked.vfb", self.hugeChunked),
            (b"garbage.vfb", Static(b"<!DOCTYPE html><html><body>Sign in</body></html>",
                                    headers=[(b"Content-Type", b"text/html")])),
            (b"missing.vfb", NoResource()),
            (b"broken.vfb", Static(b"oops", 503)),
            (b"relative", redirect("/good.vfb")),
            (b"loop", redirect("/loop", 301)),
            (b"hop", Hops()),
            (b"javascript", redirect("javascript:alert(1)")),
            (b"guarded.vfb", self.guarded),
        ]:
            self.root.putChild(name, child)
        self.site = self.listen(self.root)
        self.port = self.site.port.getHost().port
        self.fetcher = self.makeFetcher()

    def listen(self, resource, interface="127.0.0.1", tls=None):
        site = TrackingSite(resource)
        if tls is None:
            site.port = reactor.listenTCP(0, site, interface=interface)
        else:
            site.port = reactor.listenSSL(0, site, tls, interface=interface)
        self.addCleanup(self.closeSite, site)
        return site

    async def closeSite(self, site):
        await site.port.stopListening()
        await site.closed()
        await deferLater(reactor, 0.01, lambda: None)

    def makeFetcher(self, **kwargs):
        kwargs.setdefault("policy", LOOPBACK)
        kwargs.setdefault("timeout", TIMEOUT)
        kwargs.setdefault("validate", freeBusyCalendar)
        return Fetcher(reactor, **kwargs)

    def url(self, path, host="127.0.0.1", port=None, scheme="http"):
        return f"{scheme}://{host}:{port or self.port}/{path}"

    async def fails(self, path, reason, fetcher=None, **kwargs):
        """
        Fetch C{path} (or a URL), expecting a L{FetchError} for C{reason},
        within the deadline and a little more.
        """
        url = path if "://" in path else self.url(path)
        started = time.monotonic()
        with self.assertRaises(FetchError) as caught:
            await (fetcher or self.fetcher).fetch(url, **kwargs)
        self.assertLess(time.monotonic() - started, TIMEOUT + 1.0)
        self.assertEqual(caught.exception.reason, reason, caught.exception.message)
        self.assertNotIn("/" + url.split("/", 3)[-1], caught.exception.message)
        return caught.exception

    async def test_good(self):
        """
        A good calendar is fetched, validated and returned with its
        validators.
        """
        result = await self.fetcher.fetch(self.url("good.vfb"))
        self.assertEqual((result.status, result.body, result.etag), (200, GOOD, '"v1"'))
        self.assertIsInstance(result.value, Calendar)
        self.assertEqual(self.good.requests[0].getHeader(b"host"), f"127.0.0.1:{self.port}".encode())

    async def test_conditional(self):
        """
        A fetch with the cached copy's ETag answers 304, without a body.
        """
        result = await self.fetcher.fetch(self.url("good.vfb"), etag='"v1"')
        self.assertEqual((result.status, result.body, result.notModified), (304, b"", True))

    async def test_slow(self):
        """
        An answer trickling in slower than the deadline is given up at the
        deadline: timeout.
        """
        started = time.monotonic()
        await self.fails("slow.vfb", "timeout")
        self.assertGreater(time.monotonic() - started, TIMEOUT - 0.1)

    async def test_hugeDeclared(self):
        """
        An answer declaring more than the size limit is refused before its
        body is read: too-large.
        """
        await self.fails("huge.vfb", "too-large", self.makeFetcher(maxSize=1 << 20))

    async def test_hugeStreamed(self):
        """
        A chunked answer without a length is cut off as soon as it passes
        the limit, not read to its end: too-large.
        """
        await self.fails("chunked.vfb", "too-large", self.makeFetcher(maxSize=1 << 20))
        await defer.DeferredList(list(self.site.connections.values()))
        self.assertLess(self.hugeChunked.sent, 4 << 20)

    async def test_garbage(self):
        """
        An HTML page answered 200 is not a calendar: not-calendar.
        """
        error = await self.fails("garbage.vfb", "not-calendar")
        self.assertIn("HTML", error.message)

    async def test_missing(self):
        """
        A 404 is http-404; a 503 is http-503.
        """
        await self.fails("missing.vfb", "http-404")
        await self.fails("broken.vfb", "http-503")

    async def test_notHTTP(self):
        """
        A server that does not speak HTTP: bad-response.
        """
        port = reactor.listenTCP(0, Factory.forProtocol(NotHTTP), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        await self.fails(self.url("x.vfb", port=port.getHost().port), "bad-response")

    async def test_endlessHeaders(self):
        """
        Headers that never end are cut off at the size limit, not read for
        the whole deadline: too-large.
        """
        port = reactor.listenTCP(0, Factory.forProtocol(EndlessHeaders), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        started = time.monotonic()
        await self.fails(self.url("x.vfb", port=port.getHost().port), "too-large", self.makeFetcher(maxSize=1000))
        self.assertLess(time.monotonic() - started, TIMEOUT / 2)

    async def test_redirectFollowed(self):
        """
        A relative redirect on the same server is followed; the result names
        the final URL.
        """
        result = await self.fetcher.fetch(self.url("relative"))
        self.assertEqual((result.body, result.url), (GOOD, self.url("good.vfb")))

    async def test_redirectLoop(self):
        """
        A redirect to itself is recognised as a loop: redirect-loop.
        """
        await self.fails("loop", "redirect-loop")

    async def test_tooManyRedirects(self):
        """
        An endless chain of distinct redirects stops after maxRedirects:
        too-many-redirects.
        """
        await self.fails("hop/1", "too-many-redirects", self.makeFetcher(maxRedirects=3))

    async def test_redirectOtherScheme(self):
        """
        A redirect to a scheme other than http and https: bad-redirect.
        """
        await self.fails("javascript", "bad-redirect")

    async def test_redirectToForbiddenLoopback(self):
        """
        A redirect to a loopback address the allow-list does not permit
        (127.0.0.2, and its IPv4-mapped IPv6 form) is refused before
        connecting: the server there never sees a request.
        """
        other = Good()
        otherSite = self.listen(other, interface="127.0.0.2")
        otherPort = otherSite.port.getHost().port
        for target in (f"http://127.0.0.2:{otherPort}/good.vfb", f"http://[::ffff:127.0.0.2]:{otherPort}/good.vfb"):
            self.root.putChild(b"away", redirect(target))
            error = await self.fails("away", "forbidden-address")
            self.assertIn("loopback", error.message)
        self.assertEqual(other.requests, [])

    async def test_credentials(self):
        """
        Credentials are sent to the URL's origin, never to another origin a
        redirect leads to.
        """
        credentials = Credentials("alice", "secret")
        result = await self.fetcher.fetch(self.url("guarded.vfb"), credentials)
        self.assertEqual(result.body, GOOD)
        other = Guarded()
        otherSite = self.listen(other)
        self.root.putChild(b"elsewhere", redirect(self.url("x", port=otherSite.port.getHost().port)))
        await self.fails("elsewhere", "http-401", credentials=credentials)
        self.assertEqual(other.seen, [None])
        self.assertNotIn("secret", repr(credentials))

    async def test_cacheRevalidates(self):
        """
        The cache in front of a real fetcher revalidates a stale answer with
        If-None-Match and keeps its body when the server answers 304.
        """
        metrics = CountingMetrics()
        cache = FetchCache(self.fetcher, reactor, validate=freeBusyCalendar, ttl=0, metrics=metrics)
        first = await cache.get(self.url("good.vfb"))
        second = await cache.get(self.url("good.vfb"))
        self.assertEqual((first.body, second.body, second.stale), (GOOD, GOOD, False))
        self.assertEqual([r.code for r in self.good.requests], [200, 304])
        self.assertEqual(metrics.count("miss", "127.0.0.1"), 2)


class HTTPSTests(TestCase):
    """
    Fetches over HTTPS from a server with a certificate made for the test.
    """

    timeout = 30

    def serve(self, pki):
        key = pki.serverKey.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        options = PrivateCertificate.loadPEM(_pem(pki.serverCert) + key).options()
        root = Resource()
        root.putChild(b"good.vfb", Good())
        root.putChild(b"down", redirect("http://127.0.0.1:1/good.vfb"))
        site = LoopbackTests.listen(self, root, tls=options)
        return site.port.getHost().port

    addCleanup = TestCase.addCleanup
    closeSite = LoopbackTests.closeSite

    def fetcher(self, pki):
        """
        A fetcher trusting C{pki}'s CA, read from a file as an operator
        gives it.
        """
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(_pem(pki.otherCACert) + _pem(pki.caCert))
        return Fetcher(reactor, policy=LOOPBACK, timeout=TIMEOUT, validate=freeBusyCalendar,
                       trustRoot=parseTrustRoot(path))

    async def test_verified(self):
        """
        A certificate from the trusted CA naming the host in its
        subjectAltName is accepted, by name (resolved by fbtwist) and by
        address.
        """
        pki = _TestPKI()
        port = self.serve(pki)
        for host in ("localhost", "127.0.0.1"):
            result = await self.fetcher(pki).fetch(f"https://{host}:{port}/good.vfb")
            self.assertEqual(result.body, GOOD)

    async def refused(self, pki, host="localhost"):
        port = self.serve(pki)
        started = time.monotonic()
        with self.assertRaises(FetchError) as caught:
            await self.fetcher(pki).fetch(f"https://{host}:{port}/good.vfb")
        self.assertLess(time.monotonic() - started, TIMEOUT + 1.0)
        self.assertEqual(caught.exception.reason, "tls", caught.exception.message)
        return caught.exception.message

    async def test_noSubjectAltName(self):
        """
        A certificate without a subjectAltName is refused even though its CN
        names the host: tls.
        """
        message = await self.refused(_TestPKI(commonName="localhost", altNames=()))
        self.assertIn("subjectAltName", message)

    async def test_otherName(self):
        """
        A certificate for another name is refused: tls.
        """
        message = await self.refused(_TestPKI(altNames=("other.example",)))
        self.assertIn("does not match", message)

    async def test_untrusted(self):
        """
        A certificate from a CA that is not trusted is refused: tls.
        """
        pki = _TestPKI()
        port = self.serve(pki)
        fetcher = Fetcher(reactor, policy=LOOPBACK, timeout=TIMEOUT,
                          trustRoot=Certificate.loadPEM(_pem(pki.otherCACert)))
        with self.assertRaises(FetchError) as caught:
            await fetcher.fetch(f"https://localhost:{port}/good.vfb")
        self.assertEqual(caught.exception.reason, "tls")
        self.assertNotIn("ldap", caught.exception.message)

    async def test_downgrade(self):
        """
        A redirect from HTTPS to plain HTTP is refused: bad-redirect.
        """
        pki = _TestPKI()
        port = self.serve(pki)
        with self.assertRaises(FetchError) as caught:
            await self.fetcher(pki).fetch(f"https://localhost:{port}/down")
        self.assertEqual(caught.exception.reason, "bad-redirect")
