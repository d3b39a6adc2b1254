"""
Rooms on a whole server in memory (L{tests.memory}) and the demo directory
(fbtwist/data/demo.ldif: orion seats 8 and has a projector, lyra seats 4;
carol is the delegate of both): the rooms list, publishing a room's
free/busy as its delegate or an administrator over HTTP (over FTP with a
real client: L{tests.integration.test_rooms}), looking a room up by its
name, and C{/calendar/find} with rooms.
"""

import json

from twisted.internet import defer
from twisted.trial import unittest

from tests.helpers import ADMIN_GROUP, basicAuth, freeBusy, inline
from tests.memory import Settled, startMemoryServer

CALENDAR = {b"Content-Type": [b"text/calendar"]}
JSON = {b"Accept": [b"application/json"]}


class RoomsTestCase(unittest.TestCase):
    def setUp(self):
        self.server = startMemoryServer(self, "--admin-group", ADMIN_GROUP)
        self.http = self.server.client()

    async def get(self, path: str, headers=None):
        response = await self.http.get(self.server.url(path), headers=headers or {})
        return response, await response.content()

    async def rooms(self, query: str = ""):
        response, body = await self.get("/calendar/rooms/" + query, JSON)
        self.assertEqual(response.code, 200, body)
        return [room["name"] for room in json.loads(body)["rooms"]]


class RoomListTests(RoomsTestCase):
    """
    C{/calendar/rooms/} lists the rooms that fit.
    """

    @inline
    async def test_capacityAndEquipment(self):
        """
        Every room without a question; capacity and equipment (any case)
        narrow the list.
        """
        self.assertEqual(await self.rooms(), ["lyra", "orion"])
        self.assertEqual(await self.rooms("?capacity=6"), ["orion"])
        self.assertEqual(await self.rooms("?equipment=whiteboard"), ["lyra", "orion"])
        self.assertEqual(await self.rooms("?capacity=2&equipment=PROJECTOR"), ["orion"])
        self.assertEqual(await self.rooms("?capacity=6&equipment=projector,coffee"), [])

    @inline
    async def test_json(self):
        """
        Each room comes with its display name, seats, equipment (without
        Exchange's ResourceType) and the URL of its free/busy; the trailing
        slash may be left out.
        """
        response, body = await self.get("/calendar/rooms/?capacity=6", JSON)
        self.assertEqual(json.loads(body), {"rooms": [{
            "name": "orion", "displayName": "Orion", "capacity": 8, "equipment": ["projector", "whiteboard"],
            "freebusy": "/calendar/orion.vfb"}]})
        response, again = await self.get("/calendar/rooms?capacity=6", JSON)
        self.assertEqual((response.code, again), (200, body))

    @inline
    async def test_html(self):
        """
        A browser gets a page, with the page's security headers.
        """
        response, body = await self.get("/calendar/rooms/?equipment=projector", {b"Accept": [b"text/html"]})
        self.assertEqual(response.code, 200)
        self.assertIn(b"<td>orion</td>", body)
        self.assertNotIn(b"lyra", body)
        self.assertIn(b"Rooms with projector", body)
        self.assertIn(b"script-src 'self'", response.headers.getRawHeaders(b"Content-Security-Policy")[0])

    @inline
    async def test_badCapacity(self):
        """
        A capacity that is not a number is a 400.
        """
        response, body = await self.get("/calendar/rooms/?capacity=lots")
        self.assertEqual((response.code, body), (400, b"capacity must be a whole number.\n"))


class RoomPublishingTests(RoomsTestCase):
    """
    A room's free/busy is published by its delegates and administrators,
    over HTTP, and looked up by the room's name.
    """

    async def put(self, login: str, name: str):
        response = await self.http.put(self.server.url("/pub/calendar/" + name), data=freeBusy(),
                                       headers={**basicAuth(login), **CALENDAR})
        await response.content()
        return response.code

    @inline
    async def test_delegateOverHTTP(self):
        """
        carol (orion's owner) may publish orion.vfb; alice may not; the
        administrator may; the room is then looked up like a person, by
        its name or address.
        """
        self.assertEqual(await self.put("alice", "orion.vfb"), 403)
        self.assertEqual(await self.put("carol", "orion.vfb"), 201)
        self.assertEqual(await self.put("admin", "lyra.vfb"), 201)
        for path in ("/calendar/orion.vfb", "/calendar/orion@example.com.vfb", "/calendar/lyra.vfb"):
            response, _ = await self.get(path)
            self.assertEqual(response.code, 200, path)


class DelegatesFromTheKeptListTests(RoomsTestCase):
    """
    Who delegates which room is answered from the kept list of rooms, which
    holds their delegates: a login asks the directory no search of rooms of
    its own (every first login asks, and such a search cost more than the
    rest of a publish).
    """

    def roomSearches(self):
        """
        Count the directory's searches below the rooms' base from now on.
        """
        directory, searches = self.server.directory, []
        search = directory.search

        def counting(*args, **kwargs):
            if kwargs.get("base") == "dc=example,dc=com" and kwargs.get("withURLFilter") is False:
                searches.append(args[0])
            return search(*args, **kwargs)

        directory.search = counting
        self.addCleanup(setattr, directory, "search", search)
        return searches

    @inline
    async def test_loginsShareOneSearch(self):
        """
        Four users' first publishes, carol's of a room she delegates among
        them, cost one search of rooms in all; alice still may not
        publish carol's room.
        """
        searches = self.roomSearches()
        for login, name, status in (("alice", "alice.vfb", 201), ("carol", "orion.vfb", 201),
                                    ("bsmith", "bsmith.vfb", 201), ("dave", "dave.vfb", 201),
                                    ("alice", "lyra.vfb", 403)):
            response = await self.http.put(self.server.url("/pub/calendar/" + name), data=freeBusy(),
                                           headers={**basicAuth(login), **CALENDAR})
            await response.content()
            self.assertEqual(response.code, status, (login, name))
        self.assertEqual(len(searches), 1)

    @inline
    async def test_concurrentQuestionsShareOneSearch(self):
        """
        Users asked about together while the list is not kept yet wait for
        one search; each gets their own rooms.
        """
        searches = self.roomSearches()
        rooms, network = self.server.directory.roomDirectory, self.server.network
        asked = [defer.Deferred.fromCoroutine(rooms.delegatedRooms(uid)) for uid in ("carol", "alice", "carol")]
        answers = [await network.run(d) for d in asked]
        self.assertEqual(answers, [["lyra", "orion"], [], ["lyra", "orion"]])
        self.assertEqual(len(searches), 1)

    @inline
    async def test_callerGivingUpStopsNoOneElse(self):
        """
        A question given up (cancelled) while the list is fetched leaves the
        others' wait, and the list, as they were.
        """
        searches = self.roomSearches()
        rooms, network = self.server.directory.roomDirectory, self.server.network
        first = defer.Deferred.fromCoroutine(rooms.delegatedRooms("alice"))
        second = defer.Deferred.fromCoroutine(rooms.delegatedRooms("carol"))
        first.cancel()
        self.failureResultOf(first, defer.CancelledError)
        self.assertEqual(await network.run(second), ["lyra", "orion"])
        self.assertEqual(await network.run(defer.Deferred.fromCoroutine(rooms.delegatedRooms("carol"))),
                         ["lyra", "orion"])
        self.assertEqual(len(searches), 1)

    @inline
    async def test_listFetchedAgainOnceOld(self):
        """
        The list is kept ROOMS_TTL seconds: a question after that searches
        again, once.
        """
        from fbtwist.directory.rooms import ROOMS_TTL

        searches = self.roomSearches()
        network = self.server.network
        rooms = Settled(self.server.directory.roomDirectory, network)
        self.assertEqual(await rooms.delegatedRooms("carol"), ["lyra", "orion"])
        self.assertEqual(await rooms.delegatedRooms("bsmith"), [])
        network.advance(ROOMS_TTL + 1)
        self.assertEqual(await rooms.delegatedRooms("carol"), ["lyra", "orion"])
        self.assertEqual(len(searches), 2)


class DelegateByLoginTests(unittest.TestCase):
    """
    A room's delegate attribute may name its delegate by login instead of
    by DN.
    """

    @inline
    async def test_delegateNamedByLogin(self):
        """
        With orion's owner given as C{carol}, carol may publish orion (not
        lyra, whose owner is now bsmith's DN) and bsmith lyra.
        """
        from fbtwist.config import DEMO_LDIF

        ldif = DEMO_LDIF.getContent().decode("utf-8").split("\n\n")
        for index, entry in enumerate(ldif):
            if entry.startswith("dn: uid=orion,"):
                ldif[index] = entry.replace("owner: uid=carol,ou=people,dc=example,dc=com", "owner: carol")
            elif entry.startswith("dn: uid=lyra,"):
                ldif[index] = entry.replace("owner: uid=carol,", "owner: uid=bsmith,")
        path = self.mktemp()
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n\n".join(ldif))
        server = startMemoryServer(self, "--demo-ldif", path)
        http = server.client()
        for login, name, status in (("carol", "orion.vfb", 201), ("carol", "lyra.vfb", 403),
                                    ("bsmith", "lyra.vfb", 201), ("bsmith", "orion.vfb", 403)):
            response = await http.put(server.url("/pub/calendar/" + name), data=freeBusy(),
                                      headers={**basicAuth(login), **CALENDAR})
            await response.content()
            self.assertEqual(response.code, status, (login, name))


class FindWithRoomsTests(RoomsTestCase):
    """
    C{/calendar/find} with C{rooms=1} gives each slot the free rooms that
    fit.
    """

    @inline
    async def test_roomFitsOnlyByEquipment(self):
        """
        lyra seats enough but has no projector: with equipment=projector
        only orion is offered, and while orion is busy nothing is.
        """
        self.server.store.write(("alice.vfb",), freeBusy())
        self.server.store.write(("orion.vfb",), freeBusy("20250331T080000Z/20250331T090000Z"))
        query = ("/calendar/find?who=alice&duration=PT1H&start=20250331T080000Z&end=20250331T100000Z"
                 "&step=PT1H&rooms=1&capacity=3")
        response, body = await self.get(query)
        slots = json.loads(body)["slots"]
        self.assertEqual([(slot["start"], slot["rooms"]) for slot in slots],
                         [("2025-03-31T08:00:00Z", ["lyra"]), ("2025-03-31T09:00:00Z", ["lyra", "orion"])])
        response, body = await self.get(query + "&equipment=projector")
        slots = json.loads(body)["slots"]
        self.assertEqual([(slot["start"], slot["rooms"]) for slot in slots], [("2025-03-31T09:00:00Z", ["orion"])])
        response, body = await self.get(query.replace("capacity=3", "capacity=20"))
        self.assertEqual(json.loads(body)["slots"], [])


class RoomRuleTests(unittest.SynchronousTestCase):
    """
    The permission rule and the room values, without a server.
    """

    def test_delegateMayPublishTheRoomsFiles(self):
        """
        A delegate may write the room's .vfb, .ics and .avail.ics (any
        case, spelt the room's way), not another room's, not a collection.
        """
        from fbtwist.access.permissions import Action, authorize, ownFileName
        from fbtwist.errors import PermissionDenied

        for name in ("orion.vfb", "orion.ics", "orion.avail.ics", "carol.vfb"):
            authorize("carol", False, Action.WRITE, (name,), rooms=("orion",))
        self.assertEqual(ownFileName("carol", "Orion.VFB", ("orion",)), "orion.vfb")
        for path, isCollection in (((("lyra.vfb",), False)), (("orion.vfb",), True), (("orion", "x.vfb"), False)):
            self.assertRaises(PermissionDenied, authorize, "carol", False, Action.WRITE, path, isCollection,
                              rooms=("orion",))
        self.assertRaises(PermissionDenied, authorize, "alice", False, Action.WRITE, ("orion.vfb",))

    def test_fits(self):
        """
        A room fits by seats and by every item of equipment (any case);
        Exchange's ResourceType is not equipment; a capacity that is not a
        number is 0.
        """
        from fbtwist.availability.rooms import Room, capacityOf, equipmentOf, fitting

        orion = Room("orion", "Orion", capacityOf(["8"]), equipmentOf(["ResourceType:Room", "Projector", " "]))
        lyra = Room("lyra", "Lyra", capacityOf(["many", "4"]), equipmentOf(["Whiteboard"]))
        self.assertEqual(orion.equipment, ("projector",))
        self.assertEqual(capacityOf(["many"]), 0)
        self.assertEqual(fitting([orion, lyra], 4, ["PROJECTOR"]), [orion])
        self.assertEqual(fitting([orion, lyra], 4, []), [lyra, orion])
        self.assertEqual(fitting([orion, lyra], 9, []), [])

    def test_delegateSeesTheRoomsFiles(self):
        """
        A listing (PROPFIND, FTP LIST) shows a delegate their rooms' files
        besides their own, and nobody else's.
        """
        from fbtwist.access.permissions import visibleMembers

        class Member:
            def __init__(self, name):
                self.path, self.isCollection = (name,), False

        members = [Member(n) for n in ("alice.vfb", "carol.vfb", "lyra.vfb", "orion.avail.ics", "orion.vfb")]
        self.assertEqual([m.path[0] for m in visibleMembers("carol", False, members, rooms=("orion",))],
                         ["carol.vfb", "orion.avail.ics", "orion.vfb"])

    def test_roomFilterOption(self):
        """
        A room filter that is not an LDAP filter stops the start with one
        sentence naming the option; none switches rooms off.
        """
        from twisted.python import usage

        from tests.helpers import serviceOptions

        with self.assertRaises(usage.UsageError) as caught:
            serviceOptions("--room-filter", "(objectClass=room")
        self.assertIn("--room-filter", str(caught.exception))
        self.assertIn("is not an LDAP filter such as (objectClass=room)", str(caught.exception))
        self.assertIsNone(serviceOptions("--room-filter", "none").config.roomFilter)
