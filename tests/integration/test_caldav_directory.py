"""
The directory's principal lookups and searches for CalDAV
(L{fbtwist.interfaces.IPrincipalDirectory}): on ldaptor's in-memory server
with the demo directory, and once on a real slapd.
"""

from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

import tests.helpers  # noqa: F401 (ldaptor's import-time warnings)
from fbtwist.config import DEMO_LDIF
from fbtwist.directory.demo import DemoLDAPFactory, loadLDIF
from fbtwist.directory.ldapdirectory import LDAPDirectory
from fbtwist.directory.ldapurl import parseLDAPURL
from fbtwist.directory.principals import MAX_SEARCH_RESULTS
from fbtwist.directory.rooms import RoomSearch
from fbtwist.interfaces import GROUP, ROOM, USER, IPrincipalDirectory, PrincipalRecord
from tests.integration.test_directory_slapd import SlapdTestMixin

GROUPS = "ou=groups,dc=example,dc=com"


class InMemoryPrincipalTests(TestCase):
    """
    Principals of the demo directory on the in-memory server.
    """

    async def setUp(self):
        self.server = DemoLDAPFactory(loadLDIF(DEMO_LDIF))
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(self.server)
        self.addCleanup(port.stopListening)
        url = parseLDAPURL(f"ldap://127.0.0.1:{port.getHost().port}/ou=people,dc=example,dc=com?uid?one")
        self.directory = LDAPDirectory(url, reactor, mailAttributes=("mail", "mailAlternateAddress"))
        self.addCleanup(self.directory.close)

    def test_interface(self):
        """LDAPDirectory provides IPrincipalDirectory."""
        self.assertTrue(verifyObject(IPrincipalDirectory, self.directory))

    async def test_user(self):
        """A user's record: uid, display name from cn, mail addresses."""
        self.assertEqual(await self.directory.principal(USER, "bsmith", GROUPS),
                         PrincipalRecord(USER, "bsmith", "Betty Smith", ("betty@example.com",)))
        self.assertIsNone(await self.directory.principal(USER, "nobody", GROUPS))
        self.assertIsNone(await self.directory.principal(USER, "*", GROUPS))

    async def test_group(self):
        """A group's record by cn, only below the group base."""
        record = await self.directory.principal(GROUP, "team", GROUPS)
        self.assertEqual((record.kind, record.name, record.displayName), (GROUP, "team", "team"))
        self.assertIsNone(await self.directory.principal(GROUP, "team", None))
        self.assertIsNone(await self.directory.principal(GROUP, "alice", GROUPS))

    async def test_byAddress(self):
        """An address finds its user without regard to case; an unknown one nobody."""
        record = await self.directory.principalByAddress("Betty@Example.COM", GROUPS)
        self.assertEqual(record.name, "bsmith")
        self.assertIsNone(await self.directory.principalByAddress("nobody@example.com", GROUPS))
        self.assertIsNone(await self.directory.principalByAddress("*@example.com", GROUPS))
        self.assertIsNone(await self.directory.principalByAddress("betty", GROUPS))

    async def test_search(self):
        """A search matches the start of display names, words' cn, uids and mail, users and groups."""
        names = lambda records: [(r.kind, r.name) for r in records]  # noqa: E731
        self.assertEqual(names(await self.directory.searchPrincipals("bet", GROUPS, 10)), [(USER, "bsmith")])
        self.assertEqual(names(await self.directory.searchPrincipals("Betty Sm", GROUPS, 10)), [(USER, "bsmith")])
        self.assertEqual(names(await self.directory.searchPrincipals("bsm", GROUPS, 10)), [(USER, "bsmith")])
        self.assertEqual(names(await self.directory.searchPrincipals("tea", GROUPS, 10)), [(GROUP, "team")])
        self.assertEqual(names(await self.directory.searchPrincipals("tea", None, 10)), [])
        self.assertEqual(await self.directory.searchPrincipals("*", GROUPS, 10), [])

    async def test_rooms(self):
        """
        Rooms are principals of kind ROOM (once rooms are configured): by
        uid, by address (after the users), and in searches, which may ask
        for some kinds only.
        """
        self.assertIsNone(await self.directory.principal(ROOM, "orion", GROUPS))
        self.directory.configureRooms(RoomSearch("ou=rooms,dc=example,dc=com"))
        self.assertEqual(await self.directory.principal(ROOM, "orion", GROUPS),
                         PrincipalRecord(ROOM, "orion", "Orion", ("orion@example.com",)))
        self.assertIsNone(await self.directory.principal(ROOM, "alice", GROUPS))
        self.assertIsNone(await self.directory.principal(USER, "orion", GROUPS))
        self.assertEqual((await self.directory.principalByAddress("LYRA@example.com", None))[:2], (ROOM, "lyra"))
        names = lambda records: [(r.kind, r.name) for r in records]  # noqa: E731
        self.assertEqual(names(await self.directory.searchPrincipals("or", GROUPS, 10)), [(ROOM, "orion")])
        self.assertEqual(names(await self.directory.searchPrincipals("lyra@", GROUPS, 10)), [(ROOM, "lyra")])
        self.assertEqual(names(await self.directory.searchPrincipals("or", GROUPS, 10, (USER, GROUP))), [])
        self.assertEqual(names(await self.directory.searchPrincipals("bet", GROUPS, 10, (ROOM,))), [])
        self.assertEqual(names(await self.directory.searchPrincipals("o", GROUPS, 10, (ROOM,))), [])

    async def test_searchBounded(self):
        """A search answers at most the limit asked (and never more than MAX_SEARCH_RESULTS), nothing for one letter."""
        found = await self.directory.searchPrincipals("a", GROUPS, 100)
        self.assertEqual(found, [])
        many = await self.directory.searchPrincipals("ca", GROUPS, 100)
        self.assertLessEqual(len(many), MAX_SEARCH_RESULTS)
        self.assertEqual(len(await self.directory.searchPrincipals("ca", GROUPS, 1)), 1)

    async def test_searchAsksForASizeLimit(self):
        """The search asks the server for at most the limit (so a large directory stops early)."""
        seen = []
        original = self.directory.search

        async def search(filterObject, attributes, **kw):
            seen.append(kw.get("sizeLimit"))
            return await original(filterObject, attributes, **kw)

        self.directory.search = search
        await self.directory.searchPrincipals("ca", GROUPS, 3)
        self.assertTrue(seen)
        self.assertTrue(all(0 < limit <= 3 for limit in seen), seen)


class SlapdPrincipalTests(SlapdTestMixin, TestCase):
    """
    Principals on a real OpenLDAP, whose size limit stops a search early.
    """

    def setUp(self):
        self.startSlapd()

    async def test_principals(self):
        """Records, address lookups and bounded searches on slapd."""
        directory = self.directory(mailAttributes=("mail",))
        record = await directory.principal(USER, "bob", "ou=groups,dc=example,dc=com")
        self.assertEqual(record[:3], (USER, "bob", "bob"))
        self.assertEqual(set(record.addresses), {"robert@example.com", "bob@example.com"})
        self.assertEqual((await directory.principalByAddress("BOB@example.com", None)).name, "bob")
        self.assertIsNone(await directory.principalByAddress("pat@example", None))
        found = await directory.searchPrincipals("pa", "ou=groups,dc=example,dc=com", 10)
        self.assertEqual([(r.kind, r.name) for r in found], [(USER, "pat1"), (USER, "pat2"), (GROUP, "padmins")])
        self.assertEqual(len(await directory.searchPrincipals("pa", None, 1)), 1)
        self.assertEqual([r.name for r in await directory.searchPrincipals("admins", "ou=groups,dc=example,dc=com",
                                                                          10)], ["admins"])
