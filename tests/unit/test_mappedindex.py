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
    IndexFileError,
    MappedIndexFollower,
    MappedNameIndex,
    privateDirectory,
    writeIndexFile,
)
from fbtwist.directory.nameindex import indexOf
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
