"""
Where a remote fetch may go, in memory: the address classification, names
that resolve to private addresses, the pinned connection, redirects checked
again, deadlines and concurrency, with a L{MemoryReactorClock}, a resolver
made for the test and the HTTP exchange written by hand.
"""

import ipaddress

from twisted.internet import defer
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IHostnameResolver, IStreamClientEndpoint
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import URI
from twisted.web.iweb import IAgentEndpointFactory, IPolicyForHTTPS
from zope.interface import implementer
from zope.interface.verify import verifyObject

from fbtwist.remote.connect import FailClosedTLSPolicy, PinnedEndpoint, PinnedEndpointFactory
from fbtwist.remote.credentials import Credentials
from fbtwist.remote.fetcher import Fetcher, FetchError, parseURL
from fbtwist.remote.metrics import CountingMetrics
from fbtwist.remote.policy import AddressPolicy, ForbiddenAddress, classify, parseAddress
from tests.helpers import outlookVFB

PUBLIC = "93.184.215.14"
PUBLIC6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"


def address(text):
    return ipaddress.ip_address(text)


class ClassifyTests(SynchronousTestCase):
    """
    L{classify}: what kind of non-public address an address is.
    """

    def assertKinds(self, table):
        for text, kind in table:
            self.assertEqual((text, classify(address(text))), (text, kind))

    def test_ipv4(self):
        """
        IPv4 loopback, private, link-local, CGN, multicast, unspecified,
        documentation and reserved addresses are named; public ones are not.
        """
        self.assertKinds([
            ("127.0.0.1", "loopback"), ("127.255.0.9", "loopback"),
            ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("172.31.255.255", "private"),
            ("192.168.1.1", "private"), ("169.254.169.254", "link-local"),
            ("100.64.0.1", "carrier-grade NAT"), ("100.127.255.254", "carrier-grade NAT"),
            ("224.0.0.1", "multicast"), ("239.255.255.250", "multicast"),
            ("0.0.0.0", "unspecified"), ("0.1.2.3", "unspecified"),
            ("192.0.2.1", "documentation"), ("198.18.0.1", "benchmarking"),
            ("240.0.0.1", "reserved"), ("255.255.255.255", "reserved"), ("192.0.0.8", "reserved"),
            (PUBLIC, None), ("8.8.8.8", None), ("172.32.0.1", None), ("100.128.0.1", None),
        ])

    def test_ipv6(self):
        """
        IPv6 loopback, unspecified, ULA, link-local, multicast, documentation
        and everything outside global unicast are named; public ones are not.
        """
        self.assertKinds([
            ("::1", "loopback"), ("::", "unspecified"), ("fc00::1", "private"), ("fd12:3456::1", "private"),
            ("fe80::1", "link-local"), ("ff02::1", "multicast"), ("2001:db8::1", "documentation"),
            ("fec0::1", "private"), ("100::1", "reserved"), ("2001::1", "reserved"),
            ("::7f00:1", "reserved"), ("4000::1", "reserved"),
            (PUBLIC6, None), ("2a00:1450:4001:82b::200e", None),
        ])

    def test_embeddedIPv4(self):
        """
        IPv6 addresses carrying an IPv4 address (mapped, NAT64, 6to4) are
        judged by it.
        """
        self.assertKinds([
            ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.0.0.1", "private"),
            ("::ffff:169.254.169.254", "link-local"), ("64:ff9b::7f00:1", "loopback"),
            ("2002:7f00:1::", "loopback"), ("2002:a00:1::", "private"),
            ("::ffff:8.8.8.8", None), ("64:ff9b::808:808", None), ("2002:808:808::", None),
        ])

    def test_parseAddress(self):
        """
        Brackets and an IPv6 scope are dropped; a name is not an address.
        """
        self.assertEqual(parseAddress("[::1]"), address("::1"))
        self.assertEqual(parseAddress("fe80::1%eth0"), address("fe80::1"))
        self.assertIsNone(parseAddress("fb.partner.example"))


class AddressPolicyTests(SynchronousTestCase):
    """
    L{AddressPolicy}: refusals, the allow-list, names with several addresses.
    """

    def test_refused(self):
        """
        A non-public address is refused, saying what it is.
        """
        with self.assertRaises(ForbiddenAddress) as caught:
            AddressPolicy().check(address("10.0.0.7"))
        self.assertEqual(str(caught.exception), "10.0.0.7 is a private address")
        AddressPolicy().check(address(PUBLIC))

    def test_allowList(self):
        """
        Networks on the allow-list are permitted, mapped forms of their
        addresses too; others stay refused.
        """
        policy = AddressPolicy([ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("fd00:1::/64")])
        policy.check(address("127.0.0.2"))
        policy.check(address("::ffff:127.0.0.2"))
        policy.check(address("fd00:1::5"))
        for refused in ("10.0.0.1", "::1", "fd00:2::5"):
            self.assertRaises(ForbiddenAddress, policy.check, address(refused))

    def test_mixedName(self):
        """
        A name resolving to a public and a private address is refused whole,
        the message naming the name.
        """
        with self.assertRaises(ForbiddenAddress) as caught:
            AddressPolicy().checkAll("rebind.example", [address(PUBLIC), address("127.0.0.1")])
        self.assertEqual(str(caught.exception), "rebind.example resolves to 127.0.0.1 is a loopback address")


@implementer(IHostnameResolver)
class Resolver:
    """
    Answers from a table of names (an unknown name resolves to nothing),
    remembering what was asked.
    """

    def __init__(self, table):
        self.table = table
        self.asked = []

    def resolveHostName(self, receiver, hostName, portNumber=0, addressTypes=None, transportSemantics="TCP"):
        self.asked.append(hostName)
        receiver.resolutionBegan(None)
        for text in self.table.get(hostName, []):
            kind = IPv4Address if ":" not in text else IPv6Address
            receiver.addressResolved(kind("TCP", text, portNumber))
        receiver.resolutionComplete()


def response(status=200, headers=(), body=b""):
    lines = [f"HTTP/1.1 {status} Whatever"] + [f"{name}: {value}" for name, value in headers]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class FetcherTests(SynchronousTestCase):
    """
    L{Fetcher} over a L{MemoryReactorClock}: the connections it asks for,
    the requests it writes, and what it makes of the answers.
    """

    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.resolver = Resolver({
            "fb.partner.example": [PUBLIC],
            "v6.partner.example": [PUBLIC6],
            "other.partner.example": ["93.184.215.15"],
            "internal.example": ["192.168.1.10"],
            "rebind.example": [PUBLIC, "127.0.0.1"],
        })
        self.metrics = CountingMetrics()
        self.fetcher = self.makeFetcher()

    def makeFetcher(self, **kwargs):
        kwargs.setdefault("metrics", self.metrics)
        return Fetcher(self.reactor, resolver=self.resolver, **kwargs)

    def start(self, url, fetcher=None, **kwargs):
        """
        Start fetching C{url}; collect its outcome in C{self.outcome}.
        """
        self.outcome = []
        d = (fetcher or self.fetcher).fetch(url, **kwargs)
        d.addBoth(self.outcome.append)
        return d

    def connect(self, index=-1):
        """
        Complete the connection the fetch asked for last.

        @return: The protocol and its transport.
        """
        host, port, factory = self.reactor.tcpClients[index][:3]
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    def failure(self, reason):
        self.assertEqual(len(self.outcome), 1, self.outcome)
        self.outcome[0].trap(FetchError)
        self.assertEqual(self.outcome[0].value.reason, reason, self.outcome[0].value.message)
        return self.outcome[0].value

    def test_interfaces(self):
        """
        The connection parts provide the interfaces Twisted's agent uses.
        """
        verifyObject(IPolicyForHTTPS, FailClosedTLSPolicy())
        factory = PinnedEndpointFactory(self.reactor, self.resolver, AddressPolicy(), FailClosedTLSPolicy())
        verifyObject(IAgentEndpointFactory, factory)
        endpoint = factory.endpointForURI(URI.fromBytes(b"https://fb.partner.example/x"))
        self.assertIsInstance(endpoint, PinnedEndpoint)
        verifyObject(IStreamClientEndpoint, endpoint)

    def test_pinned(self):
        """
        The connection goes to the address fbtwist resolved and checked,
        while the request names the host in its Host header.
        """
        self.start("http://fb.partner.example/freebusy/alice.vfb", validate=lambda body: "parsed")
        self.assertEqual(self.resolver.asked, ["fb.partner.example"])
        self.assertEqual([c[:2] for c in self.reactor.tcpClients], [(PUBLIC, 80)])
        protocol, transport = self.connect()
        request = transport.value()
        self.assertTrue(request.startswith(b"GET /freebusy/alice.vfb HTTP/1.1\r\n"), request)
        self.assertIn(b"\r\nHost: fb.partner.example\r\n", request)
        protocol.dataReceived(response(200, [("ETag", '"7"'), ("Cache-Control", "max-age=60")], outlookVFB()))
        result = self.outcome[0]
        self.assertEqual((result.status, result.body, result.etag, result.cacheControl, result.value),
                         (200, outlookVFB(), '"7"', "max-age=60", "parsed"))
        self.assertEqual(self.metrics.count("fetch", "fb.partner.example"), 1)

    def test_pinnedIPv6(self):
        """
        A name with an IPv6 address is connected to over IPv6, at that
        address.
        """
        self.start("https://v6.partner.example:8443/x.vfb")
        self.assertEqual([c[:2] for c in self.reactor.tcpClients], [(PUBLIC6, 8443)])

    def test_privateName(self):
        """
        A name resolving to a private address is refused without connecting:
        forbidden-address.
        """
        self.start("http://internal.example/x.vfb", domain="partner.example")
        error = self.failure("forbidden-address")
        self.assertIn("192.168.1.10 is a private address", error.message)
        self.assertEqual(self.reactor.tcpClients, [])
        self.assertEqual(self.metrics.count("failure", "partner.example", "forbidden-address"), 1)

    def test_rebinding(self):
        """
        A name resolving to a public and a loopback address is refused whole.
        """
        self.start("http://rebind.example/x.vfb")
        self.failure("forbidden-address")
        self.assertEqual(self.reactor.tcpClients, [])

    def test_addressLiterals(self):
        """
        URLs naming forbidden addresses directly, in any spelling, are
        refused without resolving or connecting.
        """
        for url in ("http://127.0.0.1/", "http://[::1]:8080/", "http://[::ffff:169.254.169.254]/",
                    "http://169.254.169.254/latest/meta-data/", "https://[fe80::1]/", "http://10.0.0.1/"):
            self.start(url)
            self.failure("forbidden-address")
        self.assertEqual((self.resolver.asked, self.reactor.tcpClients), ([], []))

    def test_unresolvable(self):
        """
        A name that does not resolve: dns.
        """
        self.start("http://nowhere.example/x.vfb")
        self.failure("dns")

    def test_badURLs(self):
        """
        Other schemes, URLs without a host and URLs holding a password are
        refused before anything else: bad-url.
        """
        for url in ("ftp://fb.partner.example/x.vfb", "file:///etc/passwd", "gopher://x/", "http:///x",
                    "http://alice:secret@fb.partner.example/", "not a url at all", "//fb.partner.example/x"):
            self.start(url)
            error = self.failure("bad-url")
            self.assertNotIn("secret", error.message)
        self.assertEqual(self.resolver.asked, [])

    def test_redirectRechecked(self):
        """
        A redirect to a name resolving to a private address is refused
        before a second connection is made.
        """
        self.start("http://fb.partner.example/x.vfb")
        protocol, _ = self.connect()
        protocol.dataReceived(response(302, [("Location", "http://internal.example/admin")]))
        self.failure("forbidden-address")
        self.assertEqual(self.resolver.asked, ["fb.partner.example", "internal.example"])
        self.assertEqual(len(self.reactor.tcpClients), 1)

    def test_redirectToMetadata(self):
        """
        A redirect to the cloud metadata address is refused.
        """
        self.start("http://fb.partner.example/x.vfb")
        protocol, _ = self.connect()
        protocol.dataReceived(response(307, [("Location", "http://169.254.169.254/latest/meta-data/")]))
        self.failure("forbidden-address")
        self.assertEqual(len(self.reactor.tcpClients), 1)

    def test_redirectFollowed(self):
        """
        A redirect to another public host is followed, to its checked
        address; the credentials are not sent there.
        """
        self.start("http://fb.partner.example/x.vfb", credentials=Credentials("alice", "secret"))
        protocol, transport = self.connect()
        self.assertIn(b"Authorization: Basic YWxpY2U6c2VjcmV0\r\n", transport.value())
        protocol.dataReceived(response(301, [("Location", "http://other.partner.example/y.vfb")]))
        self.assertEqual([c[:2] for c in self.reactor.tcpClients], [(PUBLIC, 80), ("93.184.215.15", 80)])
        protocol, transport = self.connect()
        self.assertIn(b"Host: other.partner.example\r\n", transport.value())
        self.assertNotIn(b"Authorization", transport.value())
        protocol.dataReceived(response(200, body=b"BEGIN:VCALENDAR"))
        self.assertEqual(self.outcome[0].url, "http://other.partner.example/y.vfb")

    def test_redirectWithoutLocation(self):
        """
        A redirect that says nowhere: bad-redirect.
        """
        self.start("http://fb.partner.example/x.vfb")
        protocol, _ = self.connect()
        protocol.dataReceived(response(302))
        self.failure("bad-redirect")

    def test_timeout(self):
        """
        A server that answers nothing is given up at the deadline, its
        connection closed: timeout.
        """
        self.start("http://fb.partner.example/x.vfb", self.makeFetcher(timeout=2.0))
        _, transport = self.connect()
        self.reactor.advance(1.9)
        self.assertEqual(self.outcome, [])
        self.reactor.advance(0.2)
        self.failure("timeout")
        self.assertTrue(transport.disconnecting)

    def test_timeoutCoversBody(self):
        """
        The deadline covers the body too: a body still arriving at the
        deadline is given up.
        """
        self.start("http://fb.partner.example/x.vfb", self.makeFetcher(timeout=2.0))
        protocol, transport = self.connect()
        protocol.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nBEGIN:")
        self.reactor.advance(1.0)
        protocol.dataReceived(b"VCALENDAR\r\n")
        self.reactor.advance(1.1)
        self.failure("timeout")
        self.assertEqual(transport.producerState, "stopped")

    def test_sizeLimit(self):
        """
        A body passing the limit while streaming stops the connection:
        too-large.
        """
        fetcher = self.makeFetcher(maxSize=100)
        self.start("http://fb.partner.example/x.vfb", fetcher)
        protocol, transport = self.connect()
        protocol.dataReceived(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        protocol.dataReceived(b"40\r\n" + b"x" * 64 + b"\r\n")
        self.assertEqual(self.outcome, [])
        protocol.dataReceived(b"40\r\n" + b"x" * 64 + b"\r\n")
        self.failure("too-large")
        self.assertEqual(transport.producerState, "stopped")

    def test_concurrency(self):
        """
        At most maxConcurrent fetches run, at most maxPerOrigin to one
        origin; the others wait for a slot.
        """
        fetcher = self.makeFetcher(maxConcurrent=2, maxPerOrigin=1)
        outcomes = []
        for url in ("http://fb.partner.example/a", "http://fb.partner.example/b", "http://other.partner.example/c"):
            fetcher.fetch(url).addBoth(outcomes.append)
        self.assertEqual([c[:2] for c in self.reactor.tcpClients], [(PUBLIC, 80), ("93.184.215.15", 80)])
        protocol, _ = self.connect(0)
        protocol.dataReceived(response(200, body=b"a"))
        self.assertEqual(len(outcomes), 1)
        self.assertEqual([c[:2] for c in self.reactor.tcpClients][2:], [(PUBLIC, 80)])

    def test_waitCounts(self):
        """
        Waiting for a slot counts in a fetch's deadline.
        """
        fetcher = self.makeFetcher(maxConcurrent=1, timeout=2.0)
        fetcher.fetch("http://fb.partner.example/a").addErrback(lambda f: None)
        self.reactor.advance(1.0)
        self.start("http://other.partner.example/b", fetcher)
        self.reactor.advance(1.0)
        self.assertEqual(len(self.reactor.tcpClients), 2)
        self.reactor.advance(0.9)
        self.assertEqual(self.outcome, [])
        self.reactor.advance(0.2)
        self.failure("timeout")

    def test_httpStatus(self):
        """
        An answer other than 2xx fails with its status as the reason.
        """
        for status in (404, 410, 500, 503, 401):
            self.start("http://fb.partner.example/x.vfb")
            protocol, _ = self.connect()
            protocol.dataReceived(response(status, body=b"no"))
            self.failure(f"http-{status}")

    def test_notCalendar(self):
        """
        A body the validator refuses: not-calendar, with its reason.
        """
        def validate(body):
            raise ValueError("no VFREEBUSY here")

        self.start("http://fb.partner.example/x.vfb", validate=validate)
        protocol, _ = self.connect()
        protocol.dataReceived(response(200, body=b"BEGIN:VCALENDAR"))
        self.assertIn("no VFREEBUSY here", self.failure("not-calendar").message)

    def test_deferredValidator(self):
        """
        A validator may answer later, through a Deferred, and refuse the
        same way; the deadline covers it.
        """
        pending = defer.Deferred()
        for answer, expected in [(defer.succeed("parsed"), "parsed"), (defer.fail(ValueError("no")), "not-calendar"),
                                 (pending, "timeout")]:
            self.start("http://fb.partner.example/x.vfb", validate=lambda body, answer=answer: answer)
            protocol, _ = self.connect()
            protocol.dataReceived(response(200, body=b"BEGIN:VCALENDAR"))
            self.reactor.advance(2.1)
            outcome = self.outcome[0]
            self.assertEqual(outcome.value if expected == "parsed" else outcome.value.reason, expected)

    def test_validatorBug(self):
        """
        A validator failing other than by refusing is logged in full and
        reported as internal-error, not as a wrong calendar.
        """
        def validate(body):
            raise KeyError("bug")

        with capturedLogs() as events:
            self.start("http://fb.partner.example/x.vfb", validate=validate)
            protocol, _ = self.connect()
            protocol.dataReceived(response(200, body=b"BEGIN:VCALENDAR"))
        self.failure("internal-error")
        self.assertTrue(any(e.get("log_failure") is not None for e in events))
        self.flushLoggedErrors(KeyError)

    def test_conditional(self):
        """
        The cached copy's validators are sent; a 304 is a result without a
        body.
        """
        self.start("http://fb.partner.example/x.vfb", etag='"7"', lastModified="Sun, 06 Dec 2026 08:00:00 GMT")
        protocol, transport = self.connect()
        self.assertIn(b'If-None-Match: "7"\r\n', transport.value())
        self.assertIn(b"If-Modified-Since: Sun, 06 Dec 2026 08:00:00 GMT\r\n", transport.value())
        protocol.dataReceived(response(304, [("ETag", '"7"')]))
        self.assertTrue(self.outcome[0].notModified)

    def test_unaskedNotModified(self):
        """
        A 304 to a request that was not conditional is an error.
        """
        self.start("http://fb.partner.example/x.vfb")
        protocol, _ = self.connect()
        protocol.dataReceived(response(304))
        self.failure("http-304")

    def test_secretsNotLogged(self):
        """
        A failure's log line and message name the origin only: neither the
        path nor the query (a feed's URL often is its password), nor the
        credentials.
        """
        with capturedLogs() as events:
            self.start("http://fb.partner.example/private-ab12cd/basic.ics?token=s3cr3t",
                       credentials=Credentials("alice", "hunter2"))
            protocol, _ = self.connect()
            protocol.dataReceived(response(500))
        error = self.failure("http-500")
        self.assertEqual(error.message, "http://fb.partner.example answered 500")
        text = repr(events)
        for secret in ("ab12cd", "s3cr3t", "hunter2", "YWxpY2U6aHVudGVyMg"):
            self.assertNotIn(secret, text)


class ParseURLTests(SynchronousTestCase):
    """
    L{parseURL}: the URLs a fetch accepts, in the form it sends them.
    """

    def test_forms(self):
        """
        International hosts become ASCII; IPv6 addresses stay addresses;
        fragments go.
        """
        self.assertEqual(parseURL("http://bücher.example/ä#x").to_text(), "http://xn--bcher-kva.example/%C3%A4")
        self.assertEqual(parseURL("http://[::FFFF:127.0.0.1]:81/").host, "::ffff:7f00:1")
