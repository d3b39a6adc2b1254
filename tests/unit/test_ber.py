"""
L{fbtwist.directory.ber}: the fast decoders of search result entries give
ldaptor's answers for what servers send, and C{None} (never an exception,
never a read past the message) for anything else.
"""

from hypothesis import given, settings
from hypothesis import strategies as st
from ldaptor.protocols import pureber, pureldap
from twisted.trial.unittest import SynchronousTestCase

import tests.helpers  # noqa: F401 (ldaptor's import-time warnings)
from fbtwist.directory.ber import MAX_MESSAGE, MalformedMessage, _messageEnd, _searchEntryParts, searchEntries


def _entry(dn: bytes, attributes, messageID: int = 7) -> bytes:
    return pureldap.LDAPMessage(pureldap.LDAPSearchResultEntry(objectName=dn, attributes=attributes),
                                id=messageID).toWire()


#: An entry with long-form lengths at every level: a DN, a value and a
#: set of values longer than 127 bytes, and over 255 bytes in all.
LONG = _entry(b"uid=" + b"x" * 200 + b",ou=people,dc=example,dc=com",
              [(b"uid", [b"x" * 200]), (b"mail", [b"m%d@example.com" % n for n in range(20)]), (b"cn", [])],
              messageID=300)


def _ldaptor(message: bytes):
    decoded, _ = pureber.berDecodeObject(pureldap.LDAPBERDecoderContext_TopLevel(
        inherit=pureldap.LDAPBERDecoderContext_LDAPMessage(
            fallback=pureldap.LDAPBERDecoderContext(fallback=pureber.BERDecoderContext()),
            inherit=pureldap.LDAPBERDecoderContext(fallback=pureber.BERDecoderContext()))), message)
    entry = decoded.value
    return decoded.id, entry.objectName, [(name, list(values)) for name, values in entry.attributes]


class SearchEntryPartsTests(SynchronousTestCase):
    """
    L{_searchEntryParts} on whole messages, well-formed and not.
    """

    def test_sameAsLdaptor(self):
        """
        Short and long-form lengths, several values, an attribute without
        values: the message id, DN and attributes are ldaptor's.
        """
        short = _entry(b"uid=a,dc=x", [(b"uid", [b"a"]), (b"mail", [b"a@x", b"b@x"])])
        for message in (short, LONG):
            parts = _searchEntryParts(message, 0, len(message))
            self.assertEqual(parts, _ldaptor(message))
        self.assertEqual(_searchEntryParts(LONG, 0, len(LONG))[0], 300)

    def test_withinBounds(self):
        """
        A message in the middle of a buffer is read between its bounds.
        """
        buffer = b"\x30\x00" + LONG + b"\x30\x05garbage"
        self.assertEqual(_searchEntryParts(buffer, 2, 2 + len(LONG)), _ldaptor(LONG))

    def test_truncated(self):
        """
        Every shorter end, as if the message's own length said so, gives
        C{None}.
        """
        for message in (LONG, _entry(b"uid=a,dc=x", [(b"uid", [b"a"])])):
            for end in range(len(message)):
                self.assertIsNone(_searchEntryParts(message, 0, end), end)

    def test_notAnEntry(self):
        """
        Other messages, an entry followed by controls, wrong tags and
        lengths that overrun what holds them give C{None}.
        """
        done = pureldap.LDAPMessage(pureldap.LDAPSearchResultDone(resultCode=0), id=3).toWire()
        self.assertIsNone(_searchEntryParts(done, 0, len(done)))
        withControls = pureldap.LDAPMessage(
            pureldap.LDAPSearchResultEntry(objectName=b"uid=a", attributes=[(b"uid", [b"a"])]), id=3,
            controls=[(b"1.2.3", None, None)]).toWire()
        self.assertIsNone(_searchEntryParts(withControls, 0, len(withControls)))
        message = _entry(b"uid=a,dc=x", [(b"uid", [b"a"])])
        # The value's length (the byte before b"a" at the end) made longer
        # than its set.
        overrun = message[:-2] + b"\x05" + message[-1:]
        self.assertIsNone(_searchEntryParts(overrun, 0, len(overrun)))
        # A length of five bytes: no server sends one.
        huge = b"\x30\x85\x00\x00\x00\x00\x10" + message[2:]
        self.assertIsNone(_searchEntryParts(huge, 0, len(huge)))

    def test_everyByteChanged(self):
        """
        Changing any one byte of an entry to any of a few values never
        raises: the answer is C{None} or an entry within the message.
        """
        for position in range(len(LONG)):
            for value in (0x00, 0x04, 0x30, 0x7F, 0x80, 0x81, 0x84, 0xFF):
                message = LONG[:position] + bytes([value]) + LONG[position + 1:]
                parts = _searchEntryParts(message, 0, len(message))
                if parts is not None:
                    self.assertLessEqual(len(parts[1]) + sum(len(v) for _, vs in parts[2] for v in vs),
                                         len(message))

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=300), st.integers(min_value=0, max_value=300))
    def test_anyBytes(self, data, cut):
        """
        Any bytes, cut anywhere, give C{None} or a decoded entry, never an
        exception; where the framing says a message ends is never past the
        buffer.
        """
        end = min(cut, len(data))
        _searchEntryParts(data, 0, end)
        if data:
            found = _messageEnd(data, 0)
            self.assertTrue(found is None or found <= len(data))


def _done(messageID: int = 7) -> bytes:
    return pureldap.LDAPMessage(pureldap.LDAPSearchResultDone(resultCode=0), id=messageID).toWire()


def _decoded(message: bytes):
    _, dn, attributes = _ldaptor(message)
    return dn, attributes


class SearchEntriesTests(SynchronousTestCase):
    """
    L{searchEntries}: a run of search result entries decoded in one loop,
    as ldaptor decodes each, and a clear error for bytes that cannot be an
    LDAP message.
    """

    def setUp(self):
        self.entries = [
            _entry(b"uid=a,dc=x", [(b"uid", [b"a"]), (b"mail", [b"a@x", b"b@x"])]),
            LONG,
            _entry(b"cn=\xc3\xa9,dc=x", [(b"UID", [b"\xc3\xa9"]), (b"cn", [])], messageID=2**31 - 1),
        ]
        self.stream = b"".join(self.entries) + _done()

    def _decodeRun(self, buffer: bytes, offset: int = 0):
        seen = []
        stopped = searchEntries(buffer, offset, lambda dn, attributes: seen.append((dn, attributes)))
        return stopped, seen

    def test_sameAsLdaptor(self):
        """
        Every entry of the run reaches the consumer as ldaptor decodes it,
        in order; it stops before the search's result, left to ldaptor.
        """
        stopped, seen = self._decodeRun(self.stream)
        self.assertEqual(seen, [_decoded(m) for m in self.entries])
        self.assertEqual(stopped, len(self.stream) - len(_done()))
        self.assertEqual(self._decodeRun(self.stream, stopped), (stopped, []))

    def test_notAllArrived(self):
        """
        Cut anywhere, the stream gives the entries that are whole and stops
        where the first one that is not starts: no error, nothing more read.
        """
        ends = [0]
        for message in self.entries:
            ends.append(ends[-1] + len(message))
        for cut in range(len(self.stream)):
            stopped, seen = self._decodeRun(self.stream[:cut])
            whole = max(n for n, end in enumerate(ends) if end <= cut)
            self.assertEqual((stopped, len(seen)), (ends[whole], whole), cut)

    def test_controlsLeftToLdaptor(self):
        """
        An entry that carries controls, and any other operation, ends the
        run without an error.
        """
        withControls = pureldap.LDAPMessage(
            pureldap.LDAPSearchResultEntry(objectName=b"uid=a", attributes=[(b"uid", [b"a"])]), id=3,
            controls=[(b"1.2.3", None, None)]).toWire()
        reference = pureldap.LDAPMessage(pureldap.LDAPSearchResultReference(uris=[b"ldap://x/"]), id=3).toWire()
        for other in (withControls, reference, _done()):
            self.assertEqual(self._decodeRun(self.entries[0] + other),
                             (len(self.entries[0]), [_decoded(self.entries[0])]))

    def test_wrongLengths(self):
        """
        A value, an attribute or an entry longer than what holds it, a tag
        that is not the one expected there, or a message that is not a
        sequence, raise L{MalformedMessage} with a sentence saying so.
        """
        message = _entry(b"uid=a,dc=x", [(b"uid", [b"a"])])
        overrunValue = message[:-2] + b"\x05" + message[-1:]
        # The entry (after the 3-byte message id) says it is longer than its
        # message.
        overrunEntry = message[:6] + bytes([message[6] + 3]) + message[7:]
        wrongTag = message.replace(b"\x04\x03uid", b"\x02\x03uid")
        for bad in (overrunValue, overrunEntry, wrongTag, b"\x02\x01\x00", b"\x30\x03\x04\x01\x00"):
            with self.assertRaises(MalformedMessage) as raised:
                self._decodeRun(self.entries[0] + bad)
            self.assertTrue(str(raised.exception), bad)

    def test_hugeLengths(self):
        """
        A message length over L{MAX_MESSAGE}, or of more than 4 bytes, is an
        error as soon as the length has arrived: nothing waits for (or
        holds) gigabytes that will never come.
        """
        for header in (b"\x30\x84\x7f\xff\xff\xff", b"\x30\x84" + (MAX_MESSAGE + 1).to_bytes(4, "big"),
                       b"\x30\x85\x00\x00\x00\x00\x10", b"\x30\x80"):
            with self.assertRaises(MalformedMessage) as raised:
                self._decodeRun(header)
            self.assertIn("message", str(raised.exception))
        # Exactly the largest is waited for.
        self.assertEqual(self._decodeRun(b"\x30\x84" + MAX_MESSAGE.to_bytes(4, "big")), (0, []))

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=300))
    def test_anyBytes(self, data):
        """
        Any bytes, alone or after whole entries, give an offset within the
        buffer at the end of a decoded entry, or L{MalformedMessage}; never
        another exception.
        """
        for buffer in (data, self.entries[0] + data):
            try:
                stopped, seen = self._decodeRun(buffer)
            except MalformedMessage:
                continue
            self.assertLessEqual(stopped, len(buffer))
            if buffer is not data:
                self.assertGreaterEqual(stopped, len(self.entries[0]))
