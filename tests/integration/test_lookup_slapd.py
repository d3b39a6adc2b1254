"""
Group free/busy against a real OpenLDAP: groupOfNames whose member DNs are
not named by the login attribute, groupOfUniqueNames and posixGroup.
"""

from twisted.internet import defer
from twisted.trial import unittest

from tests.helpers import startServerOnSlapd
from tests.slapd import GROUPS, PEOPLE, aliceAndEveLDIF, ldifEntry, personEntry
from tests.unit.test_lookup import periodsOf, vfb

LDIF = (
    aliceAndEveLDIF()
    + personEntry("uid=frank", "Frank", "Frank", uid="frank")
    + ldifEntry(f"cn=ops,{GROUPS}", "groupOfUniqueNames", cn="ops",
                uniqueMember=[f"uid=frank,{PEOPLE}", f"cn=Eve Example,{PEOPLE}"])
    + ldifEntry(f"cn=devs,{GROUPS}", "posixGroup", cn="devs", gidNumber="1000", memberUid=["alice", "frank"])
)


class SlapdGroupTests(unittest.TestCase):
    """
    /calendar/group/<cn>.vfb with the groups of a real slapd.
    """

    async def _setUp(self):
        # A user-only filter, as administrators write it: groups are still found.
        self.server = await startServerOnSlapd(self, LDIF)
        self.http = self.server.http
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
