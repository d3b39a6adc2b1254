"""
The anonymous lookups' answers shared by the workers of C{--workers N}
(L{fbtwist.access.answers}): one memory (a C{memfd}, made by the master and
inherited by every worker) of fixed-size slots, each holding one answer and
what it was made of, that every worker writes the answers it made into and
reads the others' from.

Without it each worker remembers only the answers it made or read back
itself: with a million people, a worker is asked for many a person another
worker has answered already, and reads that answer back from the file's
extended attribute, a look at the disk when the files' metadata is no
longer in the kernel's cache; and every worker holds a copy of every
answer.  With it, the first worker to make an answer shares it, and the
others hold only where it is.

Each slot is one page (L{SLOT} bytes): a head (a sequence number, the
record's length, a hash of its uid, when it was made) and the record (the
answer's time and the lengths of its parts, the uid, the entity tag, what
it was made of in C{marshal}'s form, the head of the quick answer, the
body).  A person's answer goes in one of the L{BUCKET} slots of the bucket
a hash of their uid chooses (the one holding their shared answer already,
else an empty one, else the one made longest ago), so that with the memory half full
hardly any answer is written over by another's.  A writer locks its slot
(C{lockf}: the workers are processes; a slot locked by another is not
waited for, the answer is then not shared), makes the sequence number odd,
writes, and makes it even again; a reader copies the record between two
reads of the number and keeps it only when both are the same even number
(a seqlock: a record being written, or written over meanwhile, is not
read).  A worker killed while writing leaves the number odd: the next
writer makes it even again.  A worker holding an answer as where it is
(L{SlotRef}) reads only its parts (L{AnswerSlots.answerAt}).
Whether a record read may be given is for L{fbtwist.access.answers} to
decide: what it holds is only what some worker made.  Only fbtwist's own
processes reach the memory: it has no name in any filesystem, and its
descriptor is inherited by the workers alone.
"""

import fcntl
import marshal
import mmap
import os
import struct
import zlib
from typing import NamedTuple, Optional

#: Bytes of a slot: one page of memory, touched only once written.
SLOT = 4096

#: Slots a person's answer may be in (consecutive ones).
BUCKET = 16

#: A slot's head: its sequence number (odd while being written), the
#: record's length, a hash of its uid and when it was made.
_HEAD = struct.Struct("<QIId")
_SEQUENCE = struct.Struct("<Q")

#: A record's own head: the answer's time, the lengths of the uid, entity
#: tag, what it was made of, head of the quick answer and body.
_PARTS = struct.Struct("<dHHHHI")

#: When a record written but not yet shared was made (never given:
#: L{fbtwist.access.answers.PENDING}); such a record is found only by the
#: worker that wrote it (at its L{SlotRef}).
_PENDING = float("inf")

#: The most a record may weigh: what does not fit is not shared.
MAX_RECORD = SLOT - _HEAD.size


class Record(NamedTuple):
    """
    One person's answer as a worker made it.

    @ivar uid: Whose answer it is.
    @ivar madeAt: When what it was made of was last known unchanged, on the
        machine's monotonic clock (the same in every process).
    @ivar versions: The versions of everyone's choices and feeds it was made
        at.
    @ivar state: Its owner's files' state it was made at.
    @ivar answer: The answer: entity tag, body, time, head of the quick
        answer.
    """

    uid: str
    madeAt: float
    versions: object
    state: object
    answer: tuple


class SlotRef(NamedTuple):
    """
    Where a record was written or read: the slot and its sequence number
    then (the record is the same while the number is).
    """

    slot: int
    sequence: int


def memorySize(slots: int) -> int:
    """
    The bytes of a memory of C{slots} slots.
    """
    return slots * SLOT


def createMemory(slots: int) -> int:
    """
    A new memory of C{slots} slots for the workers to inherit: an
    anonymous file (C{memfd_create}), freed once every process holding it
    closed it; its pages take memory only once written.

    @return: Its descriptor (inheritable).
    """
    fd = os.memfd_create("fbtwist-answers", 0)
    try:
        os.ftruncate(fd, memorySize(slots))
    except BaseException:
        os.close(fd)
        raise
    return fd


class AnswerSlots:
    """
    The shared memory of answers (see the module), open in this process.

    @param fd: The memory's descriptor (L{createMemory}); kept open.
    """

    def __init__(self, fd: int):
        self.fd = fd
        size = os.fstat(fd).st_size
        self.slots = size // SLOT
        if self.slots < BUCKET:
            raise ValueError(f"a memory of answers needs {BUCKET} slots at least")
        self._buckets = self.slots // BUCKET
        self._memory = mmap.mmap(fd, self.slots * SLOT, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)

    def close(self) -> None:
        self._memory.close()

    def _bucketOf(self, uid: str):
        """
        The first slot of C{uid}'s bucket, and the hash of the uid its
        slots' heads hold.
        """
        key = uid.encode("utf-8")
        return zlib.crc32(key) % self._buckets * BUCKET, zlib.crc32(key, 0x5BD1E995)

    def _payload(self, ref: SlotRef) -> Optional[bytes]:
        # The record at ref, when its slot holds it whole (the seqlock).
        memory = self._memory
        offset = ref.slot * SLOT
        sequence, length, _, _ = _HEAD.unpack_from(memory, offset)
        if sequence != ref.sequence or not _PARTS.size <= length <= MAX_RECORD:
            return None
        payload = memory[offset + _HEAD.size:offset + _HEAD.size + length]
        if _SEQUENCE.unpack_from(memory, offset)[0] != sequence:
            return None
        return payload

    def answerAt(self, ref: SlotRef) -> Optional[tuple]:
        """
        The answer (entity tag, body, time, head) of the record at C{ref},
        when its slot still holds it; else C{None}.  Its parts are copied
        straight from the slot, then the slot's number read again (a hit of
        a worker's answer memory: the fewest copies).
        """
        memory = self._memory
        offset = ref.slot * SLOT
        sequence, length, _, _ = _HEAD.unpack_from(memory, offset)
        if sequence != ref.sequence or not _PARTS.size <= length <= MAX_RECORD:
            return None
        start = offset + _HEAD.size
        modified, uidLength, etagLength, metaLength, headLength, bodyLength = _PARTS.unpack_from(memory, start)
        etagStart = start + _PARTS.size + uidLength
        headStart = etagStart + etagLength + metaLength
        end = start + length
        if headStart + headLength + bodyLength != end:
            return None
        etag = memory[etagStart:etagStart + etagLength]
        head = memory[headStart:headStart + headLength]
        body = memory[headStart + headLength:end]
        if _SEQUENCE.unpack_from(memory, offset)[0] != sequence:
            return None
        try:
            return etag.decode("ascii"), body, modified, head
        except UnicodeDecodeError:
            return None

    def read(self, ref: SlotRef) -> Optional[Record]:
        """
        The whole record at C{ref}, when its slot still holds it; else
        C{None}.
        """
        payload = self._payload(ref)
        if payload is None:
            return None
        modified, uidLength, etagLength, metaLength, headLength, bodyLength = _PARTS.unpack_from(payload)
        start = _PARTS.size
        metaStart = start + uidLength + etagLength
        headStart = metaStart + metaLength
        if headStart + headLength + bodyLength != len(payload):
            return None
        try:
            uid = payload[start:start + uidLength].decode("utf-8")
            etag = payload[start + uidLength:metaStart].decode("ascii")
            madeAt, versions, state = marshal.loads(payload[metaStart:headStart])
        except (ValueError, EOFError, TypeError, UnicodeDecodeError):
            return None
        return Record(uid, madeAt, versions, state,
                      (etag, payload[headStart + headLength:], modified, payload[headStart:headStart + headLength]))

    def find(self, uid: str):
        """
        C{uid}'s record and where it is (C{(record, ref)}), or C{(None,
        None)}.
        """
        memory = self._memory
        first, keyHash = self._bucketOf(uid)
        for slot in range(first, first + BUCKET):
            sequence, length, held, madeAt = _HEAD.unpack_from(memory, slot * SLOT)
            if held != keyHash or sequence & 1 or not sequence or madeAt == _PENDING:
                continue
            ref = SlotRef(slot, sequence)
            record = self.read(ref)
            if record is not None and record.uid == uid:
                return record, ref
        return None, None

    @staticmethod
    def _pack(record: Record) -> Optional[bytes]:
        # The record as its slot holds it; None when too large.
        uid = record.uid.encode("utf-8")
        etag, body, modified, head = record.answer
        etag = etag.encode("ascii")
        meta = marshal.dumps((record.madeAt, record.versions, record.state))
        if len(uid) > 0xFFFF or len(etag) > 0xFFFF or len(meta) > 0xFFFF or len(head) > 0xFFFF:
            return None
        payload = b"".join((_PARTS.pack(modified, len(uid), len(etag), len(meta), len(head), len(body)),
                            uid, etag, meta, head, body))
        return payload if len(payload) <= MAX_RECORD else None

    def write(self, record: Record) -> Optional[SlotRef]:
        """
        Write C{record} in a slot of its owner's bucket (see the module).

        @return: Where it is, or C{None} when it is not shared: too large,
            or its slot being written by another process.
        """
        payload = self._pack(record)
        if payload is None:
            return None
        memory = self._memory
        first, keyHash = self._bucketOf(record.uid)
        chosen, empty, oldest = None, None, None
        for slot in range(first, first + BUCKET):
            sequence, length, held, madeAt = _HEAD.unpack_from(memory, slot * SLOT)
            if not sequence or not length:
                if empty is None:
                    empty = slot
                continue
            if held == keyHash and not sequence & 1 and madeAt != _PENDING:
                found = self.read(SlotRef(slot, sequence))
                if found is not None and found.uid == record.uid:
                    chosen = slot
                    break
            if oldest is None or madeAt < oldest[1]:
                oldest = (slot, madeAt)
        if chosen is None:
            chosen = empty if empty is not None else oldest[0]
        return self._writeAt(chosen, payload, keyHash, record.madeAt)

    def rewrite(self, ref: SlotRef, record: Record) -> Optional[SlotRef]:
        """
        Write C{record} over the record at C{ref} (the same person's, not
        yet shared), when its slot still holds it.

        @return: Where it is, or C{None} (the slot was written over, or is
            being written, or the record is too large).
        """
        payload = self._pack(record)
        if payload is None:
            return None
        return self._writeAt(ref.slot, payload, self._bucketOf(record.uid)[1], record.madeAt, ref.sequence)

    def letGo(self, ref: SlotRef) -> None:
        """
        Empty the slot of the record at C{ref}, when it still holds it (an
        answer written and then not shared).
        """
        offset = ref.slot * SLOT
        try:
            fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, SLOT, offset)
        except OSError:
            return
        try:
            sequence, _, keyHash, madeAt = _HEAD.unpack_from(self._memory, offset)
            if sequence == ref.sequence:
                _HEAD.pack_into(self._memory, offset, sequence | 1, 0, keyHash, madeAt)
                _SEQUENCE.pack_into(self._memory, offset, (sequence | 1) + 1)
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN, SLOT, offset)

    def _writeAt(self, slot: int, payload: bytes, keyHash: int, madeAt: float,
                 expected: Optional[int] = None) -> Optional[SlotRef]:
        offset = slot * SLOT
        try:
            fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, SLOT, offset)
        except OSError:
            return None
        try:
            memory = self._memory
            sequence = _SEQUENCE.unpack_from(memory, offset)[0]
            if expected is not None and sequence != expected:
                return None
            # Odd while being written (a dead writer's odd number stays odd).
            sequence |= 1
            _SEQUENCE.pack_into(memory, offset, sequence)
            memory[offset + _HEAD.size:offset + _HEAD.size + len(payload)] = payload
            _HEAD.pack_into(memory, offset, sequence, len(payload), keyHash, madeAt)
            _SEQUENCE.pack_into(memory, offset, sequence + 1)
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN, SLOT, offset)
        return SlotRef(slot, sequence + 1)
