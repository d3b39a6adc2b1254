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
import stat
import struct
import sys
import tempfile
import time
from array import array
from itertools import accumulate, count, repeat
from operator import lshift, or_
from typing import Dict, List, Optional, Tuple
from zlib import crc32

from twisted.logger import Logger

from fbtwist.directory.nameindex import _MAX_TEMPLATES, NameIndex, _splitDN

MAGIC = b"FBNAMES2" + (b"L" if sys.byteorder == "little" else b"B") + b"\0\0\0"
#: 40 bytes: the arrays after it are aligned.
_HEADER = struct.Struct("=12s7I")
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


class CompactIndexBuilder:
    """
    Builds the content of an index file directly from directory entries as
    bytes (as a name index load receives them), without the Python objects
    per name of L{fbtwist.directory.nameindex.NameIndexBuilder}: the
    matching rule is the same (the tests compare the two).

    @param uidAttribute: The lower-cased name of the uid attribute, for
        L{addEntry}.
    @param mailAttributes: The lower-cased names of the mail attributes.
    """

    def __init__(self, uidAttribute: bytes = b"uid", mailAttributes=frozenset([b"mail"])):
        # Lower-cased uid -> its key value: its record (with the LOGIN bit
        # when the record has a DN) of the first entry with that uid; the
        # uids of several entries are also in _ambiguous (a few, if any:
        # the names of a million users go to the file without a Python loop).
        self._uids: Dict[bytes, int] = {}
        self._ambiguous = set()
        # Lower-cased mail key -> the record of the entry claiming it, or
        # NOBODY (claimed by several entries, or by one without a uid).
        self._mails: Dict[bytes, int] = {}
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
        uidAttribute, mailAttributes, add = uidAttribute.lower(), frozenset(mailAttributes), self.add
        uids, mails, recordUids, dnRefs, ambiguous = self._uids, self._mails, self._recordUids, self._dnRefs, \
            self._ambiguous
        appendUid, appendRef, last = recordUids.append, dnRefs.append, self._last

        def addEntry(dn: bytes, attributes) -> None:
            uid, addresses = None, []
            for name, values in attributes:
                name = name.lower()
                if name == uidAttribute:
                    uid = values[0] if values else None
                if name in mailAttributes:
                    addresses += values
            # The usual entry, inline (a million of them): an ASCII uid
            # whose DN is the last one's template around it, and one ASCII
            # address.
            if uid and uid.isascii() and len(addresses) == 1 and last[2] >= 0 and dn == last[0] + uid + last[1]:
                address = addresses[0]
                if address.isascii():
                    self._entries[0] += 1
                    number = len(recordUids)
                    appendUid(uid)
                    key = uid.lower()
                    if key in uids:
                        ambiguous.add(key)
                    else:
                        uids[key] = number | LOGIN
                    appendRef(last[2])
                    address = address.lower()
                    local = address.split(b"@", 1)[0]
                    mails[local] = NOBODY if local in mails else number
                    if local != address:
                        mails[address] = NOBODY if address in mails else number
                    return
            add(uid, addresses, dn)

        #: C{addEntry(dn, attributes)}: add one entry as a search returns it
        #: (C{attributes}: C{(name, [values])} pairs, all bytes).
        self.addEntry = addEntry

    @property
    def entries(self) -> int:
        """
        How many entries were added.
        """
        return self._entries[0]

    def _adder(self):
        # A closure over the builder's tables, not a method: it runs once per
        # entry of a million-user load, and attribute lookups on self were a
        # good part of its time.
        uids, mails, recordUids, dnRefs, entries, ambiguous = self._uids, self._mails, self._recordUids, \
            self._dnRefs, self._entries, self._ambiguous
        appendUid, appendRef, reference = recordUids.append, dnRefs.append, self._dnReference

        def add(uid: Optional[bytes], addresses: List[bytes], dn: Optional[bytes] = None) -> None:
            entries[0] += 1
            if uid:
                if not uid.isascii():
                    uid = uid.decode("utf-8", "replace").encode("utf-8", "surrogatepass")
                number = len(recordUids)
                appendUid(uid)
                key = uid.lower() if uid.isascii() else _lowered(uid)
                if key in uids:
                    ambiguous.add(key)
                else:
                    uids[key] = number if dn is None else number | LOGIN
                appendRef(NO_DN if dn is None else reference(dn, uid))
            else:
                number = NOBODY
            if len(addresses) == 1:
                address = addresses[0]
                address = address.lower() if address.isascii() else _lowered(address)
                local = address.split(b"@", 1)[0]
                mails[local] = NOBODY if local in mails else number
                if local != address:
                    mails[address] = NOBODY if address in mails else number
            elif addresses:
                keys = set()
                for address in addresses:
                    address = _lowered(address)
                    keys.add(address.split(b"@", 1)[0])
                    if b"@" in address:
                        keys.add(address)
                for key in keys:
                    mails[key] = NOBODY if key in mails else number

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


    def parts(self) -> List[bytes]:
        """
        The index file's content, in parts to write one after the other;
        the builder is spent.
        """
        names, dnRefs = self._mails, self._dnRefs
        # A uid several entries have resolves to nobody, unless it is also a
        # mail key: that one stays (in the order the names came).
        mailOfAmbiguous = {key: names.get(key, NOBODY) for key in self._ambiguous}
        names.update(self._uids)
        names.update(mailOfAmbiguous)
        recordUids, dnBytes = self._recordUids, bytes(self._dnBytes)
        templates = [(p.decode("utf-8", "replace"), s.decode("utf-8", "replace"))
                     for p, s in sorted(self._templates, key=self._templates.__getitem__)]
        try:
            return _layout(names, recordUids, dnRefs, dnBytes, templates, self.entries)
        finally:
            # Nothing of it stays, even while something still refers to the
            # closures (the connection of the load, until collected).
            for table in (self._uids, names, recordUids, self._ambiguous):
                table.clear()
            self._uids = self._ambiguous = self._mails = self._recordUids = self._dnRefs = self._dnBytes = None
            self.add = self.addEntry = None


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


def _layout(names: Dict[bytes, int], recordUids: List[bytes], dnRefs: array, dnBytes: bytes,
            templates, entries: int) -> List[bytes]:
    """
    The parts of an index file: C{names} (lower-cased name -> its value)
    laid out in the order of their CRC, and the records.  Sorting and
    joining, all in C.
    """
    keys = list(names)
    # Each key's CRC and its number in one 64-bit integer: one sort of
    # plain integers, no key function, and the keys themselves stay in
    # the order they came in (gathering them in another order was slower
    # than the sort).
    slots = array("Q", sorted(map(or_, map(lshift, map(crc32, keys), repeat(32)), count())))
    values = array("I", names.values())
    keyEnds = array("I", accumulate(map(len, keys), initial=0))
    keyBytes = b"".join(keys)
    del keys
    uidEnds = array("I", accumulate(map(len, recordUids), initial=0))
    uidBytes = b"".join(recordUids)
    templateBytes = json.dumps(templates).encode("utf-8")
    header = _HEADER.pack(MAGIC, len(values), len(dnRefs), entries, len(keyBytes), len(uidBytes),
                          len(dnBytes), len(templateBytes))
    return [header, slots.tobytes(), keyEnds.tobytes(), values.tobytes(), uidEnds.tobytes(), dnRefs.tobytes(),
            keyBytes, uidBytes, dnBytes, templateBytes]


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

