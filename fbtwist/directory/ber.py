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

    Every element is checked against the one that holds it (a length that
    overruns it, a wrong tag or a truncated length gives C{None}); the
    short-form lengths servers send for most elements are read inline: this
    runs once per entry of a million-user search.
    """
    try:
        if offset + 2 > end or buffer[offset] != 0x30:
            return None
        stop, start = buffer[offset + 1], offset + 2
        if stop >= 0x80:
            stop, start = _length(buffer, offset + 1, end)
        stop += start
        if stop != end:
            return None
        # The message id.
        if start + 2 > stop or buffer[start] != 0x02:
            return None
        idEnd = start + 2 + buffer[start + 1]
        if buffer[start + 1] >= 0x80 or idEnd > stop:
            return None
        messageID = int.from_bytes(buffer[start + 2:idEnd], "big", signed=True)
        # The entry: all that follows, and no controls.
        if idEnd + 2 > stop or buffer[idEnd] != 0x64:
            return None
        entryEnd, entryStart = buffer[idEnd + 1], idEnd + 2
        if entryEnd >= 0x80:
            entryEnd, entryStart = _length(buffer, idEnd + 1, stop)
        if entryStart + entryEnd != stop:
            return None
        # objectName
        if entryStart + 2 > stop or buffer[entryStart] != 0x04:
            return None
        nameEnd, nameStart = buffer[entryStart + 1], entryStart + 2
        if nameEnd >= 0x80:
            nameEnd, nameStart = _length(buffer, entryStart + 1, stop)
        nameEnd += nameStart
        if nameEnd + 2 > stop or buffer[nameEnd] != 0x30:
            return None
        attributesEnd, position = buffer[nameEnd + 1], nameEnd + 2
        if attributesEnd >= 0x80:
            attributesEnd, position = _length(buffer, nameEnd + 1, stop)
        attributesEnd += position
        if attributesEnd != stop:
            return None
        attributes = []
        while position < attributesEnd:
            # One (type, SET OF value).
            if position + 2 > attributesEnd or buffer[position] != 0x30:
                return None
            pairEnd, typeStart = buffer[position + 1], position + 2
            if pairEnd >= 0x80:
                pairEnd, typeStart = _length(buffer, position + 1, attributesEnd)
            pairEnd += typeStart
            if pairEnd > attributesEnd or typeStart + 2 > pairEnd or buffer[typeStart] != 0x04:
                return None
            typeEnd, typeStart = buffer[typeStart + 1], typeStart + 2
            if typeEnd >= 0x80:
                typeEnd, typeStart = _length(buffer, typeStart - 1, pairEnd)
            typeEnd += typeStart
            if typeEnd + 2 > pairEnd or buffer[typeEnd] != 0x31:
                return None
            valuesEnd, valueStart = buffer[typeEnd + 1], typeEnd + 2
            if valuesEnd >= 0x80:
                valuesEnd, valueStart = _length(buffer, typeEnd + 1, pairEnd)
            if valueStart + valuesEnd != pairEnd:
                return None
            values = []
            while valueStart < pairEnd:
                if valueStart + 2 > pairEnd or buffer[valueStart] != 0x04:
                    return None
                valueEnd, valueStart = buffer[valueStart + 1], valueStart + 2
                if valueEnd >= 0x80:
                    valueEnd, valueStart = _length(buffer, valueStart - 1, pairEnd)
                valueEnd += valueStart
                if valueEnd > pairEnd:
                    return None
                values.append(buffer[valueStart:valueEnd])
                valueStart = valueEnd
            attributes.append((buffer[typeStart:typeEnd], values))
            position = pairEnd
    except ValueError:
        return None
    return messageID, buffer[nameStart:nameEnd], attributes


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
