"""
The name index as a file that processes map into memory (C{mmap}): one copy
of every user's names in the page cache, shared by all the processes of one
host that map it (the master of C{--workers} writes it, the workers map it),
instead of one dictionary of Python strings per process.

The file is a hash table (CRC-32, linear probing) of lower-cased names
(UTF-8), each with the uid it resolves to (or nobody), and for a uid, the
DN of its entry, for binds without a search.  A lookup reads a slot or
two.  It gives exactly the answers of the
L{fbtwist.directory.nameindex.NameIndex} it was written from.

Layout (native byte order, which the header records; the file is meant for
the host that wrote it)::

    header       MAGIC, then 7 unsigned 32-bit counts and sizes
    slots        a power of two of unsigned 32-bit key numbers + 1 (0: empty)
    key ends     nkeys + 1 unsigned 32-bit offsets into the key bytes
    key values   nkeys unsigned 32-bit: a record number, or NOBODY; the
                 LOGIN bit marks a uid that names one entry to bind
    record ends  nrecords + 1 unsigned 32-bit offsets into the record bytes
    key bytes    the names, end to end
    record bytes per record: the uid's length (2 bytes), the uid, then
                 nothing (no DN known), or 1 and a template number (2
                 bytes), or 2 and the DN
    templates    the DN templates (prefix, suffix) as JSON
"""

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
from typing import Optional, Tuple
from zlib import crc32

from twisted.logger import Logger

from fbtwist.directory.nameindex import NameIndex

MAGIC = b"FBNAMES1" + (b"L" if sys.byteorder == "little" else b"B") + b"\0\0\0"
#: 40 bytes: the arrays after it are aligned.
_HEADER = struct.Struct("=12s7I")
#: A key's value: nobody (an ambiguous name).
NOBODY = 0x7FFFFFFF
#: A key's value bit: the key is a uid naming one entry, whose record has
#: its DN.
LOGIN = 0x80000000


class IndexFileError(Exception):
    """
    The file is not a name index this version wrote on this host.
    """


def _slots(count: int) -> int:
    size = 8
    while size < 2 * count:
        size *= 2
    return size


def writeIndexFile(index: NameIndex, path: str) -> None:
    """
    Write C{index} to C{path} atomically (a temporary file in the same
    directory, flushed to disk and renamed over C{path}): a process
    mapping C{path} sees the old table or the new one.
    """
    names, logins = index._names, index._logins
    records, recordOf = [], {}

    def record(uid: str, login) -> int:
        number = recordOf.get(uid)
        if number is None:
            number = recordOf[uid] = len(records)
            records.append((uid, login))
        return number

    # Login uids first: their records carry the DN.
    for key, dn in logins.items():
        record(names[key], dn)
    keyEnds = array("I", [0])
    values = array("I")
    keyBlob = bytearray()
    size = _slots(len(names))
    mask = size - 1
    slots = array("I", bytes(4 * size))
    for number, (key, uid) in enumerate(names.items()):
        encoded = key.encode("utf-8", "surrogatepass")
        keyBlob += encoded
        keyEnds.append(len(keyBlob))
        if uid is None:
            values.append(NOBODY)
        else:
            value = record(uid, None)
            values.append(value | LOGIN if key in logins else value)
        slot = crc32(encoded) & mask
        while slots[slot]:
            slot = (slot + 1) & mask
        slots[slot] = number + 1
    blob = bytearray()
    ends = array("I", [0])
    for uid, login in records:
        encoded = uid.encode("utf-8", "surrogatepass")
        blob += len(encoded).to_bytes(2, sys.byteorder) + encoded
        if isinstance(login, int):
            blob += b"\x01" + login.to_bytes(2, sys.byteorder)
        elif login is not None:
            blob += b"\x02" + login.encode("utf-8", "surrogatepass")
        ends.append(len(blob))
    templates = json.dumps(index._templates).encode("utf-8")
    header = _HEADER.pack(MAGIC, len(names), len(records), index.entries, size, len(keyBlob), len(blob),
                          len(templates))
    directory = os.path.dirname(path) or "."
    fd, temporary = tempfile.mkstemp(prefix=".names-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            for part in (header, slots, keyEnds, values, ends, keyBlob, blob, templates):
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


class MappedNameIndex:
    """
    A name index file mapped into memory; the same questions as
    L{NameIndex}.

    @raise IndexFileError: When C{path} is not such a file.
    @raise OSError: When it cannot be read.
    """

    def __init__(self, path: str):
        with open(path, "rb") as f:
            fileSize = os.fstat(f.fileno()).st_size
            if fileSize < _HEADER.size:
                raise IndexFileError(f"{path} is not a name index")
            self._data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            magic, nkeys, nrecords, entries, size, keyBytes, recordBytes, templateBytes = _HEADER.unpack_from(
                self._data)
            if magic != MAGIC:
                raise IndexFileError(f"{path} is not a name index of this version and host")
            position = _HEADER.size
            view = memoryview(self._data)
            sections = []
            lengths = (4 * size, 4 * (nkeys + 1), 4 * nkeys, 4 * (nrecords + 1), keyBytes, recordBytes,
                       templateBytes)
            for length in lengths:
                sections.append((position, position + length))
                position += length
            if position != fileSize or size & (size - 1):
                raise IndexFileError(f"{path} is truncated or damaged")
            # Offsets are multiples of 4 up to the key bytes: casts hold.
            self._slots, self._keyEnds, self._values, self._recordEnds = (
                view[a:b].cast("I") for a, b in sections[:4])
            self._mask = size - 1
            self._count = nkeys
            self._keyBytes = sections[4][0]
            self._records = sections[5][0]
            self._templates = [tuple(t) for t in json.loads(self._data[sections[6][0]:sections[6][1]])]
        except BaseException:
            self.close()
            raise
        self.entries = entries
        self.path = path

    def close(self) -> None:
        """
        Unmap the file (lookups then fail); views into it are released
        first.
        """
        for name in ("_slots", "_keyEnds", "_values", "_recordEnds"):
            view = self.__dict__.pop(name, None)
            if view is not None:
                view.release()
        try:
            self._data.close()
        except BufferError:
            # A lookup in progress holds a view: the mapping goes with the
            # object.
            pass

    def _find(self, name: str) -> Optional[int]:
        key = name.lower().encode("utf-8", "surrogatepass")
        slots, ends, data, start, mask = self._slots, self._keyEnds, self._data, self._keyBytes, self._mask
        slot = crc32(key) & mask
        while True:
            number = slots[slot]
            if not number:
                return None
            number -= 1
            if data[start + ends[number]:start + ends[number + 1]] == key:
                return self._values[number]
            slot = (slot + 1) & mask

    def _record(self, number: int) -> Tuple[str, bytes]:
        data, start = self._data, self._records
        begin, end = start + self._recordEnds[number], start + self._recordEnds[number + 1]
        length = int.from_bytes(data[begin:begin + 2], sys.byteorder)
        uid = data[begin + 2:begin + 2 + length].decode("utf-8")
        return uid, data[begin + 2 + length:end]

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
        return True, self._record(value)[0]

    def login(self, name: str) -> Optional[Tuple[str, str]]:
        """
        @return: As L{NameIndex.login}.
        """
        value = self._find(name)
        if value is None or not value & LOGIN:
            return None
        uid, rest = self._record(value & ~LOGIN)
        if rest[:1] == b"\x01":
            prefix, suffix = self._templates[int.from_bytes(rest[1:3], sys.byteorder)]
            return uid, prefix + uid + suffix
        if rest[:1] == b"\x02":
            return uid, rest[1:].decode("utf-8")
        return None

    def __len__(self) -> int:
        return self._count


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

