"""
CalDAV free/busy (L{fbtwist.web.caldav}) on a whole server in memory
(L{tests.memory}) with the demo directory: outbox requests beyond what the
recorded clients send (every request status, groups, address forms, who
may ask), hostile bodies, each answered with a clear 4xx, and the
principals and calendars.  The recorded clients' requests replayed, each
answer checked by libical too, and another organisation's free/busy
fetched over loopback: L{tests.integration.test_caldav}.
"""

import base64
import re
from xml.etree.ElementTree import fromstring

from icalendar import Calendar
from twisted.internet import defer
from twisted.trial.unittest import TestCase

from fbtwist.web.caldav.names import CALDAV
from tests.helpers import PASSWORDS, inline
from tests.memory import startMemoryServer
from tests.unit.test_caldavfixtures import fixtureNames, loadRequest

D = "{DAV:}"
C = "{%s}" % CALDAV

#: Alice's and Betty's published times in the fixtures' window (2026-12-07).
ALICE_VFB = (
    "BEGIN:VCALENDAR\r\nPRODID:-//test//EN\r\nVERSION:2.0\r\nMETHOD:PUBLISH\r\nBEGIN:VFREEBUSY\r\n"
    "ORGANIZER:mailto:alice@example.com\r\nDTSTAMP:20261201T000000Z\r\n"
    "DTSTART:20261201T000000Z\r\nDTEND:20261231T000000Z\r\n"
    "FREEBUSY:20261207T080000Z/20261207T090000Z\r\nEND:VFREEBUSY\r\nEND:VCALENDAR\r\n"
).encode("ascii")
BETTY_VFB = (
    "BEGIN:VCALENDAR\r\nPRODID:-//test//EN\r\nVERSION:2.0\r\nMETHOD:PUBLISH\r\nBEGIN:VFREEBUSY\r\n"
    "ORGANIZER:betty@example.com\r\nDTSTAMP:20261201T000000Z\r\nCOMMENT:salary talk\r\n"
    "DTSTART:20261201T000000Z\r\nDTEND:20261231T000000Z\r\n"
    "FREEBUSY:20261207T100000Z/20261207T113000Z\r\n"
    "FREEBUSY;FBTYPE=BUSY-TENTATIVE;X-SUMMARY=Secret:20261207T140000Z/20261207T150000Z\r\n"
    "FREEBUSY:20261208T100000Z/20261208T110000Z\r\nEND:VFREEBUSY\r\nEND:VCALENDAR\r\n"
).encode("ascii")

#: Betty's busy time in the window, as every answer must give it.
BETTY_PERIODS = [("20261207T100000Z/20261207T113000Z", "BUSY"),
                 ("20261207T140000Z/20261207T150000Z", "BUSY-TENTATIVE")]


def authorization(login: str) -> bytes:
    token = base64.b64encode(f"{login}:{PASSWORDS[login]}".encode("utf-8"))
    return b"Authorization: Basic " + token


def withAuthorization(raw: bytes, login: str = "alice") -> bytes:
    """
    The request as recorded, with a Basic login added and the connection
    closed after the answer.
    """
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"connection:")]
    if login is not None:
        lines.insert(1, authorization(login))
    lines.insert(1, b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def parseResponse(raw: bytes):
    """
    @return: C{(status, headers, body)} of one HTTP/1.1 response.
    """
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = body[: int(headers["content-length"])]
    return status, headers, body


def freeBusyPeriods(data: bytes):
    """
    The C{(period, FBTYPE)} pairs of the one VFREEBUSY in C{data}.
    """
    [component] = Calendar.from_ical(data).walk("VFREEBUSY")
    values = component.get("FREEBUSY", [])
    values = values if isinstance(values, list) else [values]
    lines = [line for line in data.replace(b"\r\n ", b"").split(b"\r\n") if line.startswith(b"FREEBUSY")]
    result = []
    for line in lines:
        params, _, value = line.decode("ascii").partition(":")
        fbtype = re.search(r"FBTYPE=([A-Z-]+)", params)
        result.append((value, fbtype.group(1) if fbtype else None))
    return result


def freeBusyRequest(attendees, organizer="mailto:alice@example.com", extra="", components=1,
                    start="20261207T000000Z", end="20261208T000000Z") -> bytes:
    """
    A free/busy request as the clients write it.
    """
    component = (
        "BEGIN:VFREEBUSY\r\nUID:request-1\r\nDTSTAMP:20261206T081500Z\r\n"
        f"DTSTART:{start}\r\nDTEND:{end}\r\n"
        + (f"ORGANIZER:{organizer}\r\n" if organizer else "")
        + "".join(f"ATTENDEE:{a}\r\n" for a in attendees) + extra + "END:VFREEBUSY\r\n"
    )
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nMETHOD:REQUEST\r\n"
            + component * components + "END:VCALENDAR\r\n").encode("utf-8")


def request(method: str, path: str, body: bytes = b"", contentType: str = "text/calendar",
            headers=()) -> bytes:
    head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Type: {contentType}",
            f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode("utf-8") + body


OUTBOX = "/caldav/calendars/alice/outbox/"

ENTITY_BOMB = (
    b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>\n'
    b'<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav">'
    b'<C:time-range start="&lol3;" end="20261208T000000Z"/></C:free-busy-query>'
)


class SchedulingTests(TestCase):
    """
    Outbox requests beyond what the recorded clients send: every request
    status, groups, address forms, and who may ask.
    """

    timeout = 60

    async def _start(self, *args):
        self.server = startMemoryServer(self, *args)
        self.server.store.write(("alice.vfb",), ALICE_VFB)
        self.server.store.write(("bsmith.vfb",), BETTY_VFB)

    async def send(self, raw: bytes, login="alice"):
        return parseResponse(await self.server.rawRequest(withAuthorization(raw, login)))

    async def schedule(self, attendees, login="alice", **kwargs):
        return await self.send(request("POST", OUTBOX, freeBusyRequest(attendees, **kwargs)), login)

    def statuses(self, body: bytes):
        root = fromstring(body)
        return {r.find(C + "recipient").findtext(D + "href"): r.findtext(C + "request-status")
                for r in root.findall(C + "response")}

    @inline
    async def test_statuses(self):
        """Unknown addresses are 3.7, people who published nothing 3.8, the rest 2.0, in any case and form."""
        await self._start()
        status, headers, body = await self.schedule([
            "MAILTO:Betty@Example.COM", "betty@example.com", "mailto:nobody@example.com",
            "mailto:carol@example.com", "urn:uuid:0f4e", "/caldav/principals/users/bsmith/"])
        self.assertEqual(status, 200)
        self.assertEqual(self.statuses(body), {
            "MAILTO:Betty@Example.COM": "2.0;Success", "betty@example.com": "2.0;Success",
            "mailto:nobody@example.com": "3.7;Invalid calendar user",
            "mailto:carol@example.com": "3.8;No authority", "urn:uuid:0f4e": "3.7;Invalid calendar user",
            "/caldav/principals/users/bsmith/": "2.0;Success"})

    @inline
    async def test_groupAttendee(self):
        """A group's principal as attendee answers its members' busy time merged."""
        await self._start()
        status, headers, body = await self.schedule(["/caldav/principals/groups/team/"])
        self.assertEqual(self.statuses(body), {"/caldav/principals/groups/team/": "2.0;Success"})
        data = fromstring(body).find(C + "response").findtext(C + "calendar-data")
        self.assertEqual(freeBusyPeriods(data.encode("utf-8")), [
            ("20261207T080000Z/20261207T090000Z", "BUSY"), ("20261207T100000Z/20261207T113000Z", "BUSY"),
            ("20261207T140000Z/20261207T150000Z", "BUSY-TENTATIVE")])

    @inline
    async def test_sameAsLookup(self):
        """The outbox answer holds the periods /calendar/ serves for the same range."""
        await self._start()
        lookup = parseResponse(await self.server.rawRequest((
            b"GET /calendar/bsmith.vfb?start=20261207T000000Z&end=20261208T000000Z&fbtype=explicit HTTP/1.1\r\n"
            b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n")))
        self.assertEqual(lookup[0], 200)
        status, headers, body = await self.schedule(["mailto:betty@example.com"])
        data = fromstring(body).find(C + "response").findtext(C + "calendar-data")
        self.assertEqual(freeBusyPeriods(data.encode("utf-8")), freeBusyPeriods(lookup[2]))

    @inline
    async def test_eachAttendeeResolvedOnce(self):
        """Each attendee's address is resolved to a uid once per request, not again to read their time."""
        await self._start()
        await self.schedule(["mailto:betty@example.com"])
        visibility = self.server.service.portal.realm.visibility
        asked, original = [], visibility.resolve

        async def resolve(name):
            asked.append(name)
            return await original(name)

        self.patch(visibility, "resolve", resolve)
        status, headers, body = await self.schedule(["mailto:betty@example.com", "mailto:carol@example.com"])
        self.assertEqual(self.statuses(body), {"mailto:betty@example.com": "2.0;Success",
                                               "mailto:carol@example.com": "3.8;No authority"})
        # The organizer's address, then each attendee's.
        self.assertEqual(asked, ["alice@example.com", "betty@example.com", "carol@example.com"])

    @inline
    async def test_organizerMustBeTheUser(self):
        """Another user's ORGANIZER, Originator or outbox is 403 organizer-allowed."""
        await self._start()
        for raw in (request("POST", OUTBOX, freeBusyRequest(["mailto:betty@example.com"],
                                                            organizer="mailto:carol@example.com")),
                    request("POST", OUTBOX, freeBusyRequest(["mailto:betty@example.com"]),
                            headers=["Originator: mailto:carol@example.com"]),
                    request("POST", "/caldav/calendars/carol/outbox/", freeBusyRequest(["mailto:betty@example.com"]))):
            status, headers, body = await self.send(raw)
            self.assertEqual(status, 403)
            self.assertIn(b"organizer-allowed", body)

    @inline
    async def test_tooManyAttendees(self):
        """More attendees than --caldav-max-attendees is 403 with the reason."""
        await self._start("--caldav-max-attendees", "3")
        status, headers, body = await self.schedule([f"mailto:u{i}@example.com" for i in range(4)])
        self.assertEqual(status, 403)
        self.assertIn(b"--caldav-max-attendees", body)

    @inline
    async def test_hostileBodies(self):
        """Bodies that are not one valid free/busy request get a clear 4xx, never a 500."""
        await self._start()
        cases = [
            (request("POST", OUTBOX, b"hello, world"), 403, b"valid-calendar-data"),
            (request("POST", OUTBOX, b"\xff\xfe not utf-8"), 403, b"valid-calendar-data"),
            (request("POST", OUTBOX, freeBusyRequest(["mailto:betty@example.com"], components=2)), 403,
             b"valid-scheduling-message"),
            (request("POST", OUTBOX, freeBusyRequest(["mailto:betty@example.com"], organizer=None)), 403,
             b"ORGANIZER"),
            (request("POST", OUTBOX, freeBusyRequest([])), 403, b"ATTENDEE"),
            (request("POST", OUTBOX, freeBusyRequest(["mailto:betty@example.com"], start="20261207T000000")),
             403, b"UTC"),
            (request("POST", OUTBOX, freeBusyRequest(["mailto:betty@example.com"], end="20301207T000000Z")),
             403, b"days"),
            (request("POST", OUTBOX, freeBusyRequest(["mailto:betty@example.com"]).replace(
                b"METHOD:REQUEST", b"METHOD:PUBLISH")), 403, b"METHOD:REQUEST"),
            (request("POST", OUTBOX, freeBusyRequest([f"mailto:user{i}@example.com" for i in range(10000)])),
             403, b"attendees"),
            (request("POST", OUTBOX, b"BEGIN:VCALENDAR\r\n" + b"X" * (1 << 20)), 413, b""),
            (request("POST", OUTBOX, freeBusyRequest(["mailto:betty@example.com"]), contentType="text/plain"),
             415, b"text/calendar"),
            (request("REPORT", "/caldav/calendars/alice/calendar/", ENTITY_BOMB, "text/xml"), 400, b"DTD"),
            (request("PROPFIND", "/caldav/", ENTITY_BOMB.replace(b"C:free-busy-query", b"D:propfind"),
                     "text/xml", ["Depth: 0"]), 400, b"DTD"),
            (request("REPORT", "/caldav/principals/", b"<a", "text/xml"), 400, b"malformed"),
            (request("REPORT", "/caldav/principals/", b"<x xmlns='urn:x'/>", "text/xml"), 403, b"report"),
            (request("REPORT", "/caldav/calendars/alice/calendar/",
                     b'<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav"/>', "text/xml"), 403,
             b"time-range"),
            (request("REPORT", "/caldav/calendars/alice/calendar/",
                     b'<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav"><C:time-range '
                     b'start="tomorrow"/></C:free-busy-query>', "text/xml"), 403, b"start"),
            (request("PROPFIND", "/caldav/calendars/alice/", b"", "text/xml", ["Depth: infinity"]), 403,
             b"propfind-finite-depth"),
            (request("PUT", "/caldav/calendars/alice/calendar/", b"x"), 405, b"read-only"),
            (request("PUT", "/caldav/calendars/alice/calendar/x.ics", b"x"), 404, b""),
            (request("PROPFIND", "/caldav/calendars/nobody/", b"", "text/xml", ["Depth: 0"]), 404, b""),
            (request("PROPFIND", "/caldav/nothing/", b"", "text/xml", ["Depth: 0"]), 404, b""),
        ]
        for raw, code, reason in cases:
            status, headers, body = await self.send(raw)
            self.assertEqual((status, reason in body), (code, True), raw[:80])

    @inline
    async def test_loginRequired(self):
        """Without a login everything but OPTIONS is 401, principal searches included."""
        await self._start()
        search = loadRequest("apple-macos-05-calendarserver-principal-search.http",
                             {"principals": "/caldav/principals/"})
        for raw in (search, request("POST", OUTBOX, freeBusyRequest(["mailto:betty@example.com"])),
                    request("PROPFIND", "/", b"", "text/xml", ["Depth: 0"])):
            status, headers, body = await self.send(raw, login=None)
            self.assertEqual(status, 401)
            self.assertIn("www-authenticate", headers)
        status, headers, body = await self.send(request("OPTIONS", "/caldav/calendars/alice/"), login=None)
        self.assertEqual(status, 200)
        self.assertIn("calendar-schedule", headers["dav"])

    @inline
    async def test_directoryDown(self):
        """While the directory is down, answers needing it are 5.1 per recipient, the rest still 2.0."""
        from fbtwist.directory.demo import DemoDirectoryService

        await self._start()
        status, headers, body = await self.schedule(["mailto:betty@example.com"])
        self.assertEqual(status, 200)
        [demo] = [s for s in self.server.service if isinstance(s, DemoDirectoryService)]
        await self.server.network.run(defer.maybeDeferred(demo.stopService))
        await self.server.network.run(defer.maybeDeferred(self.server.directory.close))
        status, headers, body = await self.schedule(["mailto:betty@example.com", "mailto:nobody@example.com",
                                                     "/caldav/principals/groups/team/"])
        self.assertEqual(status, 200)
        self.assertEqual(self.statuses(body), {
            "mailto:betty@example.com": "2.0;Success", "mailto:nobody@example.com": "5.1;Service unavailable",
            "/caldav/principals/groups/team/": "5.1;Service unavailable"})

    @inline
    async def test_metricsAndAccessLog(self):
        """CalDAV requests are counted in /metrics and logged as access events, with the login."""
        from twisted.logger import globalLogPublisher

        from tests.unit.test_metrics import samples

        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        await self._start()
        status, headers, body = await self.schedule(["mailto:betty@example.com"])
        self.assertEqual(status, 200)
        status, headers, body = await self.send(request("GET", "/metrics", contentType="text/plain"), login=None)
        counted = samples(body.decode("utf-8"))
        self.assertEqual(counted[("fbtwist_http_requests_total", (("method", "POST"), ("status", "200")))], 1)
        [access] = [e for e in events if e.get("method") == "POST" and e.get("uri") == OUTBOX]
        self.assertEqual((access["status"], access["user"]), (200, "alice"))


class FastReaderTests(TestCase):
    """
    L{fbtwist.web.caldav.itip.read} reads what C{icalendar} reads, or
    leaves the body to it.
    """

    def test_sameAsICalendar(self):
        """Every recorded client request reads the same as C{icalendar} reads it."""
        from fbtwist.web.caldav import itip

        count = 0
        for name in fixtureNames():
            raw = loadRequest(name)
            if b"Content-Type: text/calendar" not in raw:
                continue
            count += 1
            body = raw.partition(b"\r\n\r\n")[2]
            fast = itip.read(body)
            self.assertIsNotNone(fast, name)
            [component] = Calendar.from_ical(body).walk("VFREEBUSY")
            attendees = component["ATTENDEE"]
            attendees = attendees if isinstance(attendees, list) else [attendees]
            self.assertEqual(fast.attendees, [str(a) for a in attendees], name)
            self.assertEqual(fast.organizers, [str(component["ORGANIZER"])], name)
            self.assertEqual((fast.start, fast.end, fast.uid), (component["DTSTART"].dt, component["DTEND"].dt,
                                                                 str(component["UID"])), name)
            mask = component.get("X-CALENDARSERVER-MASK-UID")
            self.assertEqual(fast.maskUID, None if mask is None else str(mask), name)
        self.assertEqual(count, 4)

    def test_leavesTheRest(self):
        """Zones, other components, nesting and stray text are left to C{icalendar}."""
        from fbtwist.web.caldav import itip

        good = freeBusyRequest(["mailto:betty@example.com"])
        self.assertIsNotNone(itip.read(good))
        for body in (good.replace(b"DTSTART:20261207T000000Z", b"DTSTART;TZID=Europe/Paris:20261207T000000"),
                     good.replace(b"BEGIN:VFREEBUSY", b"BEGIN:VEVENT"),
                     good.replace(b"END:VFREEBUSY\r\n", b""),
                     good.replace(b"UID:", b"not a content line\r\nUID:"),
                     good + b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n",
                     b"\xff" + good, b""):
            self.assertIsNone(itip.read(body), body[:60])


class ResourceTests(TestCase):
    """
    Group principals, a published full calendar, and the empty calendar.
    """

    timeout = 60

    async def send(self, raw: bytes, login="alice"):
        return parseResponse(await self.server.rawRequest(withAuthorization(raw, login)))

    @inline
    async def test_groupPrincipal(self):
        """A directory group is a principal of type GROUP with no calendar home."""
        self.server = startMemoryServer(self)
        body = (b'<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop>'
                b"<C:calendar-user-type/><D:displayname/><C:calendar-home-set/><C:calendar-user-address-set/>"
                b"</D:prop></D:propfind>")
        status, headers, answer = await self.send(request("PROPFIND", "/caldav/principals/groups/team/", body,
                                                          "text/xml", ["Depth: 0"]))
        self.assertEqual(status, 207)
        root = fromstring(answer)
        self.assertEqual(root.findtext(f".//{C}calendar-user-type"), "GROUP")
        self.assertEqual(root.findtext(f".//{D}displayname"), "team")
        self.assertEqual([h.text for h in root.iter(D + "href")][-1], "/caldav/principals/groups/team/")
        missing = [p for p in root.iter(D + "propstat") if "404" in p.findtext(D + "status")]
        self.assertIsNotNone(missing[0].find(f".//{C}calendar-home-set"))
        status, headers, answer = await self.send(request("PROPFIND", "/caldav/principals/groups/nogroup/", body,
                                                          "text/xml", ["Depth: 0"]))
        self.assertEqual(status, 404)

    @inline
    async def test_calendarAvailability(self):
        """The owner's inbox has RFC 7953's calendar-availability: their own working hours, else the site's."""
        from zoneinfo import ZoneInfo

        from fbtwist.availability.vavailability import readAvailability, renderAvailability
        from fbtwist.availability.workhours import parseWorkingHours

        body = (b'<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop>'
                b"<C:calendar-availability/></D:prop></D:propfind>")
        inbox = "/caldav/calendars/alice/inbox/"

        async def availability(login="alice"):
            status, headers, answer = await self.send(request("PROPFIND", inbox, body, "text/xml", ["Depth: 0"]),
                                                      login)
            self.assertEqual(status, 207)
            value = fromstring(answer).find(f".//{D}propstat/{D}prop/{C}calendar-availability")
            found = [p for p in fromstring(answer).iter(D + "propstat") if "200" in p.findtext(D + "status")]
            return value.text if found and value is not None and value.text else None

        self.server = startMemoryServer(self, "--working-hours", "Mon-Fri 09:00-17:00", "--default-tz", "UTC")
        site = await availability()
        self.assertEqual(readAvailability(site.encode("utf-8")),
                         parseWorkingHours("Mon-Fri 09:00-17:00", ZoneInfo("UTC")))
        own = parseWorkingHours("Tue 10:00-11:00", ZoneInfo("Europe/Berlin"))
        self.server.store.write(("alice.avail.ics",), renderAvailability(own).to_ical())
        self.assertEqual(readAvailability((await availability()).encode("utf-8")), own)
        # Only the owner reads it.
        self.assertIsNone(await availability("bsmith"))
        status, headers, _ = await self.send(request("OPTIONS", inbox), login=None)
        self.assertIn("calendar-availability", headers["dav"])

    @inline
    async def test_fullCalendar(self):
        """A published .ics answers with its derived busy time, nothing of its events."""
        self.server = startMemoryServer(self)
        self.server.store.write(("bsmith.ics",), (
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:meeting\r\n"
            "DTSTAMP:20261201T000000Z\r\nDTSTART:20261207T090000Z\r\nDTEND:20261207T100000Z\r\n"
            "SUMMARY:Secret merger\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n").encode("ascii"))
        status, headers, body = await self.send(request("POST", OUTBOX, freeBusyRequest(["mailto:betty@example.com"])))
        data = fromstring(body).find(C + "response").findtext(C + "calendar-data").encode("utf-8")
        self.assertEqual(freeBusyPeriods(data), [("20261207T090000Z/20261207T100000Z", "BUSY")])
        self.assertNotIn(b"Secret", data)
        query = (b'<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav"><C:time-range '
                 b'start="20261207T000000Z" end="20261208T000000Z"/></C:free-busy-query>')
        status, headers, body = await self.send(request("REPORT", "/caldav/calendars/bsmith/calendar/", query,
                                                        "text/xml", ["Depth: 1"]))
        self.assertEqual(status, 200)
        self.assertEqual(freeBusyPeriods(body), [("20261207T090000Z/20261207T100000Z", "BUSY")])
        self.assertNotIn(b"Secret", body)

    @inline
    async def test_calendarHoldsNoEvents(self):
        """A calendar-query or calendar-multiget of the read-only calendar is an empty multistatus."""
        self.server = startMemoryServer(self)
        for body in (b'<C:calendar-query xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:D="DAV:"><D:prop>'
                     b'<D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR"/></C:filter>'
                     b"</C:calendar-query>",
                     b'<C:calendar-multiget xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:D="DAV:"><D:prop>'
                     b"<D:getetag/></D:prop><D:href>/caldav/calendars/alice/calendar/x.ics</D:href>"
                     b"</C:calendar-multiget>"):
            status, headers, answer = await self.send(request("REPORT", "/caldav/calendars/alice/calendar/", body,
                                                              "text/xml", ["Depth: 1"]))
            self.assertEqual(status, 207)
            self.assertEqual(list(fromstring(answer)), [])
