"""
Who may see me, by directory group, against a real OpenLDAP: alice shows
her free/busy times to members of a group only; the viewer's membership
(groupOfNames, groupOfUniqueNames, posixGroup) comes from slapd, and when
slapd cannot be asked, she stays hidden rather than an error showing.
"""

import base64

from twisted.internet import defer
from twisted.trial import unittest

from fbtwist.access.settings import Audience, SettingsStore, Shown, VisibilitySettings
from tests.helpers import httpClient, startServer
from tests.slapd import SlapdServer, hashPassword
from tests.unit.test_lookup import vfb

PASSWORD = "pw-of-everyone"


def _person(uid, cn):
    return (f"dn: uid={uid},ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {cn}\n"
            f"sn: {cn}\nmail: {uid}@example.com\nuserPassword: {hashPassword(PASSWORD)}\n\n")


LDIF = (
    "dn: ou=people,dc=example,dc=com\nobjectClass: organizationalUnit\nou: people\n\n"
    "dn: ou=groups,dc=example,dc=com\nobjectClass: organizationalUnit\nou: groups\n\n"
    + _person("alice", "Alice") + _person("eve", "Eve") + _person("frank", "Frank")
    + "dn: cn=ops,ou=groups,dc=example,dc=com\nobjectClass: groupOfUniqueNames\ncn: ops\n"
      "uniqueMember: uid=eve,ou=people,dc=example,dc=com\n\n"
    + "dn: cn=devs,ou=groups,dc=example,dc=com\nobjectClass: posixGroup\ncn: devs\ngidNumber: 1000\n"
      "memberUid: frank\n\n"
    + "dn: cn=team,ou=groups,dc=example,dc=com\nobjectClass: groupOfNames\ncn: team\n"
      "member: uid=eve,ou=people,dc=example,dc=com\n"
)


def _login(uid):
    return {b"Authorization": [b"Basic " + base64.b64encode(f"{uid}:{PASSWORD}".encode())]}


class GroupVisibilityTests(unittest.TestCase):
    """
    The groups level with the groups of a real slapd.
    """

    async def _setUp(self):
        self.slapd = SlapdServer(self.mktemp(), LDIF, tls=False)
        self.slapd.start()
        self.addCleanup(self.slapd.stop)
        url = f"ldap://127.0.0.1:{self.slapd.port}/ou=people,dc=example,dc=com?uid?one?(objectClass=inetOrgPerson)"
        self.server = await startServer(self, "--ldap", url, "--group-base", "ou=groups,dc=example,dc=com",
                                        "--lookup-auth", "--trusted-networks", "10.255.255.0/24")
        self.http = httpClient(self)
        self.server.store.write(("alice.vfb",), vfb("FREEBUSY:20210105T090000Z/20210105T100000Z"))
        self.settings = SettingsStore(self.server.store)

    def setUp(self):
        return defer.Deferred.fromCoroutine(self._setUp())

    async def answer(self, name, viewer):
        response = await self.http.get(self.server.url(f"/calendar/{name}.vfb?start=20210105&end=20210106"),
                                       headers=_login(viewer))
        body = await response.content()
        return response.code, body.replace(name.encode(), b"<name>")

    def choose(self, *groups):
        self.settings.save("alice", VisibilitySettings(Audience.GROUPS, Shown.FULL, groups))

    def test_groupsFromSlapd(self):
        """
        Members of the chosen groups see alice, others get the answer about
        a name nobody has; with slapd stopped, a group not yet known hides
        her (404, not 503) from a viewer whose login is remembered.
        """

        async def run():
            nobody = await self.answer("zzyzx", "eve")
            self.choose("ops")
            code, body = await self.answer("alice", "eve")
            self.assertEqual(code, 200, body)
            self.assertIn(b"20210105T090000Z", body)
            self.assertEqual(await self.answer("alice", "frank"), await self.answer("zzyzx", "frank"))
            self.choose("devs")
            self.assertEqual((await self.answer("alice", "frank"))[0], 200)
            self.assertEqual(await self.answer("alice", "eve"), nobody)
            self.slapd.stop()
            self.choose("team")
            self.assertEqual(await self.answer("alice", "eve"), nobody)

        return defer.Deferred.fromCoroutine(run())
