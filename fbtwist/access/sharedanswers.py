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

Each slot is one page (L{SLOT} bytes): a sequence number, the record's
length, and the record (C{marshal}: the uid, when it was made, what it was
made of, the answer).  A person's answer goes in one of two slots chosen by
hashes of their uid (the one holding it already, else an empty one, else
the older one).  A writer locks its slot (C{lockf}: the workers are
processes; a slot locked by another is not waited for, the answer is then
not shared), makes the sequence number odd, writes, and makes it even
again; a reader copies the record between two reads of the number and
keeps it only when both are the same even number (a seqlock: a record
being written, or written over meanwhile, is not read).  A worker killed
while writing leaves the number odd: the next writer makes it even again.
Whether a record read may be given is for L{fbtwist.access.answers} to
decide: what it holds is only what some worker made.
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

#: A slot's head: its sequence number (odd while being written) and the
#: record's length.
_HEAD = struct.Struct("<QI")
_SEQUENCE = struct.Struct("<Q")

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
        if self.slots < 2:
            raise ValueError("a memory of answers needs two slots at least")
        self._memory = mmap.mmap(fd, self.slots * SLOT, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)

    def close(self) -> None:
        self._memory.close()

    def _slotsOf(self, uid: str):
        key = uid.encode("utf-8")
        first = zlib.crc32(key) % self.slots
        second = zlib.crc32(key, 0x5BD1E995) % self.slots
        if second == first:
            second = (first + 1) % self.slots
        return first, second

    def read(self, ref: SlotRef) -> Optional[Record]:
        """
        The record at C{ref}, when its slot still holds it whole; else
        C{None}.
        """
        memory = self._memory
        offset = ref.slot * SLOT
        sequence, length = _HEAD.unpack_from(memory, offset)
        if sequence != ref.sequence or not 0 < length <= MAX_RECORD:
            return None
        payload = memory[offset + _HEAD.size:offset + _HEAD.size + length]
        if _SEQUENCE.unpack_from(memory, offset)[0] != sequence:
            return None
        try:
            return Record(*marshal.loads(payload))
        except (ValueError, EOFError, TypeError):
            return None

    def find(self, uid: str):
        """
        C{uid}'s record and where it is (C{(record, ref)}), or C{(None,
        None)}.
        """
        memory = self._memory
        for slot in self._slotsOf(uid):
            sequence = _SEQUENCE.unpack_from(memory, slot * SLOT)[0]
            if sequence & 1 or not sequence:
                continue
            ref = SlotRef(slot, sequence)
            record = self.read(ref)
            if record is not None and record.uid == uid:
                return record, ref
        return None, None

    def write(self, record: Record) -> Optional[SlotRef]:
        """
        Write C{record} in one of its owner's two slots (see the module).

        @return: Where it is, or C{None} when it is not shared: too large,
            or both slots being written by another process.
        """
        payload = marshal.dumps(tuple(record))
        if len(payload) > MAX_RECORD:
            return None
        memory = self._memory
        chosen, oldest = None, None
        for slot in self._slotsOf(record.uid):
            sequence, length = _HEAD.unpack_from(memory, slot * SLOT)
            if not sequence:
                held = None
            else:
                held = self.read(SlotRef(slot, sequence)) if not sequence & 1 else None
                if held is not None and held.uid == record.uid:
                    chosen = slot
                    break
            if held is None:
                if chosen is None:
                    chosen = slot
                continue
            if oldest is None or held.madeAt < oldest[1]:
                oldest = (slot, held.madeAt)
        if chosen is None:
            chosen = oldest[0]
        return self._writeAt(chosen, payload)

    def _writeAt(self, slot: int, payload: bytes) -> Optional[SlotRef]:
        offset = slot * SLOT
        try:
            fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, SLOT, offset)
        except OSError:
            return None
        try:
            memory = self._memory
            # Odd while being written (a dead writer's odd number stays odd).
            sequence = _SEQUENCE.unpack_from(memory, offset)[0] | 1
            _SEQUENCE.pack_into(memory, offset, sequence)
            memory[offset + _HEAD.size:offset + _HEAD.size + len(payload)] = payload
            _HEAD.pack_into(memory, offset, sequence, len(payload))
            _SEQUENCE.pack_into(memory, offset, sequence + 1)
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN, SLOT, offset)
        return SlotRef(slot, sequence + 1)
