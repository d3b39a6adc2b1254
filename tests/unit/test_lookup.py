"""
The lookup URLs, over HTTP in memory (L{tests.memory}): every URL form, CalConnect ranges
and formats, the output forms, privacy, authentication, group free/busy and
free/busy derived from a full calendar.
"""

import json
import os
from datetime import datetime, timezone

from twisted.trial import unittest

from fbtwist.calendar import ical
from tests.helpers import basicAuth, inline, outlookVFB, publicAnswer, serviceOptions
from tests.memory import startMemoryServer


def vfb(*lines: str, newline: str = "\r\n") -> bytes:
    """
    A free/busy file with the given VFREEBUSY lines.
    """
    head = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN", "BEGIN:VFREEBUSY",
            "DTSTART:20210104T000000Z", "DTEND:20210111T000000Z"]
    return newline.join(head + list(lines) + ["END:VFREEBUSY", "END:VCALENDAR", ""]).encode("utf-8")


def utc(value: datetime) -> datetime:
    """
    C{value} in UTC (a time without a zone taken as UTC).
    """
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def periodsOf(body: bytes):
    """
    (start, end, FBTYPE or None) of every FREEBUSY period in an iCalendar
    answer, checking it is one valid VFREEBUSY.
    """
    calendar = ical.parseCalendar(body)
    components = calendar.walk("VFREEBUSY")
    assert len(components) == 1, components
    values = components[0].get("FREEBUSY", [])
    out = []
    for p in values if isinstance(values, list) else [values]:
        out.append((utc(p.start).strftime("%Y%m%dT%H%M%SZ"), utc(p.end).strftime("%Y%m%dT%H%M%SZ"),
                    p.params.get("FBTYPE")))
    return sorted(out), components[0]


def _eventYear() -> int:
    """
    The year whose 24 November is inside the horizon a full calendar is
    derived for today (L{fbtwist.calendar.busytime.horizon}), so that the tests of
    EVENTS do not depend on the day they run.
    """
    from datetime import date, timedelta

    today = date.today()
    return today.year if date(today.year, 11, 24) >= today - timedelta(days=25) else today.year + 1


EVENT_YEAR = _eventYear()


def inYear(text):
    """
    C{text} (bytes or text) with 2026 replaced by L{EVENT_YEAR}.
    """
    if isinstance(text, bytes):
        return text.replace(b"2026", str(EVENT_YEAR).encode("ascii"))
    return text.replace("2026", str(EVENT_YEAR))


EVENTS = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//EN
X-WR-TIMEZONE:Europe/Berlin
BEGIN:VEVENT
UID:secret-meeting
DTSTAMP:20260101T000000Z
DTSTART;TZID=Europe/Berlin:20261124T100000
DTEND;TZID=Europe/Berlin:20261124T113000
SUMMARY:Secret merger talks
LOCATION:Boardroom 7
ATTENDEE:mailto:ceo@example.com
END:VEVENT
END:VCALENDAR
""".replace("\n", "\r\n").replace("2026", str(EVENT_YEAR)).encode("utf-8")


class LookupTestCase(unittest.TestCase):
    """
    A running server, a client and helpers to publish and fetch.
    """

    serverArgs = ()

    def setUp(self):
        self.server = startMemoryServer(self, *self.serverArgs)
        self.http = self.server.client()

    def publish(self, uid, body, suffix=".vfb", mtime=None):
        self.server.store.write((uid + suffix,), body)
        if mtime is not None:
            os.utime(self.server.store.root.child(uid + suffix).path, (mtime, mtime))

    async def get(self, path, headers=None):
        response = await self.http.get(self.server.url(path), headers=headers or {})
        return response, await response.content()


class URLFormTests(LookupTestCase):
    """
    Every URL form a client uses finds the file; anything else is 404.
    """

    @inline
    async def test_everyForm(self):
        """
        uid, mail local part, whole address (also %40), .vfb and .ifb, any
        case: all serve bsmith's published times.
        """
        self.publish("bsmith", outlookVFB("betty@example.com"))
        body = publicAnswer(self.server.store, "bsmith")
        for path in ["/calendar/bsmith.vfb", "/calendar/bsmith.ifb", "/calendar/betty.vfb", "/calendar/betty.ifb",
                     "/calendar/betty@example.com.vfb", "/calendar/betty@example.com.ifb",
                     "/calendar/betty%40example.com.vfb", "/calendar/betty%40example.com.ifb",
                     "/calendar/BETTY.VFB", "/calendar/BSmith.Ifb", "/calendar/Betty%40Example.COM.vfb"]:
            response, content = await self.get(path)
            self.assertEqual((path, response.code), (path, 200))
            self.assertEqual(content, body)

    @inline
    async def test_notFound(self):
        """
        A wrong extension, an unknown name, a wrong domain, a bare name, a
        deeper path, traversal and LDAP filter tricks are 404.
        """
        self.publish("alice", outlookVFB())
        for path in ["/calendar/alice.txt", "/calendar/alice.ics", "/calendar/alice", "/calendar/.vfb",
                     "/calendar/nobody.vfb", "/calendar/alice@example.org.vfb", "/calendar/x/alice.vfb",
                     "/calendar/carol.vfb", "/calendar/..%2Falice.vfb", "/calendar/*.vfb", "/calendar/a*.vfb",
                     "/calendar/*@example.com.vfb", "/calendar/alice)(uid=*.vfb", "/calendar/%00alice.vfb"]:
            response, content = await self.get(path)
            self.assertEqual((path, response.code), (path, 404))

    @inline
    async def test_readOnly(self):
        """
        Methods other than GET and HEAD are refused with Allow.
        """
        self.publish("alice", outlookVFB())
        response = await self.http.put(self.server.url("/calendar/alice.vfb"), data=b"x")
        await response.content()
        self.assertEqual(response.code, 405)
        self.assertEqual(response.headers.getRawHeaders(b"Allow"), [b"GET, HEAD"])


class RangeTests(LookupTestCase):
    """
    CalConnect start/end/period/format parameters.
    """

    body = vfb(
        "FREEBUSY:20210105T070000Z/20210105T080000Z",
        "FREEBUSY:20210105T100000Z/PT2H",
        "FREEBUSY;FBTYPE=BUSY-TENTATIVE:20210105T150000Z/20210105T160000Z",
        "FREEBUSY;FBTYPE=FREE:20210106T070000Z/20210106T080000Z",
    )

    @inline
    async def test_clippedAtBothEdges(self):
        """
        Periods crossing the range are cut at its edges, those outside are
        dropped, and DTSTART/DTEND are the range.
        """
        self.publish("alice", self.body)
        response, content = await self.get(
            "/calendar/alice.vfb?start=20210105T073000Z&end=20210105T153000Z")
        self.assertEqual(response.code, 200)
        periods, component = periodsOf(content)
        self.assertEqual(periods, [
            ("20210105T073000Z", "20210105T080000Z", None),
            ("20210105T100000Z", "20210105T120000Z", None),
            ("20210105T150000Z", "20210105T153000Z", "BUSY-TENTATIVE"),
        ])
        self.assertEqual(component.decoded("DTSTART").strftime("%Y%m%dT%H%M%SZ"), "20210105T073000Z")
        self.assertEqual(component.decoded("DTEND").strftime("%Y%m%dT%H%M%SZ"), "20210105T153000Z")
        self.assertIn("UID", component)
        self.assertIn("DTSTAMP", component)

    @inline
    async def test_periodAndDates(self):
        """
        A date start is midnight UTC; period replaces end; ISO 8601 extended
        forms are accepted.
        """
        self.publish("alice", self.body)
        _, content = await self.get("/calendar/alice.vfb?start=2021-01-05&period=PT7H30M")
        periods, _ = periodsOf(content)
        self.assertEqual(periods, [("20210105T070000Z", "20210105T073000Z", None)])
        _, content = await self.get("/calendar/alice.ifb?start=2021-01-05T10:30:00Z&end=20210106")
        periods, component = periodsOf(content)
        self.assertEqual(periods[0], ("20210105T103000Z", "20210105T120000Z", None))
        self.assertEqual(component.decoded("DTEND").strftime("%Y%m%dT%H%M%SZ"), "20210106T000000Z")

    @inline
    async def test_badTimes(self):
        """
        Malformed, floating and reversed times, and end with period, are 400
        with the reason in the body.
        """
        self.publish("alice", self.body)
        cases = {
            "start=yesterday": b"start='yesterday' is not a UTC date-time",
            "start=20210105T070000": b"has no time zone",
            "start=20210105T070000Z&end=20210105T060000Z": b"is not after start",
            "start=20210105T070000Z&end=20210105T070000Z": b"is not after start",
            "start=20210105T070000Z&period=P1D&end=20210106T000000Z": b"not both",
            "start=20210105&period=1D": b"is not a duration",
            "start=20211305": b"not a valid date",
        }
        for query, reason in cases.items():
            response, content = await self.get("/calendar/alice.vfb?" + query)
            self.assertEqual((query, response.code), (query, 400))
            self.assertIn(reason, content)

    @inline
    async def test_unsupportedFormat(self):
        """
        A format other than iCalendar or jCal is 406.
        """
        self.publish("alice", self.body)
        response, content = await self.get("/calendar/alice.vfb?format=text/html")
        self.assertEqual(response.code, 406)
        self.assertIn(b"application/calendar+json", content)

    @inline
    async def test_jCalRoundTrip(self):
        """
        format=application/calendar+json gives jCal that parses back
        (icalendar's reader) to the same periods as the iCalendar answer.
        """
        from icalendar import Calendar

        self.publish("alice", self.body)
        query = "start=20210105T000000Z&end=20210107T000000Z"
        response, content = await self.get("/calendar/alice.vfb?format=application/calendar%2Bjson&" + query)
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders(b"Content-Type"),
                         [b"application/calendar+json; charset=utf-8"])
        data = json.loads(content)
        self.assertEqual(data[0], "vcalendar")
        self.assertEqual(data[2][0][0], "vfreebusy")
        back = Calendar.from_jcal(data).to_ical()
        _, text = await self.get("/calendar/alice.vfb?" + query)
        self.assertEqual(periodsOf(back)[0], periodsOf(text)[0])
        self.assertEqual(len(periodsOf(text)[0]), 4)


class OutputFormTests(LookupTestCase):
    """
    The published times, always in this server's valid rendering; the
    normalised forms on request.
    """

    @inline
    async def test_defaultIsPublishedTimes(self):
        """
        Without parameters an Outlook file (bare LF, no UID, bare ORGANIZER)
        comes back as its periods and window in a valid VFREEBUSY with UID,
        DTSTAMP and a mailto: ORGANIZER, under an ETag of its own.
        """
        body = outlookVFB("alice@example.com", newline=b"\n")
        self.publish("alice", body, mtime=1_700_000_000)
        response, content = await self.get("/calendar/alice.vfb")
        self.assertEqual(content, publicAnswer(self.server.store, "alice"))
        periods, component = periodsOf(content)
        self.assertEqual(periods, [("20210105T070000Z", "20210105T073000Z", None)])
        self.assertEqual(str(component["UID"]), "fbtwist-alice")
        self.assertEqual(component["DTSTAMP"].dt.timestamp(), 1_700_000_000)
        self.assertEqual(str(component["ORGANIZER"]), "mailto:alice@example.com")
        self.assertEqual((component["DTSTART"].dt.isoformat(), component["DTEND"].dt.isoformat()),
                         ("2020-12-27T23:00:00+00:00", "2021-02-28T23:00:00+00:00"))
        etag = response.headers.getRawHeaders(b"ETag")[0]
        self.assertNotEqual(etag, self.server.store.etag(("alice.vfb",)).encode())
        response, again = await self.get("/calendar/alice.vfb?format=text/calendar")
        self.assertEqual((again, response.headers.getRawHeaders(b"ETag")), (content, [etag]))

    @inline
    async def test_answerRenderedOnce(self):
        """
        A lookup asked again is answered with the same bytes and ETag
        without rendering or hashing again; another window is rendered
        under another ETag.
        """
        from fbtwist.calendar import publicview
        from fbtwist.web import lookup

        rendered = []
        for module, name in ((publicview, "publicView"), (lookup, "variantETag")):
            original = getattr(module, name)
            self.patch(module, name, lambda *a, original=original, name=name, **k: rendered.append(name)
                       or original(*a, **k))
        self.publish("alice", outlookVFB(), mtime=1_700_000_000)
        answers = []
        for path in ("/calendar/alice.vfb", "/calendar/alice.vfb", "/calendar/alice.vfb?start=20210105"):
            response, content = await self.get(path)
            answers.append((content, response.headers.getRawHeaders(b"ETag")))
        self.assertEqual(answers[0], answers[1])
        self.assertNotEqual(answers[2][1], answers[0][1])
        self.assertEqual(rendered, ["variantETag", "publicView"] * 2)

    @inline
    async def test_republishedSameBytesNewETag(self):
        """
        The same bytes published again change DTSTAMP, so the ETag changes
        too: a client holding the old one gets the new answer, not 304.
        """
        self.publish("alice", outlookVFB(), mtime=1_700_000_000)
        response, first = await self.get("/calendar/alice.vfb")
        etag = response.headers.getRawHeaders(b"ETag")[0]
        response, _ = await self.get("/calendar/alice.vfb", {b"If-None-Match": [etag]})
        self.assertEqual(response.code, 304)
        self.publish("alice", outlookVFB(), mtime=1_700_000_900)
        response, second = await self.get("/calendar/alice.vfb", {b"If-None-Match": [etag]})
        self.assertEqual(response.code, 200)
        self.assertNotEqual(second, first)
        self.assertNotEqual(response.headers.getRawHeaders(b"ETag"), [etag])

    @inline
    async def test_explicitFBType(self):
        """
        fbtype=explicit puts FBTYPE=BUSY on every busy period and keeps the
        others' types.
        """
        self.publish("alice", RangeTests.body)
        response, content = await self.get("/calendar/alice.vfb?fbtype=explicit")
        self.assertEqual(response.code, 200)
        periods, _ = periodsOf(content)
        self.assertEqual([p[2] for p in periods], ["BUSY", "BUSY", "BUSY-TENTATIVE", "FREE"])
        self.assertNotIn(b"FREEBUSY:", content)

    @inline
    async def test_simple(self):
        """
        simple=1 strips FBTYPE and FREE periods.
        """
        self.publish("alice", RangeTests.body)
        response, content = await self.get("/calendar/alice.vfb?simple=1")
        periods, _ = periodsOf(content)
        self.assertEqual(periods, [
            ("20210105T070000Z", "20210105T080000Z", None),
            ("20210105T100000Z", "20210105T120000Z", None),
            ("20210105T150000Z", "20210105T160000Z", None),
        ])
        self.assertNotIn(b"FBTYPE", content)

    @inline
    async def test_badOptions(self):
        """
        Unknown fbtype or simple values, or both forms at once, are 400.
        """
        self.publish("alice", RangeTests.body)
        for query in ["fbtype=implicit", "simple=maybe", "fbtype=explicit&simple=1"]:
            response, _ = await self.get("/calendar/alice.vfb?" + query)
            self.assertEqual((query, response.code), (query, 400))

    @inline
    async def test_conditionalTransformed(self):
        """
        A transformed answer has its own ETag, and If-None-Match with it is
        answered 304.
        """
        self.publish("alice", RangeTests.body)
        response, _ = await self.get("/calendar/alice.vfb?simple=1")
        etag = response.headers.getRawHeaders(b"ETag")[0]
        self.assertNotEqual(etag, self.server.store.etag(("alice.vfb",)).encode())
        response, content = await self.get("/calendar/alice.vfb?simple=1", {b"If-None-Match": [etag]})
        self.assertEqual((response.code, content), (304, b""))


class HeadTests(LookupTestCase):
    """
    HEAD answers like GET without a body.
    """

    @inline
    async def test_head(self):
        """
        HEAD of the published file and of a transformed answer gives the
        GET's headers and no body.
        """
        self.publish("alice", RangeTests.body)
        for path in ["/calendar/alice.vfb", "/calendar/alice.ifb?simple=1&start=20210105&end=20210106",
                     "/calendar/group/team.vfb?start=20210105&period=P1D"]:
            get, body = await self.get(path)
            response = await self.http.head(self.server.url(path))
            self.assertEqual(response.code, 200)
            self.assertEqual(await response.content(), b"")
            for header in [b"ETag", b"Content-Type", b"Last-Modified"]:
                self.assertEqual(response.headers.getRawHeaders(header), get.headers.getRawHeaders(header))
            self.assertTrue(body)


class PrivacyTests(LookupTestCase):
    """
    Only busy times leave through /calendar/.
    """

    detailed = vfb(
        "ORGANIZER;CN=Alice;X-PHONE=+49-30-5550199:mailto:alice@example.com",
        "SUMMARY:Alice's week",
        "COMMENT:Dentist on Tuesday",
        "ATTENDEE:mailto:dentist@example.com",
        "LOCATION:Harley Street",
        "X-PRIVATE-NOTE:bring the x-rays",
        "FREEBUSY;FBTYPE=BUSY;X-SUMMARY=Root canal;X-LOCATION=Harley Street:20210105T070000Z/20210105T080000Z",
        "FREEBUSY:20210106T070000Z/20210106T080000Z",
    )

    @inline
    async def test_detailsStripped(self):
        """
        SUMMARY, COMMENT, ATTENDEE, LOCATION, X- properties and X-SUMMARY
        parameters are gone from what readers get, in every form; the
        periods remain.
        """
        self.publish("alice", self.detailed)
        for query in ["", "?fbtype=explicit", "?simple=1", "?start=20210101&end=20210201",
                      "?format=application/calendar%2Bjson"]:
            response, content = await self.get("/calendar/alice.vfb" + query)
            self.assertEqual(response.code, 200)
            for secret in [b"Root canal", b"Harley", b"Dentist", b"dentist@", b"x-rays", b"week", b"5550199"]:
                self.assertNotIn(secret, content, query)
        _, content = await self.get("/calendar/alice.vfb")
        periods, component = periodsOf(content)
        self.assertEqual([p[:2] for p in periods], [("20210105T070000Z", "20210105T080000Z"),
                                                    ("20210106T070000Z", "20210106T080000Z")])
        self.assertEqual(str(component["ORGANIZER"]), "mailto:alice@example.com")

    @inline
    async def test_ownerReadsWhatWasPublished(self):
        """
        The owner's GET under /pub/calendar returns the published details.
        """
        self.publish("alice", self.detailed)
        response = await self.http.get(self.server.url("/pub/calendar/alice.vfb"), headers=basicAuth("alice"))
        self.assertEqual(await response.content(), self.detailed)

    @inline
    async def test_eventDetailsNeverLeave(self):
        """
        A full calendar's summaries, locations and attendees reach no
        reader: not the lookup, not the page's JSON.
        """
        self.publish("alice", EVENTS, suffix=".ics")
        for path, headers in [
            (inYear("/calendar/alice.vfb?start=20261123&end=20261130"), {}),
            (inYear("/calendar/alice.vfb?start=20261123&end=20261130&format=application/calendar%2Bjson"), {}),
            (inYear("/calendar/?who=alice&week=2026-11-23"), {b"Accept": [b"application/json"]}),
            (inYear("/calendar/?who=alice&week=2026-11-23"), {b"Accept": [b"text/html"]}),
        ]:
            response, content = await self.get(path, headers)
            self.assertEqual(response.code, 200)
            expected = b"2026-11-24" if b"json" in path.encode() or headers else b"20261124T090000Z"
            self.assertIn(inYear(expected), content)
            for secret in [b"Secret", b"merger", b"Boardroom", b"ceo@", b"secret-meeting"]:
                self.assertNotIn(secret, content, path)


class LookupAuthTests(LookupTestCase):
    """
    --lookup-auth asks for a directory login.
    """

    serverArgs = ("--lookup-auth",)

    @inline
    async def test_loginRequired(self):
        """
        Anonymous and wrong logins are challenged; a directory user reads.
        """
        self.publish("alice", outlookVFB())
        response, _ = await self.get("/calendar/alice.vfb")
        self.assertEqual(response.code, 401)
        self.assertTrue(response.headers.getRawHeaders(b"WWW-Authenticate")[0].startswith(b"Basic "))
        response, _ = await self.get("/calendar/alice.vfb", basicAuth("carol", "wrong"))
        self.assertEqual(response.code, 401)
        response, content = await self.get("/calendar/alice.vfb", basicAuth("carol"))
        self.assertEqual((response.code, content), (200, publicAnswer(self.server.store, "alice")))
        response, _ = await self.get("/calendar/", basicAuth("carol"))
        self.assertEqual(response.code, 200)
        response, _ = await self.get("/calendar/")
        self.assertEqual(response.code, 401)


class TrustedNetworkTests(LookupTestCase):
    """
    --trusted-networks may still read anonymously.
    """

    serverArgs = ("--lookup-auth", "--trusted-networks", "10.0.0.0/8,127.0.0.0/8")

    @inline
    async def test_trustedAnonymous(self):
        """
        A loopback client in a trusted network reads without a login, but a
        wrong login is still refused.
        """
        self.publish("alice", outlookVFB())
        response, content = await self.get("/calendar/alice.vfb")
        self.assertEqual((response.code, content), (200, publicAnswer(self.server.store, "alice")))
        response, _ = await self.get("/calendar/alice.vfb", basicAuth("alice", "wrong"))
        self.assertEqual(response.code, 401)


class UntrustedNetworkTests(LookupTestCase):
    """
    A client outside the trusted networks must log in.
    """

    serverArgs = ("--lookup-auth", "--trusted-networks", "10.0.0.0/8")

    @inline
    async def test_untrustedChallenged(self):
        """
        Loopback is not in 10.0.0.0/8: challenged.
        """
        self.publish("alice", outlookVFB())
        response, _ = await self.get("/calendar/alice.vfb")
        self.assertEqual(response.code, 401)


class GroupTests(LookupTestCase):
    """
    /calendar/group/<cn>.vfb merges the members of an LDAP group.
    """

    def publishTeam(self):
        self.publish("alice", vfb("FREEBUSY:20210105T090000Z/20210105T110000Z",
                                  "FREEBUSY;FBTYPE=FREE:20210105T130000Z/20210105T140000Z"))
        self.publish("bsmith", vfb("FREEBUSY:20210105T100000Z/20210105T120000Z",
                                   "FREEBUSY;FBTYPE=BUSY-TENTATIVE:20210105T150000Z/20210105T160000Z",
                                   "FREEBUSY:20210105T070000Z/20210105T080000Z"))
        self.publish("carol", vfb("FREEBUSY:20210105T120000Z/20210105T123000Z",
                                  "FREEBUSY:20210105T153000Z/20210105T170000Z"))
        # dave is not in the team: his time must not appear.
        self.publish("dave", vfb("FREEBUSY:20210105T200000Z/20210105T210000Z"))

    @inline
    async def test_mergedOverlappingMembers(self):
        """
        Overlapping and adjacent periods of alice, bsmith and carol become
        one sorted list; FREE is dropped; where busy and tentative overlap,
        busy wins.
        """
        self.publishTeam()
        for path in ["/calendar/group/team.vfb", "/calendar/group/TEAM.ifb"]:
            response, content = await self.get(path + "?start=20210105&end=20210106")
            self.assertEqual((path, response.code), (path, 200))
            periods, component = periodsOf(content)
            self.assertEqual(periods, [
                ("20210105T070000Z", "20210105T080000Z", None),
                ("20210105T090000Z", "20210105T123000Z", None),
                ("20210105T150000Z", "20210105T153000Z", "BUSY-TENTATIVE"),
                ("20210105T153000Z", "20210105T170000Z", None),
            ])
            self.assertEqual(component.decoded("DTSTART").strftime("%Y%m%d"), "20210105")

    @inline
    async def test_groupFormats(self):
        """
        The group answers jCal and the simple form too.
        """
        self.publishTeam()
        response, content = await self.get(
            "/calendar/group/team.vfb?start=20210105&end=20210106&format=application/calendar%2Bjson")
        self.assertEqual(response.code, 200)
        props = json.loads(content)[2][0][1]
        self.assertEqual(len([p for p in props if p[0] == "freebusy"]), 4)
        _, content = await self.get("/calendar/group/team.vfb?start=20210105&end=20210106&simple=1")
        self.assertNotIn(b"FBTYPE", content)

    @inline
    async def test_unknownGroup(self):
        """
        An unknown group, a person's name, a malformed name and LDAP filter
        tricks are 404.
        """
        for path in ["/calendar/group/nobody.vfb", "/calendar/group/alice.vfb", "/calendar/group/team.txt",
                     "/calendar/group/team", "/calendar/group/*.vfb", "/calendar/group/t*.vfb",
                     "/calendar/group/team)(cn=*.vfb", "/calendar/group/..%2Fteam.vfb", "/calendar/group/.vfb"]:
            response, _ = await self.get(path)
            self.assertEqual((path, response.code), (path, 404))


class GroupLimitTests(LookupTestCase):
    """
    --group-max-members bounds the merge.
    """

    serverArgs = ("--group-max-members", "2", "--lookup-auth")

    @inline
    async def test_tooLarge(self):
        """
        A group with more members than allowed is refused with a clear
        reason to a reader who logged in.
        """
        response, content = await self.get("/calendar/group/team.vfb", headers=basicAuth("alice"))
        self.assertEqual(response.code, 403)
        self.assertIn(b"more than 2 members", content)
        self.assertIn(b"--group-max-members", content)


class DerivedTests(LookupTestCase):
    """
    A full calendar published as <uid>.ics is served as free/busy; the later
    of .vfb and .ics wins.
    """

    @inline
    async def test_publishCalendarByPut(self):
        """
        PUT of <uid>.ics is accepted (and one without VEVENT refused), and
        the lookup derives its busy time.
        """
        response = await self.http.put(self.server.url("/pub/calendar/alice.ics"), data=EVENTS,
                                       headers=basicAuth("alice"))
        await response.content()
        self.assertEqual(response.code, 201)
        response = await self.http.put(self.server.url("/pub/calendar/alice.ics"), data=vfb(),
                                       headers=basicAuth("alice"))
        self.assertEqual(response.code, 400)
        self.assertIn(b"VEVENT", await response.content())
        response, content = await self.get(inYear("/calendar/alice.vfb?start=20261124&end=20261125"))
        periods, _ = periodsOf(content)
        self.assertEqual(periods, [(inYear("20261124T090000Z"), inYear("20261124T103000Z"), None)])

    @inline
    async def test_latestWins(self):
        """
        Whichever of .vfb and .ics was published last is served.
        """
        self.publish("alice", outlookVFB(), mtime=1_700_000_000)
        self.publish("alice", EVENTS, suffix=".ics", mtime=1_700_000_100)
        _, content = await self.get(inYear("/calendar/alice.vfb?start=20261124&end=20261125"))
        self.assertIn(inYear(b"20261124T090000Z"), content)
        self.publish("alice", outlookVFB(), mtime=1_700_000_200)
        _, content = await self.get("/calendar/alice.vfb")
        self.assertEqual(content, publicAnswer(self.server.store, "alice"))

    @inline
    async def test_derivedOncePerVersion(self):
        """
        A calendar written without a publish (by another program, or an
        older version) is expanded on its first lookup and what was derived
        is kept beside it for the next; a new version is read afresh.
        """
        store = self.server.store
        self.publish("alice", EVENTS, suffix=".ics")
        self.assertIsNone(store.derived(("alice.ics",)))
        _, first = await self.get(inYear("/calendar/alice.vfb?start=20261124&end=20261125"))
        kept = store.derived(("alice.ics",))
        self.assertIn(store.etag(("alice.ics",)).encode("ascii")[1:-1], kept)
        _, second = await self.get(inYear("/calendar/alice.vfb?start=20261124&end=20261125"))
        self.assertEqual(first, second)
        self.assertEqual(store.derived(("alice.ics",)), kept)
        self.publish("alice", EVENTS.replace(b"T113000", b"T120000"), suffix=".ics")
        _, third = await self.get(inYear("/calendar/alice.vfb?start=20261124&end=20261125"))
        self.assertIn(inYear(b"20261124T090000Z/20261124T110000Z"), third)
        self.assertNotEqual(store.derived(("alice.ics",)), kept)

    @inline
    async def test_publishDerives(self):
        """
        A publish keeps the derived busy time beside the file, and lookups
        read it: they serve what was derived, not the file's events.
        """
        from fbtwist.calendar.busytime import Derivation

        response = await self.http.put(self.server.url("/pub/calendar/alice.ics"), data=EVENTS,
                                       headers=basicAuth("alice"))
        await response.content()
        self.assertEqual(response.code, 201)
        store = self.server.store
        kept = Derivation.fromBytes(store.derived(("alice.ics",)))
        self.assertEqual(kept.etag, store.etag(("alice.ics",)))
        self.assertEqual([(p.start.strftime("%Y%m%dT%H%M%SZ"), p.end.strftime("%Y%m%dT%H%M%SZ"))
                          for p in kept.periods], [(inYear("20261124T090000Z"), inYear("20261124T103000Z"))])
        # Lookups read what is kept (here shifted by an hour to tell).
        moved = kept._replace(periods=[p._replace(start=p.start.replace(hour=8)) for p in kept.periods])
        store.setDerived(("alice.ics",), moved.toBytes())
        # A server started afresh on the tree has only what is kept to go by.
        self.server = startMemoryServer(self, "--root", store.root.path)
        self.http = self.server.client()
        _, content = await self.get(inYear("/calendar/alice.vfb?start=20261124&end=20261125"))
        self.assertEqual(periodsOf(content)[0], [(inYear("20261124T080000Z"), inYear("20261124T103000Z"), None)])

    @inline
    async def test_beyondHorizon(self):
        """
        A range reaching past the derived horizon is answered for the part
        inside it, which DTSTART and DTEND give; a range wholly outside gets
        no periods and an empty window (DTSTART = DTEND: nothing is said
        about any time).
        """
        from datetime import date, timedelta

        self.publish("alice", EVENTS, suffix=".ics")
        today = date.today()
        end = today + timedelta(days=400)
        _, content = await self.get(f"/calendar/alice.vfb?start={today:%Y%m%d}&end={end:%Y%m%d}")
        _, component = periodsOf(content)
        self.assertEqual(component["DTSTART"].dt.date(), today)
        self.assertEqual(component["DTEND"].dt.date(), today + timedelta(days=366))
        start = today + timedelta(days=500)
        _, content = await self.get(f"/calendar/alice.vfb?start={start:%Y%m%d}&period=P7D")
        periods, component = periodsOf(content)
        self.assertEqual(periods, [])
        self.assertEqual(component["DTSTART"].dt, component["DTEND"].dt)


#: The calendar that cost 16 s of CPU per lookup: five events whose rule
#: never matches (there is no 30 February).
class LookupOptionsTests(unittest.SynchronousTestCase):
    """
    The lookup options on the command line and in the config file.
    """

    def test_commandLine(self):
        """
        --lookup-auth is a flag; networks, zone, group and window options
        are parsed; bad values are usage errors naming the option.
        """
        from datetime import timedelta
        from ipaddress import ip_network
        from zoneinfo import ZoneInfo

        from twisted.python.usage import UsageError

        from fbtwist.availability.workhours import parseWorkingHours
        from fbtwist.directory.ldapurl import parseLDAPURL
        from fbtwist.web.lookup import LookupSettings

        config = serviceOptions("--lookup-auth", "--trusted-networks", "10.0.0.0/8, ::1/128",
                                "--default-tz", "Europe/Berlin", "--group-max-members", "7",
                                "--lookup-window", "14").config
        settings = LookupSettings.fromConfig(config, parseLDAPURL("ldap://h/ou=people,dc=example,dc=com"))
        self.assertEqual(settings, LookupSettings(
            auth=True, trustedNetworks=(ip_network("10.0.0.0/8"), ip_network("::1/128")),
            defaultZone=ZoneInfo("Europe/Berlin"), groupBase="dc=example,dc=com", groupMaxMembers=7,
            window=timedelta(days=14),
            workingHours=parseWorkingHours("Mon-Fri 08:00-18:00", ZoneInfo("Europe/Berlin"))))
        self.assertFalse(serviceOptions().config.lookupAuth)
        for args, option in [(("--trusted-networks", "10.0.0.0/33"), "--trusted-networks"),
                             (("--default-tz", "Mars/Olympus"), "--default-tz"),
                             (("--group-max-members", "0"), "--group-max-members"),
                             (("--group-base", "not a dn"), "--group-base")]:
            with self.assertRaises(UsageError) as caught:
                serviceOptions(*args)
            self.assertIn(option, str(caught.exception))

    def test_configFile(self):
        """
        lookup-auth = yes in the config file switches authentication on.
        """
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("[freebusy]\nlookup-auth = yes\ngroup-base = ou=groups,dc=example,dc=com\n")
        config = serviceOptions("--config", path).config
        self.assertTrue(config.lookupAuth)
        self.assertEqual(config.groupBase, "ou=groups,dc=example,dc=com")
