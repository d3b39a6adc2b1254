"""
L{fbtwist.compat.twisted.writeNow} on real TCP connections over loopback
(the adapter's contract with Twisted's transport; the other transports are
in tests/unit/test_compat.py).
"""

from twisted.trial import unittest

from fbtwist.compat import twisted as twistedAdapter


class WriteNowTests(unittest.TestCase):
    """
    L{twistedAdapter.writeNow} sends at once on a plain TCP connection
    (loopback, the real reactor), never ahead of bytes already queued.
    """

    async def connected(self):
        """
        A server-side transport and the client protocol receiving what it
        sends.
        """
        from twisted.internet import defer, protocol, reactor

        serverSide = defer.Deferred()

        class Server(protocol.Protocol):
            def connectionMade(self):
                serverSide.callback(self.transport)

        class Client(protocol.Protocol):
            def __init__(self):
                self.received = b""
                self.arrived = defer.Deferred()
                self.expected = 0

            def dataReceived(self, data):
                self.received += data
                if len(self.received) >= self.expected and not self.arrived.called:
                    self.arrived.callback(self.received)

        port = reactor.listenTCP(0, protocol.Factory.forProtocol(Server), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client = Client()
        await protocol.ClientCreator(reactor, lambda: client).connectTCP("127.0.0.1", port.getHost().port)
        transport = await serverSide
        self.addCleanup(client.transport.loseConnection)
        self.addCleanup(transport.loseConnection)
        return transport, client

    async def test_sentAtOnce(self):
        """
        With nothing queued, the bytes leave before C{writeNow} returns:
        nothing is left for the reactor to send.
        """
        from twisted.internet import reactor

        transport, client = await self.connected()
        client.expected = 5
        twistedAdapter.writeNow(transport, b"hello")
        self.assertEqual(transport.dataBuffer[transport.offset:], b"")
        # Nothing queued: the reactor was not asked to write (the
        # transport's queue itself is Twisted's private business).
        self.assertNotIn(transport, reactor.getWriters())
        self.assertEqual(await client.arrived, b"hello")

    async def test_behindQueued(self):
        """
        Bytes queued by C{write} and not sent yet go first.
        """
        transport, client = await self.connected()
        client.expected = 11
        transport.write(b"first ")
        twistedAdapter.writeNow(transport, b"after")
        self.assertEqual(await client.arrived, b"first after")

    async def test_large(self):
        """
        What the socket does not take at once is queued and sent, in order.
        """
        transport, client = await self.connected()
        data = bytes(range(256)) * 40000  # 10 MB: more than a socket takes at once
        client.expected = len(data)
        twistedAdapter.writeNow(transport, data)
        self.assertEqual(await client.arrived, data)


class QuickAnswersOverTCPTests(unittest.TestCase):
    """
    A whole fbtwist on loopback (the real reactor) sends its quick answers
    without registering the connections' sockets for writing.
    """

    async def test_noWriteRegistration(self):
        """
        Lookups answered quickly on several kept-alive connections all
        arrive whole, and no server socket was registered for writing.
        """
        from twisted.internet import defer, protocol, reactor, tcp

        from tests.helpers import outlookVFB, startServer

        server = await startServer(self)
        server.store.write(("bsmith.vfb",), outlookVFB())
        quick = server.service.getServiceNamed("http").factory.quickLookups
        request = b"GET /calendar/bsmith.vfb HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

        class Client(protocol.Protocol):
            def __init__(self):
                self.received = b""
                self.waiting = None

            def dataReceived(self, data):
                self.received += data
                if self.received.endswith(b"END:VCALENDAR\r\n") and self.waiting is not None:
                    waiting, self.waiting = self.waiting, None
                    waiting.callback(self.received)

            def ask(self):
                self.received = b""
                self.waiting = defer.Deferred()
                self.transport.write(request)
                return self.waiting

        clients = []
        for _ in range(3):
            client = Client()
            await protocol.ClientCreator(reactor, lambda client=client: client).connectTCP("127.0.0.1", server.port)
            self.addCleanup(client.transport.loseConnection)
            clients.append(client)
        # The first answer goes the whole way (and makes it known at once).
        await clients[0].ask()
        registered = []
        addWriter = reactor.addWriter

        def counting(writer):
            if isinstance(writer, tcp.Server):
                registered.append(writer)
            return addWriter(writer)

        self.patch(reactor, "addWriter", counting)
        before = quick.answered
        for _ in range(5):
            answers = await defer.gatherResults([client.ask() for client in clients])
            for answer in answers:
                self.assertTrue(answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer[:80])
        self.assertEqual(quick.answered - before, 15)
        self.assertEqual(registered, [])

    async def test_drainedInTheSameTurn(self):
        """
        A shutdown that closes the idle connections in the turn that made a
        quick answer (before it went out) still sends it whole, then closes.
        """
        from twisted.internet import defer, protocol, reactor

        from tests.helpers import outlookVFB, startServer

        server = await startServer(self)
        server.store.write(("bsmith.vfb",), outlookVFB())
        site = server.service.getServiceNamed("http").factory
        quick = site.quickLookups
        request = b"GET /calendar/bsmith.vfb HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

        class Client(protocol.Protocol):
            def __init__(self):
                self.received = b""
                self.answered = defer.Deferred()
                self.closed = defer.Deferred()

            def dataReceived(self, data):
                self.received += data
                if self.received.endswith(b"END:VCALENDAR\r\n") and not self.answered.called:
                    self.answered.callback(self.received)

            def connectionLost(self, reason):
                self.closed.callback(None)

        first = Client()
        await protocol.ClientCreator(reactor, lambda: first).connectTCP("127.0.0.1", server.port)
        first.transport.write(request)
        await first.answered  # the whole way: the answer is then known at once
        schedule = quick.sendAtTurnEnd

        def drainingToo(connection):
            schedule(connection)
            site.drain()

        self.patch(quick, "sendAtTurnEnd", drainingToo)
        first.received, first.answered = b"", defer.Deferred()
        before = quick.answered
        first.transport.write(request)
        answer = await first.answered
        self.assertEqual(quick.answered, before + 1)
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer[:80])
        await first.closed
