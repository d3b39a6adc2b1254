"""
The answers shared by the workers of C{--workers N}
(L{fbtwist.access.sharedanswers}): the slots themselves on a real
C{memfd} (another process's writes: tests/integration/test_sharedanswers.py); and
L{RememberedAnswers} of two workers sharing one memory, each with a watch
of the test's, by its own rules: an answer made by one is given by the
other without being made again, never after a change the other's watch
told since it was made.
"""

import os

from twisted.trial import unittest

from fbtwist.access import sharedanswers
from fbtwist.access.answers import ENTRY_OVERHEAD, SHARE_DELAY, RememberedAnswers
from fbtwist.access.sharedanswers import BUCKET, SLOT, AnswerSlots, Record, SlotRef, createMemory
from tests.unit.test_answermemory import FakeWatch

ANSWER = ('"e1"', b"BEGIN:VCALENDAR\r\n" * 10, 1.0, b"head")


def record(uid="alice", madeAt=10.0, answer=ANSWER, state=((1, 2, 3, 4, 1, 0o100644), ()), versions=((), ())):
    return Record(uid, madeAt, versions, state, answer)


class AnswerSlotsTests(unittest.TestCase):
    """
    L{AnswerSlots} on a real memory.
    """

    def setUp(self):
        self.fd = createMemory(2 * BUCKET)
        self.addCleanup(os.close, self.fd)
        self.slots = self.open()

    def open(self):
        slots = AnswerSlots(self.fd)
        self.addCleanup(slots.close)
        return slots

    def test_sparse(self):
        """The memory is as large as its slots, and takes no memory before it is written."""
        self.assertEqual(os.fstat(self.fd).st_size, 2 * BUCKET * SLOT)
        self.assertEqual(self.slots.slots, 2 * BUCKET)
        self.assertEqual(os.fstat(self.fd).st_blocks, 0)
        self.assertEqual(self.slots.find("alice"), (None, None))

    def test_writeThenFind(self):
        """
        A record written is found by its uid, in this process and through
        another mapping, whole; its answer alone is read at its ref.
        """
        ref = self.slots.write(record())
        self.assertIsInstance(ref, SlotRef)
        self.assertEqual(self.slots.find("alice"), (record(), ref))
        self.assertEqual(self.open().find("alice"), (record(), ref))
        self.assertEqual(self.slots.read(ref), record())
        self.assertEqual(self.slots.answerAt(ref), ANSWER)
        self.assertEqual(self.slots.find("bob"), (None, None))

    def test_writtenOver(self):
        """A record written again is at a new ref; the old ref reads nothing."""
        ref = self.slots.write(record())
        again = self.slots.write(record(madeAt=20.0))
        self.assertNotEqual(ref, again)
        self.assertIsNone(self.slots.read(ref))
        self.assertEqual(self.slots.read(again).madeAt, 20.0)
        # Its own slot again, not the second one.
        self.assertEqual(ref.slot, again.slot)

    def test_bucket(self):
        """
        People whose buckets are the same each have a slot of it; once it
        is full, a newcomer goes over the answer made longest ago.
        """
        slots = AnswerSlots(self.fd)
        self.addCleanup(slots.close)
        bucketOf = slots._bucketOf
        self.patch(slots, "_bucketOf", lambda uid: (0, bucketOf("alice")[1]))
        refs = [slots.write(record(uid=f"user{n}", madeAt=float(n + 1))) for n in range(BUCKET)]
        self.assertEqual(sorted(ref.slot for ref in refs), list(range(BUCKET)))
        for n in range(BUCKET):
            self.assertEqual(slots.find(f"user{n}")[0].uid, f"user{n}")
        late = slots.write(record(uid="late", madeAt=100.0))
        self.assertEqual(late.slot, refs[0].slot)
        self.assertEqual(slots.find("user0"), (None, None))
        self.assertIsNone(slots.read(refs[0]))
        self.assertIsNone(slots.answerAt(refs[0]))
        self.assertEqual(slots.find("user1")[0].uid, "user1")
        self.assertEqual(slots.find("late")[0].uid, "late")

    def test_beingWritten(self):
        """A slot whose number is odd (being written, or its writer killed) is not read; the next write mends it."""
        ref = self.slots.write(record())
        memory = self.slots._memory
        offset = ref.slot * SLOT
        sharedanswers._SEQUENCE.pack_into(memory, offset, ref.sequence + 1)
        self.assertEqual(self.slots.find("alice"), (None, None))
        self.assertIsNone(self.slots.read(ref))
        again = self.slots.write(record(madeAt=30.0))
        self.assertEqual(again.sequence % 2, 0)
        self.assertEqual(self.slots.find("alice")[0].madeAt, 30.0)

    def test_changedWhileRead(self):
        """A record written over while it was being copied (its number changed meanwhile) is not given."""
        ref = self.slots.write(record())

        class WrittenOver:
            @staticmethod
            def unpack_from(memory, offset):
                return (ref.sequence + 2,)

        self.patch(sharedanswers, "_SEQUENCE", WrittenOver)
        self.assertIsNone(self.slots.read(ref))

    def test_pending(self):
        """
        A record written as not yet shared (made at PENDING) is not found,
        nor written over by the same person's next one; rewritten at its
        ref it is found; a ref written over meanwhile is not rewritten; one
        let go leaves its slot empty.
        """
        pending = self.slots.write(record(madeAt=sharedanswers._PENDING))
        self.assertEqual(self.slots.find("alice"), (None, None))
        self.assertEqual(self.slots.answerAt(pending), ANSWER)
        other = self.slots.write(record(madeAt=sharedanswers._PENDING))
        self.assertNotEqual(other.slot, pending.slot)
        shared = self.slots.rewrite(pending, record(madeAt=50.0))
        self.assertEqual(shared.slot, pending.slot)
        self.assertEqual(self.slots.find("alice"), (record(madeAt=50.0), shared))
        self.assertIsNone(self.slots.rewrite(pending, record(madeAt=60.0)))
        self.slots.letGo(other)
        self.assertIsNone(self.slots.answerAt(other))
        self.assertEqual(sharedanswers._HEAD.unpack_from(self.slots._memory, other.slot * SLOT)[1], 0)
        self.assertEqual(self.slots.write(record(uid="bob", madeAt=70.0)).slot == other.slot,
                         self.slots._bucketOf("bob")[0] == self.slots._bucketOf("alice")[0])

    def test_tooLarge(self):
        """A record larger than a slot is not shared."""
        self.assertIsNone(self.slots.write(record(answer=('"e"', b"x" * SLOT, 1.0, b""))))
        self.assertEqual(self.slots.find("alice"), (None, None))

    def test_garbage(self):
        """A slot holding what is no record is read as nothing."""
        ref = self.slots.write(record())
        offset = ref.slot * SLOT
        head = sharedanswers._HEAD
        sequence, length, keyHash, madeAt = head.unpack_from(self.slots._memory, offset)
        # Parts longer than the record.
        head.pack_into(self.slots._memory, offset, sequence, length - 1, keyHash, madeAt)
        self.assertEqual(self.slots.find("alice"), (None, None))
        self.assertIsNone(self.slots.answerAt(SlotRef(ref.slot, sequence)))
        # What it was made of, not in marshal's form.
        head.pack_into(self.slots._memory, offset, sequence, length, keyHash, madeAt)
        meta = offset + head.size + sharedanswers._PARTS.size + len(b"alice") + len(ANSWER[0])
        self.slots._memory[meta:meta + 2] = b"\xff\xff"
        self.assertEqual(self.slots.find("alice"), (None, None))
        # Shorter than a record's own head.
        head.pack_into(self.slots._memory, offset, sequence, 3, keyHash, madeAt)
        self.assertIsNone(self.slots.answerAt(SlotRef(ref.slot, sequence)))

    def test_tooManySlotsNeeded(self):
        """A memory smaller than a bucket is refused."""
        fd = createMemory(BUCKET - 1)
        self.addCleanup(os.close, fd)
        self.assertRaises(ValueError, AnswerSlots, fd)


class Worker:
    """
    One worker's L{RememberedAnswers} on a shared memory, with a watch and
    files' states of the test's.
    """

    def __init__(self, test, slots):
        self.test = test
        self.watch = FakeWatch()
        self.stateAsked = []
        #: This worker's versions of the choices and feeds (the test's,
        #: unless set).
        self.versions = None
        self.answers = RememberedAnswers(
            self.watch.open, lambda: test.versions if self.versions is None else self.versions,
            100 * (1000 + ENTRY_OVERHEAD), lambda: test.now,
            inReactorThread=lambda: True, state=self.state, stateSince=self.stateSince, shared=slots)

    def state(self, uid, before=None):
        self.stateAsked.append(uid)
        return self.test.states.get(uid)

    def stateSince(self, uid, before):
        self.stateAsked.append(uid)
        now = self.test.states.get(uid)
        return now if now is not None and now[:1] == before[:1] else None

    def get(self, uid="alice"):
        return self.answers.get(uid)

    def make(self, uid="alice", answer=ANSWER):
        """
        Miss, make C{answer}, hold it.
        """
        found, ticket = self.get(uid)
        self.test.assertIsNone(found)
        self.test.assertIsNotNone(ticket)
        self.answers.put(ticket, answer)

    def told(self, *names):
        self.watch.queued += names


class SharedAnswersTests(unittest.TestCase):
    """
    Two workers' L{RememberedAnswers} sharing one L{AnswerSlots}.
    """

    def setUp(self):
        fd = createMemory(4 * BUCKET)
        self.addCleanup(os.close, fd)
        self.slots = AnswerSlots(fd)
        self.addCleanup(self.slots.close)
        self.versions = ((), ())
        self.now = 1000.0
        # A file's state: (content, change time).
        self.states = {"alice": ("v1", 1), "bob": ("b1", 1)}
        self.a = Worker(self, self.slots)
        self.b = Worker(self, self.slots)
        # Both watching.
        self.a.get("nobody")
        self.b.get("nobody")

    def shared(self, worker):
        """
        Let C{worker} share what it made (its next lookup, once the delay passed).
        """
        self.now += SHARE_DELAY
        worker.get("nobody")

    def test_madeOnceGivenByBoth(self):
        """An answer made by one worker is given by the other, not made again, and held there as where it is."""
        self.a.make()
        self.assertEqual(self.b.get()[0], None)
        # Not shared before the delay.
        self.a.make("bob")
        self.shared(self.a)
        self.assertEqual(self.b.get()[0], ANSWER)
        self.assertEqual(self.b.answers.fromShared, 1)
        self.assertEqual(self.b.get()[0], ANSWER)
        self.assertEqual(self.b.answers.fromShared, 1)
        self.assertEqual(self.a.get()[0], ANSWER)
        # Each holds where it is, not a copy.
        self.assertEqual(self.a.answers.counts()[3], 2 * ENTRY_OVERHEAD + 0 * len(ANSWER[1]))
        self.assertEqual(self.b.answers.counts()[3], ENTRY_OVERHEAD)

    def test_notSharedWhenChanged(self):
        """An answer whose file changed before it was shared is not shared."""
        self.a.make()
        self.assertEqual(self.slots.find("alice"), (None, None))
        self.a.told("alice.vfb")
        self.shared(self.a)
        self.assertEqual(self.slots.find("alice"), (None, None))
        self.assertIsNone(self.b.get()[0])
        # Its slot emptied: the next answer written there.
        first, _ = self.slots._bucketOf("alice")
        lengths = [sharedanswers._HEAD.unpack_from(self.slots._memory, slot * SLOT)[1]
                   for slot in range(first, first + BUCKET)]
        self.assertEqual(lengths, [0] * BUCKET)

    def test_changeToldAfter(self):
        """A change the other worker's watch told after the answer was made: not given; made again there."""
        self.a.make()
        self.shared(self.a)
        self.now += 1
        self.b.told("alice.vfb")
        answer, ticket = self.b.get()
        self.assertIsNone(answer)
        self.assertIsNotNone(ticket)

    def test_changeToldBefore(self):
        """A change told before the answer was made is of the files it was made of: given."""
        self.b.told("alice.vfb")
        self.b.get("nobody")
        self.now += 1
        self.a.make()
        self.shared(self.a)
        self.assertEqual(self.b.get()[0], ANSWER)

    def test_attributesAfter(self):
        """
        Attributes alone changed after it was made (its kept copy written):
        given when the files are as they were but for their change times,
        held with their state now; else not.
        """
        self.a.make()
        self.shared(self.a)
        self.now += 1
        self.states["alice"] = ("v1", 2)
        self.b.told(("alice.vfb", True))
        self.assertEqual(self.b.get()[0], ANSWER)
        self.assertEqual(self.b.answers._held["alice"][4], ("v1", 2))
        self.a.make("bob")
        self.shared(self.a)
        self.now += 1
        self.states["bob"] = ("b2", 2)
        self.b.told(("bob.vfb", True))
        self.assertIsNone(self.b.get("bob")[0])

    def test_attributesAfterThenContent(self):
        """A change of content and then of attributes, both after: not given."""
        self.a.make()
        self.shared(self.a)
        self.now += 1
        self.b.told("alice.vfb", ("alice.vfb", True))
        self.assertIsNone(self.b.get()[0])

    def test_madeBeforeWatched(self):
        """A worker whose watch opened after the answer was made does not give it (changes before are unknown)."""
        self.a.make()
        self.shared(self.a)
        self.now += 1
        late = Worker(self, self.slots)
        self.assertIsNone(late.get()[0])

    def test_forgotten(self):
        """After a worker forgot everything (its watch could not tell), answers shared before are not given there."""
        self.a.make()
        self.shared(self.a)
        self.now += 1
        self.b.told(None)
        self.assertIsNone(self.b.get()[0])

    def test_otherVersions(self):
        """An answer made at other versions of the choices or feeds is not given."""
        self.a.make()
        self.shared(self.a)
        self.versions = (("choices", 2), ())
        self.assertIsNone(self.b.get()[0])

    def test_madeAtOtherVersions(self):
        """
        An answer made by a worker that had not yet seen new versions of
        the choices or feeds is not given by one that had, made later or
        not.
        """
        self.b.versions = (("choices", 2), ())
        self.b.get("nobody")
        self.now += 1
        self.a.make()
        self.shared(self.a)
        self.assertIsNone(self.b.get()[0])

    def test_replacedBeforeShared(self):
        """
        An answer made here and then replaced (its file changed, and the
        answer another worker made since given here) is not shared: the
        newer one stays.
        """
        new = ('"e2"', b"END:VCALENDAR\r\n", 2.0, b"head2")
        self.b.make(answer=new)
        self.now += 0.04
        answer, ticket = self.a.get()
        self.a.answers.put(ticket, ANSWER)
        self.a.told("alice.vfb")
        self.now += 0.01
        self.a.get("nobody")
        self.now += 0.01
        self.b.get("nobody")
        self.now += 0.01
        self.assertEqual(self.a.get()[0], new)
        self.now += SHARE_DELAY
        self.a.get("nobody")
        self.assertEqual(self.slots.find("alice")[0].answer, new)

    def test_tooOld(self):
        """An answer shared more than maxAge ago is not given (its files are looked at again)."""
        self.a.make()
        self.shared(self.a)
        self.now += RememberedAnswers.maxAge
        self.assertIsNone(self.b.get()[0])

    def test_writtenOver(self):
        """An answer held as where it is, written over by another person's: not given, made again."""
        self.a.make()
        self.shared(self.a)
        self.assertEqual(self.b.get()[0], ANSWER)
        first, keyHash = self.slots._bucketOf("alice")
        payload = self.slots._payload(self.b.answers._held["alice"][1])
        for slot in range(first, first + BUCKET):
            self.slots._writeAt(slot, payload.replace(b"alice", b"zelda"), keyHash, self.now)
        answer, ticket = self.b.get()
        self.assertIsNone(answer)
        self.assertIsNotNone(ticket)

    def test_remoteNotShared(self):
        """Another organisation's answers stay with the worker that made them."""
        answer, ticket = self.a.answers.getRemote("x@partner.example", "result")
        self.a.answers.put(ticket, ANSWER)
        self.shared(self.a)
        self.assertEqual(self.a.answers.getRemote("x@partner.example", "result")[0], ANSWER)
        self.assertEqual(self.b.answers.getRemote("x@partner.example", "result")[0], None)

    def test_changesBounded(self):
        """Changes noted are bounded: past the bound, those older than maxAge go, then all, trusting nothing older."""
        from fbtwist.access import answers

        self.patch(answers, "CHANGES_HELD", 4)
        self.a.make()
        self.shared(self.a)
        self.b.told(*[f"u{n}.vfb" for n in range(5)])
        self.b.get("nobody")
        self.assertEqual(self.b.answers._changedAt, {})
        self.assertIsNone(self.b.get()[0])
        self.now += 1
        self.a.make("bob")
        self.shared(self.a)
        self.assertEqual(self.b.get("bob")[0], ANSWER)
