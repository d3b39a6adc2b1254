"""
fbtwist's reliance on ldaptor's internals, in one function saying why the
public API does not suffice.  Nothing else in fbtwist may depend on them;
C{tests/unit/test_compat.py} checks that every name in L{PRIVATE_NAMES} still
exists in the installed ldaptor.
"""

from typing import Callable, Optional

from ldaptor.protocols import pureber

from fbtwist.compat import PrivateName

#: The internals of ldaptor used below: not underscored, but undocumented
#: parts of C{LDAPClient.dataReceived}, which L{receive} replaces.
PRIVATE_NAMES = (
    PrivateName("ldaptor.protocols.ldap.ldapclient.LDAPClient", "buffer", instance=True),
    PrivateName("ldaptor.protocols.ldap.ldapclient.LDAPClient", "berdecoder"),
    PrivateName("ldaptor.protocols.ldap.ldapclient.LDAPClient", "handle"),
)


def receive(client, data: bytes, messageEnd: Callable[[bytes, int], Optional[int]],
            decodeFast: Callable[[bytes, int, int], Optional[object]],
            consumeRaw: Optional[Callable[[bytes, int], int]] = None) -> None:
    """
    What C{LDAPClient.dataReceived} does, faster: decode every whole LDAP
    message in C{client}'s buffer and C{data} and hand each to
    C{client.handle}, keeping the rest in the buffer.

    Why not ldaptor's own: its loop tests each decoded message for truth,
    which BER objects answer by encoding themselves again (C{len}), and it
    copies the rest of the buffer after each message: most of the CPU of
    a large search.  There is no public hook for the decoding loop.

    @param messageEnd: Where the message starting at an offset of the
        buffer ends, or C{None} when it is not whole yet.
    @param decodeFast: A message decoded directly, or C{None} to leave it
        to ldaptor's decoder.
    @param consumeRaw: Given the buffer and an offset, takes the messages
        it wants from there on (those that have all arrived) without
        building ldaptor's objects, and answers the offset after them (the
        same offset when it takes none): the next message is decoded.
    """
    buffer = client.buffer + data
    offset = 0
    try:
        while True:
            if consumeRaw is not None:
                offset = consumeRaw(buffer, offset)
            end = messageEnd(buffer, offset)
            if end is None:
                break
            message = decodeFast(buffer, offset, end)
            if message is None:
                message, _ = pureber.berDecodeObject(client.berdecoder, buffer[offset:end])
            offset = end
            if message is not None:
                client.handle(message)
    finally:
        client.buffer = buffer[offset:]
