"""
Rooms as CalDAV principals of type C{ROOM}, on the whole server in memory
with the demo directory (orion: C{orion@example.com}, 8 seats, a projector;
lyra: C{lyra@example.com}, 4 seats): their principal and calendar, their
free/busy by free-busy-query and as attendees of an outbox request, and
the searches that find them (Apple Calendar's location search replayed from
C{tests/fixtures/caldav}).
"""

import base64
import re
from xml.etree.ElementTree import fromstring

from twisted.trial.unittest import SynchronousTestCase

from fbtwist.web.caldav.names import CALDAV, CALENDARSERVER
from tests.helpers import PASSWORDS
from tests.memory import startMemoryServer
from tests.unit.test_caldavfixtures import loadRequest

D = "{DAV:}"
C = "{%s}" % CALDAV
CS = "{%s}" % CALENDARSERVER

ORION_VFB = (
    "BEGIN:VCALENDAR\r\nPRODID:-//test//EN\r\nVERSION:2.0\r\nMETHOD:PUBLISH\r\nBEGIN:VFREEBUSY\r\n"
    "DTSTAMP:20261201T000000Z\r\nDTSTART:20261201T000000Z\r\nDTEND:20261231T000000Z\r\n"
    "FREEBUSY:20261207T090000Z/20261207T100000Z\r\nEND:VFREEBUSY\r\nEND:VCALENDAR\r\n"
).encode("ascii")

PROPFIND = (
    '<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:" xmlns:C="%s" xmlns:CS="%s"><D:prop>'
    "<D:displayname/><D:resourcetype/><C:calendar-user-type/><C:calendar-user-address-set/>"
    "<C:calendar-home-set/><C:schedule-outbox-URL/><CS:record-type/><D:principal-URL/><D:owner/>"
    "<D:supported-report-set/></D:prop></D:propfind>" % (CALDAV, CALENDARSERVER)
).encode("utf-8")


def freeBusyRequest(*attendees: str, organizer: str = "mailto:alice@example.com") -> bytes:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN", "METHOD:REQUEST", "BEGIN:VFREEBUSY",
             "UID:rooms-1", "DTSTAMP:20261206T081500Z", "DTSTART:20261207T000000Z", "DTEND:20261208T000000Z",
             "ORGANIZER:" + organizer]
    lines += ["ATTENDEE:" + a for a in attendees]
    lines += ["END:VFREEBUSY", "END:VCALENDAR", ""]
    return "\r\n".join(lines).encode("utf-8")


def freeBusyLines(calendarData: str):
    """
    The C{FREEBUSY} lines of an iCalendar text, unfolded.
    """
    text = calendarData.replace("\r\n ", "").replace("\n ", "")
    return [line.strip() for line in text.splitlines() if line.startswith("FREEBUSY")]


class CalDAVTestCase(SynchronousTestCase):
    def setUp(self):
        self.server = startMemoryServer(self)

    def request(self, method: str, path: str, body: bytes = b"", headers=(), login: str = "alice"):
        """
        Send one request as C{login}; C{(status, headers, body)} come back.
        """
        token = base64.b64encode(f"{login}:{PASSWORDS[login]}".encode("utf-8")).decode("ascii")
        head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close",
                f"Authorization: Basic {token}", f"Content-Length: {len(body)}", *headers]
        return self.send(("\r\n".join(head) + "\r\n\r\n").encode("utf-8") + body)

    def send(self, raw: bytes):
        answer = self.successResultOf(self.server.rawRequest(raw))
        head, _, body = answer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(lines[0].split()[1]), headers, body

    def replay(self, fixture: str, values: dict, login: str = "alice", token: str = None, edit=None):
        """
        Replay a recorded request with a Basic login added (and, for a
        principal search, another C{token} searched for; C{edit} changes
        the body).
        """
        raw = loadRequest(fixture, values)
        head, _, body = raw.partition(b"\r\n\r\n")
        if token is not None:
            body = re.sub(rb"<C:search-token>[^<]*</C:search-token>",
                          b"<C:search-token>" + token.encode("utf-8") + b"</C:search-token>", body)
        if edit is not None:
            body = edit(body)
        head = re.sub(rb"Content-Length: \d+", b"Content-Length: %d" % len(body), head)
        lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"connection:")]
        token = base64.b64encode(f"{login}:{PASSWORDS[login]}".encode("utf-8"))
        lines[1:1] = [b"Connection: close", b"Authorization: Basic " + token]
        return self.send(b"\r\n".join(lines) + b"\r\n\r\n" + body)

    def properties(self, body: bytes):
        """
        The properties found (200) in a multistatus, by href: C{{key: element}}.
        """
        found = {}
        for response in fromstring(body).iter(D + "response"):
            href = response.find(D + "href").text
            props = found.setdefault(href, {})
            for propstat in response.iter(D + "propstat"):
                if "200" in propstat.find(D + "status").text:
                    for prop in propstat.find(D + "prop"):
                        props[prop.tag] = prop
        return found

    def hrefs(self, element):
        return [h.text for h in element.iter(D + "href")]


class RoomPrincipalTests(CalDAVTestCase):
    """
    A room's principal, home and calendar.
    """

    def test_principal(self):
        """A room is a principal of type ROOM with its name, mail and calendar home, and no outbox."""
        status, _, body = self.request("PROPFIND", "/caldav/principals/rooms/orion/", PROPFIND, ["Depth: 0"])
        self.assertEqual(status, 207, body)
        props = self.properties(body)["/caldav/principals/rooms/orion/"]
        self.assertEqual(props[D + "displayname"].text, "Orion")
        self.assertEqual(props[C + "calendar-user-type"].text, "ROOM")
        self.assertEqual(props[CS + "record-type"].text, "locations")
        self.assertEqual(self.hrefs(props[C + "calendar-user-address-set"]),
                         ["mailto:orion@example.com", "/caldav/principals/rooms/orion/"])
        self.assertEqual(self.hrefs(props[C + "calendar-home-set"]), ["/caldav/calendars/orion/"])
        self.assertEqual(self.hrefs(props[D + "principal-URL"]), ["/caldav/principals/rooms/orion/"])
        self.assertNotIn(C + "schedule-outbox-URL", props)
        reports = [r[0][0].tag for r in props[D + "supported-report-set"]]
        self.assertIn(C + "free-busy-query", reports)

    def test_notARoom(self):
        """A user, a group or nobody is not found among the rooms, and a room not among the users."""
        for path in ("/caldav/principals/rooms/alice/", "/caldav/principals/rooms/team/",
                     "/caldav/principals/rooms/nobody/", "/caldav/principals/users/orion/"):
            status, _, body = self.request("PROPFIND", path, PROPFIND, ["Depth: 0"])
            self.assertEqual(status, 404, path)

    def test_principalCollections(self):
        """The principal collection lists the rooms' collection beside the users' and the groups'."""
        status, _, body = self.request("PROPFIND", "/caldav/principals/", PROPFIND, ["Depth: 1"])
        self.assertEqual(status, 207, body)
        self.assertIn("/caldav/principals/rooms/", self.properties(body))

    def test_home(self):
        """A room's home holds its read-only calendar, owned by the room; it has no inbox or outbox."""
        status, _, body = self.request("PROPFIND", "/caldav/calendars/orion/", PROPFIND, ["Depth: 1"])
        self.assertEqual(status, 207, body)
        found = self.properties(body)
        self.assertEqual(sorted(found), ["/caldav/calendars/orion/", "/caldav/calendars/orion/calendar/"])
        calendar = found["/caldav/calendars/orion/calendar/"]
        self.assertEqual(self.hrefs(calendar[D + "owner"]), ["/caldav/principals/rooms/orion/"])
        self.assertEqual(calendar[D + "displayname"].text, "Free/busy of Orion")
        self.assertIsNotNone(calendar[D + "resourcetype"].find(C + "calendar"))
        for member in ("outbox", "inbox"):
            status, _, _ = self.request("PROPFIND", f"/caldav/calendars/orion/{member}/", PROPFIND,
                                        ["Depth: 0"])
            self.assertEqual(status, 404, member)
        status, _, _ = self.request("POST", "/caldav/calendars/orion/outbox/", freeBusyRequest(
            "mailto:lyra@example.com"), ["Content-Type: text/calendar"])
        self.assertEqual(status, 404)

    def test_freeBusyQuery(self):
        """free-busy-query on a room's calendar and principal answers its published busy time."""
        self.server.store.write(("orion.vfb",), ORION_VFB)
        query = ('<?xml version="1.0" encoding="utf-8"?><C:free-busy-query xmlns:C="%s">'
                 '<C:time-range start="20261207T000000Z" end="20261208T000000Z"/></C:free-busy-query>'
                 % CALDAV).encode("utf-8")
        for path in ("/caldav/calendars/orion/calendar/", "/caldav/principals/rooms/orion/"):
            status, headers, body = self.request("REPORT", path, query, ["Depth: 1", "Content-Type: text/xml"])
            self.assertEqual(status, 200, body)
            self.assertTrue(headers["content-type"].startswith("text/calendar"))
            self.assertEqual(freeBusyLines(body.decode("utf-8")),
                             ["FREEBUSY;FBTYPE=BUSY:20261207T090000Z/20261207T100000Z"])
        status, _, body = self.request("REPORT", "/caldav/calendars/lyra/calendar/", query,
                                       ["Depth: 1", "Content-Type: text/xml"])
        self.assertEqual(status, 403, body)


class RoomAttendeeTests(CalDAVTestCase):
    """
    Rooms as attendees of an outbox free/busy request.
    """

    def responses(self, body: bytes):
        found = {}
        for response in fromstring(body).iter(C + "response"):
            recipient = response.find(C + "recipient").find(D + "href").text
            data = response.find(C + "calendar-data")
            found[recipient] = (response.find(C + "request-status").text,
                                None if data is None else data.text)
        return found

    def test_roomAttendees(self):
        """
        A room named by its mail address or its principal URL gets its busy
        time; one that never published gets no authority, as a person would.
        """
        self.server.store.write(("orion.vfb",), ORION_VFB)
        status, _, body = self.request(
            "POST", "/caldav/calendars/alice/outbox/",
            freeBusyRequest("mailto:ORION@example.com", "/caldav/principals/rooms/orion/",
                            "mailto:lyra@example.com", "/caldav/principals/rooms/nowhere/"),
            ["Content-Type: text/calendar"])
        self.assertEqual(status, 200, body)
        answers = self.responses(body)
        for attendee in ("mailto:ORION@example.com", "/caldav/principals/rooms/orion/"):
            state, data = answers[attendee]
            self.assertEqual(state, "2.0;Success")
            self.assertEqual(freeBusyLines(data), ["FREEBUSY;FBTYPE=BUSY:20261207T090000Z/20261207T100000Z"])
        self.assertEqual(answers["mailto:lyra@example.com"], ("3.8;No authority", None))
        self.assertEqual(answers["/caldav/principals/rooms/nowhere/"], ("3.7;Invalid calendar user", None))


class RoomSearchTests(CalDAVTestCase):
    """
    Finding rooms by the searches scheduling clients send.
    """

    values = {"principals": "/caldav/principals/"}

    def test_appleLocationSearch(self):
        """Apple Calendar's location search (context="location") finds the rooms only."""
        status, _, body = self.replay("apple-macos-08-calendarserver-location-search.http", self.values)
        self.assertEqual(status, 207, body)
        found = self.properties(body)
        self.assertEqual(list(found), ["/caldav/principals/rooms/orion/"])
        props = found["/caldav/principals/rooms/orion/"]
        self.assertEqual(props[C + "calendar-user-type"].text, "ROOM")
        self.assertEqual(props[CS + "record-type"].text, "locations")
        self.assertEqual([e.text for e in props[CS + "email-address-set"]], ["orion@example.com"])

    def test_appleAttendeeSearchLeavesRoomsOut(self):
        """Apple's attendee search (context="attendee") finds people, not rooms."""
        status, _, body = self.replay("apple-macos-05-calendarserver-principal-search.http", self.values)
        self.assertEqual(status, 207, body)
        self.assertEqual(list(self.properties(body)), ["/caldav/principals/users/bsmith/"])
        for token in ("ori", "lyr"):
            status, _, body = self.replay("apple-macos-05-calendarserver-principal-search.http", self.values,
                                          token=token)
            self.assertEqual((status, self.properties(body)), (207, {}), token)

    def propertySearch(self, tests: str, test: str = "allof"):
        body = ('<?xml version="1.0" encoding="utf-8"?><D:principal-property-search xmlns:D="DAV:" '
                f'xmlns:C="{CALDAV}" test="{test}">{tests}<D:prop><D:displayname/><C:calendar-user-type/>'
                '</D:prop></D:principal-property-search>').encode("utf-8")
        status, _, answer = self.request("REPORT", "/caldav/principals/", body,
                                         ["Depth: 0", "Content-Type: text/xml"])
        self.assertEqual(status, 207, answer)
        return {href: props[C + "calendar-user-type"].text for href, props in self.properties(answer).items()}

    def test_propertySearchByType(self):
        """
        principal-property-search with calendar-user-type ROOM lists the
        rooms, alone or with a name; without it a name finds rooms as well as
        people.
        """
        room = ('<D:property-search><D:prop><C:calendar-user-type/></D:prop>'
                '<D:match match-type="equals">ROOM</D:match></D:property-search>')
        self.assertEqual(self.propertySearch(room), {"/caldav/principals/rooms/lyra/": "ROOM",
                                                     "/caldav/principals/rooms/orion/": "ROOM"})
        name = ('<D:property-search><D:prop><D:displayname/></D:prop>'
                '<D:match match-type="starts-with">{}</D:match></D:property-search>')
        self.assertEqual(self.propertySearch(room + name.format("ly")), {"/caldav/principals/rooms/lyra/": "ROOM"})
        self.assertEqual(self.propertySearch(name.format("or")), {"/caldav/principals/rooms/orion/": "ROOM"})
        individual = room.replace("ROOM", "INDIVIDUAL")
        self.assertEqual(self.propertySearch(individual + name.format("or")), {})
        self.assertEqual(self.propertySearch(individual + name.format("al")),
                         {"/caldav/principals/users/alice/": "INDIVIDUAL"})

    def test_searchPropertySet(self):
        """principal-search-property-set offers calendar-user-type."""
        body = b'<?xml version="1.0" encoding="utf-8"?><D:principal-search-property-set xmlns:D="DAV:"/>'
        status, _, answer = self.request("REPORT", "/caldav/principals/", body, ["Depth: 0", "Content-Type: text/xml"])
        self.assertEqual(status, 200, answer)
        self.assertIn(C + "calendar-user-type", [e.tag for e in fromstring(answer).iter()])

    def test_propertiesBesideAnEmptyProp(self):
        """
        The python caldav library's search, its properties beside an empty
        DAV:prop, gets them: the room's name and calendar home.
        """
        body = (b'<D:principal-property-search xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
                b"<D:property-search><D:prop><D:displayname/></D:prop><D:match>Orion</D:match></D:property-search>"
                b"<D:prop/><C:calendar-home-set/><D:displayname/></D:principal-property-search>")
        status, _, answer = self.request("REPORT", "/caldav/principals/", body, ["Content-Type: text/xml"])
        self.assertEqual(status, 207, answer)
        found = self.properties(answer)
        self.assertEqual(list(found), ["/caldav/principals/rooms/orion/"])
        props = found["/caldav/principals/rooms/orion/"]
        self.assertEqual(set(props), {C + "calendar-home-set", D + "displayname"})
        self.assertEqual(self.hrefs(props[C + "calendar-home-set"]), ["/caldav/calendars/orion/"])
