"""
The web site: the resource tree and a request class that bounds bodies.

C{/pub/calendar/} is the publishing tree (Basic auth, WebDAV), C{/calendar/}
the anonymous lookup URLs; both are views of one store.
"""

from twisted.logger import Logger
from twisted.web import http, server
from twisted.web.server import NOT_DONE_YET
from twisted.web.resource import Resource

from fbtwist import __version__
from fbtwist.httpauth import BasicAuthGuard
from fbtwist.lookup import LookupResource
from fbtwist.webresponse import writeError

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
        self.channel.loseConnection()



class FreeBusySite(server.Site):
    """
    @ivar maxUploadSize: The largest request body accepted, in bytes.
    """

    requestFactory = BoundedRequest

    def __init__(self, resource, maxUploadSize: int, **kwargs):
        super().__init__(resource, **kwargs)
        self.maxUploadSize = maxUploadSize

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
    C{/}: says what this server is.
    """

    def render_GET(self, request):
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        return (
            b"fbtwist free/busy server\n"
            b"publish: PUT /pub/calendar/<login>.vfb (WebDAV, Basic auth)\n"
            b"look up: GET /calendar/<name>.vfb\n"
        )

    def getChild(self, path, request):
        if path == b"":
            return self
        return super().getChild(path, request)


def makeSite(portal, directory, store, maxUploadSize: int, realmName: str = "fbtwist free/busy") -> FreeBusySite:
    """
    Build the web site over one portal and one store.
    """
    root = RootResource()
    pub = ReadOnlyFolder()
    root.putChild(b"pub", pub)
    pub.putChild(
        b"calendar",
        BasicAuthGuard(portal, realmName, anonymousAllowed=lambda request: request.method == b"OPTIONS"),
    )
    root.putChild(b"calendar", LookupResource(directory, store))
    site = FreeBusySite(root, maxUploadSize)
    site.displayTracebacks = False
    return site
