"""
Anonymous lookups answered without Twisted's request machinery.

Nearly all traffic of a free/busy server is one kind of request: a calendar
client asking C{GET /calendar/<name>.vfb} on a kept-alive HTTP/1.1
connection, for a name whose file is published.  Twisted's HTTP server
spends more on such a request (a L{twisted.web.server.Request}, its header
objects, resource traversal, the response's header objects) than fbtwist
spends answering it.  L{QuickLookups} reads such a request straight from the
bytes of one read and answers it with the same bytes the whole machinery
would send (the visibility decides, L{LookupResource.answerNow} renders, as
for every lookup); anything else (another method or URL, a query, a
condition, credentials, a body, HTTP/1.0, C{Connection: close}, a request
split across reads or pipelined behind another, a name not known at once, a
hidden or unpublished name) is left to Twisted, untouched.

The connection (L{fbtwist.web.connection.GuardedConnection}) asks
L{QuickLookups.answer} only between requests; what it answers is logged as
every request is (L{fbtwist.logs.logAccess}, the same fields), and sent
when the reactor's turn ends (L{QuickLookups.sendAtTurnEnd}), straight to
the socket when it takes it all (L{fbtwist.compat.twisted.writeNow}).  The
answers are the same byte for byte but for the C{Date} (the tests compare
both paths, request by request).

Twisted's own idle timer of the HTTP channel (a minute by default) is
started over by a quick answer as by any request the channel reads
(L{fbtwist.compat.twisted.restartChannelTimer}); the connection's own
deadlines (L{fbtwist.web.connection.ConnectionLimits}) hold as for every
request.
"""

import re
import time
from typing import Optional

from twisted.logger import Logger
from twisted.web.http import datetimeToString

from fbtwist.logs import logAccess
from fbtwist.web.accesslog import accessEventFields
from fbtwist.web.connection import SERVER_HEADER

#: The access events' logger (the site's: L{fbtwist.web.site}).
_accessLog = Logger(namespace="fbtwist.access")
_log = Logger()

_PREFIX = b"GET /calendar/"
#: A response's head up to its C{Date}.
_START = b"HTTP/1.1 200 OK\r\nServer: " + SERVER_HEADER + b"\r\n"
_VERSION = b" HTTP/1.1"

#: Headers that do not change a lookup's answer: a request with any other
#: header goes the whole way (a condition, credentials, a body, an upgrade,
#: ...).  C{Connection} only with C{keep-alive}.
_HARMLESS = frozenset((
    b"host", b"user-agent", b"accept", b"accept-encoding", b"accept-language", b"accept-charset",
    b"referer", b"cache-control", b"pragma", b"dnt", b"te", b"translate", b"connection",
    b"sec-fetch-site", b"sec-fetch-mode", b"sec-fetch-dest", b"sec-fetch-user",
    b"sec-ch-ua", b"sec-ch-ua-mobile", b"sec-ch-ua-platform", b"upgrade-insecure-requests", b"priority",
))

#: Bytes that never appear in a lookup name's URL segment answered here:
#: the rest of a path, a query, a fragment, percent-encoding, white space
#: and other control characters.
_NOT_IN_SEGMENT = re.compile(rb"[/?#%\x00-\x20\x7f]")


def plainHeaders(block: bytes, harmless: frozenset, maxCount: int, once: frozenset = frozenset()) -> Optional[dict]:
    """
    The header values of C{block} (a request's header lines, without the
    blank line ending them) by lowercased name, the last of a repeated one
    (as C{Request.getHeader} gives); C{None} when one is neither in
    C{harmless} nor in C{once}, a name of C{once} is repeated, a line is
    not a plain header (no colon, a bare line feed), C{Connection} says
    anything but C{keep-alive}, or there are more than C{maxCount}: then
    Twisted reads the request (and answers it).
    """
    lines = block.split(b"\r\n") if block else ()
    if len(lines) > maxCount:
        return None
    headers = {}
    for line in lines:
        name, colon, value = line.partition(b":")
        name = name.lower()
        if not colon or b"\n" in value:
            return None
        if name in once:
            if name in headers:
                return None
        elif name not in harmless:
            return None
        value = value.strip()
        if name == b"connection" and value.lower() != b"keep-alive":
            return None
        headers[name] = value
    return headers


class _DateHeader:
    """
    The C{Date} header's line, made once a second.
    """

    def __init__(self):
        self._second = None
        self._line = b""

    def line(self, now: float) -> bytes:
        second = int(now)
        if second != self._second:
            self._second = second
            self._line = b"Date: " + datetimeToString(second) + b"\r\n"
        return self._line


class QuickLookups:
    """
    Answers the simplest anonymous lookups from the bytes of one read.

    @ivar lookup: The site's L{fbtwist.web.lookup.LookupResource} (anonymous:
        not behind credentials).
    @ivar limits: The connections' L{fbtwist.web.connection.ConnectionLimits}
        (a request past their sizes is left to the connection to refuse).
    @ivar clock: What tells the time (the site's reactor).
    """

    def __init__(self, lookup, limits, clock, wallClock=time.time):
        self.lookup = lookup
        self.limits = limits
        self.clock = clock
        self._wallClock = wallClock
        self._date = _DateHeader()
        #: How many requests were answered here.
        self.answered = 0
        #: The response's head after its C{Date}, by what it says.
        self._heads = {}
        #: Connections with an answer to send at the end of this turn.
        self._unsent = []

    def sendAtTurnEnd(self, connection) -> None:
        """
        Have C{connection} (a L{fbtwist.web.connection.GuardedConnection})
        send its quick answer when the reactor's turn ends: one call for
        all the answers of a turn, after the turn has read every request
        that arrived, as Twisted's own writes go out (in the next poll) but
        without registering each socket for writing and waiting for its
        event.
        """
        if not self._unsent:
            self.clock.callLater(0, self._sendAll)
        self._unsent.append(connection)

    def _sendAll(self) -> None:
        connections, self._unsent = self._unsent, []
        for connection in connections:
            try:
                connection.sendUnsent()
            except Exception:
                # One connection's failure must not keep the others' answers.
                _log.failure("sending a quick answer")
                connection.transport.abortConnection()

    def answer(self, data: bytes, peer: str) -> Optional[bytes]:
        """
        The whole response to C{data}, when it is exactly one lookup this
        answers (and then its access event is logged), else C{None}: let
        Twisted read C{data}.

        @param peer: The client's address, for the access line.
        """
        if not data.startswith(_PREFIX) or not data.endswith(b"\r\n\r\n"):
            return None
        limits = self.limits
        if len(data) > limits.maxHeaderBytes:
            return None
        lineEnd = data.find(b"\r\n")
        if lineEnd > limits.maxRequestLine or data.find(b"\r\n\r\n") != len(data) - 4:
            # Too long (the connection answers 414), or more than one
            # request, or a body.
            return None
        requestLine = data[:lineEnd]
        if not requestLine.endswith(_VERSION):
            return None
        segment = requestLine[len(_PREFIX):-len(_VERSION)]
        if not segment or _NOT_IN_SEGMENT.search(segment) is not None:
            return None
        headers = plainHeaders(data[lineEnd + 2:-4], _HARMLESS, limits.maxHeaderCount)
        if headers is None:
            return None
        started = self.clock.seconds()
        found = self.lookup.answerNow(segment)
        if found is None:
            return None
        etag, body, modified, contentType, head = found
        self.answered += 1
        if head is None:
            head = self._head(etag, contentType, len(body), modified)
        response = b"".join((_START, self._date.line(self._wallClock()), head, body))
        logAccess(_accessLog, accessEventFields(
            peer, None, started, self.clock.seconds(), b"GET", data[4:lineEnd - len(_VERSION)], b"HTTP/1.1",
            200, len(body), headers.get(b"referer"), headers.get(b"user-agent"),
        ))
        return response

    def _head(self, etag: str, contentType: bytes, length: int, modified: float) -> bytes:
        key = (etag, contentType, length, modified)
        head = self._heads.get(key)
        if head is None:
            if len(self._heads) >= 4096:
                self._heads.clear()
            head = self._heads[key] = responseHead(etag, contentType, length, modified)
        return head


def responseHead(etag: str, contentType: bytes, length: int, modified: float) -> bytes:
    """
    A quick answer's head after its C{Date}, to the blank line: what the
    whole machinery sends for a calendar of C{length} bytes
    (L{fbtwist.web.responses.serveCalendar}).
    """
    return b"".join((
        b"Content-Type: ", contentType, b"\r\n",
        b"ETag: ", etag.encode("ascii"), b"\r\n",
        b"Cache-Control: no-cache\r\n",
        b"Content-Length: %d\r\n" % length,
        b"Last-Modified: ", datetimeToString(int(modified)), b"\r\n\r\n",
    ))

