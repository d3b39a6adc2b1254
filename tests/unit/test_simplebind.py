"""
L{fbtwist.directory.simplebind} and the binds of
L{fbtwist.directory.client.DirectoryClient}: a bind encoded as ldaptor
encodes it, every answer ldaptor encodes read as ldaptor reads it, in
whatever pieces it arrives, and bytes that cannot be an answer failing the
bind at once (never a wait for gigabytes, never a hang).
"""

from ldaptor.protocols import pureber, pureldap
from ldaptor.protocols.ldap import ldaperrors
from ldaptor.protocols.ldap.ldapclient import LDAPClientConnectionLostException
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

import tests.helpers  # noqa: F401 (ldaptor's import-time warnings)
from fbtwist.directory.ber import MalformedMessage
from fbtwist.directory.client import DirectoryClient
from fbtwist.directory.ldapdirectory import LDAPDirectory
from fbtwist.directory.ldapurl import parseLDAPURL
from fbtwist.directory.simplebind import MAX_ANSWER, BindAnswer, bindAnswer, bindRequest
from fbtwist.errors import DirectoryUnavailable

#: DNs and passwords: empty, non-ASCII, and lengths needing one, two and
#: three bytes of long-form length.
DNS = [b"", "uid=jos\u00e9,ou=people,dc=example,dc=com".encode("utf-8"), b"cn=" + b"d" * 130,
       b"cn=" + "\u00e9".encode("utf-8") * 200, b"cn=" + b"x" * 70000]
PASSWORDS = [b"", "ol\u00e9-\u20ac".encode("utf-8"), b"p" * 127, b"p" * 128, b"p" * 300, b"q" * 66000]
MESSAGE_IDS = [1, 2, 127, 128, 255, 256, 32767, 32768, 65535, 8388608, 2**31 - 1]


def _response(messageID: int, resultCode: int, matchedDN: bytes = b"", message: bytes = b"") -> bytes:
    return pureldap.LDAPMessage(
        pureldap.LDAPBindResponse(resultCode=resultCode, matchedDN=matchedDN, errorMessage=message), id=messageID,
    ).toWire()


def _withReferral(messageID: int, resultCode: int, message: bytes = b"") -> bytes:
    """
    A BindResponse carrying a referral (ldaptor encodes none): the
    result's elements, then C{[3] SEQUENCE OF LDAPURL}.
    """
    referral = pureber.BERSequence([pureber.BEROctetString(b"ldap://other.example/dc=example,dc=com")],
                                   tag=0xA3)
    content = b"".join(element.toWire() for element in (
        pureber.BEREnumerated(resultCode), pureber.BEROctetString(b""), pureber.BEROctetString(message), referral))
    return _envelope(messageID, b"\x61" + pureber.int2berlen(len(content)) + content)


def _envelope(messageID: int, op: bytes) -> bytes:
    content = pureber.BERInteger(messageID).toWire() + op
    return b"\x30" + pureber.int2berlen(len(content)) + content


def _sentID(wire: bytes) -> int:
    """
    The message id of the request in C{wire}.
    """
    return pureber.berDecodeObject(pureber.BERDecoderContext(), wire[2:])[0].value


def _allResultCodes():
    codes = {cls.resultCode for cls in vars(ldaperrors).values()
             if isinstance(cls, type) and isinstance(getattr(cls, "resultCode", None), int)}
    return sorted(codes | {0, 49, 80, 127, 128, 255, 4096})


class BindRequestTests(SynchronousTestCase):
    """
    L{bindRequest} gives ldaptor's bytes.
    """

    def test_sameAsLdaptor(self):
        """
        Non-ASCII and long DNs and passwords, short and long message ids:
        the bytes of ldaptor's LDAPMessage(LDAPBindRequest).
        """
        for dn in DNS:
            for password in PASSWORDS:
                for messageID in MESSAGE_IDS:
                    expected = pureldap.LDAPMessage(
                        pureldap.LDAPBindRequest(dn=dn, auth=password), id=messageID).toWire()
                    self.assertEqual(bindRequest(messageID, dn, password), expected, (dn[:20], password[:20],
                                                                                      messageID))

    def test_ldaptorReadsIt(self):
        """
        ldaptor's server-side decoder reads back the DN, the password and
        version 3.
        """
        wire = bindRequest(300, DNS[1], PASSWORDS[1])
        decoded, used = pureber.berDecodeObject(pureldap.LDAPBERDecoderContext_TopLevel(
            inherit=pureldap.LDAPBERDecoderContext_LDAPMessage(
                fallback=pureldap.LDAPBERDecoderContext(fallback=pureber.BERDecoderContext()),
                inherit=pureldap.LDAPBERDecoderContext(fallback=pureber.BERDecoderContext()))), wire)
        self.assertEqual(used, len(wire))
        self.assertEqual((decoded.id, decoded.value.version, decoded.value.dn, decoded.value.auth),
                         (300, 3, DNS[1], PASSWORDS[1]))


class BindAnswerTests(SynchronousTestCase):
    """
    L{bindAnswer} on whole messages.
    """

    def assertAnswer(self, wire, messageID, resultCode, matchedDN=b"", message=b""):
        answer = bindAnswer(wire, 0, len(wire))
        self.assertIsInstance(answer, BindAnswer)
        self.assertEqual((answer.id, answer.resultCode, answer.matchedDN, answer.errorMessage),
                         (messageID, resultCode, matchedDN, message))

    def test_everyResultCode(self):
        """
        Every result code, with and without a matched DN and a diagnostic
        message (Active Directory's, and a long one), with short and long
        message ids: what ldaptor encoded.
        """
        adMessage = b"80090308: LdapErr: DSID-0C09042A, comment: AcceptSecurityContext error, data 775, v3839"
        for code in _allResultCodes():
            for messageID in (1, 128, 70000):
                self.assertAnswer(_response(messageID, code), messageID, code)
                self.assertAnswer(_response(messageID, code, b"dc=example", adMessage), messageID, code,
                                  b"dc=example", adMessage)
                self.assertAnswer(_response(messageID, code, message=b"m" * 1000), messageID, code,
                                  message=b"m" * 1000)

    def test_referral(self):
        """
        A referral after the diagnostic message is skipped.
        """
        self.assertAnswer(_withReferral(5, 10, b"go elsewhere"), 5, 10, message=b"go elsewhere")

    def test_otherOperations(self):
        """
        Another operation's message (a search's result, an extended
        response, a search entry) is not a bind answer: C{None}, for
        ldaptor's decoder.
        """
        for op in (pureldap.LDAPSearchResultDone(resultCode=0), pureldap.LDAPExtendedResponse(resultCode=2),
                   pureldap.LDAPSearchResultEntry(objectName=b"uid=a", attributes=[(b"uid", [b"a"])])):
            wire = pureldap.LDAPMessage(op, id=3).toWire()
            self.assertIsNone(bindAnswer(wire, 0, len(wire)))

    def test_malformed(self):
        """
        A bind answer whose elements have wrong tags, overrun it, or are
        missing raises L{MalformedMessage}.
        """
        good = _response(7, 49, b"", b"data 52e")
        # 30 len 02 01 07 61 len 0a 01 31 04 00 04 08 ...
        self.assertEqual(good[5:9], b"\x61\x0f\x0a\x01")
        cases = [
            good[:7] + b"\x02" + good[8:],             # the result code is an INTEGER
            good[:10] + b"\x05" + good[11:],           # the matched DN is no OCTET STRING
            good[:13] + b"\x7f" + good[14:],           # the message overruns the answer
            good[:6] + b"\x84\x7f\xff\xff\xff" + good[7:],  # the answer overruns the message
            good[:6] + b"\x85\x00\x00\x00\x00\x0f" + good[7:],  # a 5-byte length
            good[:8] + b"\x00" + good[9:],             # a result code of no bytes
            b"\x30\x08\x02\x01\x07\x61\x03\x0a\x01\x00",  # no matched DN
        ]
        for wire in cases:
            self.assertRaises(MalformedMessage, bindAnswer, wire, 0, len(wire))

    def test_withinBounds(self):
        """
        A message in the middle of a buffer is read between its bounds.
        """
        wire = _response(9, 0, b"", b"fine")
        buffer = b"\x30\x00" + wire + _response(10, 49)
        answer = bindAnswer(buffer, 2, 2 + len(wire))
        self.assertEqual((answer.id, answer.resultCode, answer.errorMessage), (9, 0, b"fine"))


class ClientBindTests(SynchronousTestCase):
    """
    L{DirectoryClient.simpleBind} on a L{StringTransport}.
    """

    def setUp(self):
        self.client = DirectoryClient()
        self.transport = StringTransport()
        self.client.makeConnection(self.transport)

    def bind(self, dn=b"uid=alice,dc=example", password=b"secret"):
        self.transport.clear()
        d = self.client.simpleBind(dn, password)
        return d, _sentID(self.transport.value())

    def test_sentAsLdaptorWould(self):
        """
        The bytes sent are ldaptor's for the same request and message id.
        """
        d, messageID = self.bind()
        self.assertEqual(self.transport.value(), pureldap.LDAPMessage(
            pureldap.LDAPBindRequest(dn=b"uid=alice,dc=example", auth=b"secret"), id=messageID).toWire())

    def test_idsShared(self):
        """
        Binds take their message ids where ldaptor's own requests do: no
        two requests of a process share one.
        """
        _, first = self.bind()
        other = pureldap.LDAPMessage(pureldap.LDAPAbandonRequest(id=1))
        _, second = self.bind()
        self.assertEqual((first + 1, first + 2), (other.id, second))

    def test_splitAnywhere(self):
        """
        An answer (with a diagnostic message, and with a referral) split at
        any byte across reads, and two answers in one read, fire their
        binds with the server's result.
        """
        for makeWire in (lambda i: _response(i, 49, b"dc=example", b"data 52e"),
                         lambda i: _withReferral(i, 49, b"data 52e")):
            for cut in range(1, 30):
                d, messageID = self.bind()
                wire = makeWire(messageID)
                self.client.dataReceived(wire[:cut])
                self.assertNoResult(d)
                self.client.dataReceived(wire[cut:])
                answer = self.successResultOf(d)
                self.assertEqual((answer.resultCode, answer.errorMessage), (49, b"data 52e"))
        d1, id1 = self.bind()
        d2, id2 = self.bind()
        self.client.dataReceived(_response(id2, 0) + _response(id1, 49))
        self.assertEqual((self.successResultOf(d1).resultCode, self.successResultOf(d2).resultCode), (49, 0))
        self.assertFalse(self.transport.disconnecting)

    def test_otherAnswer(self):
        """
        Another operation's answer to the bind's id, or a message ldaptor
        cannot decode, fails the bind with L{MalformedMessage} and closes
        the connection.
        """
        for wire in (lambda i: _envelope(i, pureldap.LDAPSearchResultDone(resultCode=0).toWire()),
                     lambda i: _envelope(i, b"\x99\x00")):
            self.setUp()
            d, messageID = self.bind()
            self.client.dataReceived(wire(messageID))
            self.assertTrue(self.transport.disconnecting)
            self.client.connectionLost(Failure(ConnectionLost()))
            self.failureResultOf(d, MalformedMessage)

    def test_notice(self):
        """
        The server's notice of disconnection (message id 0) while a bind
        waits is read as a notice, not as a malformed answer; the bind then
        fails as a lost connection.
        """
        d, _ = self.bind()
        self.client.dataReceived(pureldap.LDAPMessage(
            pureldap.LDAPExtendedResponse(resultCode=52, responseName=b"1.3.6.1.4.1.1466.20036"), id=0).toWire())
        self.assertFalse(self.transport.disconnecting)
        self.assertNoResult(d)
        self.client.connectionLost(Failure(ConnectionDone()))
        self.failureResultOf(d, ConnectionDone)

    def test_hugeLength(self):
        """
        A message claiming more than any bind answer fails the bind at
        once, without waiting for (or buffering) its bytes.
        """
        d, _ = self.bind()
        self.client.dataReceived(b"\x30\x84" + (MAX_ANSWER + 1).to_bytes(4, "big"))
        self.assertTrue(self.transport.disconnecting)
        self.client.connectionLost(Failure(ConnectionLost()))
        self.failureResultOf(d, MalformedMessage)

    def test_truncated(self):
        """
        A connection closed in the middle of an answer fails the bind as a
        lost connection.
        """
        d, messageID = self.bind()
        self.client.dataReceived(_response(messageID, 0)[:5])
        self.client.connectionLost(Failure(ConnectionDone()))
        self.failureResultOf(d, ConnectionDone)

    def test_notConnected(self):
        """
        A bind on a closed connection raises as ldaptor's requests do.
        """
        self.client.connectionLost(Failure(ConnectionDone()))
        self.assertRaises(LDAPClientConnectionLostException, self.client.simpleBind, b"uid=a", b"pw")

    def test_cancelled(self):
        """
        A bind given up (timed out) forgets its id: its late answer is
        dropped, and the next bind's is read.
        """
        d, messageID = self.bind()
        d.cancel()
        self.failureResultOf(d, defer.CancelledError)
        self.client.dataReceived(_response(messageID, 0))
        self.assertFalse(self.transport.disconnecting)
        d, messageID = self.bind()
        d.cancel()
        self.failureResultOf(d, defer.CancelledError)
        d2, id2 = self.bind()
        self.client.dataReceived(_response(messageID, 0) + _response(id2, 49))
        self.assertEqual(self.successResultOf(d2).resultCode, 49)
        self.assertFalse(self.transport.disconnecting)


class DirectoryBindTests(SynchronousTestCase):
    """
    L{LDAPDirectory}'s user binds over an in-memory connection: the
    server's answers, bytes that are no answer, and none at all.
    """

    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.directory = LDAPDirectory(parseLDAPURL("ldap://127.0.0.1:9/dc=example?uid"), self.reactor, timeout=1.5)

    def bind(self, password="pw"):
        d = defer.Deferred.fromCoroutine(self.directory._bindUser("uid=alice,dc=example", password))
        if self.reactor.tcpClients:
            factory = self.reactor.tcpClients.pop()[2]
            self.transport = StringTransport()
            self.protocol = factory.buildProtocol(None)
            self.protocol.makeConnection(self.transport)
        messageID = _sentID(self.transport.value())
        self.transport.clear()
        return d, messageID

    def test_answers(self):
        """
        Success binds; Active Directory's refusal names its reason; a busy
        server is an outage; the connection is kept after the refusal.
        """
        d, messageID = self.bind()
        self.protocol.dataReceived(_response(messageID, 0))
        self.assertIsNone(self.successResultOf(d))
        d, messageID = self.bind()
        self.protocol.dataReceived(_response(messageID, 49, message=b"80090308: LdapErr: data 533, v3839"))
        self.assertIn("account disabled", str(self.failureResultOf(d, UnauthorizedLogin).value))
        self.assertFalse(self.transport.disconnecting)
        d, messageID = self.bind()
        self.protocol.dataReceived(_response(messageID, 51))
        self.failureResultOf(d, DirectoryUnavailable)

    def test_malformed(self):
        """
        An answer that cannot be read is an outage (not a wrong password,
        not an unexpected error), and the connection is dropped.
        """
        d, messageID = self.bind()
        self.protocol.dataReceived(_envelope(messageID, b"\x61\x02\x0a\x01"))
        self.assertTrue(self.transport.disconnecting)
        self.protocol.connectionLost(Failure(ConnectionLost()))
        self.failureResultOf(d, DirectoryUnavailable)

    def test_noAnswer(self):
        """
        A bind the server never answers times out as an outage.
        """
        d, _ = self.bind()
        self.assertNoResult(d)
        self.reactor.advance(1.5)
        self.failureResultOf(d, DirectoryUnavailable)
