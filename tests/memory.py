"""
The whole of fbtwist in memory, for the fast tier of the tests.

L{MemoryServer} builds the service graph with the real L{makeService} on a
L{MemoryNetwork}: a L{MemoryReactorClock} whose listeners and outgoing TCP
connections are joined by L{twisted.test.iosim} instead of sockets.  The
demo directory (ldaptor's in-memory LDAP server) listens on it, the
directory connects to it, the HTTP site listens on it and a treq client
(L{MemoryServer.client}) talks to the site through it.  The reactor has no
thread pool, so the store and the busy-time expansion run their blocking
work in the calling thread.

Time is simulated: the clock starts at the wall clock's time, and when
nothing more can move on the wire before what a test waits for has
happened, it jumps to the next timed call (a login failure's delay, a
timeout, a retry) as a real server would reach it.  No socket is opened
and the global reactor is never used.
"""

import io
import os
import re
import tempfile
import time
from collections.abc import Coroutine
from itertools import count

from twisted.internet import defer, interfaces
from twisted.internet.address import IPv4Address
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import Cooperator
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath
from twisted.test import iosim
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

import tests.helpers  # noqa: F401 (ldaptor's import-time warnings)
from fbtwist.tap import makeService
from tests.helpers import serviceOptions

#: The address every in-memory client connects from.
CLIENT_HOST = "127.0.0.1"

#: How far the simulated clock may jump while waiting for one thing.
PATIENCE = 3600.0


class Stuck(AssertionError):
    """
    What a test waited for cannot happen: nothing moves on the wire and no
    timed call is left (or the wait would exceed L{PATIENCE}).
    """


@implementer(interfaces.IListeningPort)
class _Port:
    """
    A listener of the L{MemoryNetwork}.
    """

    def __init__(self, network, factory, address):
        self.network = network
        self.factory = factory
        self.address = address
        self.listening = True

    def startListening(self):
        pass

    def stopListening(self):
        self.listening = False
        return defer.succeed(None)

    def getHost(self):
        return self.address


class MemoryNetwork(MemoryReactorClock):
    """
    A L{MemoryReactorClock} on which a TCP connection to one of its own
    listeners succeeds and carries bytes (through an L{iosim.IOPump}) when
    the network is L{settled <settle>}; a connection to a port nobody
    listens on is refused.
    """

    def __init__(self):
        super().__init__()
        self.advance(time.time())
        self._ports = count(20000)
        self.listeners = {}
        self.pumps = []

    def listenTCP(self, port, factory, backlog=50, interface=""):
        super().listenTCP(port, factory, backlog, interface)
        if port == 0:
            port = next(self._ports)
        listener = _Port(self, factory, IPv4Address("TCP", interface or "0.0.0.0", port))
        self.listeners[port] = listener
        return listener

    def _complete(self) -> bool:
        """
        Join the connections attempted since the last call to their
        listeners (or refuse them).

        @return: Whether any connection was attempted.
        """
        attempted = False
        while self.tcpClients:
            host, port, clientFactory, _timeout, _bind = self.tcpClients.pop(0)
            connector = self.connectors.pop(0)
            attempted = True
            listener = self.listeners.get(port)
            if listener is None or not listener.listening:
                from twisted.internet.error import ConnectionRefusedError

                clientFactory.clientConnectionFailed(connector, Failure(ConnectionRefusedError()))
                continue
            clientAddress = IPv4Address("TCP", CLIENT_HOST, next(self._ports))
            serverAddress = IPv4Address("TCP", host, port)
            serverProtocol = listener.factory.buildProtocol(clientAddress)
            clientProtocol = clientFactory.buildProtocol(serverAddress)
            if serverProtocol is None:
                # The listener refuses the connection (a limit): the client
                # sees it closed at once.
                serverProtocol = Protocol()
                serverTransport = iosim.FakeTransport(serverProtocol, True, serverAddress, clientAddress)
                serverTransport.loseConnection()
            else:
                serverTransport = iosim.FakeTransport(serverProtocol, True, serverAddress, clientAddress)
            clientTransport = iosim.FakeTransport(clientProtocol, False, clientAddress, serverAddress)
            self.pumps.append(iosim.connect(serverProtocol, serverTransport, clientProtocol, clientTransport,
                                            greet=False, clock=self))
        return attempted

    def _move(self) -> bool:
        """
        One round: new connections joined, bytes and closes carried once on
        every open connection, the calls due now run.

        @return: Whether anything happened.
        """
        moved = self._complete()
        for pump in list(self.pumps):
            if pump.pump():
                moved = True
            elif pump.clientIO.disconnected and pump.serverIO.disconnected:
                self.pumps.remove(pump)
        return moved

    def settle(self, waitingFor: defer.Deferred = None) -> None:
        """
        Carry every byte and close until nothing more moves; while
        C{waitingFor} has not fired by then, jump the clock to the next
        timed call and go on.

        @raise Stuck: When C{waitingFor} cannot fire.
        """
        fired = []
        if waitingFor is not None:
            waitingFor.addBoth(lambda result: fired.append(True) or result)
        deadline = self.seconds() + PATIENCE
        while True:
            while self._move():
                pass
            if waitingFor is None or fired:
                return
            calls = [call.getTime() for call in self.getDelayedCalls()]
            if not calls or min(calls) > deadline:
                raise Stuck(f"{waitingFor!r} cannot fire: nothing moves and no timed call is due")
            self.advance(max(0.0, min(calls) - self.seconds()))

    def run(self, d: defer.Deferred) -> defer.Deferred:
        """
        L{settle} until C{d} has fired.

        @return: C{d}, fired (so that a test can C{await} it).
        """
        self.settle(d)
        return d


class Settled:
    """
    C{target} seen from a test: each of its methods returns its Deferred
    (or coroutine's) already fired, the network settled until it has.
    """

    def __init__(self, target, network: MemoryNetwork):
        self._target = target
        self._network = network

    def __getattr__(self, name):
        attribute = getattr(self._target, name)
        if not callable(attribute):
            return attribute

        def settled(*args, **kwargs):
            result = attribute(*args, **kwargs)
            if isinstance(result, Coroutine):
                result = defer.Deferred.fromCoroutine(result)
            if isinstance(result, defer.Deferred):
                return self._network.run(result)
            return result

        return settled


class _Endpoints:
    """
    An agent's endpoints: plain TCP over the L{MemoryNetwork}.
    """

    def __init__(self, network):
        self.network = network

    def endpointForURI(self, uri):
        return TCP4ClientEndpoint(self.network, uri.host.decode("ascii"), uri.port)


def memoryClient(network: MemoryNetwork, persistent: bool = True):
    """
    A treq client over C{network} whose every request returns a Deferred
    already fired: the network is settled until the answer (and its whole
    body) has arrived.
    """
    import treq.client

    class SettlingClient(treq.client.HTTPClient):
        def request(self, method, url, **kwargs):
            return network.run(super().request(method, url, **kwargs))

    # Bodies are produced by a cooperator on the network's clock, not the
    # global one (which would run on the global reactor).
    cooperator = Cooperator(scheduler=lambda work: network.callLater(0, work))

    def bodyProducer(data):
        if IBodyProducer.providedBy(data):
            return data
        if isinstance(data, bytes):
            data = io.BytesIO(data)
        return FileBodyProducer(data, cooperator=cooperator)

    agent = Agent.usingEndpointFactory(network, _Endpoints(network),
                                       pool=HTTPConnectionPool(network, persistent=persistent))
    return SettlingClient(agent, data_to_body_producer=bodyProducer)


class _Collect(Protocol):
    """
    Sends bytes as they are and keeps all that comes back.
    """

    def __init__(self, data: bytes):
        self.data = data
        self.received = []
        self.done = defer.Deferred()

    def connectionMade(self):
        self.transport.write(self.data)

    def dataReceived(self, chunk):
        self.received.append(chunk)

    def connectionLost(self, reason):
        self.done.callback(b"".join(self.received))


class MemoryServer:
    """
    A whole fbtwist (L{makeService}) on a L{MemoryNetwork}, stopped by the
    test's cleanup; the in-memory twin of L{tests.helpers.RunningServer}
    (same C{store}, C{directory}, C{service}, C{port} and C{url}).
    """

    def __init__(self, testCase, *args: str):
        self.testCase = testCase
        self.root = FilePath(testCase.mktemp())
        self.args = ["--http", "tcp:0:interface=127.0.0.1", "--ftp", "none", "--root", self.root.path, *args]
        self.network = self.reactor = MemoryNetwork()

    def start(self) -> "MemoryServer":
        self.service = makeService(serviceOptions(*self.args), reactor=self.network)
        self.service.startService()
        self.testCase.addCleanup(self.stop)
        self.network.settle()
        self.port = self.portOf("http")
        self.store = self.service.store
        self.directory = self.service.directory
        return self

    def stop(self) -> defer.Deferred:
        """
        Stop the service, as the test's cleanup does (stopping twice is
        harmless).

        @return: A Deferred, already fired.
        """
        if not self.service.running:
            return defer.succeed(None)
        self.directory.close()
        stopped = self.network.run(defer.maybeDeferred(self.service.stopService))
        self.network.settle()
        return stopped

    def portOf(self, name: str) -> int:
        """
        The port the listener service C{name} (C{http}, C{metrics}, ...)
        listens on.
        """
        factory = self.service.getServiceNamed(name).factory
        return next(port for port, listener in self.network.listeners.items() if listener.factory is factory)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def client(self, persistent: bool = True):
        """
        A treq client of this server (see L{memoryClient}).
        """
        return memoryClient(self.network, persistent)

    def connect(self, protocol: Protocol) -> Protocol:
        """
        Connect C{protocol} to the server over a new connection, and settle
        the network until it is connected.

        @return: C{protocol}, connected (its C{transport} set).
        """
        connected = connectProtocol(TCP4ClientEndpoint(self.network, "127.0.0.1", self.port), protocol)
        return self.testCase.successResultOf(self.network.run(connected))

    def rawRequest(self, data: bytes) -> defer.Deferred:
        """
        Send C{data} as it is over a new connection.

        @return: A Deferred, already fired, with all that came back until
            the server closed the connection.
        """
        collect = _Collect(data)
        connected = connectProtocol(TCP4ClientEndpoint(self.network, "127.0.0.1", self.port), collect)
        connected.addErrback(collect.done.errback)
        return self.network.run(collect.done)


class ScratchOwner:
    """
    What L{MemoryServer} asks of a test case (a place, a cleanup), for the
    tools that run a whole site in memory outside a test (the cost scripts
    under C{bench/}): a new temporary directory, removed by the caller
    (C{directory}); cleanups are not run.
    """

    def __init__(self, prefix: str = "fbtwist-"):
        self.directory = tempfile.mkdtemp(prefix=prefix)

    def mktemp(self) -> str:
        return os.path.join(self.directory, "tree")

    def addCleanup(self, f, *args) -> None:
        pass


class AnswerClient(Protocol):
    """
    Sends one request at a time over its connection (the cost scripts under
    C{bench/}): L{send}'s Deferred fires with the answer's status line once
    the whole answer is in (by its C{Content-Length}, or the end of a
    chunked body).

    @ivar received: The pieces of the answer so far.
    @ivar size: Its bytes so far.
    """

    def send(self, requestBytes: bytes) -> defer.Deferred:
        self.received, self.size, self._head, self._whole = [], 0, None, None
        self.answered = defer.Deferred()
        self.transport.write(requestBytes)
        return self.answered

    def dataReceived(self, data: bytes) -> None:
        self.received.append(data)
        self.size += len(data)
        if self._head is None:
            head, found, _ = b"".join(self.received).partition(b"\r\n\r\n")
            if not found:
                return
            self._head = head
            length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            if length is not None:
                self._whole = len(head) + 4 + int(length.group(1))
            elif not re.search(rb"(?i)\r\ntransfer-encoding: *chunked", head):
                self._whole = len(head) + 4
        if self._whole is not None:
            done = self.size >= self._whole
        else:
            done = b"".join(self.received[-2:]).endswith(b"\r\n0\r\n\r\n")
        if done:
            self.answered.callback(self._head.split(b"\r\n", 1)[0])


def startMemoryServer(testCase, *args: str) -> MemoryServer:
    """
    A started L{MemoryServer} with C{makeService}'s options C{args}.
    """
    return MemoryServer(testCase, *args).start()
