"""
The web site: the resource tree and a request class that bounds bodies.

C{/pub/calendar/} is the publishing tree (Basic auth, WebDAV), C{/calendar/}
the anonymous lookup URLs; both are views of one store.
"""

import tempfile
from typing import Dict, Optional, Tuple
from urllib.parse import unquote_to_bytes

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import http, server
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from twisted.web.template import renderElement

from fbtwist.budget import ConnectionBudget
from fbtwist.compat.twisted import channelRequestLine
from fbtwist.errors import descriptorError
from fbtwist.logs import logAccess, rejectionReasonForStatus
from fbtwist.web.accesslog import accessFields
from fbtwist.web.auth import BasicAuthGuard
from fbtwist.web.caldav.resource import CalDAVService, CalDAVSettings, guardedCalDAV, wellKnown
from fbtwist.web.connection import SERVER_HEADER, ConnectionLimits, GuardedConnection, earlyAnswer
from fbtwist.web.fastlookup import QuickLookups
from fbtwist.web.fastpublish import QuickPublishes
from fbtwist.web.lookup import LookupResource, LookupSettings, guardedLookup
from fbtwist.web.page import RootElement, securityHeaders
from fbtwist.web.responses import HTTPError, httpErrorFor, isGone, writeNotAllowed

#: Access events are logged under this namespace (see L{fbtwist.logs}).
_accessLog = Logger(namespace="fbtwist.access")


class BoundedRequest(server.Request):
    """
    A request whose body may not exceed the site's C{maxUploadSize}, and
    whose publisher is authenticated before its body is read.

    Twisted reads a whole body before any resource (or authentication)
    runs, and answers C{Expect: 100-continue} by itself.  Here, as soon as
    the headers are in:

      - an oversized body is refused with 413 (from C{Content-Length}, or
        while chunks arrive);
      - a body for a URL behind credentials (the site's L{guardFor}) waits,
        with the connection paused, until the credentials are checked; a
        missing or wrong login is answered at once (401, 429, 503) and the
        body never parsed; C{100 Continue} is sent only once they are good;
      - a chunked body of absurdly many tiny chunks is refused with 400.

    An early answer closes the connection without reading the rest of the
    body (L{GuardedConnection.answerAndClose}).

    @ivar avatarResource: Once the credentials are checked before the
        body, the avatar's resource (L{BasicAuthGuard} then uses it).
    """

    log = Logger()
    #: Whether the client went away before the answer was finished.
    clientGone = False
    _refused = False
    _chunked = False
    _chunks = 0
    _expectContinue = False
    _pendingAuthentication = None
    #: Whether the connection is held while the credentials are checked.
    _holding = False
    _held = None
    avatarResource = None

    def __init__(self, channel, *args, **kwargs):
        super().__init__(channel, *args, **kwargs)
        site = getattr(channel, "site", None)
        self.started = site.reactor.seconds() if site is not None else 0.0
        self._trackedBy = site
        if site is not None:
            site.requestArrived(self)
        connection = self._connection()
        if connection is not None:
            connection.requestBegun(self)

    def _connection(self) -> Optional[GuardedConnection]:
        transport = getattr(self.channel, "transport", None)
        return transport if isinstance(transport, GuardedConnection) else None

    # The site tracks requests in flight until they are answered or their
    # connection is lost (what notifyFinish tells, without a Deferred per
    # request).

    def finish(self):
        connection = self._connection()
        try:
            return super().finish()
        finally:
            self._left()
            if connection is not None:
                connection.requestDone(self)

    def connectionLost(self, reason):
        self.clientGone = True
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
        try:
            super().gotLength(length)
        except OSError as e:
            error = descriptorError(e)
            if error is None:
                raise
            self.requestHeaders.removeHeader(b"Expect")
            answer = httpErrorFor(error)
            self._answerEarly(answer.code, answer.reason, answer.headers)
            return
        self._chunked = length is None
        self._length = length
        # The body's deadline starts once it may come: after the
        # credentials are checked, for a URL behind them.
        if not (length != 0 and self._authenticateFirst()):
            self._bodyMayCome()

    def _bodyMayCome(self) -> None:
        connection = self._connection()
        if connection is not None:
            connection.headersReceived(self, self._length)

    def _authenticateFirst(self) -> bool:
        """
        When the request's URL is behind credentials, check them before
        its body is read.

        @return: Whether the credentials are being checked.
        """
        site = getattr(self.channel, "site", None)
        self.method, self.uri = requestLine(self)
        guard = site.guardFor(self.uri) if site is not None else None
        if guard is None:
            return False
        expect = self.requestHeaders.getRawHeaders(b"Expect")
        if expect and expect[0].lower() == b"100-continue":
            # Twisted would send "100 Continue" on return: only once the
            # credentials are good.
            self.requestHeaders.removeHeader(b"Expect")
            # The version is known only to the channel until the body is in
            # (as for requestLine); Twisted sends 100 to HTTP/1.1 only.
            self._expectContinue = channelRequestLine(self.channel)[2] == b"HTTP/1.1"
        self._pendingAuthentication = True
        checked = guard.authenticate(self)
        known = []
        checked.addCallback(lambda resource: known.append(True) or resource)
        if not known:
            # No more is read (nor what came with the headers parsed) until
            # the directory has answered.  A login known already (the bind
            # cache, nearly every publish) reads on at once: pausing and
            # resuming the connection would cost two system calls for
            # nothing.
            self._holding = True
            connection = self._connection()
            if connection is not None:
                connection.holdBody()
            else:
                self.channel.transport.pauseProducing()
        checked.addCallbacks(self._authenticated, self._notAuthenticated).addErrback(
            lambda f: self.log.failure("answering an unauthenticated body", f)
        )
        return True

    def _authenticated(self, resource) -> None:
        self._pendingAuthentication = None
        if self._refused or isGone(self):
            return
        self.avatarResource = resource
        self._bodyMayCome()
        transport = self.channel.transport
        if self._expectContinue:
            transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if self._holding:
            self._holding = False
            connection = self._connection()
            if connection is not None:
                connection.releaseBody()
            else:
                transport.resumeProducing()
        if self._held is not None:
            held, self._held = self._held, None
            self.requestReceived(*held)

    def _notAuthenticated(self, failure) -> None:
        self._pendingAuthentication = None
        if self._refused or isGone(self):
            return
        answer = httpErrorFor(failure.value)
        if answer is None:
            self.log.failure("checking credentials before a body failed", failure)
            answer = HTTPError(http.INTERNAL_SERVER_ERROR, "internal server error")
        self._answerEarly(answer.code, answer.reason, answer.headers)

    def handleContentChunk(self, data):
        if self._refused:
            return
        size = self.content.tell() + len(data)
        if size > self._limit():
            self._refuse()
            return
        if self._chunked:
            # One call per chunk (or per read, for a chunk spread over
            # several): bounded by the body's size.
            self._chunks += 1
            if self._chunks > 64 + self.channel.site.limits.maxChunksPerKiB * size // 1024:
                self.log.info("refused a body of too many small chunks from {peer}",
                              peer=str(self.channel.transport.getPeer()), reason="tiny chunks")
                self._answerEarly(http.BAD_REQUEST, "the body is split into too many small chunks")
                return
        super().handleContentChunk(data)

    def requestReceived(self, command, path, version):
        if self._refused:
            # The rest of the body was already in the buffer being parsed.
            return
        if self._pendingAuthentication:
            # The whole body was in what was read before the pause.
            self._held = (command, path, version)
            return
        connection = self._connection()
        if connection is not None:
            connection.bodyReceived(self)
        super().requestReceived(command, path, version)

    def _refuse(self) -> None:
        limit = self._limit()
        self.log.info(
            "refused an upload larger than {limit} bytes from {peer}",
            limit=limit, peer=str(self.channel.transport.getPeer()), reason="too large",
        )
        self._answerEarly(
            http.REQUEST_ENTITY_TOO_LARGE, "The body is larger than this server accepts (%d bytes)" % limit
        )

    def _answerEarly(self, code: int, reason: str, headers=()) -> None:
        """
        Answer before the body is read (or instead of reading on), log the
        access line, and close the connection.
        """
        if self._refused:
            return
        self._refused = True
        response, self.sentLength = earlyAnswer(code, reason, headers)
        # The request line was parsed, but requestReceived will never run:
        # take what the access line needs from the channel.
        self.method, self.uri = requestLine(self)
        self.path = self.uri
        self.clientproto = channelRequestLine(self.channel)[2] or b"-"
        self.code = code
        connection = self._connection()
        if connection is not None:
            connection.answerEarly(response)
        else:
            self.channel.transport.write(response)
            self.channel.loseConnection()
        site = getattr(self.channel, "site", None)
        if site is not None:
            site.log(self)


#: What Twisted's request says its method is until it has read one (taken
#: once: each attribute of C{twisted.web.http} is looked up through its
#: module's deprecation proxy).
_PLACEHOLDER_METHOD = http.Request.method


def requestLine(request):
    """
    A request's method and URI, also while its body is still arriving
    (Twisted sets them on the request only once the body is whole).
    """
    if request.method != _PLACEHOLDER_METHOD:
        # Set by requestReceived (the class default is a placeholder).
        return request.method, request.uri
    command, path, _ = channelRequestLine(request.channel)
    return command or b"-", path or b"-"


class FreeBusySite(server.Site):
    """
    @ivar maxUploadSize: The largest request body accepted, in bytes.
    @ivar limits: The L{ConnectionLimits} every connection is held to.
    @ivar inFlight: The requests begun and not yet answered (or dropped),
        their bodies possibly still arriving.
    @ivar connections: The open connections (L{GuardedConnection}s).
    @ivar budget: The L{ConnectionBudget} its connections count against
        (shared with the FTP listener).
    """

    requestFactory = BoundedRequest
    _log = Logger()
    #: What answers the simplest anonymous lookups before Twisted's request
    #: machinery (L{fbtwist.web.fastlookup}); C{None}: every request takes
    #: the whole way.
    quickLookups = None
    #: What answers the plainest publishes before Twisted's request
    #: machinery (L{fbtwist.web.fastpublish}); C{None}: none.
    quickPublishes = None

    def __init__(self, resource, maxUploadSize: int, limits: ConnectionLimits = ConnectionLimits(),
                 budget: Optional[ConnectionBudget] = None, **kwargs):
        super().__init__(resource, **kwargs)
        self.maxUploadSize = maxUploadSize
        self.limits = limits
        self.inFlight = set()
        # Each connection is its own transport (see GuardedConnection).
        self.connections = {}
        self._perAddress: Dict[str, int] = {}
        self._overLimitLogged = set()
        self._guards: Dict[Tuple[bytes, ...], object] = {}
        self._draining = False
        self._drained = []
        # Python picks its temporary directory by creating a file there the
        # first time; out of descriptors, that fails as "no usable temporary
        # directory" instead of EMFILE.  Settle it while descriptors remain.
        tempfile.gettempdir()
        if budget is None:
            budget = ConnectionBudget(limits.connectionBudget(), clock=lambda: self.reactor.seconds())
        self.budget = budget

    def guardBodies(self, prefix: Tuple[bytes, ...], guard) -> None:
        """
        Check the credentials of requests under the path segments C{prefix}
        with C{guard} (a L{BasicAuthGuard}) before their bodies are read.
        """
        self._guards[prefix] = guard

    def guardFor(self, uri: bytes):
        """
        @return: The guard of the URL C{uri} (L{guardBodies}), or C{None}.
        """
        if not self._guards:
            return None
        path = uri.split(b"?", 1)[0]
        # As Request.process splits a path for traversal.
        segments = tuple(unquote_to_bytes(segment) for segment in path[1:].split(b"/"))
        for prefix, guard in self._guards.items():
            if segments[: len(prefix)] == prefix:
                return guard
        return None

    def buildProtocol(self, addr):
        protocol = super().buildProtocol(addr)
        if protocol is None:
            return None
        connection = GuardedConnection(self, protocol, self.limits, self.reactor)
        if not self._draining:
            connection.quick = self.quickLookups
            connection.quickPublishes = self.quickPublishes
        host = getattr(addr, "host", None)
        connection.counted = host if not self.limits.isExempt(host) else None
        if self.budget.full():
            connection.refuseWith = (
                http.SERVICE_UNAVAILABLE, b"Service Unavailable", "the server is busy", [(b"Retry-After", b"5")],
            )
        elif connection.counted is not None and self.limits.maxPerAddress:
            if self._perAddress.get(host, 0) >= self.limits.maxPerAddress:
                if host not in self._overLimitLogged:
                    self._overLimitLogged.add(host)
                    self._log.warn(
                        "refusing connections from {peer}: {limit} are open (http-max-connections-per-address)",
                        peer=host, limit=self.limits.maxPerAddress,
                    )
                connection.refuseWith = (
                    http.SERVICE_UNAVAILABLE, b"Service Unavailable",
                    "too many connections from your address", [(b"Retry-After", b"10")],
                )
        return connection

    def registerProtocol(self, connection) -> None:
        """
        Called by a L{GuardedConnection} once it is connected.
        """
        self.connections[connection] = connection
        self.budget.opened()
        host = connection.counted
        if host is not None:
            self._perAddress[host] = self._perAddress.get(host, 0) + 1

    def unregisterProtocol(self, connection) -> None:
        """
        Called by a L{GuardedConnection} once it is closed.
        """
        host = connection.counted
        if host is not None and host in self._perAddress:
            self._perAddress[host] -= 1
            if self._perAddress[host] <= 0:
                del self._perAddress[host]
            if self._perAddress.get(host, 0) < self.limits.maxPerAddress:
                self._overLimitLogged.discard(host)
        self._connectionLost(connection)

    def connectionsFrom(self, host: str) -> int:
        """
        The connections open from C{host} (0 for an exempt address).
        """
        return self._perAddress.get(host, 0)

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
        if self.connections.pop(protocol, None) is not None:
            self.budget.closed()
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
        A shutdown hook (L{fbtwist.ops.shutdown}): closes idle connections at
        once and each busy one when its request is answered, and fires when
        all are closed.  Cancelling it aborts the connections left; their
        uploads are dropped before anything is written to the tree.
        """
        self._draining = True
        for connection in self.connections.values():
            # Closing connections answer through the whole machinery,
            # which closes them once answered.
            connection.quick = connection.quickPublishes = None
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
            path = _publishPath(request.uri) if reason is not None else None
            if path is not None:
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
            writeNotAllowed(request, ("GET", "HEAD"), "this is a read-only folder")
            return NOT_DONE_YET
        return super().render(request)

    def render_GET(self, request):
        request.setResponseCode(http.NOT_FOUND)
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        return b"Nothing here: publish under /pub/calendar/.\n"


class RootResource(ReadOnlyFolder):
    """
    C{/}: a small HTML page saying what this server is, linking the page
    people read and the set-up page (L{fbtwist.web.page.RootElement}).
    A PROPFIND (CalDAV clients given the bare server) goes to C{caldav}.

    @ivar caldav: The CalDAV space's guard, or C{None}.
    """

    caldav = None

    def render(self, request):
        if request.method == b"PROPFIND" and self.caldav is not None:
            return self.caldav.render(request)
        return super().render(request)

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
             reactor=None, limits: ConnectionLimits = ConnectionLimits(),
             caldavSettings: CalDAVSettings = CalDAVSettings()) -> FreeBusySite:
    """
    Build the web site over one portal and one store.

    @param lookupSettings: How C{/calendar/} behaves (behind Basic
        authentication when its C{auth} is set).
    @param pages: More top-level resources by name (C{/metrics},
        C{/healthz}, C{/setup}, ...).
    @param limits: What each connection is held to (timeouts, connections
        per address, request line and header sizes).
    @param caldavSettings: How C{/caldav/} behaves (always behind Basic
        authentication, with the checkers of C{portal}).
    """
    root = RootResource()
    pub = ReadOnlyFolder()
    root.putChild(b"pub", pub)
    publishGuard = BasicAuthGuard(
        portal, realmName, anonymousAllowed=lambda request: request.method == b"OPTIONS",
    )
    pub.putChild(b"calendar", publishGuard)
    lookup = LookupResource(directory, store, lookupSettings, reactor=reactor, portal=portal)
    caldav = guardedCalDAV(portal, realmName, CalDAVService(lookup, directory, caldavSettings))
    root.putChild(b"caldav", caldav)
    root.putChild(b".well-known", wellKnown())
    root.caldav = caldav
    if lookupSettings.auth:
        lookup = guardedLookup(portal, realmName, lookup, lookupSettings.trustedNetworks)
    root.putChild(b"calendar", lookup)
    for name, resource in (pages or {}).items():
        root.putChild(name, resource)
    site = FreeBusySite(root, maxUploadSize, limits=limits, reactor=reactor)
    site.guardBodies((b"pub", b"calendar"), publishGuard)
    site.quickPublishes = QuickPublishes(site, publishGuard)
    site.guardBodies((b"caldav",), caldav)
    if isinstance(lookup, BasicAuthGuard):
        site.guardBodies((b"calendar",), lookup)
    else:
        site.quickLookups = QuickLookups(lookup, limits, site.reactor)
    site.displayTracebacks = False
    return site
