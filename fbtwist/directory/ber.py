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
    overruns it, a wrong tag or a truncated length gives C{None}).
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
        name, attributes = _entryContent(buffer, entryStart, stop)
    except ValueError:
        return None
    return messageID, name, attributes


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


#: The longest LDAP message L{searchEntries} waits for: a longer length is
#: an error at once, not a reason to buffer gigabytes (the entries of a
#: names search are a few hundred bytes).
MAX_MESSAGE = 16 * 2**20


class MalformedMessage(ValueError):
    """
    What the server sent is not a well-formed LDAP message (a length that
    overruns what holds it, a wrong tag, a length no server sends).
    """


def _longLength(buffer: bytes, offset: int, end: int) -> Tuple[int, int]:
    """
    The long-form BER length at C{offset} (its first byte has the high bit
    set): C{(length, where the content starts)}.

    @raise MalformedMessage: When it is not one of 1 to 4 bytes within
        C{end}.
    """
    size = buffer[offset] & 0x7F
    if not 0 < size <= 4 or offset + 1 + size > end:
        raise MalformedMessage("a BER length that is too long or cut short")
    return int.from_bytes(buffer[offset + 1:offset + 1 + size], "big"), offset + 1 + size


def _entryContent(buffer: bytes, position: int, end: int):
    """
    The DN and attributes (C{(type, [values])}, all bytes) of the
    SearchResultEntry whose content is C{buffer[position:end]}.

    @raise MalformedMessage: When an element is not the one expected there
        or overruns what holds it.
    """
    # objectName
    if position + 2 > end or buffer[position] != 0x04:
        raise MalformedMessage("a search result entry without its DN")
    nameEnd, nameStart = buffer[position + 1], position + 2
    if nameEnd >= 0x80:
        nameEnd, nameStart = _longLength(buffer, position + 1, end)
    nameEnd += nameStart
    if nameEnd + 2 > end or buffer[nameEnd] != 0x30:
        raise MalformedMessage("a search result entry without its attributes")
    attributesEnd, position = buffer[nameEnd + 1], nameEnd + 2
    if attributesEnd >= 0x80:
        attributesEnd, position = _longLength(buffer, nameEnd + 1, end)
    if position + attributesEnd != end:
        raise MalformedMessage("a search result entry whose attributes do not end with it")
    attributes = []
    append = attributes.append
    while position < end:
        # One (type, SET OF value).
        if position + 2 > end or buffer[position] != 0x30:
            raise MalformedMessage("an attribute that is not a sequence")
        pairEnd, typeStart = buffer[position + 1], position + 2
        if pairEnd >= 0x80:
            pairEnd, typeStart = _longLength(buffer, position + 1, end)
        pairEnd += typeStart
        if pairEnd > end or typeStart + 2 > pairEnd or buffer[typeStart] != 0x04:
            raise MalformedMessage("an attribute without its type, or longer than its entry")
        typeEnd = buffer[typeStart + 1]
        if typeEnd >= 0x80:
            typeEnd, typeStart = _longLength(buffer, typeStart + 1, pairEnd)
        else:
            typeStart += 2
        typeEnd += typeStart
        if typeEnd + 2 > pairEnd or buffer[typeEnd] != 0x31:
            raise MalformedMessage("an attribute without its set of values")
        valuesEnd, valueStart = buffer[typeEnd + 1], typeEnd + 2
        if valuesEnd >= 0x80:
            valuesEnd, valueStart = _longLength(buffer, typeEnd + 1, pairEnd)
        if valueStart + valuesEnd != pairEnd:
            raise MalformedMessage("an attribute whose values do not end with it")
        values = []
        while valueStart < pairEnd:
            if valueStart + 2 > pairEnd or buffer[valueStart] != 0x04:
                raise MalformedMessage("a value that is not an octet string")
            valueEnd = buffer[valueStart + 1]
            if valueEnd >= 0x80:
                valueEnd, valueStart = _longLength(buffer, valueStart + 1, pairEnd)
            else:
                valueStart += 2
            valueEnd += valueStart
            if valueEnd > pairEnd:
                raise MalformedMessage("a value longer than its attribute")
            values.append(buffer[valueStart:valueEnd])
            valueStart = valueEnd
        append((buffer[typeStart:typeEnd], values))
        position = pairEnd
    return buffer[nameStart:nameEnd], attributes


def searchEntries(buffer: bytes, offset: int, consume) -> int:
    """
    Decode the search result entries (without controls) that follow one
    another in C{buffer} from C{offset}, handing each to C{consume(dn,
    attributes)} (C{attributes}: C{(type, [values])} pairs, all bytes), in
    one loop: the receive loop of a search of a million entries.

    It stops before the first message that has not all arrived, or that is
    another operation (the search's result, a reference) or carries
    controls: those are left to ldaptor's decoder.

    A C{consume} with a C{decodeRun(buffer, offset)} attribute decodes the
    run itself, with the same framing, checks and answer (one loop that
    also does what C{consume} does with each entry, as
    L{fbtwist.directory.mappedindex.CompactIndexBuilder.addEntry} has).

    @return: Where it stopped: the offset after the last entry decoded.
    @raise MalformedMessage: When the message at that offset cannot be an
        LDAP message: a length of more than 4 bytes or over
        L{MAX_MESSAGE}, a tag that is not a message's, an element that
        overruns what holds it.  Its bytes must not be waited for: the
        stream cannot be read any further.
    """
    decodeRun = getattr(consume, "decodeRun", None)
    if decodeRun is not None:
        return decodeRun(buffer, offset)
    size = len(buffer)
    while offset + 2 <= size:
        if buffer[offset] != 0x30:
            raise MalformedMessage("not an LDAP message (a sequence was expected)")
        length, start = buffer[offset + 1], offset + 2
        if length >= 0x80:
            count = length & 0x7F
            if not 0 < count <= 4:
                raise MalformedMessage("an LDAP message length of a size no server sends")
            start += count
            if start > size:
                break
            length = int.from_bytes(buffer[offset + 2:start], "big")
            if length > MAX_MESSAGE:
                raise MalformedMessage(f"an LDAP message of {length} bytes (at most {MAX_MESSAGE} expected)")
        end = start + length
        if end > size:
            break
        # The message id: 1 to 4 bytes.
        if start + 2 > end or buffer[start] != 0x02 or not 0 < buffer[start + 1] <= 4:
            raise MalformedMessage("an LDAP message without its message id")
        position = start + 2 + buffer[start + 1]
        if position + 2 > end:
            raise MalformedMessage("an LDAP message without its operation")
        if buffer[position] != 0x64:
            break
        entryEnd, entryStart = buffer[position + 1], position + 2
        if entryEnd >= 0x80:
            entryEnd, entryStart = _longLength(buffer, position + 1, end)
        entryEnd += entryStart
        if entryEnd != end:
            if entryEnd > end:
                raise MalformedMessage("a search result entry longer than its message")
            # Controls follow: ldaptor reads them.
            break
        dn, attributes = _entryContent(buffer, entryStart, end)
        consume(dn, attributes)
        offset = end
    return offset
