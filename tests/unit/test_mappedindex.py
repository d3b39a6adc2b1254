"""
L{fbtwist.directory.mappedindex}: the name index as a file mapped into
memory, answering as the in-memory index does; written by the process that
loads it and mapped by the others (the workers of C{--workers}).
"""

import os
import time

from hypothesis import given, settings
from hypothesis import strategies as st
from ldaptor.protocols import pureldap
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

import tests.helpers  # noqa: F401 (ldaptor's import-time warnings)
from fbtwist.directory import mappedindex
from fbtwist.directory.ber import MAX_MESSAGE, MalformedMessage, searchEntries
from fbtwist.directory.mappedindex import (
    CompactIndexBuilder,
    CompactNameIndex,
    IndexFileError,
    MappedIndexFollower,
    MappedNameIndex,
    _sortedSlots,
    privateDirectory,
    writeIndexFile,
)
from fbtwist.directory.nameindex import _MAX_TEMPLATES, indexOf
from tests.names import NAMES, PEOPLE
from tests.unit.test_ber import _ldaptor

#: Records of every kind the rule tells apart: shared uids, shared local
#: parts, entries without uid, uids that look like addresses, DNs of
#: several shapes (one template, escaped, other RDNs), non-ASCII.
RECORDS = [
    ("alice", ["alice@example.com"], f"uid=alice,{PEOPLE}"),
    ("bob", ["robert@example.com", "bob@example.com"], f"uid=bob,{PEOPLE}"),
    ("robert", ["rob@example.com"], f"uid=robert,{PEOPLE}"),
    ("pat1", ["pat@example.com"], f"uid=pat1,{PEOPLE}"),
    ("pat2", ["pat@example.org"], f"uid=pat2,{PEOPLE}"),
    ("twin", ["twin@example.com"], f"cn=Twin One,{PEOPLE}"),
    ("twin", ["twin@example.org"], f"cn=Twin Two,{PEOPLE}"),
    (None, ["nouid@example.com"], f"cn=No Uid,{PEOPLE}"),
    ("Carol", ["CAROL.Smith@Example.com"], f"uid=Carol,{PEOPLE}"),
    ("eve@example.com", ["eve@corp.example"], f"cn=Eve,{PEOPLE}"),
    ("evelyn", ["eve@example.com", "evelyn@example.com"], f"uid=evelyn,{PEOPLE}"),
    ("a,b", [], f"uid=a\\,b,{PEOPLE}"),
    ("josé", ["josé@example.com"], "uid=josé,ou=other,dc=example,dc=com"),
    ("nodn", ["nodn@example.com"], None),
]


class MappedIndexTests(SynchronousTestCase):
    """
    A mapped index on the records of every kind.
    """

    def setUp(self):
        self.path = self.mktemp()
        self.index = indexOf(RECORDS)
        writeIndexFile(self.index, self.path)
        self.mapped = MappedNameIndex(self.path)
        self.addCleanup(self.mapped.close)

    def test_sameAnswers(self):
        """
        Every name, in every case, gets the in-memory index's answers:
        the uid it resolves to, and the uid and DN a login binds as.
        """
        names = NAMES + [n.upper() for n in NAMES] + ["a,b", "josé", "JOSÉ", "nodn", "", "\udcff"]
        for name in names:
            self.assertEqual(self.mapped.get(name), self.index.get(name), name)
            self.assertEqual(self.mapped.login(name), self.index.login(name), name)
        self.assertEqual(self.mapped.login("Bob"), ("bob", f"uid=bob,{PEOPLE}"))
        self.assertEqual((len(self.mapped), self.mapped.entries), (len(self.index), self.index.entries))

    def test_many(self):
        """
        Ten thousand users: every name is found, other names are not.
        """
        records = [(f"u{n}", [f"u{n}@example.com"], f"uid=u{n},{PEOPLE}") for n in range(10000)]
        writeIndexFile(indexOf(records), self.path)
        mapped = MappedNameIndex(self.path)
        self.addCleanup(mapped.close)
        for n in range(0, 10000, 7):
            self.assertEqual(mapped.get(f"U{n}@example.com"), (True, f"u{n}"))
            self.assertEqual(mapped.login(f"u{n}"), (f"u{n}", f"uid=u{n},{PEOPLE}"))
        self.assertEqual(mapped.get("u10000"), (False, None))

    def test_replacedAtomically(self):
        """
        Writing a new index replaces the file; a process that mapped the
        old one keeps answering from it.
        """
        writeIndexFile(indexOf([("zoe", [], f"uid=zoe,{PEOPLE}")]), self.path)
        self.assertEqual(self.mapped.get("alice"), (True, "alice"))
        self.assertEqual(MappedNameIndex(self.path).get("zoe"), (True, "zoe"))
        self.assertEqual(os.listdir(os.path.dirname(os.path.abspath(self.path))), [os.path.basename(self.path)])

    def test_notAnIndex(self):
        """
        A file that is not an index, or is cut short, is refused.
        """
        other = self.mktemp()
        with open(other, "wb") as f:
            f.write(b"x" * 100)
        self.assertRaises(IndexFileError, MappedNameIndex, other)
        with open(self.path, "rb") as f:
            data = f.read()
        with open(other, "wb") as f:
            f.write(data[:-10])
        self.assertRaises(IndexFileError, MappedNameIndex, other)

    def test_privateDirectory(self):
        """
        The index's directory is created for this user alone; one others
        may write to is refused.
        """
        path = self.mktemp()
        privateDirectory(path)
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o700)
        os.chmod(path, 0o777)
        self.assertRaises(OSError, privateDirectory, path)


def _utf8(text):
    return None if text is None else text.encode("utf-8", "surrogatepass")


def _compact(records) -> CompactNameIndex:
    """
    The index of C{records} (as L{indexOf} takes them) built from bytes,
    as a load builds it.
    """
    builder = CompactIndexBuilder()
    for uid, addresses, dn in records:
        builder.add(_utf8(uid), [_utf8(a) for a in addresses], _utf8(dn))
    return CompactNameIndex(b"".join(builder.parts()))


def _partsOfRecords(records):
    builder = CompactIndexBuilder()
    for uid, addresses, dn in records:
        builder.add(_utf8(uid), [_utf8(a) for a in addresses], _utf8(dn))
    return builder.parts()


class CompactBuilderTests(SynchronousTestCase):
    """
    The index built from a load's raw entries answers as the in-memory
    index of the same entries does.
    """

    def assertSameAnswers(self, records, names):
        index, compact = indexOf(records), _compact(records)
        for name in names:
            self.assertEqual(compact.get(name), index.get(name), name)
            self.assertEqual(compact.login(name), index.login(name), name)
        self.assertEqual((len(compact), compact.entries), (len(index), index.entries))

    def test_sameAnswers(self):
        """
        Entries of every kind the rule tells apart: the same answers, for
        every name in every case.
        """
        names = NAMES + [n.upper() for n in NAMES] + ["a,b", "josé", "JOSÉ", "nodn", "", "\udcff", "twin"]
        self.assertSameAnswers(RECORDS, names)

    def test_entries(self):
        """
        C{addEntry} takes an entry as a search returns it: attribute names
        in any case, the first uid value, the values of every mail
        attribute; other attributes are ignored.
        """
        builder = CompactIndexBuilder(b"uid", {b"mail", b"mailalternateaddress"})
        builder.addEntry(b"uid=ann,dc=x", [(b"UID", [b"ann", b"anne"]), (b"cn", [b"Zed"]),
                                           (b"Mail", [b"ann@x.example"]),
                                           (b"mailAlternateAddress", [b"nan@y.example"])])
        builder.addEntry(b"cn=nouid,dc=x", [(b"uid", []), (b"mail", [b"ghost@x.example"])])
        index = CompactNameIndex(b"".join(builder.parts()))
        self.assertEqual(index.login("ANN"), ("ann", "uid=ann,dc=x"))
        self.assertEqual([index.get(n) for n in ("anne", "zed", "nan", "nan@y.example", "ghost")],
                         [(False, None), (False, None), (True, "ann"), (True, "ann"), (True, None)])
        self.assertEqual(index.entries, 2)

    def test_entriesAsSearched(self):
        """
        Entries as a search returns them, most of them fitting the last
        DN's template (the way a load adds them fastest), with uids that
        two entries share either way: the same file as adding each entry's
        uid, addresses and DN, and the in-memory index's answers.
        """
        records = [r for r in RECORDS if r[2] is not None] + [
            ("dup", ["dup@example.com"], f"uid=dup,{PEOPLE}"),
            ("DUP", ["dup2@example.com"], f"uid=DUP,{PEOPLE}"),
            ("dup2", ["dup2@example.org"], f"uid=dup2,{PEOPLE}"),
            ("alice", ["alice@example.org"], f"uid=alice,ou=more,{PEOPLE}"),
            ("mo", ["mo@example.com", "more@example.com"], f"uid=mo,{PEOPLE}"),
            ("ann", ["ann@example.com"], f"uid=ann,{PEOPLE}"),
        ]
        added, searched = CompactIndexBuilder(), CompactIndexBuilder()
        for uid, addresses, dn in records:
            added.add(_utf8(uid), [_utf8(a) for a in addresses], _utf8(dn))
            attributes = [(b"mail", [_utf8(a) for a in addresses])]
            if uid is not None:
                attributes.insert(0, (b"uid", [_utf8(uid)]))
            searched.addEntry(_utf8(dn), attributes)
        self.assertEqual(b"".join(searched.parts()), b"".join(added.parts()))
        names = NAMES + ["dup", "DUP", "dup2", "dup@example.com", "dup2@example.org", "ann", "mo", "more", "alice"]
        self.assertSameAnswers(records, names)

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.tuples(st.sampled_from([None, "a", "b", "A", "c@x", "é"]),
                              st.lists(st.sampled_from(["a@x", "b@y", "a", "c@x", "B@x", "d@x", "É@x"]), max_size=3),
                              st.sampled_from(["uid=a,dc=x", "uid=b,dc=x", "cn=z,dc=x", None]),
                              st.booleans()), max_size=20))
    def test_settledAnyTime(self, records):
        """
        Claims settled after any entries (several entries claiming one
        name before and after, a uid that is an earlier or a later
        entry's mail key, entries without uid): byte for byte the file of
        claims settled all at once.
        """
        once, inSteps = CompactIndexBuilder(), CompactIndexBuilder()
        for uid, addresses, dn, settle in records:
            for builder in (once, inSteps):
                builder.add(_utf8(uid), [_utf8(a) for a in addresses], _utf8(dn))
            if settle:
                inSteps.settle()
        self.assertEqual(b"".join(inSteps.parts()), b"".join(once.parts()))

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 3), st.booleans()), max_size=60))
    def test_slotsInRuns(self, entries):
        """
        Keys no two entries claim, settled after any entries (their slots
        then sorted in runs), uids that are their entry's local part or
        not, or another entry's: byte for byte the file of slots sorted
        all at once.
        """
        inRuns, atOnce = CompactIndexBuilder(), CompactIndexBuilder()
        for n, (uid, shape, settle) in enumerate(entries):
            uid = [b"u%d" % uid, b"e%d" % n, b"e%d@x" % n, b"u%d@y" % n][shape]
            for builder in (inRuns, atOnce):
                builder.add(uid, [b"e%d@x" % n], b"uid=" + uid + b",dc=x")
            if settle:
                inRuns.settle()
        atOnce._slotRuns = None
        self.assertEqual(b"".join(inRuns.parts()), b"".join(atOnce.parts()))

    def test_settledInSteps(self):
        """
        The records of every kind settled after each entry: byte for byte
        the file of claims settled all at once, with the in-memory index's
        answers.
        """
        builder = CompactIndexBuilder()
        for uid, addresses, dn in RECORDS + RECORDS[:3]:
            builder.add(_utf8(uid), [_utf8(a) for a in addresses], _utf8(dn))
            builder.settle()
        self.assertEqual(b"".join(builder.parts()), b"".join(_partsOfRecords(RECORDS + RECORDS[:3])))

    def test_notUTF8(self):
        """
        Values that are not UTF-8 are read as the in-memory index reads
        them (with replacement characters), not refused.
        """
        builder = CompactIndexBuilder()
        builder.add(b"b\xffb", [b"B\xff@x.example"], b"uid=b\xffb,dc=x")
        index = CompactNameIndex(b"".join(builder.parts()))
        self.assertEqual(index.login("B\ufffdB"), ("b\ufffdb", "uid=b\ufffdb,dc=x"))
        self.assertEqual(index.get("b\ufffd"), (True, "b\ufffdb"))

    def test_templates(self):
        """
        Past the most DN templates there may be, DNs are kept whole: every
        login still binds as its own DN.
        """
        records = [(f"u{n}", [], f"uid=u{n},ou=o{n},dc=x") for n in range(_MAX_TEMPLATES + 50)]
        records += [("v", ["v@x"], "uid=v,ou=o3,dc=x"), ("w", [], "cn=W,dc=x")]
        self.assertSameAnswers(records, [r[0] for r in records] + ["v@x", "none"])

    def test_many(self):
        """
        A hundred thousand users, one name of each in ten asked: all found;
        names nobody has are not.
        """
        records = [(f"u{n}", [f"u{n}@example.com"], f"uid=u{n},{PEOPLE}") for n in range(100000)]
        index = _compact(records)
        for n in range(0, 100000, 10):
            self.assertEqual(index.get(f"U{n}@EXAMPLE.com"), (True, f"u{n}"))
            self.assertEqual(index.login(f"u{n}"), (f"u{n}", f"uid=u{n},{PEOPLE}"))
        self.assertEqual([index.get(n) for n in ("u100000", "u1@example.org", "")], [(False, None)] * 3)

    def test_damaged(self):
        """
        Content of the wrong size or version is refused.
        """
        data = b"".join(CompactIndexBuilder().parts())
        CompactNameIndex(data)
        for wrong in (data[:-1], data + b"\0", b"X" + data[1:], b""):
            self.assertRaises(IndexFileError, CompactNameIndex, wrong)



class SortedSlotsTests(SynchronousTestCase):
    """
    The keys' slots (CRC above number) are sorted by their nearest float
    (faster), in exactly the order of the integers.
    """

    def assertSortedAsIntegers(self, crcs, numbers):
        slots = [crc << 32 | number for crc, number in zip(crcs, sorted(numbers))]
        self.assertEqual(_sortedSlots(iter(slots)).tolist(), sorted(slots))

    def test_roundedTogether(self):
        """
        Thousands of slots of the highest CRCs (where floats are coarsest:
        neighbours round to one float), of one CRC, of CRCs a unit apart,
        numbers up to near 2**31: in the order of the integers.
        """
        numbers = list(range(3000)) + list(range(2**31 - 3000, 2**31))
        top = [0xFFFFFFFF - n % 3 for n in range(len(numbers))]
        self.assertSortedAsIntegers(top, numbers)
        self.assertSortedAsIntegers([0xFFFFFFFF] * len(numbers), numbers)
        self.assertSortedAsIntegers([0x80000000 + (n % 2) for n in range(len(numbers))], numbers)
        self.assertSortedAsIntegers([2**21 - n % 5 for n in range(len(numbers))], numbers)

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.tuples(st.sampled_from([0, 1, 2**20, 2**31 - 1, 2**31, 2**32 - 2, 2**32 - 1]),
                              st.integers(0, 2**31 - 1)), unique_by=lambda pair: pair[1], max_size=200))
    def test_anySlots(self, pairs):
        """
        Any CRCs (few, so that many share one) with numbers in ascending
        order: in the order of the integers.
        """
        self.assertSortedAsIntegers([crc for crc, _ in pairs], [number for _, number in pairs])


class _Directory:
    nameIndex = None


class FollowerTests(SynchronousTestCase):
    """
    A worker follows the file its master writes.
    """

    def setUp(self):
        self.path = self.mktemp()
        self.clock = Clock()
        self.directory = _Directory()
        self.follower = MappedIndexFollower(self.directory, self.path, self.clock, interval=1, maxAge=100)
        self.follower.start()
        self.addCleanup(self.follower.stop)

    def test_follows(self):
        """
        No file: no index; once written it is mapped, and mapped again
        each time it is replaced.
        """
        self.assertIsNone(self.directory.nameIndex)
        writeIndexFile(indexOf(RECORDS), self.path)
        self.clock.advance(1)
        self.assertIsInstance(self.directory.nameIndex, MappedNameIndex)
        self.assertEqual(self.directory.nameIndex.login("alice"), ("alice", f"uid=alice,{PEOPLE}"))
        first = self.directory.nameIndex
        self.clock.advance(1)
        self.assertIs(self.directory.nameIndex, first)
        writeIndexFile(indexOf([("zoe", [], None)]), self.path)
        self.clock.advance(1)
        self.assertEqual(self.directory.nameIndex.get("zoe"), (True, "zoe"))

    def test_stale(self):
        """
        A file older than C{maxAge} (left by an earlier run) is not mapped.
        """
        writeIndexFile(indexOf(RECORDS), self.path)
        old = time.time() - 101
        os.utime(self.path, (old, old))
        self.clock.advance(1)
        self.assertIsNone(self.directory.nameIndex)

    def test_damaged(self):
        """
        A file that is not an index is not mapped (a warning), and the
        index in use stays.
        """
        with open(self.path, "wb") as f:
            f.write(b"not an index at all, not at all, not at all")
        self.clock.advance(1)
        self.assertIsNone(self.directory.nameIndex)


def _message(dn: bytes, attributes, messageID: int = 5, controls=None) -> bytes:
    """
    A search result entry as ldaptor's encoder writes it.
    """
    return pureldap.LDAPMessage(pureldap.LDAPSearchResultEntry(objectName=dn, attributes=attributes),
                                id=messageID, controls=controls).toWire()


def _attributesOf(uid, addresses, extra=()):
    attributes = list(extra)
    if uid is not None:
        attributes.insert(0, (b"uid", [_utf8(uid)]))
    if addresses:
        attributes.append((b"mail", [_utf8(a) for a in addresses]))
    return attributes


#: Entries as a server sends them, of every kind the builder tells apart
#: (the records above, entries without a DN left out: a search has one),
#: and of every shape: long-form lengths at each level, attribute names
#: in other cases, other attributes, several mail attributes, an empty
#: uid attribute, a uid attribute given twice (the last counts, even
#: empty), an address without a domain, a non-ASCII uid of the usual DN
#: template, a non-ASCII address, a uid two entries have, message ids of 1
#: to 4 bytes.
STREAM = [_message(_utf8(dn), _attributesOf(uid, addresses)) for uid, addresses, dn in RECORDS if dn] + [
    _message(b"uid=" + b"x" * 200 + b",ou=people,dc=example,dc=com",
             [(b"uid", [b"x" * 200]), (b"mail", [b"m%d@example.com" % n for n in range(20)]), (b"cn", [])],
             messageID=300),
    _message(b"uid=Up,ou=people,dc=example,dc=com", [(b"UID", [b"Up", b"Second"]), (b"cn", [b"Up"]),
                                                     (b"MAIL", [b"up@example.com"])], messageID=2**31 - 1),
    _message(b"uid=two,ou=people,dc=example,dc=com", [(b"mail", [b"two@example.com"]),
                                                      (b"mailAlternateAddress", [b"Deux@example.org"]),
                                                      (b"uid", [b"two"])], messageID=70000),
    _message(b"cn=empty,ou=people,dc=example,dc=com", [(b"uid", []), (b"mail", [b"empty@example.com"])]),
    _message(b"uid=again,ou=people,dc=example,dc=com", [(b"uid", [b"first"]), (b"uid", [b"again"]),
                                                        (b"mail", [b"again@example.com"])]),
    _message(b"uid=last,ou=people,dc=example,dc=com", [(b"uid", [b"last"]), (b"mail", [b"last@example.com"])]),
    _message(b"uid=gone,ou=people,dc=example,dc=com", [(b"uid", [b"gone"]), (b"uid", []),
                                                       (b"mail", [b"gone@example.com"])]),
    _message(b"uid=plain,ou=people,dc=example,dc=com", [(b"uid", [b"plain"]), (b"mail", [b"Local"])]),
    _message(_utf8("uid=Ünï,ou=people,dc=example,dc=com"), [(b"uid", [_utf8("Ünï")]),
                                                             (b"mail", [b"Ni@example.com"])]),
    _message(b"uid=mixed,ou=people,dc=example,dc=com", [(b"uid", [b"mixed"]), (b"mail", [_utf8("MÏXED@example.com")])]),
    _message(b"uid=alice,ou=people,dc=example,dc=com", [(b"uid", [b"alice"]), (b"mail", [b"alice@other.example"])]),
]


def _done(messageID: int = 5) -> bytes:
    return pureldap.LDAPMessage(pureldap.LDAPSearchResultDone(resultCode=0), id=messageID).toWire()


def _decodedByLdaptor(message: bytes):
    """
    The DN and attributes of a search entry as ldaptor decodes them.
    """
    return _ldaptor(message)[1:]


class DecodeRunTests(SynchronousTestCase):
    """
    The search's entries decoded and added in one loop
    (C{CompactIndexBuilder.addEntry.decodeRun}, used by
    L{fbtwist.directory.ber.searchEntries}): the same index as ldaptor's
    decoding of each entry handed to C{addEntry}, the same framing and the
    same errors as L{searchEntries} on its own.
    """

    mailAttributes = {b"mail", b"mailalternateaddress"}

    def builder(self) -> CompactIndexBuilder:
        return CompactIndexBuilder(b"uid", self.mailAttributes)

    def byLdaptor(self, messages) -> bytes:
        builder = self.builder()
        for message in messages:
            builder.addEntry(*_decodedByLdaptor(message))
        return b"".join(builder.parts())

    def test_sameAsLdaptor(self):
        """
        Entries of every kind and shape, as ldaptor encodes them, whether
        they arrive at once or a byte at a time: the same index file as
        ldaptor's decoding of each handed to C{addEntry}.
        """
        stream = b"".join(STREAM) + _done()
        builder = self.builder()
        self.assertEqual(searchEntries(stream, 0, builder.addEntry), len(stream) - len(_done()))
        self.assertEqual(builder.entries, len(STREAM))
        expected = self.byLdaptor(STREAM)
        self.assertEqual(b"".join(builder.parts()), expected)
        index = CompactNameIndex(expected)
        self.assertEqual(
            [index.get(name) for name in ("local", "gone", "again", "first", "second", "Deux@Example.org",
                                          "NI", "mïxed", "x" * 200, "m7")],
            [(True, "plain"), (True, None), (True, "again"), (False, None), (False, None), (True, "two"),
             (True, "Ünï"), (True, "mixed"), (True, "x" * 200), (True, "x" * 200)])
        self.assertEqual(index.login("ÜNÏ"), ("Ünï", "uid=Ünï,ou=people,dc=example,dc=com"))
        self.assertEqual(index.login("UP"), ("Up", "uid=Up,ou=people,dc=example,dc=com"))
        self.assertEqual(index.login("ALICE"), None)
        # As a connection receives it: the buffer so far, decoded from where
        # the last call stopped.
        builder, offset = self.builder(), 0
        for end in range(len(stream) + 1):
            offset = searchEntries(stream[:end], offset, builder.addEntry)
        self.assertEqual(offset, len(stream) - len(_done()))
        self.assertEqual(b"".join(builder.parts()), expected)

    def test_settlesAsItGoes(self):
        """
        Decoding entries settles their claims every L{SETTLE_CLAIMS} mail
        claims: the same file as ldaptor's decoding of each entry handed
        to C{addEntry}, whatever the reads.
        """
        self.patch(mappedindex, "SETTLE_CLAIMS", 3)
        stream = b"".join(STREAM + STREAM[:4])
        expected = self.byLdaptor(STREAM + STREAM[:4])
        for step in (1, 7, 100, len(stream)):
            builder, offset = self.builder(), 0
            for end in range(step, len(stream) + step, step):
                offset = searchEntries(stream[:end], offset, builder.addEntry)
                settled = builder._settled[0]
                self.assertLess(len(builder._mailKeys) - settled, 3)
            self.assertEqual(offset, len(stream))
            self.assertEqual(b"".join(builder.parts()), expected)

    def test_answers(self):
        """
        The index of the entries as searched answers as the in-memory index
        of the same entries does.
        """
        builder = self.builder()
        searchEntries(b"".join(STREAM[:len([r for r in RECORDS if r[2]])]), 0, builder.addEntry)
        index, compact = indexOf([r for r in RECORDS if r[2]]), CompactNameIndex(b"".join(builder.parts()))
        for name in NAMES + [n.upper() for n in NAMES] + ["a,b", "josé", "JOSÉ", "twin", ""]:
            self.assertEqual(compact.get(name), index.get(name), name)
            self.assertEqual(compact.login(name), index.login(name), name)

    def test_manyOfOneTemplate(self):
        """
        Thousands of entries of one DN template (the way most are added),
        with uids and local parts two of them share: the same file as
        ldaptor's decoding gives.
        """
        messages = [_message(b"uid=u%d,ou=people,dc=example,dc=com" % n,
                             [(b"uid", [b"u%d" % (n % 2990)]), (b"mail", [b"M%d@example.com" % (n % 2995)])])
                    for n in range(3000)]
        builder = self.builder()
        searchEntries(b"".join(messages), 0, builder.addEntry)
        self.assertEqual(b"".join(builder.parts()), self.byLdaptor(messages))

    def test_stopsWhereSearchEntriesStops(self):
        """
        Cut anywhere, and before an entry with controls, a reference or the
        search's result: it stops where the plain decoder stops, having
        added the entries before.
        """
        withControls = _message(b"uid=c,dc=x", [(b"uid", [b"c"])], controls=[(b"1.2.3", None, None)])
        reference = pureldap.LDAPMessage(pureldap.LDAPSearchResultReference(uris=[b"ldap://x/"]), id=3).toWire()
        stream = b"".join(STREAM[:3]) + withControls + b"".join(STREAM[3:5]) + reference + _done()
        for cut in range(len(stream) + 1):
            seen = []
            plain = searchEntries(stream[:cut], 0, lambda dn, attributes, seen=seen: seen.append(dn))
            builder = self.builder()
            self.assertEqual(searchEntries(stream[:cut], 0, builder.addEntry), plain, cut)
            self.assertEqual(builder.entries, len(seen), cut)
        self.assertEqual(plain, len(b"".join(STREAM[:3])))

    def test_malformed(self):
        """
        A value, an attribute or an entry longer than what holds it, a wrong
        tag, a message that is not a sequence, or a length over
        L{MAX_MESSAGE} or of more than 4 bytes raise L{MalformedMessage} as
        soon as they have arrived, after adding the entries before them.
        """
        message = _message(b"uid=a,dc=x", [(b"uid", [b"a"])])
        bad = [
            message[:-2] + b"\x05" + message[-1:],
            message[:6] + bytes([message[6] + 3]) + message[7:],
            message.replace(b"\x04\x03uid", b"\x02\x03uid"),
            message.replace(b"\x31\x03\x04\x01a", b"\x31\x03\x02\x01a"),
            b"\x02\x01\x00",
            b"\x30\x03\x04\x01\x00",
            b"\x30\x84\x7f\xff\xff\xff",
            b"\x30\x84" + (MAX_MESSAGE + 1).to_bytes(4, "big"),
            b"\x30\x85\x00\x00\x00\x00\x10",
            b"\x30\x80",
        ]
        for wrong in bad:
            builder = self.builder()
            with self.assertRaises(MalformedMessage) as raised:
                searchEntries(STREAM[0] + wrong, 0, builder.addEntry)
            self.assertTrue(str(raised.exception), wrong)
            with self.assertRaises(MalformedMessage):
                searchEntries(STREAM[0] + wrong, 0, lambda dn, attributes: None)
            self.assertEqual(builder.entries, 1)
            self.assertEqual(CompactNameIndex(b"".join(builder.parts())).get("alice"), (True, "alice"))
        # Exactly the largest message is waited for, not refused.
        self.assertEqual(searchEntries(b"\x30\x84" + MAX_MESSAGE.to_bytes(4, "big"), 0, self.builder().addEntry), 0)

    def test_everyByteChanged(self):
        """
        Changing any one byte of an entry to any of a few values: the same
        stop, the same error (or none) as the plain decoder, and the same
        index as the plain decoder's entries handed to C{addEntry}.
        """
        original = STREAM[-1] + STREAM[0]
        for position in range(len(original)):
            for value in (0x00, 0x04, 0x30, 0x31, 0x7F, 0x80, 0x81, 0x84, 0xFF):
                stream = original[:position] + bytes([value]) + original[position + 1:]
                self.assertSameAsPlain(stream)

    def assertSameAsPlain(self, stream: bytes) -> None:
        plainBuilder, builder = self.builder(), self.builder()
        outcomes = []
        for consume in (plainBuilder.addEntry.__call__, builder.addEntry):
            try:
                outcomes.append(searchEntries(stream, 0, consume))
            except MalformedMessage as e:
                outcomes.append(str(e))
        self.assertEqual(outcomes[0], outcomes[1], stream)
        self.assertEqual(b"".join(builder.parts()), b"".join(plainBuilder.parts()), stream)

    def test_sameShapeEveryByteChanged(self):
        """
        Entries of one shape (uid and address first or last, short or
        long lengths, message ids of 1 to 4 bytes), then one of that shape
        with any one byte changed to any of a few values (its lengths,
        tags, attribute names, DN or values), or cut anywhere: the same
        stop, error and index as the plain decoder.
        """
        shapes = [
            lambda n: _message(b"uid=u%03d,ou=people,dc=example,dc=com" % n,
                               [(b"uid", [b"u%03d" % n]), (b"mail", [b"U%03d@example.com" % n])]),
            lambda n: _message(b"uid=%s,dc=x" % (b"v" * 140 + b"%03d" % n),
                               [(b"mail", [b"m%03d@x.example" % n]), (b"UID", [b"v" * 140 + b"%03d" % n])],
                               messageID=2**31 - 1),
            lambda n: _message(b"cn=c%03d,dc=x" % n, [(b"uid", [b"c%03d" % n]), (b"mail", [b"c%03d" % n])],
                               messageID=300),
        ]
        for shape in shapes:
            learned = shape(1) + shape(2)
            entry = shape(3)
            for position in range(len(entry)):
                for value in (0x00, 0x04, 0x30, 0x31, 0x61, 0x7F, 0x80, 0x81, 0x84, 0xFF):
                    changed = entry[:position] + bytes([value]) + entry[position + 1:]
                    self.assertSameAsPlain(learned + changed + shape(4))
            for cut in range(len(entry) + 1):
                self.assertSameAsPlain(learned + entry[:cut])

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.tuples(st.sampled_from([b"a", b"bb", b"A", b"\xc3\xa9", b"x" * 130]),
                              st.sampled_from([b"a@x", b"bb@x.example", b"B", b"", b"y" * 140 + b"@z"]),
                              st.booleans(), st.sampled_from([1, 200, 70000])), max_size=12),
           st.integers(0, 2000), st.integers(0, 255))
    def test_shapesAnyEntries(self, entries, position, value):
        """
        Entries of a few shapes in any order (uid or address first, lengths
        short and long, message ids of several sizes), as sent or with one
        byte changed: the same stop, error and index as the plain decoder.
        """
        stream = b"".join(
            _message(b"uid=" + uid + b",dc=x", [(b"uid", [uid]), (b"mail", [mail])][::1 if uidFirst else -1],
                     messageID=messageID)
            for uid, mail, uidFirst, messageID in entries)
        self.assertSameAsPlain(stream + stream)
        if stream:
            position %= len(stream)
            self.assertSameAsPlain(stream + stream[:position] + bytes([value]) + stream[position + 1:])

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=300))
    def test_anyBytes(self, data):
        """
        Any bytes, alone or after whole entries: what the plain decoder
        does (an offset within the buffer, or L{MalformedMessage}), never
        another exception.
        """
        for stream in (data, STREAM[0] + data):
            self.assertSameAsPlain(stream)


def _usual(n: int, uidFirst: bool = True, uid: bytes = b"", domain: bytes = b"example.com",
           messageID: int = 7) -> bytes:
    """
    A usual entry as a server sends it: a uid, its address (the uid's
    local part), its DN of the usual template.
    """
    uid = uid or b"user%06d" % n
    attributes = [(b"uid", [uid]), (b"mail", [uid + b"@" + domain])]
    return _message(b"uid=" + uid + b",ou=people,dc=example,dc=com", attributes[::1 if uidFirst else -1],
                    messageID=messageID)


class RunTests(SynchronousTestCase):
    """
    Runs of usual entries of one shape added together, and their claims
    laid out without the tables of claims (as long as no key comes
    twice): the same file as the tables give.
    """

    def byTables(self, messages) -> bytes:
        """
        The file of C{messages} decoded by ldaptor, with the tables of
        claims from the first entry on.
        """
        builder = CompactIndexBuilder()
        builder._irregular()
        for message in messages:
            builder.addEntry(*_decodedByLdaptor(message))
        return b"".join(builder.parts())

    def assertSameFile(self, messages, regular: bool) -> None:
        stream, expected = b"".join(messages), self.byTables(messages)
        for step in (len(stream), 1000, 333, 97):
            # As a connection reads it: what is left, then the next bytes.
            builder, buffer = CompactIndexBuilder(), b""
            for start in range(0, len(stream), step):
                buffer += stream[start:start + step]
                buffer = buffer[searchEntries(buffer, 0, builder.addEntry):]
            self.assertEqual((buffer, builder.entries), (b"", len(messages)))
            builder.settle()
            self.assertEqual((builder._regular, not builder._mailNames), (regular, regular), step)
            self.assertEqual(b"".join(builder.parts()), expected, step)

    def test_runs(self):
        """
        Thousands of usual entries (uid or address first, upper-case
        letters, uids of digits only, message ids of several sizes), read
        at once or in reads of a few sizes: the file of the tables, and the
        tables never filled.
        """
        for uidFirst in (True, False):
            for uid in (b"", b"User%06d", b"%06d", b"u%06d"):
                for messageID in (7, 300, 2**31 - 1):
                    messages = [_usual(n, uidFirst, uid % n if uid else b"", messageID=messageID)
                                for n in range(600)]
                    self.assertSameFile(messages, regular=True)

    def test_runsBroken(self):
        """
        Runs broken by other entries (another domain's length, an address
        whose local part is not the uid, a second address, an upper-case
        attribute name, a non-ASCII uid, another template and a uid
        claimed twice, no address): the same file as the tables give, the
        tables filled only for entries other than the usual ones.
        """
        others = [
            _usual(0, domain=b"x.example"),
            _message(b"uid=odd,ou=people,dc=example,dc=com", [(b"uid", [b"odd"]), (b"mail", [b"other@x"])]),
            _message(b"uid=two,ou=people,dc=example,dc=com", [(b"uid", [b"two"]),
                                                              (b"mail", [b"two@x", b"deux@x"])]),
            _message(b"uid=up,ou=people,dc=example,dc=com", [(b"UID", [b"up"]), (b"mail", [b"up@x"])]),
            _usual(0, uid=_utf8("Ünï%03d")),
            _message(b"cn=user000001,dc=x", [(b"uid", [b"user000001"]), (b"mail", [b"user000001@x"])]),
            _message(b"uid=none,ou=people,dc=example,dc=com", [(b"uid", [b"none"])]),
        ]
        for other in others:
            messages = [_usual(n) for n in range(500)] + [other] + [_usual(n) for n in range(500, 1000)]
            self.assertSameFile(messages, regular=other not in others[1:3] + others[-1:])

    def test_claimedTwice(self):
        """
        Usual entries of which two have the same uid: the file of the
        tables, whose answer for that uid is nobody.
        """
        messages = [_usual(n) for n in range(1000)] + [_usual(5)]
        self.assertSameFile(messages[:-1], regular=True)
        builder = CompactIndexBuilder()
        searchEntries(b"".join(messages), 0, builder.addEntry)
        data = b"".join(builder.parts())
        self.assertEqual(data, self.byTables(messages))
        self.assertEqual(CompactNameIndex(data).get("user000005"), (True, None))
        self.assertEqual(CompactNameIndex(data).get("user000006"), (True, "user000006"))

    def test_sameCRC(self):
        """
        Two names of the same CRC-32 are not a name claimed twice: the
        tables are not filled, and the file is theirs.
        """
        messages = [_usual(0, uid=b"599430bd25"), _usual(0, uid=b"f7633dd321")] + [_usual(n) for n in range(9)]
        self.assertSameFile(messages, regular=True)
        index = CompactNameIndex(self.byTables(messages))
        self.assertEqual([index.get(name) for name in ("599430bd25", "F7633DD321", "f7633dd321@example.com")],
                         [(True, "599430bd25"), (True, "f7633dd321"), (True, "f7633dd321")])
