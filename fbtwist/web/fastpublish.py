"""
Publishes answered without Twisted's request machinery.

Nearly every publish is one kind of request: a calendar client putting a
user's own file, C{PUT /pub/calendar/<name>} on a kept-alive HTTP/1.1
connection, the whole body in the read that brought the headers, with
C{Content-Length} and the Basic credentials the bind cache already holds.
Twisted's HTTP server spends more on its request object, header objects,
resource traversal and response headers than fbtwist spends on the
publish outside the filesystem.  L{QuickPublishes} reads such a request
straight from the bytes and publishes it through the same avatar and the
same checks as the whole way (L{fbtwist.web.dav.put}: the permission, the
media type, the validation; the avatar's publish: locks, quotas, the
durable commit), and answers with the same bytes but the C{Date}, logged
the same.

Anything else is left to Twisted, untouched: another method or URL, a
query, a header that is not harmless (a condition, C{If}, C{Expect}, a
lock token, chunks), HTTP/1.0, C{Connection: close}, a body split across
reads or pipelined behind another request, credentials the bind cache
does not hold (or throttled), a login whose roles are not kept, and every
refusal found before the publish (403, 415, 400, 413, ...).  A publish the
avatar refuses (a lock, a full disk, an error) changed nothing; the
request is then read again the whole way, which answers it as it answers
every refused publish (so the refused publish is tried twice).

The connection (L{fbtwist.web.connection.GuardedConnection}) asks
L{QuickPublishes.start} only between requests, holds what the client
sends meanwhile, and reads it once the publish is answered.
"""

import re
import time
from typing import Callable, Optional

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web.http import datetimeToString
from twisted.web.resource import IResource

from fbtwist.access.realm import loginNow, noLogout
from fbtwist.access.values import NO_PRECONDITIONS
from fbtwist.availability.publish import validatePublish
from fbtwist.logs import logAccess
from fbtwist.web.accesslog import accessEventFields
from fbtwist.web.auth import credentialsOf
from fbtwist.web.connection import SERVER_HEADER
from fbtwist.web.dav import put
from fbtwist.web.dav.resource import CalendarTreeResource
from fbtwist.web.responses import httpErrorFor

#: The access events' logger (the site's: L{fbtwist.web.site}).
_accessLog = Logger(namespace="fbtwist.access")

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


class QuickPublishes:
    """
    Answers the plainest publishes from the bytes of one read.

    @ivar portal: The site's portal (the publishing tree's).
    @ivar limits: The connections' L{fbtwist.web.connection.ConnectionLimits}.
    @ivar maxUploadSize: The site's largest body.
    @ivar clock: What tells the time (the site's reactor).
    """

    log = Logger()

    def __init__(self, portal, limits, maxUploadSize: int, clock, wallClock=time.time):
        self.portal = portal
        self.limits = limits
        self.maxUploadSize = maxUploadSize
        self.clock = clock
        self._wallClock = wallClock
        #: How many publishes were answered here.
        self.answered = 0

    def start(self, data: bytes, peer: str, gone: Callable[[], bool]) -> Optional[defer.Deferred]:
        """
        Start publishing C{data}, when it is exactly one publish this
        answers.

        @param peer: The client's address.
        @param gone: Tells whether the client went away meanwhile.
        @return: C{None}: let Twisted read C{data}; or a Deferred firing
            with the whole response (its access event logged), or with
            C{None} when the publish was refused (then Twisted is to read
            C{data}, which answers the refusal) or the client is gone.
        """
        if not data.startswith(_PREFIX):
            return None
        limits = self.limits
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
        headers = self._headers(data[lineEnd + 2:headerEnd])
        if headers is None:
            return None
        body = data[headerEnd + 4:]
        length = headers.get(b"content-length")
        if not body or length != b"%d" % len(body) or len(body) > self.maxUploadSize:
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
        credentials.peer = peer
        started = self.clock.seconds()
        known = loginNow(self.portal, credentials, IResource)
        if known is None:
            return None
        _, resource, logout = known
        if logout is not noLogout or not isinstance(resource, CalendarTreeResource):
            return None
        avatar = resource.avatar
        try:
            path = avatar.path([name])
            put.checkTarget(avatar, path, headers.get(b"content-type"))
            validatePublish(path[-1], body)
        except Exception:
            # Refused (or an error): answered the whole way.
            return None
        uri = data[4:lineEnd - len(_VERSION)]

        def answer(created):
            put.published(avatar, path, len(body))
            if gone():
                # Published, and nobody to answer (nor an access line, as
                # the whole way logs none).
                return None
            self.answered += 1
            start, end = _CREATED if created else _REPLACED
            logAccess(_accessLog, accessEventFields(
                peer, credentials.username, started, self.clock.seconds(), b"PUT", uri, b"HTTP/1.1",
                201 if created else 204, 0, headers.get(b"referer"), headers.get(b"user-agent"),
            ))
            return b"".join((start, b"Date: ", datetimeToString(int(self._wallClock())), b"\r\n", end))

        def refused(failure):
            # Nothing changed: the whole way answers (and logs) it, unless
            # nobody is left to answer.
            if gone():
                put.rejected(avatar, "/".join(path), failure.value)
                if httpErrorFor(failure.value) is None and not failure.check(defer.CancelledError):
                    self.log.failure("publish failed after its client went away", failure)
            return None

        return avatar.publish(path, body, NO_PRECONDITIONS).addCallbacks(answer, refused)

    def _headers(self, block: bytes) -> Optional[dict]:
        """
        The header values by lowercased name (the last of a repeated one),
        or C{None} when one is not harmless, not plain, or repeated where
        it may not be.
        """
        lines = block.split(b"\r\n") if block else ()
        if len(lines) > self.limits.maxHeaderCount:
            return None
        headers = {}
        for line in lines:
            name, colon, value = line.partition(b":")
            name = name.lower()
            if not colon or b"\n" in value:
                return None
            if name in _ONCE:
                if name in headers:
                    return None
            elif name not in _HARMLESS:
                return None
            value = value.strip()
            if name == b"connection" and value.lower() != b"keep-alive":
                return None
            headers[name] = value
        return headers

