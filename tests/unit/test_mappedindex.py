"""
L{fbtwist.directory.mappedindex}: the name index as a file mapped into
memory, answering as the in-memory index does; written by the process that
loads it and mapped by the others (the workers of C{--workers}).
"""

import os
import time

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

import tests.helpers  # noqa: F401 (ldaptor's import-time warnings)
from fbtwist.directory.mappedindex import (
    CompactIndexBuilder,
    CompactNameIndex,
    IndexFileError,
    MappedIndexFollower,
    MappedNameIndex,
    privateDirectory,
    writeIndexFile,
)
from fbtwist.directory.nameindex import _MAX_TEMPLATES, indexOf
from tests.names import NAMES, PEOPLE

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
