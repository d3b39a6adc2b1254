"""
Lookups answered before Twisted's request machinery
(L{fbtwist.web.fastlookup}) answer exactly as the whole machinery does:
every request below is sent to one server with the quick answers on and
with them off, and the two answers (bytes, but for the C{Date}) and access
events must be equal.  In memory (L{tests.memory}), against the demo
directory.
"""

import re

from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.trial import unittest

from fbtwist.access.settings import Audience, SettingsStore, Shown, VisibilitySettings
from fbtwist.logs import ACCESS_EVENT
from fbtwist.web.fastlookup import QuickLookups
from tests.helpers import basicAuth, logEvents, outlookVFB

_DATE = re.compile(rb"\r\nDate: [^\r]*")


#: What an access event tells (its times aside: the clock moves between the two).
ACCESS_FIELDS = ("peer", "user", "method", "uri", "protocol", "status", "size", "referer", "agent", "log_namespace",
                 "log_level")


class _Client(Protocol):
    """
    Sends requests on one connection and collects what comes back.
    """

    def connectionMade(self):
        self.received = b""
        self.closed = False

    def dataReceived(self, data):
        self.received += data

    def connectionLost(self, reason):
        self.closed = True


def _responses(data: bytes) -> list:
    """
    The whole responses in C{data} (each by its C{Content-Length}), their
    C{Date} headers blanked.
    """
    found = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        size = int(length.group(1)) if length else len(rest)
        found.append(_DATE.sub(b"\r\nDate: -", head) + b"\r\n\r\n" + rest[:size])
        data = rest[size:]
    return found


#: Each request as a client could send it; C{{name}} is the person asked for.
REQUESTS = {
    "plain": b"GET /calendar/{name}.vfb HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "outlook": (b"GET /calendar/{name}.vfb HTTP/1.1\r\nAccept: */*\r\nUser-Agent: Microsoft Office/16.0\r\n"
                b"Host: 127.0.0.1\r\nConnection: Keep-Alive\r\nCache-Control: no-cache\r\n\r\n"),
    "referer": (b"GET /calendar/{name}.ifb HTTP/1.1\r\nHost: x\r\nReferer: http://x/\"a b\"\r\n"
                b"User-Agent: one\r\nUser-Agent: two\r\n\r\n"),
    "upper": b"GET /calendar/{name}.VFB HTTP/1.1\r\nHost: x\r\n\r\n",
    "head": b"HEAD /calendar/{name}.vfb HTTP/1.1\r\nHost: x\r\n\r\n",
    "query": b"GET /calendar/{name}.vfb?start=20210105&end=20210106 HTTP/1.1\r\nHost: x\r\n\r\n",
    "emptyQuery": b"GET /calendar/{name}.vfb? HTTP/1.1\r\nHost: x\r\n\r\n",
    "condition": b'GET /calendar/{name}.vfb HTTP/1.1\r\nHost: x\r\nIf-None-Match: "x", *\r\n\r\n',
    "since": (b"GET /calendar/{name}.vfb HTTP/1.1\r\nHost: x\r\n"
              b"If-Modified-Since: Sun, 06 Dec 2099 12:00:00 GMT\r\n\r\n"),
    "credentials": b"GET /calendar/{name}.vfb HTTP/1.1\r\nHost: x\r\nAuthorization: "
                   + basicAuth("alice")[b"Authorization"][0] + b"\r\n\r\n",
    "close": b"GET /calendar/{name}.vfb HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "http10": b"GET /calendar/{name}.vfb HTTP/1.0\r\nHost: x\r\n\r\n",
    "encoded": b"GET /calendar/%62smith.vfb HTTP/1.1\r\nHost: x\r\n\r\n",
    "address": b"GET /calendar/{name}@example.com.vfb HTTP/1.1\r\nHost: x\r\n\r\n",
    "deeper": b"GET /calendar/x/{name}.vfb HTTP/1.1\r\nHost: x\r\n\r\n",
    "other": b"GET /calendar/{name}.vfb HTTP/1.1\r\nHost: x\r\nX-Other: 1\r\n\r\n",
    "bareLF": b"GET /calendar/{name}.vfb HTTP/1.1\r\nHost: x\nUser-Agent: y\r\n\r\n",
    "body": b"GET /calendar/{name}.vfb HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
    "pipelined": b"GET /calendar/{name}.vfb HTTP/1.1\r\nHost: x\r\n\r\nGET /calendar/{name}.ifb HTTP/1.1\r\n\r\n",
    "noHeaders": b"GET /calendar/{name}.vfb HTTP/1.1\r\n\r\n",
    "tooLong": b"GET /calendar/{name}.vfb HTTP/1.1\r\nHost: x\r\nUser-Agent: " + b"y" * 20000 + b"\r\n\r\n",
    "space": b"GET /calendar/{name} x.vfb HTTP/1.1\r\nHost: x\r\n\r\n",
    "page": b"GET /calendar/page.css HTTP/1.1\r\nHost: x\r\n\r\n",
}

#: bsmith published a free/busy file, dave a calendar (derived, not
#: answered quickly), alice hides hers, carol never published, zzyzx is
#: nobody.
NAMES = ("bsmith", "betty", "dave", "alice", "carol", "zzyzx")


class SameAnswerTests(unittest.TestCase):
    """
    With or without quick answers, a server answers alike.
    """

    def setUp(self):
        from tests.memory import startMemoryServer

        self.server = startMemoryServer(self)
        store = self.server.store
        store.write(("bsmith.vfb",), outlookVFB(busy="20210105T070000Z/20210105T073000Z"))
        store.write(("alice.vfb",), outlookVFB(busy="20210105T090000Z/20210105T093000Z"))
        store.write(("dave.ics",), b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:1\r\n"
                                   b"DTSTAMP:20210101T000000Z\r\nDTSTART:20210105T100000Z\r\n"
                                   b"DTEND:20210105T110000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
        SettingsStore(store).save("alice", VisibilitySettings(Audience.NOBODY, Shown.FULL))
        self.site = self.server.service.getServiceNamed("http").factory
        self.quick = self.site.quickLookups
        self.assertIsInstance(self.quick, QuickLookups)
        self.events = logEvents(self)

    def exchange(self, data: bytes, quick: bool):
        """
        Send C{data} on a new connection (the quick answers on or off), and
        wait until all is answered.

        @return: The responses, the access events logged, and whether the
            server closed the connection.
        """
        self.site.quickLookups = self.quick if quick else None
        del self.events[:]
        client = _Client()
        connected = connectProtocol(TCP4ClientEndpoint(self.server.network, "127.0.0.1", self.server.port), client)
        self.server.network.run(connected)
        client.transport.write(data)
        # Long enough for the floor under a miss, not for the idle timeout.
        for _ in range(20):
            self.server.network.advance(0.1)
            self.server.network.settle()
        closed = client.closed
        client.transport.loseConnection()
        self.server.network.settle()
        access = [{k: e.get(k) for k in ACCESS_FIELDS} for e in self.events if e.get("fbEvent") == ACCESS_EVENT]
        return _responses(client.received), access, closed

    def test_sameAnswers(self):
        """Every request gets the same bytes (but the Date), access events and connection state both ways."""
        quickly = set()
        for label, template in REQUESTS.items():
            for name in NAMES:
                data = template.replace(b"{name}", name.encode())
                before = self.quick.answered
                withQuick = self.exchange(data, quick=True)
                if self.quick.answered != before:
                    quickly.add((label, name))
                withoutQuick = self.exchange(data, quick=False)
                self.assertEqual(withQuick, withoutQuick, (label, name))
                self.assertTrue(withQuick[0], (label, name))
        # The plain lookups of published files (the second of two
        # pipelined ones too, once the first is answered), and nothing else.
        self.assertEqual(quickly, {(label, name) for label in QUICK + ("pipelined",) for name in ("bsmith", "betty")}
                         | {("address", "betty")})

    def test_afterWholeRequests(self):
        """One connection mixes quick answers and whole ones, in order."""
        requests = [REQUESTS[label].replace(b"{name}", b"bsmith") for label in ("plain", "query", "plain", "head")]
        requests.insert(2, b"GET /calendar/zzyzx.vfb HTTP/1.1\r\nHost: x\r\n\r\n")
        client = _Client()
        self.server.connect(client)
        answers = []
        for data in requests:
            client.received = b""
            client.transport.write(data)
            for _ in range(20):
                self.server.network.advance(0.1)
                self.server.network.settle()
            answers.append(client.received.split(b"\r\n", 1)[0])
        self.assertEqual(answers, [b"HTTP/1.1 200 OK"] * 2 + [b"HTTP/1.1 404 Not Found"] + [b"HTTP/1.1 200 OK"] * 2)
        self.assertEqual(self.quick.answered, 2)
        self.assertFalse(client.closed)

    def test_idleTimeoutStillHolds(self):
        """A connection that got a quick answer is closed after the idle timeout, as any other."""
        client = _Client()
        self.server.connect(client)
        client.transport.write(REQUESTS["plain"].replace(b"{name}", b"bsmith"))
        self.server.network.settle()
        self.assertEqual(self.quick.answered, 1)
        self.server.network.advance(59)
        self.server.network.settle()
        self.assertFalse(client.closed)
        self.server.network.advance(2)
        self.server.network.settle()
        self.assertTrue(client.closed)

    def test_channelTimerStartedOver(self):
        """A connection kept busy with quick answers for longer than the HTTP channel's own idle timeout stays open."""
        client = _Client()
        self.server.connect(client)
        data = REQUESTS["plain"].replace(b"{name}", b"bsmith")
        # One lookup every 50 s (within the connection's idle timeout) for
        # 13 hours: past Twisted's 12 hours of an idle channel.
        for _ in range(13 * 72):
            client.received = b""
            client.transport.write(data)
            self.server.network.settle()
            self.assertTrue(client.received.startswith(b"HTTP/1.1 200 OK"))
            self.server.network.advance(50)
        self.assertFalse(client.closed)
        self.assertEqual(self.quick.answered, 13 * 72)

    def test_notWhileDraining(self):
        """Once the server drains, no connection answers quickly: each is answered the whole way, then closed."""
        client = _Client()
        self.server.connect(client)
        # A miss: answered after the floor, so the connection is busy.
        client.transport.write(REQUESTS["plain"].replace(b"{name}", b"zzyzx"))
        self.server.network.settle()
        drained = self.site.drain()
        self.assertEqual([connection.quick for connection in self.site.connections.values()], [None])
        self.assertIsNone(self.site.buildProtocol(None).quick)
        self.server.network.advance(1)
        self.server.network.settle()
        self.assertTrue(client.received.startswith(b"HTTP/1.1 404"), client.received[:100])
        self.assertTrue(client.closed)
        self.assertIsNone(self.successResultOf(drained))
        self.assertEqual(self.quick.answered, 0)

    def test_republishedSeenAtOnce(self):
        """A file published again is what the next quick answer serves."""
        client = _Client()
        self.server.connect(client)
        data = REQUESTS["plain"].replace(b"{name}", b"bsmith")
        client.transport.write(data)
        self.server.network.settle()
        self.assertIn(b"20210105T070000Z/20210105T073000Z", client.received)
        self.server.store.write(("bsmith.vfb",), outlookVFB(busy="20210107T070000Z/20210107T073000Z"))
        client.received = b""
        client.transport.write(data)
        self.server.network.settle()
        self.assertEqual(self.quick.answered, 2)
        self.assertIn(b"20210107T070000Z/20210107T073000Z", client.received)
        self.assertNotIn(b"20210105T070000Z", client.received)


    def test_notOverHTTP2(self):
        """A TLS connection that agreed on HTTP/2 is never read as HTTP/1.1 lines."""
        from twisted.internet.address import IPv4Address
        from twisted.internet.interfaces import ISSLTransport
        from twisted.internet.testing import StringTransport
        from zope.interface import implementer

        @implementer(ISSLTransport)
        class HTTP2Transport(StringTransport):
            negotiatedProtocol = b"h2"

            def setTcpNoDelay(self, enabled):
                pass

        connection = self.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5000))
        connection.makeConnection(HTTP2Transport())
        # What Twisted's HTTP/2 protocol would be given.
        given = []
        connection.wrappedProtocol = type("Frames", (), {"dataReceived": given.append})()
        data = REQUESTS["plain"].replace(b"{name}", b"bsmith")
        connection.dataReceived(data)
        self.assertEqual((self.quick.answered, connection.quick, given), (0, None, [data]))


class TurnEndTests(unittest.TestCase):
    """
    Quick answers are sent when the reactor's turn ends, all of a turn by
    one timed call, and never behind or ahead of what else the connection
    writes.
    """

    def setUp(self):
        from tests.memory import startMemoryServer

        self.server = startMemoryServer(self)
        self.server.store.write(("bsmith.vfb",), outlookVFB(busy="20210105T070000Z/20210105T073000Z"))
        self.site = self.server.service.getServiceNamed("http").factory
        self.quick = self.site.quickLookups
        self.request = REQUESTS["plain"].replace(b"{name}", b"bsmith")
        # The first lookups of the two names go the whole way (and make
        # the answers known at once).
        for name in (b"bsmith", b"betty"):
            client = _Client()
            self.server.connect(client)
            client.transport.write(REQUESTS["plain"].replace(b"{name}", name))
            for _ in range(20):
                self.server.network.advance(0.1)
                self.server.network.settle()
            self.assertTrue(client.received.startswith(b"HTTP/1.1 200 OK"), client.received[:100])
            client.transport.loseConnection()
            self.server.network.settle()
        self.quick.answered = 0

    def connection(self, port: int):
        from twisted.internet.address import IPv4Address
        from twisted.internet.testing import StringTransport

        connection = self.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", port))
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", port))
        connection.makeConnection(transport)
        return connection, transport

    def test_sentWhenTheTurnEnds(self):
        """Answers made in one turn wait for its end, then all go out, by one timed call."""
        clock = self.site.reactor

        def sendingCalls():
            # The quick answers' own (the lookups' stores schedule the end
            # of their turn too: fbtwist.store.watch.ReactorTurns).
            return [c for c in clock.getDelayedCalls() if getattr(c.func, "__self__", None) is self.quick]

        pairs = [self.connection(5000 + n) for n in range(3)]
        self.assertEqual(sendingCalls(), [])
        for connection, _ in pairs:
            connection.dataReceived(self.request)
        self.assertEqual(self.quick.answered, 3)
        self.assertEqual([transport.value() for _, transport in pairs], [b""] * 3)
        self.assertEqual(len(sendingCalls()), 1)
        clock.advance(0)
        for _, transport in pairs:
            self.assertTrue(transport.value().startswith(b"HTTP/1.1 200 OK\r\n"), transport.value()[:80])
            self.assertTrue(transport.value().endswith(b"END:VCALENDAR\r\n"))
        self.assertEqual(sendingCalls(), [])

    def test_pendingAnswerGoesFirst(self):
        """What the HTTP channel writes while a quick answer waits goes after it."""
        connection, transport = self.connection(5000)
        connection.dataReceived(self.request)
        connection.write(b"NEXT")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 200 OK\r\n"))
        self.assertTrue(transport.value().endswith(b"END:VCALENDAR\r\nNEXT"))
        self.site.reactor.advance(0)
        self.assertTrue(transport.value().endswith(b"NEXT"))

    def test_twoInOneTurn(self):
        """Two answers of one connection in one turn (a request held, then read) both go out, in order."""
        connection, transport = self.connection(5000)
        connection.dataReceived(self.request)
        connection.dataReceived(self.request.replace(b"bsmith", b"betty"))
        self.site.reactor.advance(0)
        self.assertEqual(len(_responses(transport.value())), 2)
        self.assertEqual(transport.value().count(b"HTTP/1.1 200 OK\r\n"), 2)

    def test_oneFailureSendsTheOthers(self):
        """A connection whose answer cannot be sent is aborted and logged; the turn's other answers go out."""
        pairs = [self.connection(5000 + n) for n in range(3)]
        for connection, _ in pairs:
            connection.dataReceived(self.request)

        def broken(data):
            raise RuntimeError("broken transport")

        pairs[0][1].write = broken
        self.site.reactor.advance(0)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertTrue(pairs[0][1].disconnecting)
        for _, transport in pairs[1:]:
            self.assertTrue(transport.value().startswith(b"HTTP/1.1 200 OK\r\n"), transport.value()[:80])

    def test_drainedBeforeTheTurnEnds(self):
        """A shutdown in the turn that made an answer still sends it, then closes the connection."""
        connection, transport = self.connection(5000)
        connection.dataReceived(self.request)
        self.site.drain()
        self.site.reactor.advance(0)
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 200 OK\r\n"), transport.value()[:80])
        self.assertTrue(transport.value().endswith(b"END:VCALENDAR\r\n"))
        self.assertTrue(transport.disconnecting)

    def test_lostBeforeTheTurnEnds(self):
        """A connection lost before its answer went out is not written to."""
        from twisted.internet.error import ConnectionLost
        from twisted.python.failure import Failure

        connection, transport = self.connection(5000)
        connection.dataReceived(self.request)
        connection.connectionLost(Failure(ConnectionLost()))
        self.site.reactor.advance(0)
        self.assertEqual(transport.value(), b"")


#: The requests answered quickly (for bsmith and betty, whose file is published).
QUICK = ("plain", "outlook", "referer", "upper", "noHeaders")


class WithCredentialsRequiredTests(unittest.TestCase):
    """
    With C{--lookup-auth}, nothing is answered quickly.
    """

    def test_noQuickAnswers(self):
        """Behind credentials the site has no quick answers, and an anonymous lookup is refused."""
        from tests.memory import startMemoryServer

        server = startMemoryServer(self, "--lookup-auth")
        server.store.write(("bsmith.vfb",), outlookVFB())
        site = server.service.getServiceNamed("http").factory
        self.assertIsNone(site.quickLookups)
        client = _Client()
        server.connect(client)
        client.transport.write(REQUESTS["plain"].replace(b"{name}", b"bsmith"))
        server.network.settle()
        self.assertTrue(client.received.startswith(b"HTTP/1.1 401"), client.received[:100])

