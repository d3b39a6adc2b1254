"""
Publishes answered without Twisted's request machinery.

Nearly every publish is one kind of request: a calendar client putting a
user's own file, C{PUT /pub/calendar/<name>} on a kept-alive HTTP/1.1
connection, the whole body in the read that brought the headers, with
C{Content-Length} and Basic credentials.  Twisted's HTTP server spends
more on its request object, header objects, resource traversal and
response headers than fbtwist spends on the publish outside the
filesystem.  L{QuickPublishes} reads such a request straight from the bytes
and publishes it through the same login, avatar and checks as the whole
way: the publishing tree's guard logs the credentials in
(L{fbtwist.web.auth.BasicAuthGuard.logIn}: the bind cache, the throttle,
the directory, the realm's avatar), L{fbtwist.web.dav.put} checks the
permission, the media type and the body, the avatar publishes (locks,
quotas, the durable commit).  It answers with the same bytes but the
C{Date}, and the site logs it as any request
(L{fbtwist.web.site.FreeBusySite.log}).

Anything else is left to Twisted, untouched: another method or URL, a
query, a header that is not harmless (a condition, C{If}, C{Expect}, a
lock token, chunks), HTTP/1.0, C{Connection: close}, a body split across
reads or pipelined behind another request, no or malformed credentials.
A refused login is answered as the whole way answers it before reading a
body (the same status, bytes and access line; the connection closed).
Every other refusal changed nothing, and the request is then read again
the whole way, which answers it as it answers every refused publish: the
ones found before the publish (403, 415, 400, ...) and those of the
avatar's publish (a lock, a full disk, an error), which is then tried a
second time.

The connection (L{fbtwist.web.connection.GuardedConnection}) asks
L{QuickPublishes.start} only between requests, holds what the client
sends meanwhile, and reads it once the publish is answered.
"""

import re
import time
from typing import Optional

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web.http import CREATED, INTERNAL_SERVER_ERROR, NO_CONTENT, datetimeToString

from fbtwist.access.realm import noLogout
from fbtwist.access.values import NO_PRECONDITIONS
from fbtwist.availability.publish import validatePublish
from fbtwist.web.auth import credentialsOf
from fbtwist.web.connection import SERVER_HEADER, earlyAnswer
from fbtwist.web.dav import put
from fbtwist.web.dav.resource import CalendarTreeResource
from fbtwist.web.fastlookup import plainHeaders
from fbtwist.web.responses import HTTPError, httpErrorFor

_PREFIX = b"PUT /pub/calendar/"
_VERSION = b" HTTP/1.1"

#: What the whole way answers a publish with, up to its C{Date}, and after.
_CREATED = (b"HTTP/1.1 201 Created\r\nServer: " + SERVER_HEADER + b"\r\n", b"Content-Length: 0\r\n\r\n")
_REPLACED = (b"HTTP/1.1 204 No Content\r\nServer: " + SERVER_HEADER + b"\r\n", b"\r\n")

#: Headers that do not change a publish's answer (with C{Content-Length},
#: C{Content-Type} and C{Authorization}, each at most once): a request with
#: any other goes the whole way.  C{Connection} only with C{keep-alive}.
_HARMLESS = frozenset((
    b"host", b"user-agent", b"accept", b"accept-encoding", b"accept-language", b"accept-charset",
    b"referer", b"cache-control", b"pragma", b"dnt", b"translate", b"connection",
))
_ONCE = frozenset((b"content-length", b"content-type", b"authorization"))

#: Bytes that never appear in a file name's URL segment answered here: the
#: rest of a path, a query, a fragment, percent-encoding, white space and
#: other control characters.
_NOT_IN_SEGMENT = re.compile(rb"[/?#%\x00-\x20\x7f]")


class _Channel:
    def __init__(self, transport):
        self.transport = transport


class QuickRequest:
    """
    A publish answered here: what the site reads of a request to track it
    while it is in flight (C{inFlight} of L{fbtwist.web.site.FreeBusySite},
    so that a shutdown waits for it) and to log it (its C{log}).

    @ivar answer: A Deferred firing once it is answered: with the response
        and whether the connection is then closed, or with C{None}, when
        the request is to be read the whole way (or its client is gone).
    @ivar channel: What stands for its HTTP channel: its C{transport} is
        the connection.
    """

    method = b"PUT"
    clientproto = b"HTTP/1.1"
    code = None
    sentLength = 0

    def __init__(self, connection, uri: bytes, headers: dict, started: float):
        self.channel = _Channel(connection)
        self.uri = uri
        self.started = started
        self._headers = headers
        self.answer = None

    def getHeader(self, name: bytes) -> Optional[bytes]:
        """
        The value of the request's header C{name} (the last of a repeated
        one, as L{twisted.web.http.Request.getHeader} gives), or C{None}.
        """
        return self._headers.get(name.lower())

    def getClientAddress(self):
        return self.channel.transport.getPeer()


class QuickPublishes:
    """
    Answers the plainest publishes from the bytes of one read.

    @ivar site: The L{fbtwist.web.site.FreeBusySite}: its limits, upload
        size, clock and access log.
    @ivar guard: The publishing tree's L{fbtwist.web.auth.BasicAuthGuard}.
    """

    log = Logger()

    def __init__(self, site, guard, wallClock=time.time):
        self.site = site
        self.guard = guard
        self._wallClock = wallClock
        #: How many publishes were answered here.
        self.answered = 0

    def start(self, data: bytes, connection) -> Optional[QuickRequest]:
        """
        Start answering C{data}, read by C{connection} between requests,
        when it is exactly one publish this answers.

        @return: The request (see its C{answer}), or C{None}: let Twisted
            read C{data}.
        """
        if not data.startswith(_PREFIX):
            return None
        site = self.site
        limits = site.limits
        headerEnd = data.find(b"\r\n\r\n")
        lineEnd = data.find(b"\r\n")
        if headerEnd == -1 or headerEnd + 4 > limits.maxHeaderBytes or lineEnd > limits.maxRequestLine:
            return None
        requestLine = data[:lineEnd]
        if not requestLine.endswith(_VERSION):
            return None
        segment = requestLine[len(_PREFIX):-len(_VERSION)]
        if not segment or segment in (b".", b"..") or _NOT_IN_SEGMENT.search(segment) is not None:
            return None
        headers = plainHeaders(data[lineEnd + 2:headerEnd], _HARMLESS, limits.maxHeaderCount, _ONCE)
        if headers is None:
            return None
        body = data[headerEnd + 4:]
        if not body or headers.get(b"content-length") != b"%d" % len(body) or len(body) > site.maxUploadSize:
            # No body, more than one request, a body still arriving, or
            # one too large (refused the whole way).
            return None
        authorization = headers.get(b"authorization")
        credentials = credentialsOf(authorization) if authorization is not None else None
        if credentials is None:
            return None
        try:
            name = segment.decode("utf-8")
        except UnicodeDecodeError:
            return None
        request = QuickRequest(connection, data[4:lineEnd - len(_VERSION)], headers, site.reactor.seconds())
        peer = connection.getPeer()
        request.answer = self.guard.logIn(credentials, getattr(peer, "host", None)).addCallbacks(
            self._loggedIn, self._notLoggedIn, (request, name, body), None, (request,),
        )
        return request

    def _loggedIn(self, result, request: QuickRequest, name: str, body: bytes):
        resource, logout = result
        if logout is not noLogout or not isinstance(resource, CalendarTreeResource):
            return None
        avatar = resource.avatar
        try:
            path = avatar.path([name])
            put.checkTarget(avatar, path, request.getHeader(b"content-type"))
            validatePublish(path[-1], body)
        except Exception:
            # Refused (or an error): answered the whole way.
            return None

        def published(created):
            put.published(avatar, path, len(body))
            if self._gone(request):
                # Nobody to answer, nor an access line (as the whole way).
                return None
            request.code = CREATED if created else NO_CONTENT
            start, end = _CREATED if created else _REPLACED
            self.answered += 1
            self.site.log(request)
            return b"".join((start, b"Date: ", datetimeToString(int(self._wallClock())), b"\r\n", end)), False

        def refused(failure):
            # Nothing changed: the whole way answers (and logs) it, unless
            # nobody is left to answer.
            if self._gone(request):
                put.rejected(avatar, "/".join(path), failure.value)
                if httpErrorFor(failure.value) is None and not failure.check(defer.CancelledError):
                    self.log.failure("publish failed after its client went away", failure)
            return None

        return avatar.publish(path, body, NO_PRECONDITIONS).addCallbacks(published, refused)

    def _notLoggedIn(self, failure, request: QuickRequest):
        """
        A refused login is answered as L{fbtwist.web.site.BoundedRequest}
        answers one before reading a body, and the connection closed.
        """
        if self._gone(request):
            return None
        error = failure.value if failure.check(HTTPError) else HTTPError(
            INTERNAL_SERVER_ERROR, "internal server error")
        response, request.sentLength = earlyAnswer(error.code, error.reason, error.headers)
        request.code = error.code
        self.site.log(request)
        return response, True

    @staticmethod
    def _gone(request: QuickRequest) -> bool:
        return request.channel.transport.disconnected
