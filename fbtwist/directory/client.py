"""
One connection to the directory: ldaptor's client with a faster receive loop,
and the errors that mean the directory cannot answer now.
"""

from typing import Dict, List, Set

from ldaptor.protocols import pureldap
from ldaptor.protocols.ldap import ldaperrors
from ldaptor.protocols.ldap.ldapclient import LDAPClient, LDAPClientConnectionLostException
from OpenSSL import SSL
from twisted.internet import defer
from twisted.internet import error as netError
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure
from zope.interface import implementer

from fbtwist.compat.ldaptor import receive
from fbtwist.compat.twisted import writeNow
from fbtwist.directory.ber import MalformedMessage, _messageEnd, _searchEntryMessage, searchEntries
from fbtwist.directory.simplebind import MAX_ANSWER, BindAnswer, bindAnswer, bindRequest, isNotice
from fbtwist.tlsclient import ServerCertificateRefused

# Result codes that mean "the directory cannot answer now", not "no".
_UNAVAILABLE_CODES = {
    ldaperrors.LDAPBusy.resultCode,
    ldaperrors.LDAPUnavailable.resultCode,
    ldaperrors.LDAPUnwillingToPerform.resultCode,
    ldaperrors.LDAPOther.resultCode,
    ldaperrors.LDAPTimeLimitExceeded.resultCode,
    ldaperrors.LDAPAdminLimitExceeded.resultCode,
}
_REFERRAL_CODE = ldaperrors.LDAPReferral.resultCode
_CONNECTION_ERRORS = (
    netError.ConnectError,
    # HostnameEndpoint's: the name does not resolve, or its connection
    # attempt was cancelled (timed out); neither is a ConnectError.
    netError.DNSLookupError,
    netError.ConnectingCancelledError,
    netError.ConnectionLost,
    netError.ConnectionDone,
    LDAPClientConnectionLostException,
    defer.TimeoutError,
    defer.CancelledError,
)
#: How a connection the server closed while it was idle fails.
_STALE_CONNECTION_ERRORS = (netError.ConnectionLost, netError.ConnectionDone, LDAPClientConnectionLostException)
_TLS_ERRORS = (SSL.Error, ServerCertificateRefused)


def _describeTLSFailure(e: Exception) -> str:
    if isinstance(e, ServerCertificateRefused):
        return str(e)
    # OpenSSL's own error: a certificate that was sent has been judged (and
    # a refusal explained) by VerifyingClientTLS, so this is about the
    # handshake, or a server that sent no certificate.
    reasons = [part for err in (e.args[0] if e.args and isinstance(e.args[0], list) else []) for part in err[-1:]]
    return f"the TLS handshake failed ({', '.join(reasons) or e})"


@implementer(IHandshakeListener)
class DirectoryClient(LDAPClient):
    """
    An L{LDAPClient} that

      - lets its TLS handshake be awaited (L{waitForHandshake}), so that a
        certificate that does not verify is reported as such, at connect
        time;
      - ignores referrals: continuation references in search results are
        skipped (ldaptor's own client does that), and a result that carries
        a referral (Active Directory answers so for a base outside its
        naming contexts) is read as "nothing here" instead of tripping
        ldaptor's C{assert msg.referral is None}.
    """

    def __init__(self):
        super().__init__()
        self._handshakeWaiters: List[defer.Deferred] = []
        self._handshakeDone = False
        self._closeWaiters: List[defer.Deferred] = []
        self.closed = False
        #: When set, C{rawEntries(dn, attributes)} gets every search result
        #: entry of this connection as bytes (C{attributes}: C{(type,
        #: [values])} pairs), before the result that ends its search, and
        #: no ldaptor object is built for it: loading a million users' names
        #: (on a connection of its own) spent most of its time building them.
        self.rawEntries = None
        #: Why the stream could not be read (a L{MalformedMessage}): the
        #: requests in flight fail with it once the connection is closed.
        self.malformed = None
        #: The simple binds sent by L{simpleBind} and not yet answered, by
        #: message id.
        self._binds: Dict[int, defer.Deferred] = {}
        #: The ids of binds given up (timed out) before their answer came.
        self._givenUp: Set[int] = set()

    def waitForHandshake(self) -> defer.Deferred:
        if self._handshakeDone:
            return defer.succeed(self)
        d = defer.Deferred()
        self._handshakeWaiters.append(d)
        return d

    def handshakeCompleted(self) -> None:
        self._handshakeDone = True
        waiters, self._handshakeWaiters = self._handshakeWaiters, []
        for d in waiters:
            d.callback(self)

    def whenClosed(self) -> defer.Deferred:
        """
        @return: A Deferred that fires once the connection is closed.
        """
        d = defer.Deferred()
        if self.closed:
            d.callback(None)
        else:
            self._closeWaiters.append(d)
        return d

    def simpleBind(self, dn: bytes, password: bytes) -> defer.Deferred:
        """
        Send a simple bind as C{dn}, encoded directly (see
        L{fbtwist.directory.simplebind}).

        @return: A Deferred firing with the server's L{BindAnswer}, or
            failing as ldaptor's requests do when the connection is lost.
        @raise LDAPClientConnectionLostException: When the connection is
            not open.
        """
        if not self.connected:
            raise LDAPClientConnectionLostException()
        # The ids ldaptor's own requests take, so that they never collide.
        messageID = pureldap.alloc_ldap_message_id()
        d = defer.Deferred(lambda d: self._giveUp(messageID))
        self._binds[messageID] = d
        # Sent at once: no registration for writing and no write event for
        # each of a publishing server's binds (one a first login).
        writeNow(self.transport, bindRequest(messageID, dn, password))
        return d

    def _giveUp(self, messageID: int) -> None:
        # Its answer, should it come later, is read and dropped (as ldaptor
        # drops the answers to its requests given up).
        if self._binds.pop(messageID, None) is not None:
            self._givenUp.add(messageID)

    def connectionLost(self, reason=None):
        self.closed = True
        if self.malformed is not None:
            reason = Failure(self.malformed)
        waiters, self._handshakeWaiters = self._handshakeWaiters, []
        for d in waiters:
            d.errback(reason)
        binds, self._binds = self._binds, {}
        for d in binds.values():
            d.errback(reason if reason is not None else Failure(netError.ConnectionDone()))
        super().connectionLost(reason)
        waiters, self._closeWaiters = self._closeWaiters, []
        for d in waiters:
            d.callback(None)

    def dataReceived(self, data):
        # Search entries take a direct path (see the adapter for why); a
        # search that wants raw entries (the name index) gets them undecoded.
        if self.malformed is not None:
            return
        try:
            if self._binds or self._givenUp:
                try:
                    receive(self, data, _boundedMessageEnd, self._decodeBindAnswer)
                except MalformedMessage:
                    raise
                except Exception as e:
                    # What ldaptor could not decode (or an answer to no
                    # request) where a bind's answer was awaited.
                    raise MalformedMessage(f"not an answer to a bind ({type(e).__name__})") from None
            else:
                receive(self, data, _messageEnd, _searchEntryMessage, self._consumeRaw)
        except MalformedMessage as e:
            # Nothing after it can be read: what waits fails with why.
            self.malformed = e
            self.transport.abortConnection()

    def _decodeBindAnswer(self, buffer: bytes, offset: int, end: int):
        # Only binds are in flight: any other message but the server's
        # notice (message id 0, read by ldaptor) cannot be read.
        answer = bindAnswer(buffer, offset, end)
        if answer is None and not isNotice(buffer, offset, end):
            raise MalformedMessage("not an answer to a bind")
        return answer

    def _consumeRaw(self, buffer: bytes, offset: int) -> int:
        raw = self.rawEntries
        if raw is None:
            return offset
        return searchEntries(buffer, offset, raw)

    def handle(self, msg):
        if type(msg) is BindAnswer:
            d = self._binds.pop(msg.id, None)
            if d is not None:
                d.callback(msg)
            else:
                self._givenUp.discard(msg.id)
            return
        response = msg.value
        if isinstance(response, pureldap.LDAPResult):
            response.referral = None
            if isinstance(response, pureldap.LDAPSearchResultDone) and response.resultCode == _REFERRAL_CODE:
                response.resultCode = ldaperrors.Success.resultCode
                response.matchedDN = b""
                response.errorMessage = b""
        super().handle(msg)


def _boundedMessageEnd(buffer: bytes, offset: int):
    """
    L{_messageEnd} on a connection waiting for a bind's answer: a message
    longer than any bind answer is malformed at once, not buffered.
    """
    end = _messageEnd(buffer, offset)
    if end is None and len(buffer) - offset >= 6 and buffer[offset + 1] > 0x80:
        size = buffer[offset + 1] & 0x7F
        if int.from_bytes(buffer[offset + 2:offset + 2 + size], "big") > MAX_ANSWER:
            raise MalformedMessage("an answer to a bind longer than any bind answer")
    return end


class _QuietClientFactory(Factory):
    """
    Builds one LDAP client without a log line per connection.
    """

    noisy = False
    protocol = DirectoryClient


def _close(client: LDAPClient) -> None:
    if client.connected:
        try:
            client.unbind()
        except Exception:
            client.transport.abortConnection()


def _connected(client) -> bool:
    return client is not None and bool(client.connected)
