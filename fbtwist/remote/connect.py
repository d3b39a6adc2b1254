"""
How a fetch connects: the name is resolved here, every address checked by
the L{AddressPolicy}, and the connection made to a checked address, never
to the name.

Letting the connection resolve the name again (as Twisted's
C{HostnameEndpoint} would) opens a window between check and use: a hostile
DNS server can answer the check with a public address and the connection
with 127.0.0.1 (DNS rebinding).  So the address is pinned: the TCP
connection goes to the checked IP, while the request still carries the
original name in its C{Host} header (Twisted's agent takes it from the URL)
and TLS still sends it as SNI and verifies the certificate against it
(L{FailClosedTLSPolicy}).

Every request of a fetch, each redirect included, connects through
L{PinnedEndpointFactory}, so a redirect to an internal address is refused
like a first request to one.

Each connection also stops after receiving C{maxBytes}: Twisted's HTTP
client bounds the length of a header line but not their number, so without
this a server could fill memory with headers before any body limit applies.
"""

from collections import OrderedDict
from typing import List

from twisted.internet import defer
from twisted.internet.address import IPv4Address as TwistedIPv4
from twisted.internet.address import IPv6Address as TwistedIPv6
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.error import ConnectError
from twisted.internet.interfaces import IResolutionReceiver, IStreamClientEndpoint
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python.failure import Failure
from twisted.web.iweb import IAgentEndpointFactory, IPolicyForHTTPS
from zope.interface import implementer

from fbtwist.remote.policy import Address, AddressPolicy, parseAddress
from fbtwist.tlsclient import VerifyingClientTLS


class NameNotResolved(Exception):
    """
    A host name resolved to no address.
    """


class TooMuchData(Exception):
    """
    A connection received more than its limit; it was closed.
    """


class _ByteLimit(ProtocolWrapper):
    """
    Passes at most the factory's C{limit} bytes on, then aborts the
    connection, which the protocol above sees lost with L{TooMuchData}.
    """

    received = 0
    exceeded = False

    def dataReceived(self, data: bytes):
        if self.exceeded:
            return
        self.received += len(data)
        if self.received > self.factory.limit:
            self.exceeded = True
            self.transport.abortConnection()
            return
        super().dataReceived(data)

    def connectionLost(self, reason):
        if self.exceeded:
            reason = Failure(TooMuchData(f"more than {self.factory.limit} bytes arrived"))
        super().connectionLost(reason)


class _ByteLimitFactory(WrappingFactory):
    protocol = _ByteLimit

    def __init__(self, wrappedFactory, limit: int):
        super().__init__(wrappedFactory)
        self.limit = limit


@implementer(IPolicyForHTTPS)
class FailClosedTLSPolicy:
    """
    The HTTPS policy of remote fetches: the certificate chain must verify
    against C{trustRoot} (the platform's CAs when C{None}) and its
    subjectAltName must name the host; any doubt, a certificate without a
    subjectAltName included, refuses it (see L{VerifyingClientTLS}).

    The TLS options of the most recently used hosts are kept, so that a
    fetch does not build a new OpenSSL context every time.
    """

    def __init__(self, trustRoot=None, remember: int = 64):
        self._trustRoot = trustRoot
        self._remember = remember
        self._creators: "OrderedDict[str, VerifyingClientTLS]" = OrderedDict()

    def creatorForNetloc(self, hostname: bytes, port: int) -> VerifyingClientTLS:
        """
        @return: Client TLS options for C{hostname} (the URL's host).
        """
        name = hostname.decode("ascii")
        creator = self._creators.pop(name, None) or VerifyingClientTLS(name, trustRoot=self._trustRoot)
        self._creators[name] = creator
        while len(self._creators) > self._remember:
            self._creators.popitem(last=False)
        return creator


def resolve(resolver, host: str, port: int) -> defer.Deferred:
    """
    Resolve C{host} with a L{twisted.internet.interfaces.IHostnameResolver}.

    @return: A L{twisted.internet.defer.Deferred} firing with the list of addresses (IPv4 and
        IPv6, in the resolver's order), empty when the name does not resolve.
    """
    addresses: List[Address] = []
    # The system resolver runs in a thread and cannot be stopped: a
    # cancelled resolution's answer is dropped when it arrives.
    d = defer.Deferred(lambda _: None)

    @implementer(IResolutionReceiver)
    class Receiver:
        def resolutionBegan(self, resolution):
            pass

        def addressResolved(self, address):
            parsed = parseAddress(address.host)
            if parsed is not None:
                addresses.append(parsed)

        def resolutionComplete(self):
            if not d.called:
                d.callback(addresses)

    resolver.resolveHostName(Receiver(), host, port, addressTypes=[TwistedIPv4, TwistedIPv6],
                             transportSemantics="TCP")
    return d


@implementer(IStreamClientEndpoint)
class PinnedEndpoint:
    """
    Connects to C{host}: resolves it (unless it is an address), checks every
    address with C{policy}, then tries the addresses in turn, connecting to
    the address itself.  The connection is closed after C{maxBytes}
    received.

    @param tlsCreator: Client TLS options for C{host}, or C{None} for plain
        TCP.
    """

    def __init__(self, reactor, resolver, policy: AddressPolicy, host: str, port: int, tlsCreator=None,
                 timeout: float = 2.0, maxBytes: int = 2 << 20):
        self._maxBytes = maxBytes
        self._reactor = reactor
        self._resolver = resolver
        self._policy = policy
        self._host = host
        self._port = port
        self._tlsCreator = tlsCreator
        self._timeout = timeout

    def connect(self, protocolFactory) -> defer.Deferred:
        """
        @return: A L{twisted.internet.defer.Deferred} firing with the connected protocol, or
            failing with L{ForbiddenAddress}, L{NameNotResolved} or the last
            connection error.
        """
        return defer.Deferred.fromCoroutine(self._connect(protocolFactory))

    async def _connect(self, protocolFactory):
        literal = parseAddress(self._host)
        if literal is not None:
            addresses = [literal]
        else:
            addresses = await resolve(self._resolver, self._host, self._port)
            if not addresses:
                raise NameNotResolved(f"{self._host} does not resolve")
        self._policy.checkAll(self._host, addresses)
        error = None
        for address in addresses:
            endpointClass = TCP4ClientEndpoint if address.version == 4 else TCP6ClientEndpoint
            endpoint = endpointClass(self._reactor, str(address), self._port, timeout=self._timeout)
            if self._tlsCreator is not None:
                endpoint = wrapClientTLS(self._tlsCreator, endpoint)
            try:
                limited = await endpoint.connect(_ByteLimitFactory(protocolFactory, self._maxBytes))
            except ConnectError as e:
                error = e
            else:
                return limited.wrappedProtocol
        raise error


@implementer(IAgentEndpointFactory)
class PinnedEndpointFactory:
    """
    Gives Twisted's agent a L{PinnedEndpoint} for each request, HTTPS ones
    wrapped in TLS from C{tlsPolicy}.
    """

    def __init__(self, reactor, resolver, policy: AddressPolicy, tlsPolicy: IPolicyForHTTPS,
                 timeout: float = 2.0, maxBytes: int = 2 << 20):
        self._maxBytes = maxBytes
        self._reactor = reactor
        self._resolver = resolver
        self._policy = policy
        self._tlsPolicy = tlsPolicy
        self._timeout = timeout

    def endpointForURI(self, uri) -> PinnedEndpoint:
        """
        @param uri: The request's L{twisted.web.client.URI}.
        """
        host = uri.host.decode("ascii")
        tlsCreator = self._tlsPolicy.creatorForNetloc(uri.host, uri.port) if uri.scheme == b"https" else None
        return PinnedEndpoint(self._reactor, self._resolver, self._policy, host, uri.port, tlsCreator,
                              self._timeout, self._maxBytes)
