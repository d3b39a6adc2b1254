"""
A simple bind on the wire, without ldaptor's BER objects: the request is a
few fixed bytes around the DN and the password, and the answer is three
elements (result code, matched DN, diagnostic message).  Every first login
binds once, and building, encoding and decoding ldaptor's objects for it
cost more of the reactor's time than the rest of the bind together.
"""

from typing import Optional

from ldaptor.protocols.pureber import int2berlen

from fbtwist.directory import ber
from fbtwist.directory.ber import MalformedMessage

#: The tag of a BindResponse (APPLICATION 1, constructed).
BIND_RESPONSE = 0x61
#: The longest bind answer waited for: a longer one is malformed at once
#: (an answer is a result code and two short strings, and maybe referrals).
MAX_ANSWER = 2**20


def bindRequest(messageID: int, dn: bytes, password: bytes) -> bytes:
    """
    The LDAPMessage of a simple bind (LDAP version 3), encoded as ldaptor
    encodes C{LDAPMessage(LDAPBindRequest(dn=dn, auth=password), id=messageID)}.
    """
    request = b"\x02\x01\x03\x04" + int2berlen(len(dn)) + dn + b"\x80" + int2berlen(len(password)) + password
    identifier = messageID.to_bytes((messageID.bit_length() + 8) // 8, "big", signed=True)
    content = b"\x02" + int2berlen(len(identifier)) + identifier + b"\x60" + int2berlen(len(request)) + request
    return b"\x30" + int2berlen(len(content)) + content


class BindAnswer:
    """
    The server's answer to a bind: its message id, result code, matched DN
    and diagnostic message (bytes, as ldaptor gives them; Active
    Directory says there why it refused a bind).
    """

    __slots__ = ("id", "resultCode", "matchedDN", "errorMessage")

    def __init__(self, messageID: int, resultCode: int, matchedDN: bytes, errorMessage: bytes):
        self.id = messageID
        self.resultCode = resultCode
        self.matchedDN = matchedDN
        self.errorMessage = errorMessage

    def __repr__(self):
        return (f"BindAnswer(id={self.id}, resultCode={self.resultCode}, matchedDN={self.matchedDN!r}, "
                f"errorMessage={self.errorMessage!r})")


def _element(buffer: bytes, offset: int, end: int, tag: int, what: str):
    """
    The content bounds of the element with C{tag} at C{offset}
    (L{fbtwist.directory.ber}'s reading, its errors a bind answer's).

    @raise MalformedMessage: For another tag, a length of more than 4
        bytes, or an element that overruns C{end}.
    """
    try:
        return ber._element(buffer, offset, end, tag)
    except ValueError as e:
        raise MalformedMessage(f"a bind answer whose {what} cannot be read ({e})") from None


def bindAnswer(buffer: bytes, offset: int, end: int) -> Optional[BindAnswer]:
    """
    The BindResponse of the whole LDAPMessage between C{offset} and C{end},
    or C{None} when that message is another operation (left to ldaptor).

    Referrals, SASL credentials and controls after the diagnostic message
    are skipped (fbtwist does not follow referrals).

    @raise MalformedMessage: When the message is a BindResponse whose
        elements are not those of one, or overrun what holds them.
    """
    if offset + 2 > end or buffer[offset] != 0x30:
        return None
    start = offset + 2
    first = buffer[offset + 1]
    if first >= 0x80:
        size = first & 0x7F
        if not 0 < size <= 4 or start + size > end:
            return None
        start += size
    if start + 2 > end or buffer[start] != 0x02 or not 0 < buffer[start + 1] <= 4:
        return None
    position = start + 2 + buffer[start + 1]
    if position + 2 > end or buffer[position] != BIND_RESPONSE:
        return None
    messageID = int.from_bytes(buffer[start + 2:position], "big", signed=True)
    opStart, opEnd = _element(buffer, position, end, BIND_RESPONSE, "operation")
    codeStart, codeEnd = _element(buffer, opStart, opEnd, 0x0A, "result code")
    if not 0 < codeEnd - codeStart <= 4:
        raise MalformedMessage("a bind answer whose result code has a bad length")
    resultCode = int.from_bytes(buffer[codeStart:codeEnd], "big")
    matchedStart, matchedEnd = _element(buffer, codeEnd, opEnd, 0x04, "matched DN")
    messageStart, messageEnd = _element(buffer, matchedEnd, opEnd, 0x04, "diagnostic message")
    return BindAnswer(messageID, resultCode, buffer[matchedStart:matchedEnd], buffer[messageStart:messageEnd])


def isNotice(buffer: bytes, offset: int, end: int) -> bool:
    """
    Whether the LDAPMessage between C{offset} and C{end} has message id 0:
    an unsolicited notification (such as the server's notice that it
    closes the connection).
    """
    header = 2 + (buffer[offset + 1] & 0x7F if buffer[offset + 1] >= 0x80 else 0)
    return buffer[offset + header:offset + header + 3] == b"\x02\x01\x00"
