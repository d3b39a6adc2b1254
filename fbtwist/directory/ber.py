"""
A fast decoder of the search result entries in what an LDAP server sends,
for the receive loop of L{fbtwist.directory.client.DirectoryClient}.
"""

from typing import Optional, Tuple

from ldaptor.protocols import pureldap


def _length(buffer: bytes, offset: int, end: int) -> Tuple[int, int]:
    """
    The BER length at C{offset}: C{(length, where the content starts)}.

    @raise ValueError: When it does not fit before C{end}.
    """
    if offset >= end:
        raise ValueError("truncated")
    first = buffer[offset]
    if first < 0x80:
        return first, offset + 1
    size = first & 0x7F
    if not 0 < size <= 4 or offset + 1 + size > end:
        raise ValueError("bad length")
    return int.from_bytes(buffer[offset + 1:offset + 1 + size], "big"), offset + 1 + size


def _messageEnd(buffer: bytes, offset: int) -> Optional[int]:
    """
    Where the BER element starting at C{offset} ends, or C{None} when it
    has not all arrived yet.
    """
    try:
        length, start = _length(buffer, offset + 1, len(buffer))
    except ValueError:
        # Not all of the length has arrived (a bad one: ldaptor decides).
        if len(buffer) - offset < 6:
            return None
        return len(buffer)
    end = start + length
    return end if end <= len(buffer) else None


def _element(buffer: bytes, offset: int, end: int, tag: int) -> Tuple[int, int]:
    """
    The content bounds of the element with C{tag} at C{offset}.

    @raise ValueError: For another tag, or one that overruns C{end}.
    """
    if offset >= end or buffer[offset] != tag:
        raise ValueError("unexpected tag")
    length, start = _length(buffer, offset + 1, end)
    if start + length > end:
        raise ValueError("overrun")
    return start, start + length


def _searchEntryParts(buffer: bytes, offset: int, end: int):
    """
    The message id, DN and attributes (C{(type, [values])}, all bytes) of
    the LDAPMessage between C{offset} and C{end} when it is a search result
    entry without controls, else C{None}.
    """
    try:
        start, stop = _element(buffer, offset, end, 0x30)
        idStart, idEnd = _element(buffer, start, stop, 0x02)
        entryStart, entryEnd = _element(buffer, idEnd, stop, 0x64)
        if entryEnd != stop:
            return None
        nameStart, nameEnd = _element(buffer, entryStart, entryEnd, 0x04)
        attributesStart, attributesEnd = _element(buffer, nameEnd, entryEnd, 0x30)
        attributes = []
        position = attributesStart
        while position < attributesEnd:
            pairStart, pairEnd = _element(buffer, position, attributesEnd, 0x30)
            typeStart, typeEnd = _element(buffer, pairStart, pairEnd, 0x04)
            valuesStart, valuesEnd = _element(buffer, typeEnd, pairEnd, 0x31)
            values = []
            while valuesStart < valuesEnd:
                valueStart, valueEnd = _element(buffer, valuesStart, valuesEnd, 0x04)
                values.append(buffer[valueStart:valueEnd])
                valuesStart = valueEnd
            attributes.append((buffer[typeStart:typeEnd], values))
            position = pairEnd
    except ValueError:
        return None
    return int.from_bytes(buffer[idStart:idEnd], "big", signed=True), buffer[nameStart:nameEnd], attributes


def _searchEntryMessage(buffer: bytes, offset: int, end: int):
    """
    The LDAPMessage between C{offset} and C{end} when it is a search
    result entry without controls (decoded directly, as ldaptor would),
    else C{None} (left to ldaptor's decoder).
    """
    parts = _searchEntryParts(buffer, offset, end)
    if parts is None:
        return None
    messageID, name, attributes = parts
    entry = pureldap.LDAPSearchResultEntry(objectName=name, attributes=attributes)
    return pureldap.LDAPMessage(entry, id=messageID)
