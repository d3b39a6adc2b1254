"""
Limits on HTTP connections that Twisted's HTTP server does not enforce.

Twisted's idle timer starts over with every byte, so a client trickling a
byte every few seconds keeps a connection (and its descriptor) for ever, and
an overlong request line or header block is answered by closing the
connection.  L{GuardedConnection} wraps each HTTP connection of a
L{fbtwist.web.site.FreeBusySite} (a L{ProtocolWrapper}, Twisted's public seam for
this) and gives each stage of a request a deadline:

  - between requests, C{idleTimeout} seconds for the first byte of the next
    one (then the connection is closed quietly);
  - from that first byte, C{headerTimeout} seconds for the request line and
    headers (then 408);
  - a body gets C{headerTimeout} seconds plus one second per C{minBodyRate}
    bytes received (then 408);
  - while the server works on a request there is no deadline.

A request line longer than C{maxRequestLine} bytes is answered 414, a
request line and headers longer than C{maxHeaderBytes} (or of more than
C{maxHeaderCount} lines) 431.  Every early
answer closes the connection gently (L{GuardedConnection.answerAndClose}).

The stages are told by the request (L{fbtwist.web.site.BoundedRequest}) through
C{requestBegun}, C{headersReceived}, C{bodyReceived} and C{requestDone}.
"""

import ipaddress
from dataclasses import dataclass
from typing import Iterable, Tuple

from twisted.internet.interfaces import ISSLTransport, ITCPTransport
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper
from twisted.web.http import RESPONSES

from fbtwist import __version__
from fbtwist.budget import descriptorBudget
from fbtwist.compat.twisted import pauseChannelTimer, restartChannelTimer, resumeChannelTimer, writeNow

SERVER_HEADER = b"fbtwist/" + __version__.encode("ascii")

#: How long a connection answered early is still read (and what arrives
#: dropped) so that the answer is not lost to a reset.
LINGER_SECONDS = 2.0

#: The most of a chunked body handed to the parser at once.
CHUNKED_SLICE = 4096

_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


@dataclass(frozen=True)
class ConnectionLimits:
    """
    The limits every HTTP connection is held to.

    @ivar maxPerAddress: Connections open at once from one client address
        (0: no limit); addresses in C{exemptNetworks} have none.
    @ivar maxChunksPerKiB: A chunked body may have at most this many chunks
        per KiB of body (plus a few), so that a body of tiny chunks cannot
        cost much more to parse than its size.
    """

    idleTimeout: float = 60.0
    headerTimeout: float = 20.0
    minBodyRate: int = 500
    maxPerAddress: int = 32
    exemptNetworks: tuple = _LOOPBACK
    maxRequestLine: int = 8190
    maxHeaderBytes: int = 16384
    maxHeaderCount: int = 200
    maxChunksPerKiB: int = 32
    maxConnections: int = 0

    def connectionBudget(self) -> int:
        """
        How many connections may be open at once: C{maxConnections}, or
        when that is 0 what the process's descriptor limit leaves after a
        reserve for files, the directory and the logs, so that the server
        answers 503 before it runs out of descriptors.
        """
        return descriptorBudget(self.maxConnections)

    def isExempt(self, host) -> bool:
        """
        Whether connections from C{host} (an address string) are not counted.
        """
        try:
            address = ipaddress.ip_address(host)
        except (TypeError, ValueError):
            # Not an IP peer (a UNIX socket, a test's transport).
            return True
        if getattr(address, "ipv4_mapped", None) is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.exemptNetworks)


def rawResponse(code: int, phrase: bytes, reason: str, headers: Iterable[Tuple[bytes, bytes]] = ()) -> bytes:
    """
    A whole C{Connection: close} HTTP/1.1 response with a one-line text
    body, for answers given before (or instead of) Twisted's request
    machinery.
    """
    body = (reason.rstrip(".") + ".\n").encode("utf-8")
    lines = [b"HTTP/1.1 %d %s" % (code, phrase), b"Server: " + SERVER_HEADER]
    lines += [name + b": " + value for name, value in headers]
    lines += [
        b"Content-Type: text/plain; charset=utf-8",
        b"Content-Length: %d" % len(body),
        b"Connection: close",
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def earlyAnswer(code: int, reason: str, headers: Iterable[Tuple[bytes, bytes]] = ()) -> Tuple[bytes, int]:
    """
    The L{rawResponse} of a request refused before its body was read (the
    status's phrase Twisted's), and the length of its body (for the access
    line).
    """
    response = rawResponse(code, RESPONSES.get(code, b"Error"), reason, headers)
    return response, len(response) - response.index(b"\r\n\r\n") - 4


IDLE, HEADERS, BODY, BUSY, CLOSING = "idle", "headers", "body", "busy", "closing"


class GuardedConnection(ProtocolWrapper):
    """
    One HTTP connection, held to L{ConnectionLimits}.

    @ivar stage: One of C{idle}, C{headers}, C{body}, C{busy} (the server
        is answering) or C{closing}.
    """

    log = Logger()
    stage = IDLE
    _timer = None
    _current = None
    #: The client address counted against the per-address limit, if any.
    counted = None
    #: An answer to give as soon as connected (code, phrase, reason,
    #: headers), instead of reading requests.
    refuseWith = None
    disconnected = False
    _holding = False
    _answered = False
    _chunkedBody = False
    #: A quick answer to send at the end of the reactor's turn.
    _unsent = None

    def __init__(self, factory, wrappedProtocol, limits: ConnectionLimits, clock):
        super().__init__(factory, wrappedProtocol)
        self.limits = limits
        self.clock = clock
        self._received = 0
        self._lines = 0
        self._lineDone = False
        self._tail = b""
        self._heldData = []

    def makeConnection(self, transport):
        super().makeConnection(transport)
        if self.refuseWith is not None:
            self.answerAndClose(*self.refuseWith)
        elif self.stage == IDLE:
            self._arm(self.limits.idleTimeout)

    # --- the deadline -------------------------------------------------

    def _arm(self, seconds) -> None:
        timer = self._timer
        if timer is not None and timer.active():
            # Moving a pending call costs less than a new one (nearly every
            # request moves the idle deadline).
            timer.reset(seconds)
            return
        self._timer = self.clock.callLater(seconds, self._expired)

    def _disarm(self) -> None:
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        if self.stage == IDLE:
            self.transport.loseConnection()
        elif self.stage == HEADERS:
            self._slow("the request headers did not arrive in time")
        elif self.stage == BODY:
            due = self._bodyStarted + self.limits.headerTimeout + self._bodyBytes / self.limits.minBodyRate
            now = self.clock.seconds()
            if now < due:
                self._arm(due - now)
            else:
                self._slow("the body arrived too slowly")
        elif self.stage == CLOSING:
            self.transport.abortConnection()

    def _slow(self, reason: str) -> None:
        self.log.info("closing a slow connection from {peer}: {reason}", peer=self._peerHost(), reason=reason)
        self.answerAndClose(408, b"Request Timeout", reason)

    _peer = None

    def _peerHost(self) -> str:
        if self._peer is None:
            self._peer = str(getattr(self.getPeer(), "host", None) or "-")
        return self._peer

    _host = None

    def getHost(self):
        """
        The connection's local address, asked of the transport once: Twisted
        makes each request ask it again (a C{getsockname} call on a TCP
        socket), and it never changes while the connection lives.
        """
        if self._host is None:
            self._host = self.transport.getHost()
        return self._host

    # --- what the request tells ----------------------------------------

    def requestBegun(self, request) -> None:
        """
        The request line of C{request} has arrived.
        """
        self._current = request
        if self.stage in (IDLE, BUSY):
            # A request the channel had buffered while it answered another.
            self._startHeaders()
        self._lineDone = True

    def headersReceived(self, request, length) -> None:
        """
        The headers of C{request} are in; C{length} is its body's declared
        length (C{None} when chunked).
        """
        if request is not self._current or self.stage == CLOSING:
            return
        if length == 0:
            self.stage = BUSY
            self._disarm()
            return
        self.stage = BODY
        self._chunkedBody = length is None
        self._bodyStarted = self.clock.seconds()
        self._bodyBytes = 0
        self._arm(self.limits.headerTimeout)

    def bodyReceived(self, request) -> None:
        """
        The whole request is in: the server works on it without deadline.
        """
        if request is self._current and self.stage != CLOSING:
            self.stage = BUSY
            self._disarm()

    def requestDone(self, request) -> None:
        """
        C{request} was answered (or dropped).
        """
        if request is self._current and self.stage != CLOSING:
            self._current = None
            self.stage = IDLE
            self._arm(self.limits.idleTimeout)

    # --- bytes ---------------------------------------------------------

    def _startHeaders(self) -> None:
        self.stage = HEADERS
        self._received = 0
        self._lines = 0
        self._lineDone = False
        self._tail = b""
        self._arm(self.limits.headerTimeout)

    #: What answers the simplest lookups before Twisted reads them
    #: (L{fbtwist.web.fastlookup.QuickLookups}), or C{None}.
    quick = None

    #: What publishes the plainest publishes before Twisted reads them
    #: (L{fbtwist.web.fastpublish.QuickPublishes}), or C{None}.
    quickPublishes = None
    #: The publish answered before Twisted (a
    #: L{fbtwist.web.fastpublish.QuickRequest}) while it is in flight.
    _quickPublish = None

    def dataReceived(self, data):
        if self.stage == CLOSING:
            return
        if (self.stage == IDLE and (self.quick is not None or self.quickPublishes is not None)
                and not (self._holding or self.disconnecting)):
            if self._speaksHTTP2():
                # Frames, not lines (Twisted speaks HTTP/2 when TLS agreed
                # on it and the h2 package is installed).
                self.quick = self.quickPublishes = None
                return self.dataReceived(data)
            if self.quickPublishes is not None and data.startswith(b"PUT "):
                request = self.quickPublishes.start(data, self)
                if request is not None:
                    self._publishing(data, request)
                    return
        if self.quick is not None and self.stage == IDLE and not (self._holding or self.disconnecting):
            # Between requests, so the HTTP channel holds nothing of this
            # connection's: a request it answers whole never reaches it.
            response = self.quick.answer(data, self._peerHost())
            if response is not None:
                # Sent when the reactor's turn ends, with the other answers
                # of the turn (L{QuickLookups.sendAtTurnEnd}): at once when
                # the socket takes it, without the write registration and
                # event Twisted's transport.write costs (two epoll_ctl
                # calls a lookup).  Not from here, each as it is made: that
                # cost more CPU a lookup (bench/lookupcost.py, 215-222 against
                # 191-201 microseconds queued, in smaller batches a poll).
                if self._unsent is None:
                    self._unsent = response
                    self.quick.sendAtTurnEnd(self)
                else:
                    self._unsent += response
                restartChannelTimer(self.wrappedProtocol)
                self._arm(self.limits.idleTimeout)
                return
        self._read(data)

    def _publishing(self, data: bytes, request) -> None:
        """
        A publish of C{data} was started before Twisted read it (C{request},
        a L{fbtwist.web.fastpublish.QuickRequest}): hold what the client
        sends meanwhile, without deadline, until it is answered, or until
        C{data} is to be read the whole way.
        """
        self.stage = BUSY
        self._disarm()
        # No deadline while the server works, the HTTP channel's neither.
        timer = pauseChannelTimer(self.wrappedProtocol)
        self._holding = True
        self._quickPublish = request
        self.factory.requestArrived(request)

        def answered(result):
            self._quickPublish = None
            if self.stage == CLOSING:
                # Gone meanwhile (or aborted): nobody to answer.
                self.factory.requestLeft(request)
                return
            if result is not None and result[1]:
                # Refused before the body (a login): answered, then closed.
                self.answerEarly(result[0])
                self.factory.requestLeft(request)
                return
            resumeChannelTimer(self.wrappedProtocol, timer)
            self._holding = False
            if len(self._heldData) > 16:
                self.transport.resumeProducing()
            held, self._heldData = b"".join(self._heldData), []
            self.stage = IDLE
            if result is None:
                self.factory.requestLeft(request)
                self._read(data + held)
                return
            self.sendUnsent()
            # At once (the publish's answer arrives with the commit's, not
            # with a read of this connection's): no write registration.
            writeNow(self.transport, result[0])
            self._arm(self.limits.idleTimeout)
            # Once answered: a shutdown then closes the idle connection.
            self.factory.requestLeft(request)
            if held and self.stage == IDLE:
                self.dataReceived(held)

        def failed(failure):
            self.log.failure("answering a publish read before Twisted", failure)
            self._quickPublish = None
            self.factory.requestLeft(request)
            self.answerAndClose(500, b"Internal Server Error", "internal server error")

        request.answer.addCallback(answered).addErrback(failed)

    def _read(self, data):
        """
        Read C{data} the whole way: Twisted's HTTP channel, this
        connection's deadlines and size limits.
        """
        if self._holding:
            self._heldData.append(data)
            if self._quickPublish is not None and len(self._heldData) > 16:
                # A client sending on while its publish is written: read
                # no more until it is answered.
                self.transport.pauseProducing()
            return
        if self.stage == IDLE:
            self._startHeaders()
        if self.stage == HEADERS:
            headerEnd = self._checkHeaderSize(data)
            if headerEnd is False:
                return
            if headerEnd is not None and headerEnd < len(data):
                # The headers first: what the request decides on them
                # (an early answer, a pause for credentials) applies to
                # the body that came with them.
                super().dataReceived(data[:headerEnd])
                self.dataReceived(data[headerEnd:])
                return
        elif self.stage == BODY:
            self._bodyBytes += len(data)
            if self._chunkedBody and len(data) > CHUNKED_SLICE:
                # In slices, so that a body refused part way (too many
                # tiny chunks) costs no more parsing than one slice.
                for start in range(0, len(data), CHUNKED_SLICE):
                    if self.stage != BODY:
                        # Refused, or the body ended: what follows is the
                        # next request's.
                        self.dataReceived(data[start:])
                        return
                    super().dataReceived(data[start:start + CHUNKED_SLICE])
                return
        super().dataReceived(data)

    def _speaksHTTP2(self) -> bool:
        transport = self.transport
        return ISSLTransport.providedBy(transport) and getattr(transport, "negotiatedProtocol", None) == b"h2"

    def _checkHeaderSize(self, data: bytes):
        """
        Answer 414 or 431 when the request line or the headers of the
        request being received grow past their limits.

        @return: C{False} when answered; otherwise where in C{data} the
            headers end, or C{None} when they go on.
        """
        seen = self._tail + data
        offset = self._received - len(self._tail)
        if not self._lineDone:
            end = seen.find(b"\r\n")
            lineLength = offset + (end if end != -1 else len(seen))
            if lineLength > self.limits.maxRequestLine:
                self.answerAndClose(414, b"URI Too Long", "the request line is too long")
                return False
        end = seen.find(b"\r\n\r\n")
        headerLength = offset + (end if end != -1 else len(seen))
        # Lines ending in this data (one split across reads may be missed).
        self._lines += data[: max(0, end - len(self._tail)) if end != -1 else len(data)].count(b"\r\n")
        if headerLength > self.limits.maxHeaderBytes or self._lines > self.limits.maxHeaderCount:
            self.answerAndClose(431, b"Request Header Fields Too Large", "the request headers are too large")
            return False
        self._received += len(data)
        self._tail = seen[-3:]
        return None if end == -1 else max(0, end + 4 - (len(seen) - len(data)))

    def holdBody(self) -> None:
        """
        Read no more of the request (and keep what was read unparsed)
        until L{releaseBody}: its credentials are being checked.
        """
        self._holding = True
        self.transport.pauseProducing()

    def releaseBody(self) -> None:
        """
        Go on reading, starting with what L{holdBody} kept.
        """
        if not self._holding:
            return
        self._holding = False
        held, self._heldData = b"".join(self._heldData), []
        if self.stage != CLOSING:
            self.transport.resumeProducing()
            if held:
                self.dataReceived(held)

    def sendUnsent(self) -> None:
        """
        Send the quick answer not sent yet, if any: when the reactor's turn
        ends, or before anything else is written to the connection.
        """
        unsent = self._unsent
        if unsent is not None:
            self._unsent = None
            writeNow(self.transport, unsent)

    def write(self, data):
        # Nothing goes out after an early answer.
        if not self._answered:
            self.sendUnsent()
            super().write(data)

    def writeSequence(self, data):
        if not self._answered:
            self.sendUnsent()
            super().writeSequence(data)

    # --- answering early ------------------------------------------------

    def answerAndClose(self, code: int, phrase: bytes, reason: str, headers=()) -> None:
        """
        Send a whole response and close the connection without reading on:
        what the client still sends is dropped unparsed for a moment
        (L{LINGER_SECONDS}), so that closing with unread data does not reset
        the connection before the client has read the answer.
        """
        self.answerEarly(rawResponse(code, phrase, reason, headers))

    def answerEarly(self, response: bytes) -> None:
        """
        Send C{response} (a whole HTTP response) and close as
        L{answerAndClose} does.
        """
        if self.stage == CLOSING or self.disconnected:
            return
        self.stage = CLOSING
        self._disarm()
        self._holding, self._heldData = False, []
        self.sendUnsent()
        self.transport.write(response)
        self._answered = True
        if ITCPTransport.providedBy(self.transport) and not ISSLTransport.providedBy(self.transport):
            # Half-close: the client sees the end of the answer, and its
            # own close ends the connection; the timer ends it otherwise.
            self.transport.resumeProducing()
            self.transport.loseWriteConnection()
            self._arm(LINGER_SECONDS)
        else:
            self.transport.loseConnection()

    def connectionLost(self, reason):
        self._unsent = None
        self._disarm()
        self.stage = CLOSING
        self.disconnected = 1
        # The HTTP channel first (its requests end), then the site's count.
        try:
            self.wrappedProtocol.connectionLost(reason)
        finally:
            self.factory.unregisterProtocol(self)
