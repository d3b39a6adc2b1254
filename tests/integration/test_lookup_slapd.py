"""
Group free/busy against a real OpenLDAP: groupOfNames whose member DNs are
not named by the login attribute, groupOfUniqueNames and posixGroup.
"""

from twisted.internet import defer
from twisted.trial import unittest

from tests.helpers import httpClient, startServer
from tests.slapd import SlapdServer
from tests.unit.test_lookup import periodsOf, vfb

LDIF = """\
dn: ou=people,dc=example,dc=com
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=example,dc=com
objectClass: organizationalUnit
ou: groups

dn: uid=alice,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: alice
cn: Alice
sn: Liddell
mail: alice@example.com

dn: cn=Eve Example,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: eve
cn: Eve Example
sn: Example
mail: eve@example.com

dn: uid=frank,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: frank
cn: Frank
sn: Frank

dn: cn=team,ou=groups,dc=example,dc=com
objectClass: groupOfNames
cn: team
member: uid=alice,ou=people,dc=example,dc=com
member: cn=Eve Example,ou=people,dc=example,dc=com

dn: cn=ops,ou=groups,dc=example,dc=com
objectClass: groupOfUniqueNames
cn: ops
uniqueMember: uid=frank,ou=people,dc=example,dc=com
uniqueMember: cn=Eve Example,ou=people,dc=example,dc=com

dn: cn=devs,ou=groups,dc=example,dc=com
objectClass: posixGroup
cn: devs
gidNumber: 1000
memberUid: alice
memberUid: frank
"""


class SlapdGroupTests(unittest.TestCase):
    """
    /calendar/group/<cn>.vfb with the groups of a real slapd.
    """

    async def _setUp(self):
        self.slapd = SlapdServer(self.mktemp(), LDIF, tls=False)
        self.slapd.start()
        self.addCleanup(self.slapd.stop)
        # A user-only filter, as administrators write it: groups are still found.
        url = f"ldap://127.0.0.1:{self.slapd.port}/ou=people,dc=example,dc=com?uid?one?(objectClass=inetOrgPerson)"
        self.server = await startServer(self, "--ldap", url, "--group-base", "ou=groups,dc=example,dc=com")
        self.http = httpClient(self)
        store = self.server.store
        store.write(("alice.vfb",), vfb("FREEBUSY:20210105T090000Z/20210105T100000Z"))
        store.write(("eve.vfb",), vfb("FREEBUSY:20210105T093000Z/20210105T110000Z"))
        store.write(("frank.vfb",), vfb("FREEBUSY:20210105T140000Z/20210105T150000Z"))

    def setUp(self):
        return defer.Deferred.fromCoroutine(self._setUp())

    async def periods(self, cn):
        response = await self.http.get(self.server.url(f"/calendar/group/{cn}.vfb?start=20210105&end=20210106"))
        content = await response.content()
        self.assertEqual(response.code, 200, content)
        return [p[:2] for p in periodsOf(content)[0]]

    def test_groupKinds(self):
        """
        Members named by any DN, unique members and memberUid values are all
        merged.
        """

        async def run():
            self.assertEqual(await self.periods("team"), [("20210105T090000Z", "20210105T110000Z")])
            self.assertEqual(await self.periods("ops"), [("20210105T093000Z", "20210105T110000Z"),
                                                         ("20210105T140000Z", "20210105T150000Z")])
            self.assertEqual(await self.periods("devs"), [("20210105T090000Z", "20210105T100000Z"),
                                                          ("20210105T140000Z", "20210105T150000Z")])

        return defer.Deferred.fromCoroutine(run())
