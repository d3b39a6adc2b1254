"""
L{fbtwist.compat.twisted.writeNow} on real TCP connections over loopback
(the adapter's contract with Twisted's transport; the other transports are
in tests/unit/test_compat.py).
"""

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.trial import unittest

from fbtwist.compat import twisted as twistedAdapter


class _Receiver(Protocol):
    """
    Receives what the other end sends: C{arrived} fires once C{expected}
    bytes have come.
    """

    def __init__(self):
        self.received = b""
        self.arrived = Deferred()
        self.expected = 0

    def dataReceived(self, data):
        self.received += data
        if len(self.received) >= self.expected and not self.arrived.called:
            self.arrived.callback(self.received)


class _Asker(Protocol):
    """
    Sends a request and collects its answer, which ends with C{end}.
    """

    def __init__(self, end: bytes):
        self.end = end
        self.received = b""
        self.waiting = None

    def dataReceived(self, data):
        self.received += data
        if self.received.endswith(self.end) and self.waiting is not None:
            waiting, self.waiting = self.waiting, None
            waiting.callback(self.received)

    def ask(self, request: bytes) -> Deferred:
        self.received = b""
        self.waiting = Deferred()
        self.transport.write(request)
        return self.waiting


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

        port = reactor.listenTCP(0, protocol.Factory.forProtocol(Server), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client = _Receiver()
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


class ClientWriteNowTests(WriteNowTests):
    """
    L{twistedAdapter.writeNow} sends at once from the connecting end too (a
    request to the directory): the same tests, the roles swapped.
    """

    async def connected(self):
        from twisted.internet import protocol, reactor

        receiver = _Receiver()
        port = reactor.listenTCP(0, protocol.Factory.forProtocol(lambda: receiver), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        sender = await protocol.ClientCreator(reactor, protocol.Protocol).connectTCP(
            "127.0.0.1", port.getHost().port)
        self.addCleanup(sender.transport.loseConnection)
        from twisted.internet import tcp

        self.assertIs(type(sender.transport), tcp.Client)
        return sender.transport, receiver


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

        clients = []
        for _ in range(3):
            client = _Asker(b"END:VCALENDAR\r\n")
            await protocol.ClientCreator(reactor, lambda client=client: client).connectTCP("127.0.0.1", server.port)
            self.addCleanup(client.transport.loseConnection)
            clients.append(client)
        # The first answer goes the whole way (and makes it known at once).
        await clients[0].ask(request)
        registered = []
        addWriter = reactor.addWriter

        def counting(writer):
            if isinstance(writer, tcp.Server):
                registered.append(writer)
            return addWriter(writer)

        self.patch(reactor, "addWriter", counting)
        before = quick.answered
        for _ in range(5):
            answers = await defer.gatherResults([client.ask(request) for client in clients])
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


class QuickPublishesOverTCPTests(unittest.TestCase):
    """
    A whole fbtwist on loopback answers quick publishes, committed by its
    commit process, without registering the connections' sockets for
    writing.
    """

    async def test_noWriteRegistration(self):
        """
        Publishes of their own files by three users on kept-alive
        connections are answered 201 then 204, each file holds what was
        sent last, the commit process committed them, and no server socket
        was registered for writing.
        """
        import base64

        from twisted.internet import defer, protocol, reactor, tcp

        from tests.helpers import PASSWORDS, outlookVFB, startServer

        server = await startServer(self)
        committer = server.store.committer
        self.assertIsNotNone(committer)

        class Client(_Asker):
            def __init__(self, login):
                super().__init__(b"\r\n\r\n")
                self.login = login

            def publish(self, body):
                credentials = base64.b64encode(f"{self.login}:{PASSWORDS[self.login]}".encode("ascii"))
                return self.ask(
                    b"PUT /pub/calendar/%s.vfb HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic %s\r\n"
                    b"Content-Type: text/calendar\r\nContent-Length: %d\r\n\r\n%s"
                    % (self.login.encode("ascii"), credentials, len(body), body))

        clients = []
        for login in ("alice", "bsmith", "carol"):
            client = Client(login)
            await protocol.ClientCreator(reactor, lambda client=client: client).connectTCP("127.0.0.1", server.port)
            self.addCleanup(client.transport.loseConnection)
            clients.append(client)
        registered = []
        addWriter = reactor.addWriter

        def counting(writer):
            # The HTTP connections' (the embedded demo directory answers
            # the binds through the same reactor, queued as ldaptor does).
            if isinstance(writer, tcp.Server) and writer.getHost().port == server.port:
                registered.append(writer)
            return addWriter(writer)

        self.patch(reactor, "addWriter", counting)
        for round, status in enumerate((b"201", b"204", b"204")):
            answers = await defer.gatherResults(
                [client.publish(outlookVFB(f"{client.login}-{round}@example.com")) for client in clients])
            for answer in answers:
                self.assertTrue(answer.startswith(b"HTTP/1.1 " + status), answer[:80])
        for client in clients:
            self.assertEqual(server.store.read((f"{client.login}.vfb",)), outlookVFB(f"{client.login}-2@example.com"))
        self.assertEqual(committer.committed, 9)
        self.assertEqual(server.service.metrics.registry.get_sample_value(
            "fbtwist_commit_process_publishes_total", {"outcome": "committed"}), 9)
        self.assertEqual(registered, [])
