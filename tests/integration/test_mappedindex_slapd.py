"""
L{fbtwist.directory.mappedindex} loaded from a real slapd (with a size limit
smaller than the directory, so that the load pages) into a file, as one
process or the master of C{--workers} does; the file itself is tested in
memory, in L{tests.unit.test_mappedindex}.
"""

import os

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

import tests.helpers  # noqa: F401 (ldaptor's import-time warnings)
from fbtwist.directory.ldapdirectory import LDAPDirectory
from fbtwist.directory.ldapurl import parseLDAPURL
from fbtwist.directory.mappedindex import MappedNameIndex, privateDirectory
from tests.integration.test_nameindex import LimitedSlapd
from tests.names import LDIF, NAMES, PEOPLE


class SlapdMappedTests(TestCase):
    """
    Loading from slapd into a file, as one process or the master of
    C{--workers} does.
    """

    def setUp(self):
        self.slapd = LimitedSlapd(self.mktemp(), LDIF, sizeLimit=3)
        self.slapd.start()
        self.addCleanup(self.slapd.stop)
        url = parseLDAPURL(f"ldap://127.0.0.1:{self.slapd.port}/{PEOPLE}?uid?one")
        self.directory = LDAPDirectory(url, reactor, timeout=2.0)
        folder = privateDirectory(self.mktemp())
        self.directory.indexFile = os.path.join(folder, "names.idx")
        self.addCleanup(self.directory.close)

    async def test_load(self):
        """
        The load writes the file and maps it; its answers are the directory
        search's, and logins bind without a search; closing the directory
        removes the file.
        """
        index = await self.directory.loadNameIndex(pageSize=4)
        self.assertIsInstance(index, MappedNameIndex)
        self.assertIs(self.directory.nameIndex, index)
        for name in NAMES:
            found, uid = index.get(name)
            expected = await self.directory.resolveName(name)
            self.assertEqual(uid if found else None, expected, name)
        self.assertEqual(await self.directory.authenticate("alice", "alice-pw"), "alice")
        self.assertEqual(index.login("alice"), ("alice", f"uid=alice,{PEOPLE}"))
        await self.directory.close()
        self.assertFalse(os.path.exists(self.directory.indexFile))

    async def test_unwritable(self):
        """
        A file that cannot be written leaves the index in memory.
        """
        self.directory.indexFile = os.path.join(self.mktemp(), "missing", "names.idx")
        index = await self.directory.loadNameIndex(pageSize=4)
        self.assertNotIsInstance(index, MappedNameIndex)
        self.assertEqual(index.get("alice"), (True, "alice"))

