"""
The name index as a file that processes map into memory (C{mmap}): one copy
of every user's names in the page cache, shared by all the processes of one
host that map it (the master of C{--workers} writes it, the workers map it),
instead of one dictionary of Python strings per process.

The file holds the lower-cased names (UTF-8), and their CRC-32 in
ascending order, each with the name's number: a lookup is one binary
search over the CRCs (C{bisect}, in C) and a comparison of a name or two.  Each name has the
uid it resolves to (or nobody), and for a uid, the DN of its entry, for
binds without a search.  Building it is sorting and joining (in C), not a
Python loop over the names: a million users' file is written in seconds.
It gives exactly the answers of the
L{fbtwist.directory.nameindex.NameIndex} of the same entries.

Layout (native byte order, which the header records; the file is meant for
the host that wrote it), every number unsigned 32-bit but the slots::

    header       MAGIC, then 7 counts and sizes
    slots        nkeys 64-bit: a key's CRC-32 << 32 | its number, ascending
    key ends     nkeys + 1 offsets into the key bytes
    key values   nkeys: a record number, or NOBODY; the LOGIN bit marks a
                 uid that names one entry to bind
    uid ends     nrecords + 1 offsets into the uid bytes
    DN refs      nrecords: a template number, NO_DN, or where in the DN
                 bytes the DN is (+ the most templates there may be)
    key bytes    the names, end to end
    uid bytes    the records' uids, end to end
    DN bytes     the DNs that fit no template, each after its length
    templates    the DN templates (prefix, suffix) as JSON
"""

import bisect
import hashlib
import json
import mmap
import os
import re
import stat
import struct
import sys
import tempfile
import time
from array import array
from collections import Counter
from itertools import accumulate, chain, compress, count, islice, repeat
from operator import eq, itemgetter, lshift, or_
from typing import Dict, List, Optional, Tuple
from zlib import crc32

from twisted.logger import Logger

from fbtwist.directory.ber import MAX_MESSAGE, MalformedMessage, _longLength
from fbtwist.directory.nameindex import _MAX_TEMPLATES, NameIndex, _splitDN

MAGIC = b"FBNAMES2" + (b"L" if sys.byteorder == "little" else b"B") + b"\0\0\0"
#: 40 bytes: the arrays after it are aligned.
_HEADER = struct.Struct("=12s7I")
#: How many first bytes of a message find its shape, and at most how many
#: shapes a load keeps (L{CompactIndexBuilder._runDecoder}): 9 bytes are
#: the shortest a message of a search result entry has before its DN.
_SHAPE_KEY = 9
_MAX_SHAPES = 4096
#: A key's value: nobody (an ambiguous name).
NOBODY = 0x7FFFFFFF
#: A key's value bit: the key is a uid naming one entry, whose record has
#: its DN.
LOGIN = 0x80000000
#: A record's DN reference: no DN known (its login is searched).  Below
#: L{_MAX_TEMPLATES}: a template number; from it to L{WHOLE_DN_END}: the DN
#: is in the DN bytes, at that offset + L{_MAX_TEMPLATES}.
NO_DN = 0xFFFFFFFF
WHOLE_DN_END = 0xFFFFFFF0


class IndexFileError(Exception):
    """
    The file is not a name index this version wrote on this host.
    """


def _lowered(text: bytes) -> bytes:
    """
    C{text} (UTF-8) lower-cased as C{str.lower} does, as UTF-8.
    """
    if text.isascii():
        return text.lower()
    return text.decode("utf-8", "replace").lower().encode("utf-8", "surrogatepass")


#: Every how many mail claims a search's entries are settled
#: (L{CompactIndexBuilder.settle}): each time ~10 ms of work, as much as
#: decoding a page of a load in fbtwist's own process (whose reactor must
#: stay responsive); the sorted runs of slots that small cost less than
#: larger ones, and their last sort no more.
SETTLE_CLAIMS = 10000


class CompactIndexBuilder:
    """
    Builds the content of an index file directly from directory entries as
    bytes (as a name index load receives them), without the Python objects
    per name of L{fbtwist.directory.nameindex.NameIndexBuilder}: the
    matching rule is the same (the tests compare the two).

    Each entry only appends its claims (a uid, mail keys) to flat lists;
    which claims win (the first entry with a uid, the one entry with a mail
    key, nobody when several have it) is worked out once all have come, by
    dictionaries built in C (L{parts}): a look-up in a table of millions
    of keys costs as much as an insertion, so settling them sooner would
    cost twice as much.  Those dictionaries are filled as the claims come,
    every L{SETTLE_CLAIMS} claims of a search's entries (L{settle}): while
    the server sends the next entries, not after the last one; filled in
    the same order, they are the same.

    Most directories need no dictionaries at all: when every entry is the
    usual one (a uid, and an address whose local part is that uid), the
    names are the claims in the order they came, unless a key comes twice,
    which the sort of their CRCs shows (L{settle}, L{parts}).  Runs of
    usual entries of one shape (their lengths and attribute names the
    same) are decoded and added together, by one regular expression each
    (L{_runPatterns}): a million users' load spends its time in C.

    @param uidAttribute: The lower-cased name of the uid attribute, for
        L{addEntry}.
    @param mailAttributes: The lower-cased names of the mail attributes.
    """

    def __init__(self, uidAttribute: bytes = b"uid", mailAttributes=frozenset([b"mail"])):
        # Each uid claim: the lower-cased uid, and its key value (the
        # entry's record, with the LOGIN bit when the record has a DN).
        self._uidKeys: List[bytes] = []
        self._uidValues = array("I")
        # Each mail claim (an entry claims each of its keys once): the
        # lower-cased key, and the claiming entry's record (NOBODY for an
        # entry without a uid).
        self._mailKeys: List[bytes] = []
        self._mailValues = array("I")
        # The claims so far, key -> the last claim's value, in the order the
        # keys first came (dict(zip(keys, values)), filled by settle()), and
        # how many claims of each kind they hold.
        self._mailNames: Dict[bytes, int] = {}
        self._uidNames: Dict[bytes, int] = {}
        self._settled = [0, 0, 0]
        # The slots (L{_layout}) of the mail keys settled, in sorted runs,
        # while no key was claimed twice (None after).
        self._slotRuns: Optional[List[array]] = []
        # While every uid claim is the first of two mail claims of its entry
        # (L{settle}): the tables are not filled (L{_regularParts}), and
        # how many mail claims have their slots in the runs (the third of
        # L{_settled}, after the claims in the tables).
        self._regular = True
        self._joined = _JoinedNames()
        self._recordUids: List[bytes] = []
        self._dnRefs = array("I")
        self._dnBytes = bytearray()
        self._templates: Dict[Tuple[bytes, bytes], int] = {}
        self._entries = [0]
        # The template of the last DN that fitted one: C{[prefix, suffix,
        # its number]} (a number of -1: none yet, and no DN matches it as
        # the empty prefix and suffix cannot make a DN).
        self._last = [b"\0", b"\0", -1]
        #: C{add(uid, addresses, dn)}: add one entry: the first value of its
        #: uid attribute (C{None} when it has none), the values of its mail
        #: attributes and its DN (C{None}: not known, its login is
        #: searched), all UTF-8.
        self.add = self._adder()
        uidAttribute, mailAttributes = uidAttribute.lower(), frozenset(mailAttributes)
        #: C{addEntry(dn, attributes)}: add one entry as a search returns it
        #: (C{attributes}: C{(name, [values])} pairs, all bytes).  Its
        #: C{decodeRun} is L{fbtwist.directory.ber.searchEntries}' way to
        #: hand it the search's entries undecoded (L{_runDecoder}).
        self.addEntry = self._entryAdder(uidAttribute, mailAttributes)
        self.addEntry.decodeRun = self._runDecoder(uidAttribute, mailAttributes)

    @property
    def entries(self) -> int:
        """
        How many entries were added.
        """
        return self._entries[0]

    def _entryAdder(self, uidAttribute: bytes, mailAttributes: frozenset):
        add = self.add

        def addEntry(dn: bytes, attributes) -> None:
            uid, addresses = None, []
            for name, values in attributes:
                name = name.lower()
                if name == uidAttribute:
                    uid = values[0] if values else None
                if name in mailAttributes:
                    addresses += values
            add(uid, addresses, dn)

        return addEntry

    def _runDecoder(self, uidAttribute: bytes, mailAttributes: frozenset):
        """
        The search entries' decoder and L{addEntry} in one loop (a million
        entries go through it): no attribute lists built, the usual entry
        added inline.

        @return: C{decodeRun(buffer, offset)}, as
            L{fbtwist.directory.ber.searchEntries} (same framing, same
            checks, same errors), adding each entry as L{addEntry} would.
        """
        add = self.add
        uidKeys, uidValues, mailKeys, mailValues = self._uidKeys, self._uidValues, self._mailKeys, \
            self._mailValues
        recordUids, dnRefs, entries, last = self._recordUids, self._dnRefs, self._entries, self._last
        settle, settled = self.settle, self._settled
        appendUid, appendUidKey, appendUidValue = recordUids.append, uidKeys.append, uidValues.append
        appendMailKey, appendMailValue, appendRef = mailKeys.append, mailValues.append, dnRefs.append
        # Attribute names as the server writes them -> 1 (the uid), 2 (a
        # mail attribute), 3 (both) or 0; bounded (a server could send any).
        kinds: Dict[bytes, int] = {}

        def kindOf(name: bytes) -> int:
            lowered = name.lower()
            kind = (lowered == uidAttribute) | (lowered in mailAttributes) << 1
            if len(kinds) < 64:
                kinds[name] = kind
            return kind

        # The shapes of entries of a uid and an address (one value each)
        # decoded so far, by their first bytes (most entries of a load have
        # one of a few shapes, set by the lengths of their DN and values):
        # (the message's length, the bytes before its DN, where its DN
        # starts and ends, the bytes up to its first value, where that
        # starts and ends, the bytes up to its second value, where that
        # starts, whether the uid is first).
        shapes: Dict[bytes, tuple] = {}

        def entryAt(buffer: bytes, offset: int, size: int):
            """
            The message at C{offset} decoded: C{(its end, DN, uid, first
            address, all addresses or None when there is one)}, or C{None}
            where L{searchEntries} stops; its shape remembered (L{shapes})
            when it has a uid and an address, one value each.
            """
            if buffer[offset] != 0x30:
                raise MalformedMessage("not an LDAP message (a sequence was expected)")
            length, start = buffer[offset + 1], offset + 2
            if length >= 0x80:
                count = length & 0x7F
                if not 0 < count <= 4:
                    raise MalformedMessage("an LDAP message length of a size no server sends")
                start += count
                if start > size:
                    return None
                length = int.from_bytes(buffer[offset + 2:start], "big")
                if length > MAX_MESSAGE:
                    raise MalformedMessage(
                        f"an LDAP message of {length} bytes (at most {MAX_MESSAGE} expected)")
            end = start + length
            if end > size:
                return None
            # The message id: 1 to 4 bytes.
            if start + 2 > end or buffer[start] != 0x02 or not 0 < buffer[start + 1] <= 4:
                raise MalformedMessage("an LDAP message without its message id")
            position = start + 2 + buffer[start + 1]
            if position + 2 > end:
                raise MalformedMessage("an LDAP message without its operation")
            if buffer[position] != 0x64:
                return None
            entryEnd, entryStart = buffer[position + 1], position + 2
            if entryEnd >= 0x80:
                entryEnd, entryStart = _longLength(buffer, position + 1, end)
            entryEnd += entryStart
            if entryEnd != end:
                if entryEnd > end:
                    raise MalformedMessage("a search result entry longer than its message")
                # Controls follow: ldaptor reads them.
                return None
            # objectName
            if entryStart + 2 > end or buffer[entryStart] != 0x04:
                raise MalformedMessage("a search result entry without its DN")
            nameEnd, nameStart = buffer[entryStart + 1], entryStart + 2
            if nameEnd >= 0x80:
                nameEnd, nameStart = _longLength(buffer, entryStart + 1, end)
            nameEnd += nameStart
            if nameEnd + 2 > end or buffer[nameEnd] != 0x30:
                raise MalformedMessage("a search result entry without its attributes")
            attributesEnd, position = buffer[nameEnd + 1], nameEnd + 2
            if attributesEnd >= 0x80:
                attributesEnd, position = _longLength(buffer, nameEnd + 1, end)
            if position + attributesEnd != end:
                raise MalformedMessage("a search result entry whose attributes do not end with it")
            uid = address = addresses = None
            attributes = values = uidAt = addressAt = 0
            while position < end:
                attributes += 1
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
                name = buffer[typeStart:typeEnd]
                kind = kinds.get(name)
                if kind is None:
                    kind = kindOf(name)
                if kind & 1:
                    uid = None
                valuesEnd, valueStart = buffer[typeEnd + 1], typeEnd + 2
                if valuesEnd >= 0x80:
                    valuesEnd, valueStart = _longLength(buffer, typeEnd + 1, pairEnd)
                if valueStart + valuesEnd != pairEnd:
                    raise MalformedMessage("an attribute whose values do not end with it")
                first = True
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
                    values += 1
                    if kind:
                        value = buffer[valueStart:valueEnd]
                        if kind & 1 and first:
                            uid = value
                            uidAt = valueStart
                        if kind & 2:
                            if address is None:
                                address = value
                                addressAt = valueStart
                            elif addresses is None:
                                addresses = [address, value]
                            else:
                                addresses.append(value)
                    first = False
                    valueStart = valueEnd
                position = pairEnd
            dn = buffer[nameStart:nameEnd]
            if attributes == 2 and values == 2 and uid is not None and address is not None \
                    and uidAt != addressAt and len(shapes) < _MAX_SHAPES:
                if uidAt < addressAt:
                    firstStart, firstEnd, secondStart = uidAt, uidAt + len(uid), addressAt
                else:
                    firstStart, firstEnd, secondStart = addressAt, addressAt + len(address), uidAt
                shapes[buffer[offset:offset + _SHAPE_KEY]] = (
                    end - offset, buffer[offset:nameStart], nameStart - offset, nameEnd - offset,
                    buffer[nameEnd:firstStart], firstStart - offset, firstEnd - offset,
                    buffer[firstEnd:secondStart], secondStart - offset, uidAt < addressAt)
            return end, dn, uid, address, addresses

        # (a shape, a template number) -> the patterns of a run of usual
        # entries of that shape (L{_runPatterns}), or None: it has none.
        runPatterns: Dict[tuple, Optional[tuple]] = {}
        uids, second = itemgetter(0), itemgetter(1)

        def addRun(buffer: bytes, offset: int, size: int, shape: tuple, prefix: bytes, suffix: bytes,
                   template: int) -> int:
            """
            Add the usual entries of C{shape} that follow one another from
            C{offset} (each exactly the shape's bytes around its uid and
            address, as the loop below checks them one by one), all at once.
            A run of one entry is added as the others are (L{decodeRun}).

            @return: Where they end (C{offset}: none).
            """
            total = shape[0]
            key = (shape, template)
            patterns = runPatterns.get(key, False)
            if patterns is False:
                if len(runPatterns) >= _MAX_SHAPES:
                    # Bounded, as the shapes are.
                    return offset
                patterns = runPatterns[key] = _runPatterns(shape, prefix, suffix)
            if patterns is None:
                return offset
            tiling, entry = patterns
            limit = offset + (size - offset) // total * total
            runEnd = tiling.match(buffer, offset, limit).end()
            run = buffer[offset:runEnd]
            if runEnd == offset or not run.isascii():
                return offset
            found = entry.findall(buffer, offset, runEnd)
            claimed = list(map(uids, found))
            addresses = list(map(second, found))
            # Without an upper-case letter (a run has the shape's, "uid=" say,
            # so islower is true), its names are lower-cased already.
            if run.islower():
                keys = claimed
            else:
                keys = list(map(bytes.lower, claimed))
                addresses = list(map(bytes.lower, addresses))
            first = len(recordUids)
            numbers = range(first, first + len(found))
            recordUids.extend(claimed)
            uidKeys.extend(keys)
            uidValues.extend(range(first | LOGIN, (first + len(found)) | LOGIN))
            dnRefs.extend(repeat(template, len(found)))
            mailKeys.extend(chain.from_iterable(zip(keys, addresses)))
            mailValues.extend(chain.from_iterable(zip(numbers, numbers)))
            entries[0] += len(found)
            return runEnd

        def decodeRun(buffer: bytes, offset: int) -> int:
            size = len(buffer)
            prefix, suffix, template = last
            added = 0
            try:
                while offset + 2 <= size:
                    start = buffer[offset:offset + _SHAPE_KEY]
                    shape = shapes.get(start)
                    if shape is not None:
                        # A run: the next entry starts as this one (else, as
                        # in a directory of uids of many lengths, one by one).
                        if template >= 0 and buffer[offset + shape[0]:offset + shape[0] + _SHAPE_KEY] == start:
                            after = addRun(buffer, offset, size, shape, prefix, suffix, template)
                            if after != offset:
                                offset = after
                                continue
                        total, head, headEnd, dnEnd, middle, firstStart, firstEnd, middle2, secondStart, \
                            uidFirst = shape
                        end = offset + total
                    if (shape is not None and end <= size and buffer[offset:offset + headEnd] == head
                            and buffer[offset + dnEnd:offset + firstStart] == middle
                            and buffer[offset + firstEnd:offset + secondStart] == middle2):
                        # The shape of an entry decoded before (every
                        # length and tag, and the attributes' names, the
                        # same bytes): its DN and values are at the same
                        # places; decoding it would give them, no error.
                        dn = buffer[offset + headEnd:offset + dnEnd]
                        first, second = buffer[offset + firstStart:offset + firstEnd], buffer[offset + secondStart:end]
                        uid, address = (first, second) if uidFirst else (second, first)
                        addresses = None
                        offset = end
                    else:
                        decoded = entryAt(buffer, offset, size)
                        if decoded is None:
                            break
                        offset, dn, uid, address, addresses = decoded
                    if (addresses is None and address is not None and uid and template >= 0 and uid.isascii()
                            and address.isascii() and dn == prefix + uid + suffix):
                        # The usual entry (an ASCII uid whose DN is the last
                        # one's template around it, one ASCII address):
                        # what add() does with it, inline.
                        added += 1
                        number = len(recordUids)
                        appendUid(uid)
                        # Lower-case names (most) are kept once: fewer
                        # objects, and the tables compare them by identity.
                        key = uid if uid.islower() else uid.lower()
                        appendUidKey(key)
                        appendUidValue(number | LOGIN)
                        appendRef(template)
                        if not address.islower():
                            address = address.lower()
                        local = address.partition(b"@")[0]
                        appendMailKey(key if local == key else local)
                        appendMailValue(number)
                        if len(local) != len(address):
                            appendMailKey(address)
                            appendMailValue(number)
                    else:
                        add(uid, addresses if addresses is not None else [] if address is None else [address], dn)
                        prefix, suffix, template = last
            finally:
                entries[0] += added
            if len(mailKeys) - max(settled[0], settled[2]) >= SETTLE_CLAIMS:
                settle()
            return offset

        return decodeRun

    def _adder(self):
        # A closure over the builder's tables, not a method: it runs once per
        # entry of a million-user load, and attribute lookups on self were a
        # good part of its time.
        uidKeys, uidValues, mailKeys, mailValues = self._uidKeys, self._uidValues, self._mailKeys, \
            self._mailValues
        recordUids, dnRefs, entries = self._recordUids, self._dnRefs, self._entries
        reference = self._dnReference

        def claim(key: bytes, number: int) -> None:
            mailKeys.append(key)
            mailValues.append(number)

        def add(uid: Optional[bytes], addresses: List[bytes], dn: Optional[bytes] = None) -> None:
            entries[0] += 1
            if uid:
                if not uid.isascii():
                    uid = uid.decode("utf-8", "replace").encode("utf-8", "surrogatepass")
                number = len(recordUids)
                recordUids.append(uid)
                uidKeys.append(uid.lower() if uid.isascii() else _lowered(uid))
                uidValues.append(number if dn is None else number | LOGIN)
                dnRefs.append(NO_DN if dn is None else reference(dn, uid))
            else:
                number = NOBODY
            if len(addresses) == 1:
                address = addresses[0]
                address = address.lower() if address.isascii() else _lowered(address)
                local = address.split(b"@", 1)[0]
                claim(local, number)
                if local != address:
                    claim(address, number)
            elif addresses:
                keys = {}
                for address in addresses:
                    address = _lowered(address)
                    keys[address.split(b"@", 1)[0]] = None
                    if b"@" in address:
                        keys[address] = None
                for key in keys:
                    claim(key, number)

        return add

    def _dnReference(self, dn: bytes, uid: bytes) -> int:
        prefix, suffix, number = self._last
        # Most entries' DNs are the last one's template around their uid.
        if number >= 0 and dn == prefix + uid + suffix:
            return number
        if not dn.isascii():
            dn = dn.decode("utf-8", "replace").encode("utf-8", "surrogatepass")
        parts = _splitDN(dn.decode("utf-8", "replace"), uid.decode("utf-8", "replace"))
        if parts is not None:
            parts = (parts[0].encode("utf-8", "surrogatepass"), parts[1].encode("utf-8", "surrogatepass"))
            number = self._templates.get(parts)
            if number is None and len(self._templates) < _MAX_TEMPLATES:
                number = self._templates[parts] = len(self._templates)
            if number is not None:
                self._last[:] = (*parts, number)
                return number
        return _wholeDN(self._dnBytes, dn)


    def settle(self) -> None:
        """
        Add the claims that came since the last call to the tables of
        claims (what L{parts} would otherwise do with them all at once).

        While the claims are regular (each entry's uid claim, then its two
        mail claims, the first of them that uid: the usual entry, whose
        address's local part is its uid), the tables are not needed unless
        a key is claimed twice, which L{parts} finds by sorting (it must
        sort anyway): only the claims' slots are sorted in runs, numbered
        as the tables would number them if no key comes twice.
        """
        if self._regular:
            mailKeys, uidKeys, start = self._mailKeys, self._uidKeys, self._settled[2]
            end = len(mailKeys)
            if end == 2 * len(uidKeys) and mailKeys[start:end:2] == uidKeys[start // 2:]:
                if end > start:
                    keys = mailKeys[start:end]
                    if self._slotRuns is not None:
                        self._slotRuns.append(_sortedSlots(_slotsOf(keys, start)))
                    # The keys' and uids' bytes, joined now too.
                    self._joined.add(keys, self._recordUids[start // 2:end // 2])
                    self._settled[2] = end
                return
            # Not the usual entries: the tables, from the first claim on.
            self._irregular()
        settled, names = self._settled, self._mailNames
        mails, uids, _ = settled
        if len(self._mailKeys) > mails:
            keys = self._mailKeys[mails:]
            before = len(names)
            names.update(zip(keys, self._mailValues[mails:]))
            settled[0] = len(self._mailKeys)
            if self._slotRuns is not None:
                if len(names) - before == len(keys):
                    # Keys new to the table, numbered in the order they
                    # came: their slots now, sorted, one run of the final
                    # sort (L{_sortedSlots}).
                    self._slotRuns.append(_sortedSlots(_slotsOf(keys, before)))
                else:
                    # A key claimed again: its number is its first claim's.
                    self._slotRuns = None
        if len(self._uidKeys) > uids:
            self._uidNames.update(zip(self._uidKeys[uids:], self._uidValues[uids:]))
            settled[1] = len(self._uidKeys)

    def _irregular(self) -> None:
        """
        Leave the regular claims' way (L{settle}): the tables are filled
        from the first claim on, the slots' runs made again.
        """
        self._regular = False
        if self._slotRuns is not None:
            self._slotRuns = []
        self._settled[2] = 0
        self._joined = None

    def _regularParts(self, templates) -> Optional[List[bytes]]:
        """
        The index file's content when the claims were regular (L{settle})
        and no key was claimed twice, else C{None}: the names are the mail
        keys in the order they came (each entry's uid, then its address),
        numbered so; a uid's value is its uid claim's, an address's its
        mail claim's, as the tables would have them.
        """
        mailKeys = self._mailKeys
        runs = self._slotRuns
        slots = _sortedSlots(_slotsOf(mailKeys, 0) if runs is None else chain.from_iterable(runs))
        self._slotRuns = None
        # Keys claimed twice have the same CRC: next to each other once
        # sorted, among the few keys that share a CRC.
        halves = array("I", slots.tobytes())
        crcs = halves[1::2] if sys.byteorder == "little" else halves[0::2]
        del halves
        crcCount = len(crcs)
        for position in compress(count(), map(eq, crcs, islice(crcs, 1, None))):
            key = mailKeys[slots[position] & 0xFFFFFFFF]
            other = position + 1
            while other < crcCount and crcs[other] == crcs[position]:
                if mailKeys[slots[other] & 0xFFFFFFFF] == key:
                    return None
                other += 1
        del crcs
        values = array("I", self._mailValues)
        values[0::2] = self._uidValues
        joined, self._joined = self._joined, None
        return _layoutParts(*joined.parts(), values, slots, self._dnRefs, bytes(self._dnBytes), templates,
                            self.entries)

    def parts(self) -> List[bytes]:
        """
        The index file's content, in parts to write one after the other;
        the builder is spent.
        """
        self.settle()
        if self._regular:
            templates = [(p.decode("utf-8", "replace"), s.decode("utf-8", "replace"))
                         for p, s in sorted(self._templates, key=self._templates.__getitem__)]
            try:
                parts = self._regularParts(templates)
            except BaseException:
                self._spent()
                raise
            if parts is not None:
                self._spent()
                return parts
            # A key claimed twice: the tables decide.
            self._irregular()
            self.settle()
        uidKeys, mailKeys = self._uidKeys, self._mailKeys
        names, uidNames = self._mailNames, self._uidNames
        if len(names) != len(mailKeys):
            # Keys several entries claim: nobody's.
            for key in _shared(mailKeys):
                names[key] = NOBODY
        # A uid several entries have resolves to nobody, unless it is also a
        # mail key: that one stays (in the order the names came).
        ambiguous = _shared(uidKeys) if len(uidNames) != len(uidKeys) else ()
        mailOfAmbiguous = {key: names.get(key, NOBODY) for key in ambiguous}
        mailNames, slots = len(names), self._slotRuns
        names.update(uidNames)
        uidNames.clear()
        names.update(mailOfAmbiguous)
        if slots is not None:
            # Uids that are no mail key come last.
            slots.append(_slotsOf(islice(names, mailNames, None), mailNames))
            slots = chain.from_iterable(slots)
        mailKeys.clear()
        uidKeys.clear()
        recordUids, dnRefs, dnBytes = self._recordUids, self._dnRefs, bytes(self._dnBytes)
        templates = [(p.decode("utf-8", "replace"), s.decode("utf-8", "replace"))
                     for p, s in sorted(self._templates, key=self._templates.__getitem__)]
        try:
            return _layout(names, recordUids, dnRefs, dnBytes, templates, self.entries, slots)
        finally:
            self._spent()

    def _spent(self) -> None:
        # Nothing of it stays, even while something still refers to the
        # closures (the connection of the load, until collected).
        for table in (self._mailNames, self._uidNames, self._recordUids, self._mailKeys, self._uidKeys):
            table.clear()
        self._uidKeys = self._mailKeys = self._uidValues = self._mailValues = self._recordUids = None
        self._mailNames = self._uidNames = self._slotRuns = None
        self._dnRefs = self._dnBytes = None
        self.add = self.addEntry = None


def _runPatterns(shape: tuple, prefix: bytes, suffix: bytes):
    """
    The patterns of a run of usual entries of C{shape} (the tuple
    L{CompactIndexBuilder._runDecoder} keeps) whose DNs are C{prefix} +
    uid + C{suffix}: entries whose bytes are the shape's but for the uid
    (without C{@}), in the DN and its attribute, and the address, that uid
    + C{@} + the shape's length of domain.

    @return: C{(tiling, entry)}: C{tiling} matches as many such entries
        one after the other as there are, C{entry} matches one and gives
        its C{(uid, address)}; or C{None} when the shape's DN cannot be
        the template's.
    """
    total, head, headEnd, dnEnd, middle, firstStart, firstEnd, middle2, secondStart, uidFirst = shape
    firstLength, secondLength = firstEnd - firstStart, total - secondStart
    uidLength, addressLength = (firstLength, secondLength) if uidFirst else (secondLength, firstLength)
    if not uidLength or dnEnd - headEnd != len(prefix) + uidLength + len(suffix) \
            or addressLength <= uidLength:
        return None
    # The uid's group is in the DN, which comes first: C{(uid, address)}.
    uid = b"(?P<uid>[^@]{%d})" % uidLength
    address = b"((?P=uid)@.{%d})" % (addressLength - uidLength - 1)
    first, second = (b"(?P=uid)", address) if uidFirst else (address, b"(?P=uid)")
    entry = re.escape(head + prefix) + uid + re.escape(suffix + middle) + first + re.escape(middle2) + second
    # The tiling pattern's own groups are not read: the same pattern serves.
    return re.compile(b"(?:" + entry + b")*", re.DOTALL), re.compile(entry, re.DOTALL)


def _shared(keys: List[bytes]) -> List[bytes]:
    """
    The keys that appear more than once in C{keys}.
    """
    return [key for key, times in Counter(keys).items() if times > 1]


def _wholeDN(dnBytes: bytearray, dn: bytes) -> int:
    """
    Append C{dn} (its length, 4 bytes, and itself) to C{dnBytes}.

    @return: The DN reference of a record with that DN.
    """
    reference = _MAX_TEMPLATES + len(dnBytes)
    if reference + 4 + len(dn) >= WHOLE_DN_END:
        raise IndexFileError("too many DNs that fit no template")
    dnBytes += len(dn).to_bytes(4, sys.byteorder) + dn
    return reference


def _slotsOf(keys, first: int):
    """
    The slots of C{keys} numbered from C{first}: each key's CRC and its
    number in one 64-bit integer (one sort of plain integers, no key
    function, and the keys themselves stay in the order they came in:
    gathering them in another order was slower than the sort).
    """
    return map(or_, map(lshift, map(crc32, keys), repeat(32)), count(first))


def _layout(names: Dict[bytes, int], recordUids: List[bytes], dnRefs: array, dnBytes: bytes,
            templates, entries: int, slots=None) -> List[bytes]:
    """
    The parts of an index file: C{names} (lower-cased name -> its value)
    laid out in the order of their CRC, and the records.  Sorting and
    joining, all in C.

    @param slots: The keys' slots (L{_slotsOf}) when known, in sorted runs
        of ascending numbers (L{_sortedSlots}).
    """
    keys = list(names)
    slots = _sortedSlots(_slotsOf(keys, 0) if slots is None else slots)
    values = array("I", names.values())
    keyEnds = array("I", accumulate(map(len, keys), initial=0))
    keyBytes = b"".join(keys)
    del keys
    uidEnds = array("I", accumulate(map(len, recordUids), initial=0))
    uidBytes = b"".join(recordUids)
    return _layoutParts(keyEnds, keyBytes, uidEnds, uidBytes, values, slots, dnRefs, dnBytes, templates, entries)


class _JoinedNames:
    """
    Names and uids joined end to end as they come, in pieces, with their
    ends (the key and uid sections of an index file).
    """

    def __init__(self):
        self._keys: List[bytes] = []
        self._keyEnds = array("I", [0])
        self._uids: List[bytes] = []
        self._uidEnds = array("I", [0])

    def add(self, keys: List[bytes], uids: List[bytes]) -> None:
        """
        Append C{keys} and C{uids}.
        """
        for pieces, ends, names in ((self._keys, self._keyEnds, keys), (self._uids, self._uidEnds, uids)):
            pieces.append(b"".join(names))
            ends.extend(accumulate(map(len, names), initial=ends[-1]))
            # The initial value is there already.
            ends.pop(len(ends) - len(names) - 1)

    def parts(self) -> Tuple[array, bytes, array, bytes]:
        """
        @return: The key ends, key bytes, uid ends, uid bytes.
        """
        return self._keyEnds, b"".join(self._keys), self._uidEnds, b"".join(self._uids)


def _layoutParts(keyEnds: array, keyBytes: bytes, uidEnds: array, uidBytes: bytes, values: array, slots: array,
                 dnRefs: array, dnBytes: bytes, templates, entries: int) -> List[bytes]:
    """
    The parts of an index file: the names (their ends and bytes, in the
    order of their numbers) with their C{values}, C{slots} sorted
    (L{_sortedSlots}), and the records.
    """
    templateBytes = json.dumps(templates).encode("utf-8")
    header = _HEADER.pack(MAGIC, len(values), len(dnRefs), entries, len(keyBytes), len(uidBytes),
                          len(dnBytes), len(templateBytes))
    return [header, slots.tobytes(), keyEnds.tobytes(), values.tobytes(), uidEnds.tobytes(), dnRefs.tobytes(),
            keyBytes, uidBytes, dnBytes, templateBytes]


def _sortedSlots(slots) -> array:
    """
    C{slots} (unsigned 64-bit integers, each key's CRC above its number)
    in ascending order, as an array.

    Sorted by their nearest float, not as integers: Python compares floats
    several times faster than integers of more than 30 bits.  Rounding
    keeps the order (a larger integer never rounds to a smaller float), and
    only slots less than 2**12 apart can round to the same float: slots of
    one CRC (those of different CRCs are at least 2**32 minus the largest
    number apart, and numbers stay far below 2**31).  The sort being
    stable, those keep the order they came in: C{slots} must come in
    ascending order of their numbers (as L{_slotsOf} makes them), or in
    runs that this function sorted, of ascending numbers from one run to
    the next (sorted runs cost less to sort again).
    """
    return array("Q", sorted(slots, key=float))


def _partsOf(index: NameIndex) -> List[bytes]:
    """
    The parts of the index file of an in-memory L{NameIndex}.
    """
    names, logins = index._names, index._logins
    recordUids, dnRefs, dnBytes = [], array("I"), bytearray()
    recordOf: Dict[str, int] = {}

    def record(uid: str, login) -> int:
        number = recordOf.get(uid)
        if number is None:
            number = recordOf[uid] = len(recordUids)
            recordUids.append(uid.encode("utf-8", "surrogatepass"))
            if login is None:
                dnRefs.append(NO_DN)
            elif isinstance(login, int):
                dnRefs.append(login)
            else:
                dnRefs.append(_wholeDN(dnBytes, login.encode("utf-8", "surrogatepass")))
        return number

    # Login uids first: their records carry the DN.
    for key, dn in logins.items():
        record(names[key], dn)
    values = {}
    for key, uid in names.items():
        encoded = key.encode("utf-8", "surrogatepass")
        if uid is None:
            values[encoded] = NOBODY
        else:
            value = record(uid, None)
            values[encoded] = value | LOGIN if key in logins else value
    return _layout(values, recordUids, dnRefs, bytes(dnBytes), index._templates, index.entries)


def writeIndexFile(index, path: str) -> None:
    """
    Write C{index} (a L{NameIndex}, or the parts of
    L{CompactIndexBuilder.parts}) to C{path} atomically (a temporary file
    in the same directory, flushed to disk and renamed over C{path}): a
    process mapping C{path} sees the old index or the new one.
    """
    parts = _partsOf(index) if isinstance(index, NameIndex) else index
    directory = os.path.dirname(path) or "."
    # The writer's pid in the name: the process that started a writer it had
    # to kill removes what it left (L{temporaryFilesOf}).
    fd, temporary = tempfile.mkstemp(prefix=f".names-{os.getpid()}-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            for part in parts:
                f.write(part)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def temporaryFilesOf(path: str, pid: int) -> List[str]:
    """
    The temporary files the process C{pid} left in the directory of
    C{path} (killed while writing an index file there).
    """
    directory = os.path.dirname(path) or "."
    prefix = f".names-{pid}-"
    try:
        return [os.path.join(directory, name) for name in os.listdir(directory) if name.startswith(prefix)]
    except OSError:
        return []


class CompactNameIndex:
    """
    The content of a name index file, held in this process's memory (the
    index of a process that could not write the file): the same questions
    as L{NameIndex}, in a fraction of its memory.

    @param data: The content (bytes, or a mapping of the file).
    @param origin: Where it comes from, for error messages.
    @raise IndexFileError: When C{data} is not such content.
    """

    path: Optional[str] = None

    def __init__(self, data, origin: str = "the name index"):
        self._data = data
        try:
            if len(data) < _HEADER.size:
                raise IndexFileError(f"{origin} is not a name index")
            self._open(origin, len(data))
        except BaseException:
            self.close()
            raise

    def _open(self, path: str, fileSize: int) -> None:
        magic, nkeys, nrecords, entries, keyBytes, uidBytes, dnBytes, templateBytes = _HEADER.unpack_from(
            self._data)
        if magic != MAGIC:
            raise IndexFileError(f"{path} is not a name index of this version and host")
        position = _HEADER.size
        view = memoryview(self._data)
        sections = []
        lengths = (8 * nkeys, 4 * (nkeys + 1), 4 * nkeys, 4 * (nrecords + 1), 4 * nrecords, keyBytes, uidBytes,
                   dnBytes, templateBytes)
        for length in lengths:
            sections.append((position, position + length))
            position += length
        if position != fileSize:
            raise IndexFileError(f"{path} is truncated or damaged")
        # Offsets are multiples of 4 up to the key bytes: casts hold.
        self._slots = view[sections[0][0]:sections[0][1]].cast("Q")
        self._keyEnds, self._values, self._uidEnds, self._dnRefs = (view[a:b].cast("I") for a, b in sections[1:5])
        self._count = nkeys
        self._keyBytes, self._uidBytes, self._dnBytes = (a for a, _ in sections[5:8])
        self._dnEnd = sections[7][1]
        self._templates = [tuple(t) for t in json.loads(bytes(self._data[sections[8][0]:sections[8][1]]))]
        self.entries = entries

    def close(self) -> None:
        """
        Unmap the file (lookups then fail); views into it are released
        first.
        """
        for name in ("_slots", "_keyEnds", "_values", "_uidEnds", "_dnRefs"):
            view = self.__dict__.pop(name, None)
            if view is not None:
                view.release()
        if isinstance(self._data, mmap.mmap):
            try:
                self._data.close()
            except BufferError:
                # A lookup in progress holds a view: the mapping goes with
                # the object.
                pass
        else:
            self._data = b""

    def _find(self, name: str) -> Optional[int]:
        key = name.lower().encode("utf-8", "surrogatepass")
        slots, ends, data, start = self._slots, self._keyEnds, self._data, self._keyBytes
        wanted = crc32(key)
        slot = bisect.bisect_left(slots, wanted << 32)
        while slot < self._count and slots[slot] >> 32 == wanted:
            number = slots[slot] & 0xFFFFFFFF
            if data[start + ends[number]:start + ends[number + 1]] == key:
                return self._values[number]
            slot += 1
        return None

    def _uid(self, number: int) -> str:
        start, ends = self._uidBytes, self._uidEnds
        return self._data[start + ends[number]:start + ends[number + 1]].decode("utf-8", "surrogatepass")

    def get(self, name: str) -> Tuple[bool, Optional[str]]:
        """
        @return: As L{NameIndex.get}.
        """
        value = self._find(name)
        if value is None:
            return False, None
        value &= ~LOGIN
        if value == NOBODY:
            return True, None
        return True, self._uid(value)

    def login(self, name: str) -> Optional[Tuple[str, str]]:
        """
        @return: As L{NameIndex.login}.
        """
        value = self._find(name)
        if value is None or not value & LOGIN:
            return None
        number = value & ~LOGIN
        uid, reference = self._uid(number), self._dnRefs[number]
        if reference < _MAX_TEMPLATES:
            prefix, suffix = self._templates[reference]
            return uid, prefix + uid + suffix
        if reference >= WHOLE_DN_END:
            return None
        data, start = self._data, self._dnBytes + reference - _MAX_TEMPLATES
        end = start + 4 + int.from_bytes(data[start:start + 4], sys.byteorder)
        if end > self._dnEnd:
            raise IndexFileError(f"{self.path} is damaged")
        return uid, data[start + 4:end].decode("utf-8", "surrogatepass")

    def __len__(self) -> int:
        return self._count


class MappedNameIndex(CompactNameIndex):
    """
    A name index file mapped into memory: one copy of its pages for every
    process that maps it.

    @raise IndexFileError: When C{path} is not such a file.
    @raise OSError: When it cannot be read.
    """

    def __init__(self, path: str):
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size < _HEADER.size:
                raise IndexFileError(f"{path} is not a name index")
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        super().__init__(data, path)
        self.path = path


def indexFileName(directory: str, identity: str) -> str:
    """
    The name of the index file in C{directory} for the directory
    C{identity} describes (its URL and the attributes read): fbtwist
    instances of one host reading different directories use different
    files.
    """
    return os.path.join(directory, "names-" + hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16] + ".idx")


def defaultIndexDirectory() -> str:
    """
    The per-host runtime directory for index files: systemd's
    C{$RUNTIME_DIRECTORY} when set, else C{fbtwist-names-UID} in the
    temporary directory.
    """
    runtime = os.environ.get("RUNTIME_DIRECTORY")
    if runtime:
        return runtime.split(":", 1)[0]
    return os.path.join(tempfile.gettempdir(), f"fbtwist-names-{os.geteuid()}")


def privateDirectory(path: str) -> str:
    """
    Make sure C{path} is a directory only this user may write to (created
    with mode 0700 when missing): the index says which DN a login binds as,
    so nobody else may plant one.

    @raise OSError: When it cannot be created, or is not such a directory.
    """
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise OSError(f"{path} is not a directory that only this user may write to")
    return path


class MappedIndexFollower:
    """
    Keeps C{directory.nameIndex} mapped from the file another process (the
    master of C{--workers}) writes: checked every C{interval} seconds, mapped
    again when replaced.  A file older than C{maxAge} seconds (left by an
    earlier run, or by a master that no longer refreshes it) is not used.
    """

    log = Logger()

    def __init__(self, directory, path: str, clock, interval: float = 1.0, maxAge: float = 1200.0):
        self.directory = directory
        self.path = path
        self.clock = clock
        self.interval = interval
        self.maxAge = maxAge
        self._seen = None
        self._call = None

    def start(self) -> None:
        self._check()

    def stop(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _check(self) -> None:
        self._call = self.clock.callLater(self.interval, self._check)
        try:
            info = os.stat(self.path)
        except OSError:
            return
        seen = (info.st_ino, info.st_mtime_ns, info.st_size)
        if seen == self._seen or info.st_mtime < time.time() - self.maxAge:
            return
        self._seen = seen
        try:
            index = MappedNameIndex(self.path)
        except (OSError, IndexFileError, ValueError) as e:
            self.log.warn("cannot map the name index {path}: {error}", path=self.path, error=str(e))
            return
        self.directory.nameIndex = index
        self.log.info("name index mapped from {path}: {entries} entries, {names} names",
                      path=self.path, entries=index.entries, names=len(index))

