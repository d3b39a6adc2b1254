"""
The web site: the resource tree and a request class that bounds bodies.

C{/pub/calendar/} is the publishing tree (Basic auth, WebDAV), C{/calendar/}
the anonymous lookup URLs; both are views of one store.
"""

from typing import Dict, Optional

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import http, server
from twisted.web.server import NOT_DONE_YET
from twisted.web.resource import Resource
from twisted.web.template import renderElement

from fbtwist import __version__
from fbtwist.httpauth import BasicAuthGuard
from fbtwist.logs import accessFields, logAccess, rejectionReasonForStatus
from fbtwist.lookup import LookupResource, LookupSettings, guardedLookup
from fbtwist.page import RootElement, securityHeaders
from fbtwist.webresponse import writeError

#: Access events are logged under this namespace (see L{fbtwist.logs}).
_accessLog = Logger(namespace="fbtwist.access")

SERVER_HEADER = b"fbtwist/" + __version__.encode("ascii")


class BoundedRequest(server.Request):
    """
    A request whose body may not exceed the site's C{maxUploadSize}.

    Twisted reads a whole body before any resource (or authentication)
    runs, and answers C{Expect: 100-continue} by itself; here an oversized
    body is refused with 413 as soon as its size is known (from
    C{Content-Length}, or while chunks arrive) and the connection is closed
    without reading the rest.
    """

    log = Logger()
    _refused = False

    def __init__(self, channel, *args, **kwargs):
        super().__init__(channel, *args, **kwargs)
        site = getattr(channel, "site", None)
        self.started = site.reactor.seconds() if site is not None else 0.0
        self._trackedBy = site
        if site is not None:
            site.requestArrived(self)

    # The site tracks requests in flight until they are answered or their
    # connection is lost (what notifyFinish tells, without a Deferred per
    # request).

    def finish(self):
        try:
            return super().finish()
        finally:
            self._left()

    def connectionLost(self, reason):
        try:
            return super().connectionLost(reason)
        finally:
            self._left()

    def _left(self) -> None:
        if self._trackedBy is not None:
            self._trackedBy.requestLeft(self)
            self._trackedBy = None

    def _limit(self) -> int:
        return self.channel.site.maxUploadSize

    def gotLength(self, length):
        if length is not None and length > self._limit():
            # No "100 Continue" for a body we will not read.
            self.requestHeaders.removeHeader(b"Expect")
            self._refuse()
            return
        super().gotLength(length)

    def handleContentChunk(self, data):
        if self._refused:
            return
        if self.content.tell() + len(data) > self._limit():
            self._refuse()
            return
        super().handleContentChunk(data)

    def requestReceived(self, command, path, version):
        if self._refused:
            # The rest of the body was already in the buffer being parsed.
            return
        super().requestReceived(command, path, version)

    def _refuse(self) -> None:
        self._refused = True
        limit = self._limit()
        self.log.info(
            "refused an upload larger than {limit} bytes from {peer}",
            limit=limit, peer=str(self.channel.transport.getPeer()), reason="too large",
        )
        body = b"The body is larger than this server accepts (%d bytes).\n" % limit
        self.channel.transport.write(
            b"HTTP/1.1 413 Payload Too Large\r\n"
            b"Server: " + SERVER_HEADER + b"\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: %d\r\n"
            b"Connection: close\r\n\r\n" % len(body) + body
        )
        # The request line was parsed, but requestReceived will never run:
        # take what the access line needs from the channel.
        self.method, self.uri = requestLine(self)
        self.path = self.uri
        self.clientproto = getattr(self.channel, "_version", None) or b"-"
        self.code = http.REQUEST_ENTITY_TOO_LARGE
        self.sentLength = len(body)
        site = getattr(self.channel, "site", None)
        if site is not None:
            site.log(self)
        self.channel.loseConnection()



def requestLine(request):
    """
    A request's method and URI, also while its body is still arriving
    (Twisted sets them on the request only once the body is whole).
    """
    if request.method != http.Request.method:
        # Set by requestReceived (the class default is a placeholder).
        return request.method, request.uri
    channel = request.channel
    return getattr(channel, "_command", None) or b"-", getattr(channel, "_path", None) or b"-"


class FreeBusySite(server.Site):
    """
    @ivar maxUploadSize: The largest request body accepted, in bytes.
    @ivar inFlight: The requests begun and not yet answered (or dropped),
        their bodies possibly still arriving.
    """

    requestFactory = BoundedRequest
    _log = Logger()

    def __init__(self, resource, maxUploadSize: int, **kwargs):
        super().__init__(resource, **kwargs)
        self.maxUploadSize = maxUploadSize
        self.inFlight = set()
        #: Open connections: the channel's protocol to its transport.
        self.connections = {}
        self._draining = False
        self._drained = []

    def buildProtocol(self, addr):
        protocol = super().buildProtocol(addr)
        if protocol is None:
            return None
        # Twisted's HTTP channel wrapper has no transport attribute of its
        # own: the transport is recorded as the connection is made.
        made, lost = protocol.makeConnection, protocol.connectionLost

        def makeConnection(transport):
            self.connections[protocol] = transport
            made(transport)

        def connectionLost(reason):
            try:
                lost(reason)
            finally:
                self._connectionLost(protocol)

        protocol.makeConnection, protocol.connectionLost = makeConnection, connectionLost
        return protocol

    def requestArrived(self, request) -> None:
        """
        Track C{request} until it is answered or its connection is lost
        (L{requestLeft}).
        """
        self.inFlight.add(request)

    def requestLeft(self, request) -> None:
        self.inFlight.discard(request)
        if self._draining:
            self._closeIdleConnections()

    def _connectionLost(self, protocol) -> None:
        self.connections.pop(protocol, None)
        if self._draining and not self.connections:
            waiting, self._drained = self._drained, []
            for d in waiting:
                d.callback(None)

    def _closeIdleConnections(self) -> None:
        # Closing lets the transport send what it holds (a response just
        # finished) before the connection goes.
        busy = {request.channel.transport for request in self.inFlight}
        for transport in list(self.connections.values()):
            if transport not in busy:
                transport.loseConnection()

    def drain(self) -> defer.Deferred:
        """
        A shutdown hook (L{fbtwist.shutdown}): closes idle connections at
        once and each busy one when its request is answered, and fires when
        all are closed.  Cancelling it aborts the connections left; their
        uploads are dropped before anything is written to the tree.
        """
        self._draining = True
        if self.inFlight:
            self._log.info("shutdown: waiting for {count} requests in flight", count=len(self.inFlight))
        self._closeIdleConnections()
        if not self.connections:
            return defer.succeed(None)

        def abort(d):
            self._drained.remove(d)
            for request in list(self.inFlight):
                method, uri = requestLine(request)
                self._log.warn(
                    "shutdown: dropping {method} {uri} from {peer}",
                    method=method.decode("latin-1"), uri=uri.decode("latin-1"),
                    peer=getattr(request.getClientAddress(), "host", "-"),
                )
            for transport in list(self.connections.values()):
                transport.abortConnection()

        d = defer.Deferred(abort)
        self._drained.append(d)
        return d

    def disconnectAll(self) -> defer.Deferred:
        """
        Close every connection once its request is answered (what tests do
        after each run); see L{drain}.
        """
        return self.drain()

    def log(self, request) -> None:
        """
        One access event per request (L{fbtwist.logs}), and a
        C{publish-rejected} event for a publish refused before fbtwist's
        PUT code ran (no or wrong credentials, too large).
        """
        logAccess(_accessLog, accessFields(request, getattr(request, "started", 0.0), self.reactor.seconds()))
        if request.method == b"PUT":
            reason = rejectionReasonForStatus(request.code)
            path = _publishPath(request.uri)
            if reason is not None and path is not None:
                self._log.info(
                    "publish of {path} refused over HTTP: {reason}",
                    fbEvent="publish-rejected", uid=None, protocol="http", path=path, reason=reason,
                )

    def getResourceFor(self, request):
        # Called by Request.process right after it set Twisted's own header.
        request.setHeader(b"Server", SERVER_HEADER)
        return super().getResourceFor(request)


class ReadOnlyFolder(Resource):
    """
    A fixed folder of the URL space (C{/pub/}): other methods than GET and
    HEAD are answered 405 with C{Allow}, not Twisted's 501 for methods it
    does not know.
    """

    def render(self, request):
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"Allow", b"GET, HEAD")
            writeError(request, http.NOT_ALLOWED, "this is a read-only folder")
            return NOT_DONE_YET
        return super().render(request)

    def render_GET(self, request):
        request.setResponseCode(http.NOT_FOUND)
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        return b"Nothing here: publish under /pub/calendar/.\n"


class RootResource(ReadOnlyFolder):
    """
    C{/}: a small HTML page saying what this server is, linking the page
    people read and the set-up page (L{fbtwist.page.RootElement}).
    """

    def render_GET(self, request):
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        securityHeaders(request)
        return renderElement(request, RootElement(setup=b"setup" in self.children))

    def getChild(self, path, request):
        if path == b"":
            return self
        return super().getChild(path, request)


#: Where the publishing tree is on the site.
PUBLISH_PREFIX = b"/pub/calendar/"


def _publishPath(uri: bytes) -> Optional[str]:
    """
    The store path (C{/}-joined) that a URI in the publishing tree names,
    or C{None} for other URIs.
    """
    from urllib.parse import unquote_to_bytes

    path = (uri or b"").split(b"?", 1)[0]
    if not path.startswith(PUBLISH_PREFIX):
        return None
    return unquote_to_bytes(path[len(PUBLISH_PREFIX):]).decode("utf-8", "replace")


def makeSite(portal, directory, store, maxUploadSize: int, realmName: str = "fbtwist free/busy",
             lookupSettings: LookupSettings = LookupSettings(), pages: Optional[Dict[bytes, Resource]] = None,
             reactor=None) -> FreeBusySite:
    """
    Build the web site over one portal and one store.

    @param lookupSettings: How C{/calendar/} behaves (behind Basic
        authentication when its C{auth} is set).
    @param pages: More top-level resources by name (C{/metrics},
        C{/healthz}, C{/setup}, ...).
    """
    root = RootResource()
    pub = ReadOnlyFolder()
    root.putChild(b"pub", pub)
    pub.putChild(
        b"calendar",
        BasicAuthGuard(portal, realmName, anonymousAllowed=lambda request: request.method == b"OPTIONS"),
    )
    lookup = LookupResource(directory, store, lookupSettings, reactor=reactor)
    if lookupSettings.auth:
        lookup = guardedLookup(portal, realmName, lookup, lookupSettings.trustedNetworks)
    root.putChild(b"calendar", lookup)
    for name, resource in (pages or {}).items():
        root.putChild(name, resource)
    site = FreeBusySite(root, maxUploadSize, reactor=reactor)
    site.displayTracebacks = False
    return site
