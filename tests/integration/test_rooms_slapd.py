"""
Rooms, delegates and groups against a real OpenLDAP: rooms matched by a
configured filter and base, capacity and equipment from configured
attributes, delegates named by DN in a configured attribute (C{manager}),
and C{/calendar/find} over a group and rooms.
"""

import json

from twisted.internet import defer
from twisted.trial import unittest

from tests.helpers import basicAuth, freeBusy, inline, startServerOnSlapd
from tests.slapd import aliceAndEveLDIF, unitEntry

FACILITIES = "ou=facilities,dc=example,dc=com"

#: Attributes OpenLDAP's usual schema has no names for.
SCHEMA = """\
attributetype ( 1.3.6.1.4.1.99999.1.1 NAME 'roomSeats'
    EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.99999.1.2 NAME 'roomEquipment'
    EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
objectclass ( 1.3.6.1.4.1.99999.2.1 NAME 'bookableRoom' AUXILIARY
    MAY ( roomSeats $ roomEquipment $ uid $ mail $ manager ) )
"""

LDIF = aliceAndEveLDIF("wonderland", "evening") + unitEntry(FACILITIES) + """\
dn: cn=Board Room,ou=facilities,dc=example,dc=com
objectClass: room
objectClass: bookableRoom
cn: Board Room
uid: boardroom
roomSeats: 12
roomEquipment: projector
roomEquipment: video
manager: cn=Eve Example,ou=people,dc=example,dc=com

dn: cn=Huddle,ou=facilities,dc=example,dc=com
objectClass: room
objectClass: bookableRoom
cn: Huddle
uid: huddle
roomSeats: 4
roomEquipment: screen
manager: uid=alice,ou=people,dc=example,dc=com

dn: cn=Store Room,ou=facilities,dc=example,dc=com
objectClass: room
cn: Store Room
"""


class SlapdRoomsTests(unittest.TestCase):
    """
    Rooms from a real slapd, with every room attribute configured.
    """

    async def _setUp(self):
        self.server = await startServerOnSlapd(
            self, LDIF, "--room-base", FACILITIES, "--room-filter", "(&(objectClass=room)(uid=*))",
            "--room-capacity-attribute", "roomSeats", "--room-equipment-attribute", "roomEquipment",
            "--room-delegate-attribute", "manager", schema=SCHEMA)
        self.http = self.server.http

    def setUp(self):
        return defer.Deferred.fromCoroutine(self._setUp())

    async def get(self, path: str):
        response = await self.http.get(self.server.url(path), headers={b"Accept": [b"application/json"]})
        body = await response.content()
        self.assertEqual(response.code, 200, body)
        return json.loads(body)

    @inline
    async def test_roomsByFilterAndAttributes(self):
        """
        The rooms the filter matches below the base, with their seats and
        equipment; a room without a uid is not listed.
        """
        answer = await self.get("/calendar/rooms/")
        self.assertEqual([(r["name"], r["capacity"], r["equipment"]) for r in answer["rooms"]],
                         [("boardroom", 12, ["projector", "video"]), ("huddle", 4, ["screen"])])
        answer = await self.get("/calendar/rooms/?capacity=6&equipment=Projector")
        self.assertEqual([r["name"] for r in answer["rooms"]], ["boardroom"])

    @inline
    async def test_delegatesByDN(self):
        """
        eve (named by the DN of an entry not named by uid) may publish the
        board room, alice the huddle room, neither the other's.
        """
        async def put(login, password, name):
            response = await self.http.put(
                self.server.url("/pub/calendar/" + name), data=freeBusy(),
                headers={**basicAuth(login, password), b"Content-Type": [b"text/calendar"]})
            await response.content()
            return response.code

        self.assertEqual(await put("eve", "evening", "boardroom.vfb"), 201)
        self.assertEqual(await put("alice", "wonderland", "boardroom.vfb"), 403)
        self.assertEqual(await put("alice", "wonderland", "huddle.vfb"), 201)
        self.assertEqual(await put("eve", "evening", "huddle.vfb"), 403)
        response = await self.http.get(self.server.url("/calendar/boardroom.vfb"))
        self.assertEqual(response.code, 200)
        await response.content()

    @inline
    async def test_findForGroupWithRoom(self):
        """
        A group's members and a room that fits only by its equipment: the
        huddle room is free earlier but has no projector.
        """
        store = self.server.store
        store.write(("alice.vfb",), freeBusy("20250331T080000Z/20250331T090000Z"))
        store.write(("eve.vfb",), freeBusy())
        store.write(("boardroom.vfb",), freeBusy("20250331T090000Z/20250331T100000Z"))
        answer = await self.get(
            "/calendar/find?who=group:team&duration=PT1H&start=20250331T080000Z&end=20250331T120000Z"
            "&step=PT1H&rooms=1&equipment=projector")
        self.assertEqual([(s["start"], s["free"], s["rooms"]) for s in answer["slots"]],
                         [("2025-03-31T10:00:00Z", ["alice", "eve"], ["boardroom"]),
                          ("2025-03-31T11:00:00Z", ["alice", "eve"], ["boardroom"])])
        answer = await self.get(
            "/calendar/find?who=group:team&duration=PT1H&start=20250331T080000Z&end=20250331T120000Z"
            "&step=PT1H&rooms=1")
        self.assertEqual([(s["start"], s["rooms"]) for s in answer["slots"]],
                         [("2025-03-31T09:00:00Z", ["huddle"]), ("2025-03-31T10:00:00Z", ["boardroom", "huddle"]),
                          ("2025-03-31T11:00:00Z", ["boardroom", "huddle"])])
