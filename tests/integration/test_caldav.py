"""
CalDAV free/busy (L{fbtwist.web.caldav}) on a whole server on loopback with
the demo directory: the requests Apple Calendar, iOS, Thunderbird,
Evolution and python caldav send (C{tests/fixtures/caldav}), replayed in
each client's order with the paths the server's own answers gave, and every
answer checked (by libical too); and another organisation's free/busy
fetched from a second server.  The rest of CalDAV is tested in memory, in
L{tests.unit.test_caldav}.
"""

from xml.etree.ElementTree import fromstring

from icalendar import Calendar
from twisted.trial.unittest import TestCase

from tests.helpers import inline, rawRequest, startServer
from tests.integration.test_publicview import strictErrors
from tests.unit.test_caldav import (
    ALICE_VFB,
    BETTY_PERIODS,
    BETTY_VFB,
    C,
    D,
    SchedulingTests,
    freeBusyPeriods,
    parseResponse,
    withAuthorization,
)
from tests.unit.test_caldavfixtures import fixtureNames, loadRequest


class ReplayTests(TestCase):
    """
    Each client's recorded requests, in its order, against a running server.
    """

    timeout = 60

    async def _start(self):
        self.server = await startServer(self)
        self.server.store.write(("alice.vfb",), ALICE_VFB)
        self.server.store.write(("bsmith.vfb",), BETTY_VFB)

    async def send(self, raw: bytes, login="alice"):
        answer = await rawRequest(self.server.port, withAuthorization(raw, login))
        return parseResponse(answer)

    async def replay(self, name: str, values=None, login="alice"):
        return await self.send(loadRequest(name, values or self.values), login)

    def propValues(self, body: bytes, key: str):
        """
        The hrefs (or text) of the property C{key} in each 200 propstat.
        """
        root = fromstring(body)
        found = []
        for propstat in root.iter(D + "propstat"):
            if "200" not in propstat.find(D + "status").text:
                continue
            for prop in propstat.find(D + "prop"):
                if prop.tag == key:
                    hrefs = [h.text for h in prop.iter(D + "href")]
                    found.append(hrefs if hrefs else (prop.text or ""))
        return found

    async def discover(self, wellKnown: str, redirected: str, principalFixture: str):
        """
        Discovery as Apple's clients do it: the well-known redirect, its
        target, the principal; fills L{values} from the answers.
        """
        status, headers, body = await self.send(loadRequest(wellKnown))
        self.assertIn(status, (301, 302))
        location = headers["location"]
        self.values = {"location": location}
        status, headers, body = await self.replay(redirected)
        self.assertEqual(status, 207)
        [[principal]] = self.propValues(body, D + "current-user-principal")
        self.values["principal"] = principal
        status, headers, body = await self.replay(principalFixture)
        self.assertEqual(status, 207)
        [[home]] = self.propValues(body, C + "calendar-home-set")
        [[outbox]] = self.propValues(body, C + "schedule-outbox-URL")
        [[inbox]] = self.propValues(body, C + "schedule-inbox-URL")
        [addresses] = self.propValues(body, C + "calendar-user-address-set")
        [[principals]] = self.propValues(body, D + "principal-collection-set")
        [name] = self.propValues(body, D + "displayname")
        self.assertEqual(addresses[0], "mailto:alice@example.com")
        self.assertIn(principal, addresses)
        self.assertEqual(name, "Alice Liddell")
        self.assertTrue(inbox.startswith(home))
        self.values.update(home=home, outbox=outbox, principals=principals, calendar=home + "calendar/",
                           **{"home-path": home.rstrip("/")})
        return body

    def checkScheduleResponse(self, body: bytes, expected):
        """
        A C{schedule-response} with one response per recipient, each with
        only recipient, request-status and calendar-data.
        """
        root = fromstring(body)
        self.assertEqual(root.tag, C + "schedule-response")
        statuses = {}
        for response in root.findall(C + "response"):
            self.assertEqual({child.tag for child in response} - {C + "calendar-data"},
                             {C + "recipient", C + "request-status"})
            recipient = response.find(C + "recipient").find(D + "href").text
            statuses[recipient.lower()] = (response.find(C + "request-status").text,
                                           response.findtext(C + "calendar-data"))
        self.assertEqual({k: v[0] for k, v in statuses.items()}, expected)
        return {k: v[1] for k, v in statuses.items()}

    async def checkReply(self, data: str, attendee: str, periods):
        """
        A valid RFC 5545 METHOD:REPLY VFREEBUSY for C{attendee}, the window
        asked for, with C{periods} and nothing of the published details.
        """
        raw = data.encode("utf-8")
        self.assertIn(b"\r\n", raw)
        self.assertEqual(await strictErrors(raw), [])
        calendar = Calendar.from_ical(raw)
        self.assertEqual(calendar["METHOD"], "REPLY")
        [fb] = calendar.walk("VFREEBUSY")
        self.assertEqual(str(fb["ATTENDEE"]).lower(), attendee)
        self.assertEqual(str(fb["ORGANIZER"]).lower(), "mailto:alice@example.com")
        self.assertEqual(fb["DTSTART"].to_ical(), b"20261207T000000Z")
        self.assertEqual(fb["DTEND"].to_ical(), b"20261208T000000Z")
        self.assertEqual(freeBusyPeriods(raw), periods)
        self.assertNotIn(b"salary", raw)
        self.assertNotIn(b"Secret", raw)

    @inline
    async def test_appleMacOS(self):
        """Apple Calendar's discovery, attendee searches and outbox free/busy are answered."""
        await self._start()
        await self.discover("apple-macos-01-wellknown-propfind.http", "apple-macos-02-redirected-propfind.http",
                            "apple-macos-03-principal-propfind.http")
        status, headers, body = await self.replay("apple-macos-04-principal-search-property-set.http")
        self.assertEqual(status, 200)
        self.assertEqual(fromstring(body).tag, D + "principal-search-property-set")
        for name in ("apple-macos-05-calendarserver-principal-search.http",
                     "apple-macos-06-principal-property-search.http"):
            status, headers, body = await self.replay(name)
            self.assertEqual(status, 207, name)
            hrefs = [r.findtext(D + "href") for r in fromstring(body).findall(D + "response")]
            self.assertEqual(hrefs, ["/caldav/principals/users/bsmith/"], name)
            [addresses] = self.propValues(body, C + "calendar-user-address-set")
            self.assertEqual(addresses[0], "mailto:betty@example.com")
        # The location field's search finds the rooms only.
        status, headers, body = await self.replay("apple-macos-08-calendarserver-location-search.http")
        self.assertEqual(status, 207)
        hrefs = [r.findtext(D + "href") for r in fromstring(body).findall(D + "response")]
        self.assertEqual(hrefs, ["/caldav/principals/rooms/orion/"])
        self.assertEqual(self.propValues(body, C + "calendar-user-type"), ["ROOM"])
        status, headers, body = await self.replay("apple-macos-07-outbox-freebusy.http")
        self.assertEqual(status, 200)
        self.assertIn("xml", headers["content-type"])
        data = self.checkScheduleResponse(body, {"mailto:alice@example.com": "2.0;Success",
                                                 "mailto:betty@example.com": "2.0;Success"})
        await self.checkReply(data["mailto:betty@example.com"], "mailto:betty@example.com", BETTY_PERIODS)
        await self.checkReply(data["mailto:alice@example.com"], "mailto:alice@example.com",
                              [("20261207T080000Z/20261207T090000Z", "BUSY")])

    @inline
    async def test_appleIOS(self):
        """iOS's discovery finds the principal, its address, home, inbox and outbox."""
        await self._start()
        await self.discover("apple-ios-01-wellknown-propfind.http", "apple-ios-02-redirected-propfind.http",
                            "apple-ios-03-principal-propfind.http")
        status, headers, body = await self.replay("apple-ios-04-principal-search-property-set.http")
        self.assertEqual(status, 200)

    @inline
    async def test_thunderbird(self):
        """Thunderbird's detection, calendar, OPTIONS, scheduling properties and free/busy are answered."""
        await self._start()
        status, headers, body = await self.send(loadRequest("thunderbird-01-detect-wellknown-propfind.http"))
        self.assertIn(status, (301, 302))
        # Thunderbird follows the redirect with the same request.
        self.values = {"location": headers["location"]}
        raw = loadRequest("thunderbird-01-detect-wellknown-propfind.http").replace(
            b"/.well-known/caldav", headers["location"].rstrip("/").encode("ascii"), 1)
        status, headers, body = await self.send(raw)
        self.assertEqual(status, 207)
        [[principal]] = self.propValues(body, D + "current-user-principal")
        self.values["principal"] = principal
        status, headers, body = await self.replay("thunderbird-02-detect-principal-propfind.http")
        self.assertEqual(status, 207)
        [[home]] = self.propValues(body, C + "calendar-home-set")
        self.values.update(home=home, **{"home-path": home.rstrip("/")})
        status, headers, body = await self.replay("thunderbird-03-detect-home-propfind.http")
        self.assertEqual(status, 207)
        calendars = [r.findtext(D + "href") for r in fromstring(body).findall(D + "response")
                     if r.find(f".//{D}resourcetype/{C}calendar") is not None]
        self.assertEqual(calendars, [home + "calendar/"])
        self.values["calendar"] = calendars[0]
        status, headers, body = await self.replay("thunderbird-04-calendar-propfind.http")
        self.assertEqual(status, 207)
        status, headers, body = await self.replay("thunderbird-05-home-options.http")
        self.assertEqual(status, 200)
        self.assertIn("calendar-access", headers["dav"])
        self.assertIn("calendar-schedule", headers["dav"])
        status, headers, body = await self.replay("thunderbird-06-principal-scheduling-propfind.http")
        self.assertEqual(status, 207)
        [[outbox]] = self.propValues(body, C + "schedule-outbox-URL")
        [[inbox]] = self.propValues(body, C + "schedule-inbox-URL")
        self.values.update(outbox=outbox, principals="/caldav/principals/")
        status, headers, body = await self.replay("thunderbird-07-principal-property-search.http")
        self.assertEqual(status, 207)
        self.assertEqual([r.findtext(D + "href") for r in fromstring(body).findall(D + "response")], [principal])
        self.assertEqual(self.propValues(body, C + "schedule-outbox-URL"), [[outbox]])
        status, headers, body = await self.replay("thunderbird-08-outbox-freebusy.http")
        self.assertEqual(status, 200)
        data = self.checkScheduleResponse(body, {"mailto:betty@example.com": "2.0;Success"})
        await self.checkReply(data["mailto:betty@example.com"], "mailto:betty@example.com", BETTY_PERIODS)

    @inline
    async def test_evolution(self):
        """Evolution's discovery, OPTIONS, owner, outbox free/busy and its principal fallback are answered."""
        await self._start()
        self.values = {}
        status, headers, body = await self.replay("evolution-02-discover-wellknown-propfind.http")
        self.assertIn(status, (301, 302))
        status, headers, body = await self.replay("evolution-01-discover-propfind.http")
        self.assertEqual(status, 207)
        [[principal]] = self.propValues(body, D + "current-user-principal")
        self.values["principal"] = principal
        status, headers, body = await self.replay("evolution-03-discover-principal-propfind.http")
        self.assertEqual(status, 207)
        [[home]] = self.propValues(body, C + "calendar-home-set")
        [addresses] = self.propValues(body, C + "calendar-user-address-set")
        self.assertEqual(addresses[0], "mailto:alice@example.com")
        self.values.update(home=home, calendar=home + "calendar/")
        status, headers, body = await self.replay("evolution-04-calendar-options.http")
        self.assertEqual(status, 200)
        self.assertIn("calendar-access", headers["dav"])
        self.assertIn("calendar-schedule", headers["dav"])
        status, headers, body = await self.replay("evolution-05-calendar-owner-propfind.http")
        self.assertEqual(status, 207)
        [[owner]] = self.propValues(body, D + "owner")
        self.assertEqual(owner, principal)
        self.values["principal"] = owner
        status, headers, body = await self.replay("evolution-06-owner-outbox-propfind.http")
        [[outbox]] = self.propValues(body, C + "schedule-outbox-URL")
        self.values["outbox"] = outbox
        status, headers, body = await self.replay("evolution-07-outbox-freebusy.http")
        self.assertEqual(status, 200)
        data = self.checkScheduleResponse(body, {"mailto:betty@example.com": "2.0;Success"})
        await self.checkReply(data["mailto:betty@example.com"], "mailto:betty@example.com", BETTY_PERIODS)
        status, headers, body = await self.replay("evolution-08-principal-property-search.http")
        self.assertEqual(status, 207)
        [attendee] = [r.findtext(D + "href") for r in fromstring(body).findall(D + "response")]
        self.values["attendee-principal"] = attendee
        status, headers, body = await self.replay("evolution-09-principal-free-busy-query.http")
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("text/calendar"))
        self.assertEqual(await strictErrors(body), [])
        self.assertEqual(freeBusyPeriods(body), BETTY_PERIODS)

    @inline
    async def test_pythonCaldav(self):
        """python caldav's requests: root, principal properties, outbox POST and free-busy-query."""
        await self._start()
        self.values = {}
        status, headers, body = await self.replay("python-caldav-01-root-propfind.http")
        self.assertEqual(status, 207)
        [[principal]] = self.propValues(body, D + "current-user-principal")
        self.values["principal"] = principal
        for name in ("python-caldav-02-principal-outbox-propfind.http",
                     "python-caldav-03-principal-outbox-propfind-again.http",
                     "python-caldav-04-principal-displayname-propfind.http",
                     "python-caldav-05-principal-address-set-propfind.http",
                     "python-caldav-06-principal-user-type-propfind.http"):
            status, headers, body = await self.replay(name)
            self.assertEqual(status, 207, name)
            self.assertFalse(b"404" in body and b"200" not in body, name)
        status, headers, body = await self.replay("python-caldav-02-principal-outbox-propfind.http")
        [[outbox]] = self.propValues(body, C + "schedule-outbox-URL")
        self.values.update(outbox=outbox, calendar="/caldav/calendars/alice/calendar/")
        status, headers, body = await self.replay("python-caldav-06-principal-user-type-propfind.http")
        self.assertEqual(self.propValues(body, C + "calendar-user-type"), ["INDIVIDUAL"])
        status, headers, body = await self.replay("python-caldav-07-outbox-freebusy.http")
        self.assertEqual(status, 200)
        data = self.checkScheduleResponse(body, {"mailto:betty@example.com": "2.0;Success"})
        await self.checkReply(data["mailto:betty@example.com"], "mailto:betty@example.com", BETTY_PERIODS)
        status, headers, body = await self.replay("python-caldav-08-calendar-free-busy-query.http")
        self.assertEqual(status, 200)
        self.assertEqual(freeBusyPeriods(body), [("20261207T080000Z/20261207T090000Z", "BUSY")])

    def test_everyFixtureReplayed(self):
        """Every fixture file is named, so replayed, by one of the tests above."""
        source = open(__file__.replace(".pyc", ".py"), encoding="utf-8").read()
        for name in fixtureNames():
            self.assertIn(f'"{name}"', source)


class FederatedSchedulingTests(TestCase):
    """
    An outbox request for another organisation's address, answered from a
    second server over loopback.
    """

    timeout = 60

    async def _start(self, *args):
        self.server = await startServer(self, *args)
        self.server.store.write(("alice.vfb",), ALICE_VFB)
        self.server.store.write(("bsmith.vfb",), BETTY_VFB)

    async def send(self, raw: bytes, login="alice"):
        return parseResponse(await rawRequest(self.server.port, withAuthorization(raw, login)))

    schedule = SchedulingTests.schedule
    statuses = SchedulingTests.statuses

    @inline
    async def test_federatedAttendee(self):
        """Another organisation's address (--federate) is answered with its free/busy fetched from there."""
        other = await startServer(self)
        other.store.write(("bsmith.vfb",), BETTY_VFB)
        await self._start(
            "--federate", f"partner.example=http://127.0.0.1:{other.port}/calendar/%NAME%@example.com.vfb",
            "--federation-allow-networks", "127.0.0.0/8")
        status, headers, body = await self.schedule(["mailto:betty@partner.example", "mailto:zoe@partner.example"])
        self.assertEqual(status, 200)
        self.assertEqual(self.statuses(body), {"mailto:betty@partner.example": "2.0;Success",
                                               "mailto:zoe@partner.example": "3.8;No authority"})
        data = fromstring(body).find(C + "response").findtext(C + "calendar-data")
        self.assertEqual(freeBusyPeriods(data.encode("utf-8")), BETTY_PERIODS)
