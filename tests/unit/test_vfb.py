"""
Tests for L{fbtwist.calendar.vfb}, the fast free/busy reader: it reads what clients
write as C{icalendar} does, and whatever it is not sure of it leaves to
C{icalendar}, so the public functions of L{fbtwist.calendar.ical} behave as with
C{icalendar} alone.
"""

import os
import time
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from icalendar.prop.factory import TypesFactory
from twisted.trial import unittest

from bench.compare import calendarBody
from fbtwist.calendar import freebusy, ical, vfb
from fbtwist.calendar.freebusy import BUSY, BUSY_TENTATIVE, BUSY_UNAVAILABLE, FREE, FreeBusy, Period
from fbtwist.errors import InvalidCalendar
from tests.helpers import outlookVFB
from tests.processes import freeBusyFile


def fold(line: str) -> str:
    """
    A content line folded at 75 characters, as RFC 5545 clients write it.
    """
    parts = [line[:75]] + [" " + line[i:i + 74] for i in range(75, len(line), 74)]
    return "\r\n".join(parts)


def calendar(*lines: str, newline: str = "\r\n") -> bytes:
    return newline.join(fold(line) for line in lines).encode("utf-8") + newline.encode()


#: Outlook 16, as PROTOCOL.md quotes it.
OUTLOOK_16 = calendar(
    "BEGIN:VCALENDAR", "PRODID:-//Microsoft Corporation//Outlook 16.0 MIMEDIR//EN", "VERSION:2.0",
    "METHOD:PUBLISH", "BEGIN:VFREEBUSY", "ORGANIZER:someone@example.com", "DTSTAMP:20210103T235558Z",
    "DTSTART:20201227T230000Z", "DTEND:20210228T230000Z", "FREEBUSY:20210105T070000Z/20210105T073000Z",
    "FREEBUSY:20210106T070000Z/20210106T073000Z", "END:VFREEBUSY", "END:VCALENDAR",
)

#: What the other clients write, in the shapes their code produces (the
#: byte details of real captures are not known): Outlook 2000-2003 with
#: MAILTO, explicit FBTYPEs, URL and several periods per folded line;
#: Evolution (libical) with X-SUMMARY and X-LOCATION parameters, plain and
#: quoted; KOrganizer (KCalendarCore) with UID, CN and durations, LF
#: endings; Kolab's server with base64 X- parameters and its empty "dummy"
#: VFREEBUSY; fbtwist's own renderings.
CLIENT_FILES = {
    "outlook 16": OUTLOOK_16,
    "outlook 2002": calendar(
        "BEGIN:VCALENDAR", "PRODID:-//Microsoft Corporation//Outlook 10.0 MIMEDIR//EN", "VERSION:2.0",
        "METHOD:PUBLISH", "BEGIN:VFREEBUSY", "ORGANIZER:MAILTO:alice@example.com", "DTSTART:20030101T000000Z",
        "DTEND:20030301T000000Z", "URL:http://server.example.com/freebusy/alice.vfb",
        "FREEBUSY;FBTYPE=BUSY:20030106T090000Z/20030106T100000Z,20030107T090000Z/20030107T100000Z,"
        "20030108T090000Z/20030108T100000Z",
        "FREEBUSY;FBTYPE=BUSY-UNAVAILABLE:20030110T000000Z/20030111T000000Z",
        "FREEBUSY;FBTYPE=BUSY-TENTATIVE:20030108T130000Z/20030108T140000Z",
        "FREEBUSY;FBTYPE=FREE:20030109T130000Z/20030109T140000Z",
        "DTSTAMP:20030105T120000Z", "END:VFREEBUSY", "END:VCALENDAR",
    ),
    "evolution": calendar(
        "BEGIN:VCALENDAR", "PRODID:-//Ximian//NONSGML Evolution Calendar//EN", "VERSION:2.0", "METHOD:PUBLISH",
        "BEGIN:VFREEBUSY", "ORGANIZER:MAILTO:alice@example.com", "DTSTART:20210101T000000Z",
        "DTEND:20210301T000000Z",
        "FREEBUSY;FBTYPE=BUSY;X-SUMMARY=Team meeting;X-LOCATION=Room 1:20210105T090000Z/20210105T100000Z",
        'FREEBUSY;FBTYPE=BUSY;X-SUMMARY="Lunch: Bob, Carol";X-LOCATION="Café Zürich":'
        "20210105T120000Z/20210105T130000Z",
        "DTSTAMP:20210103T120000Z", "END:VFREEBUSY", "END:VCALENDAR",
    ),
    "korganizer": calendar(
        "BEGIN:VCALENDAR", "PRODID:-//K Desktop Environment//NONSGML libkcal 4.3//EN", "VERSION:2.0",
        "METHOD:PUBLISH", "BEGIN:VFREEBUSY", "DTSTAMP:20210103T120000Z",
        "ORGANIZER;CN=Alice Example:MAILTO:alice@example.com", "UID:libkcal-1234567890.123",
        "DTSTART:20210103T120000Z", "DTEND:20210202T120000Z", "FREEBUSY:20210105T090000Z/PT1H",
        "FREEBUSY:20210106T090000Z/PT1H30M", "FREEBUSY:20210108T000000Z/P1D", "END:VFREEBUSY", "END:VCALENDAR",
        newline="\n",
    ),
    "kolab": calendar(
        "BEGIN:VCALENDAR", "PRODID:-//kolab.org//NONSGML Kolab Server 2//EN", "METHOD:PUBLISH", "VERSION:2.0",
        "BEGIN:VFREEBUSY", 'ORGANIZER;CN="Example, Alice":MAILTO:alice@example.com', "DTSTAMP:20210103T120000Z",
        "URL:https://kolab.example.com/freebusy/alice@example.com.ifb", "DTSTART:20210103T000000Z",
        "DTEND:20210304T000000Z",
        "FREEBUSY;X-UID=MTIzNDU2Nzg5MA==;X-SUMMARY=TWVldGluZw==:20210105T090000Z/20210105T100000Z",
        "END:VFREEBUSY", "END:VCALENDAR",
    ),
    "kolab dummy": calendar(
        "BEGIN:VCALENDAR", "PRODID:-//kolab.org//NONSGML Kolab Server 2//EN", "METHOD:PUBLISH", "VERSION:2.0",
        "BEGIN:VFREEBUSY", "ORGANIZER:MAILTO:alice@example.com", "DTSTAMP:20210103T120000Z",
        "DTSTART:20210103T000000Z", "DTEND:20210304T000000Z", "END:VFREEBUSY", "END:VCALENDAR",
    ),
    "bench": calendarBody(),
    "outlookVFB": outlookVFB(),
    "outlookVFB LF": outlookVFB(newline=b"\n"),
    "outlookVFB utf-8": outlookVFB("jürgen@example.com"),
    "freeBusyFile": freeBusyFile("label", 45),
    "folded with BOM": (
        b"\xef\xbb\xbfBEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VFREEBUSY\r\n"
        b"FREEBUSY;FBTYPE=BUSY-TENTATIVE:20210106T070000Z/PT1H,20210107T070000Z/2021\r\n"
        b" 0107T080000Z\r\nEND:VFREEBUSY\r\nEND:VCALENDAR\r\n"
    ),
    "two components, dates": calendar(
        "BEGIN:VCALENDAR", "VERSION:2.0", "BEGIN:VFREEBUSY", "DTSTART:20210101", "DTEND:20210201T000000",
        "FREEBUSY;VALUE=PERIOD:20210105T090000Z/PT0S", "END:VFREEBUSY", "BEGIN:VFREEBUSY",
        "DTSTART:20201201T000000Z", "DTEND:20210301T000000Z", "ORGANIZER:bob@example.com",
        "FREEBUSY:20210105T090000Z/P1W", "END:VFREEBUSY", "END:VCALENDAR",
    ),
    "details": calendar(
        "BEGIN:VCALENDAR", "VERSION:2.0", "X-WR-CALNAME:Alice", "BEGIN:VFREEBUSY",
        "SUMMARY:Lunch\\, with Bob", "ATTENDEE;CN=Bob:mailto:bob@example.com", "COMMENT:\\n",
        "FREEBUSY:20210105T090000Z/20210105T100000Z", "END:VFREEBUSY", "END:VCALENDAR",
    ),
    "case": b"begin:vcalendar\nbegin:vfreebusy\nFreeBusy;fbtype=free:20210105T090000Z/PT1H\nEND:VFreeBusy\n"
            b"End:VCalendar\n",
}
for style in (freebusy.STYLE_PUBLISHED, freebusy.STYLE_EXPLICIT, freebusy.STYLE_SIMPLE):
    CLIENT_FILES["fbtwist " + style] = freebusy.renderICalendar(
        FreeBusy([Period(datetime(2021, 1, 5, 7, tzinfo=timezone.utc), datetime(2021, 1, 5, 8, tzinfo=timezone.utc)),
                  Period(datetime(2021, 1, 6, 7, tzinfo=timezone.utc), datetime(2021, 1, 6, 8, tzinfo=timezone.utc),
                         BUSY_TENTATIVE)],
                 datetime(2021, 1, 1, tzinfo=timezone.utc), datetime(2021, 2, 1, tzinfo=timezone.utc),
                 "mailto:" + "ä" * 80 + "@example.com"),
        "u1", datetime(2021, 1, 1, tzinfo=timezone.utc), style)

#: Files outside what the fast reader understands, each for one reason.
UNSURE_FILES = {
    "a VEVENT": OUTLOOK_16.replace(b"END:VCALENDAR", b"BEGIN:VEVENT\r\nDTSTART:20210105T070000Z\r\nEND:VEVENT\r\n"
                                   b"END:VCALENDAR"),
    "a zone": OUTLOOK_16.replace(b"DTSTART:", b"DTSTART;TZID=Europe/Berlin:"),
    "a VTIMEZONE": OUTLOOK_16.replace(b"BEGIN:VFREEBUSY", b"BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\n"
                                      b"END:VTIMEZONE\r\nBEGIN:VFREEBUSY"),
    "two DTSTARTs": OUTLOOK_16.replace(b"DTSTART:", b"DTSTART:20201201T000000Z\r\nDTSTART:"),
    "floating periods": OUTLOOK_16.replace(b"Z/20210105T073000Z", b"/20210105T073000"),
    "a floating start": OUTLOOK_16.replace(b"20210105T070000Z/", b"20210105T070000/"),
    "no VFREEBUSY": OUTLOOK_16.replace(b"BEGIN:VFREEBUSY", b"X-A:1").replace(b"END:VFREEBUSY", b"X-B:2"),
    "a lower-case z": OUTLOOK_16.replace(b"073000Z", b"073000z"),
    "hours without T": OUTLOOK_16.replace(b"/20210105T073000Z", b"/P1H"),
    "a duration past the year 9999": OUTLOOK_16.replace(b"/20210105T073000Z", b"/P999999W"),
    "a negative duration": OUTLOOK_16.replace(b"/20210105T073000Z", b"/-PT1H"),
    "a CR alone": OUTLOOK_16.replace(b"\r\n", b"\r", 1),
    "a comment after the end": OUTLOOK_16 + b"X-COMMENT:bye\r\n",
    "not UTF-8": outlookVFB("jürgen@example.com").replace("ü".encode(), b"\xfc"),
    "a typed property": OUTLOOK_16.replace(b"METHOD", b"SEQUENCE:1\r\nMETHOD"),
    "an escape in an address": OUTLOOK_16.replace(b"ORGANIZER:some", b"ORGANIZER:so\\nme"),
    "a VALUE": OUTLOOK_16.replace(b"FREEBUSY:", b"FREEBUSY;VALUE=TEXT:", 1),
    "an impossible date": OUTLOOK_16.replace(b"20210105T070000Z", b"20210231T070000Z"),
    "hour 24": OUTLOOK_16.replace(b"20210105T070000Z", b"20210105T240000Z"),
    "a period ending before it starts": OUTLOOK_16.replace(b"20210105T073000Z", b"20210105T063000Z"),
    "garbage": b"hello world",
    "empty": b"",
}


def outcome(function, *args):
    """
    What a call gives: C{("ok", result)} or the exception's type and text.
    """
    try:
        return "ok", function(*args)
    except InvalidCalendar as e:
        return "InvalidCalendar", e.reason
    except Exception as e:
        return type(e).__name__, str(e)


def withICalendar(data: bytes):
    """
    L{ical.readFreeBusy} as it is with icalendar alone.
    """
    return ical.freeBusyOf(ical.validateFreeBusy(data))


class ICalendarTypesTests(unittest.SynchronousTestCase):
    """
    The value types the fast reader assumes are icalendar's.
    """

    def test_types(self):
        """
        L{vfb.ICALENDAR_TYPES} is icalendar's table of default value types.
        """
        self.assertEqual(vfb.ICALENDAR_TYPES, {k.upper(): v for k, v in TypesFactory.types_map.items()})

    def test_fromisoformat(self):
        """
        C{datetime.fromisoformat}, which reads times here, refuses what
        icalendar refuses and the pattern lets through (hour 24, day 31
        of February, year 0).
        """
        for text in ("20210105T240000Z", "20210231T070000Z", "00000105T070000Z", "20210105T290000"):
            self.assertRaises(ValueError, datetime.fromisoformat, text)


class ClientFileTests(unittest.SynchronousTestCase):
    """
    What real clients write is read by the fast reader, to the same result
    as icalendar's.
    """

    def test_clients(self):
        """
        Every client's file is read by the fast reader, as by icalendar.
        """
        for name, data in CLIENT_FILES.items():
            fast = vfb.read(data)
            self.assertIsNotNone(fast, name)
            self.assertEqual(fast, withICalendar(data), name)
            self.assertEqual(ical.readFreeBusy(data), fast, name)
            self.assertTrue(vfb.readable(data), name)
            ical.validateUpload("alice.vfb", data)

    def test_readableOrder(self):
        """
        The check a publish makes (L{vfb.readable}, which compares a
        period's ends as text) takes a period exactly when the reader does:
        empty and one-second periods, ends a second, a day, a month or a
        year early, impossible and leap days.
        """
        periods = [
            "20210105T070000Z/20210105T070000Z", "20210105T070000Z/20210105T070001Z",
            "20210105T070001Z/20210105T070000Z", "20210105T070000Z/20210104T080000Z",
            "20210201T000000Z/20210131T235959Z", "20210101T000000Z/20201231T235959Z",
            "20200229T120000Z/20200301T000000Z", "20210229T120000Z/20210301T000000Z",
            "20210105T235959Z/20210106T000000Z", "20210105T070000Z/20210105T076000Z",
            "20210105T070000Z/PT0S", "20210105T070000Z/P1W", "99991231T000000Z/P1D",
            "20210105T070000Z/20210105T070000Z/PT1H",
        ]
        for period in periods:
            data = OUTLOOK_16.replace(b"20210105T070000Z/20210105T073000Z", period.encode("ascii"))
            self.assertEqual(vfb.readable(data), vfb.read(data) is not None, period)
            self.assertEqual(outcome(ical.validateUpload, "a.vfb", data),
                             outcome(lambda d: ical.validateFreeBusy(d) and None, data), period)

    def test_icalendarNotAsked(self):
        """
        Publishing and reading a client's file do not parse it with
        icalendar.
        """
        def refuse(data):
            raise AssertionError("icalendar asked")

        self.patch(ical, "validateFreeBusy", refuse)
        for name, data in CLIENT_FILES.items():
            ical.validateUpload(name + ".vfb", data)
            ical.readFreeBusy(data)
        self.assertRaises(AssertionError, ical.validateUpload, "a.vfb", UNSURE_FILES["a zone"])

    def test_lineEnds(self):
        """
        Lines end with CRLF, a bare LF or both mixed; a fold (also after a
        CRLF, also after blank lines) joins a line to the one before; blank
        lines are dropped; a CR alone is not understood here.
        """
        self.assertEqual(vfb._lines(b"A:1\r\nB:2\r\n"), ["A:1", "B:2"])
        self.assertEqual(vfb._lines(b"A:1\nB:2"), ["A:1", "B:2"])
        self.assertEqual(vfb._lines(b"A:1\r\nB:2\nC:3\r\n"), ["A:1", "B:2", "C:3"])
        self.assertEqual(vfb._lines(b"A:1\r\n 2\r\n\r\n\t3\r\nB:2\r\n\r\n"), ["A:123", "B:2"])
        self.assertEqual(vfb._lines(b"\xef\xbb\xbfA:1\n \n\nB:2\n"), ["A:1", "B:2"])
        for alone in (b"A:1\rB:2\r\n", b"A:1\r\r\nB:2\r\n", b"A:1\r\nB:2\r"):
            self.assertRaises(vfb._NotSure, vfb._lines, alone)

    def test_manyBlankLines(self):
        """
        A megabyte of blank lines before a fold is read in linear time (a
        quadratic unfolding would take hours).
        """
        data = OUTLOOK_16.replace(b"METHOD:PUBLISH\r\n", b"METHOD:PUBLISH" + b"\r\n" * 500000).replace(
            b"ORGANIZER:some", b"ORGANIZER:some\r\n ")
        started = time.monotonic()
        self.assertEqual(vfb.read(data), vfb.read(OUTLOOK_16))
        self.assertLess(time.monotonic() - started, 5)

    def test_outlook(self):
        """
        Outlook's file gives its periods, window and owner, and is clean.
        """
        fb, clean = vfb.read(OUTLOOK_16)
        utc = timezone.utc
        self.assertTrue(clean)
        self.assertEqual(fb, FreeBusy(
            [Period(datetime(2021, 1, 5, 7, tzinfo=utc), datetime(2021, 1, 5, 7, 30, tzinfo=utc), BUSY),
             Period(datetime(2021, 1, 6, 7, tzinfo=utc), datetime(2021, 1, 6, 7, 30, tzinfo=utc), BUSY)],
            datetime(2020, 12, 27, 23, tzinfo=utc), datetime(2021, 2, 28, 23, tzinfo=utc), "someone@example.com"))

    def test_types(self):
        """
        FBTYPEs are read, unknown ones as BUSY; details make a file unclean.
        """
        fb, clean = vfb.read(CLIENT_FILES["outlook 2002"])
        self.assertEqual([p.fbtype for p in fb.periods], [BUSY, BUSY, BUSY, BUSY_TENTATIVE, FREE, BUSY_UNAVAILABLE])
        self.assertTrue(clean)
        self.assertFalse(vfb.read(CLIENT_FILES["evolution"])[1])
        self.assertFalse(vfb.read(CLIENT_FILES["kolab"])[1])
        self.assertFalse(vfb.read(CLIENT_FILES["details"])[1])
        odd = OUTLOOK_16.replace(b"FREEBUSY:", b"FREEBUSY;FBTYPE=X-OUT-OF-OFFICE:")
        self.assertEqual({p.fbtype for p in vfb.read(odd)[0].periods}, {BUSY})

    def test_unsure(self):
        """
        Files outside the fast reader's subset are left to icalendar, which
        reads or refuses them as before.
        """
        for name, data in UNSURE_FILES.items():
            self.assertIsNone(vfb.read(data), name)
            self.assertFalse(vfb.readable(data), name)
            self.assertEqual(outcome(ical.readFreeBusy, data), outcome(withICalendar, data), name)
            self.assertEqual(outcome(ical.validateUpload, "a.vfb", data),
                             outcome(lambda d: ical.validateFreeBusy(d) and None, data) if data else ("ok", None),
                             name)


# --- property tests against icalendar ---

_validMoments = st.datetimes(datetime(1990, 1, 1), datetime(2040, 1, 1))


@st.composite
def oddMoments(draw):
    """
    A date-time text that is often not one.
    """
    year = draw(st.sampled_from(["2021", "2020", "0000", "9999", "1970"]))
    month = draw(st.sampled_from(["01", "02", "12", "13", "00"]))
    day = draw(st.sampled_from(["05", "28", "29", "31", "00"]))
    hour = draw(st.sampled_from(["07", "00", "23", "24", "29"]))
    minute = draw(st.sampled_from(["00", "30", "59", "60"]))
    second = draw(st.sampled_from(["00", "59", "60"]))
    zone = draw(st.sampled_from(["Z", "", "z", "+01"]))
    text = f"{year}{month}{day}T{hour}{minute}{second}{zone}"
    return draw(st.sampled_from([text, f"{year}{month}{day}", text.lower(), text[:-1], "2021-01-05T07:00:00Z"]))


def rarely(usual, odd, one=20):
    """
    Mostly C{usual}, about once in C{one} draws C{odd}.
    """
    return st.integers(1, one).flatmap(lambda n: odd if n == 1 else usual)


def moments(forms=("utc",)):
    """
    Mostly valid date-time texts of the given forms (utc, floating, date),
    sometimes odd ones.
    """
    formats = {"utc": "%Y%m%dT%H%M%SZ", "floating": "%Y%m%dT%H%M%S", "date": "%Y%m%d"}
    valid = st.builds(lambda moment, form: moment.strftime(formats[form]), _validMoments, st.sampled_from(forms))
    return rarely(valid, oddMoments())


durations = st.one_of(
    st.builds(lambda *parts: "P" + "".join(parts),
              st.sampled_from(["", "1W", "2D"]),
              st.sampled_from(["", "T", "T1H", "T30M", "T1H30M", "T45S", "T999999H"])),
    st.sampled_from(["-PT1H", "+PT1H", "pt1h", "PT1h", "P", "PT", "P1DT", "PT\u0661H", "P9999999W", "PT1H ",
                     "P1H", "P1M", "PT1H1H", "P1D1W", "P1.5D"]),
)


def _period(start, minutes, byDuration):
    end = f"PT{minutes}M" if byDuration else (start + timedelta(minutes=minutes)).strftime("%Y%m%dT%H%M%SZ")
    return start.strftime("%Y%m%dT%H%M%SZ") + "/" + end


_validPeriods = st.builds(_period, _validMoments, st.integers(0, 600), st.booleans())
_oddPeriods = st.builds(lambda start, end: f"{start}/{end}",
                        st.one_of(moments(), oddMoments(), moments(("floating", "date"))),
                        st.one_of(moments(), oddMoments(), durations, moments(("floating", "date"))))
periods = rarely(_validPeriods, _oddPeriods, one=10)
fbtypes = rarely(
    st.sampled_from(["", "", ";FBTYPE=BUSY", ";FBTYPE=FREE", ";FBTYPE=BUSY-TENTATIVE", ";FBTYPE=BUSY-UNAVAILABLE",
                     ";X-SUMMARY=Team meeting;X-LOCATION=Room 1", ';X-SUMMARY="Lunch: Bob, Carol"']),
    st.sampled_from([";fbtype=busy-tentative", ';FBTYPE="FREE"', ";FBTYPE=X-OOF", ";FBTYPE=", ";FBTYPE= FREE",
                     ";FBTYPE=FREE,BUSY", ";FBTYPE=FREE;FBTYPE=BUSY", ";VALUE=PERIOD", ";VALUE=TEXT",
                     ";X-UID=YWJj==", ";TZID=Europe/Berlin", ";CN=x^'y", ';X-A="\\"', ";FBTYPE=^'FREE^'"]),
    one=10,
)
freeBusyLines = st.builds(lambda params, values: f"FREEBUSY{params}:{','.join(values)}",
                          fbtypes, st.lists(periods, min_size=1, max_size=3))
#: Lines as clients write them.
usualLines = st.one_of(
    st.builds(lambda name, value: f"{name}:{value}", st.sampled_from(["DTSTART", "DTEND", "DTSTAMP"]),
              moments(("utc", "utc", "floating", "date"))),
    st.sampled_from([
        "ORGANIZER:someone@example.com", "ORGANIZER:MAILTO:alice@example.com", "ORGANIZER;CN=Alice:MAILTO:a@b",
        'ORGANIZER;CN="Doe, J":j@example.com', "ORGANIZER:jürgen@example.com", "UID:abc",
        "URL:http://example.com/a.vfb", "SUMMARY:x", "COMMENT:a\\nb", "X-FOO:bar",
        "ATTENDEE:mailto:bob@example.com",
    ]),
)
#: Lines that clients rarely or never write.
oddLines = st.sampled_from([
    "ORGANIZER:", "ORGANIZER:a\\,b", "ORGANIZER:a\\nb", "URL:", "URL:a\\Nb", "X-FOO;VALUE=INTEGER:x",
    "SEQUENCE:1", "SEQUENCE:x", "CATEGORIES:a,b", "GEO:1;2", "RSVP:TRUE", "DURATION:PT1H",
    "DTSTART;TZID=Europe/Berlin:20210105T070000", "DTSTART;VALUE=DATE:20210105", "DTSTART:PT1H", "X-COMMENT:x",
    "NAME:Alice", "IMAGE:data", "BEGIN:VEVENT", "END:VEVENT", "BEGIN:VALARM", "END:VFREEBUSY", "BEGIN:VFREEBUSY",
    "END:VCALENDAR", "BEGIN:VCALENDAR", "begin:vfreebusy", "FOO", "FOO;X=1", ":value", ";X=1:value", "X-A;B=:c",
    "X-A; B=c:d", "X-A;B=c :d", 'X-A;B="c"d:e', "X-A;B=c\\:d:e", "X B:c", "X-ü:1", "END;X=1:VFREEBUSY",
    "BEGIN:VFREEBUſY", "FREEBUSY:", "FREEBUSY:20210105T070000Z/20210105T080000Z,", "DTSTART;VALUE=TEXT:x",
    "DTEND;VALUE=PERIOD:20210105T070000Z/PT1H", "DTSTART;VALUE=TIME:070000", "ORGANIZER;VALUE=INTEGER:1",
])
components = st.builds(
    lambda head, body: ["BEGIN:VFREEBUSY"] + head + body + ["END:VFREEBUSY"],
    st.lists(usualLines, max_size=4),
    st.lists(st.one_of(freeBusyLines, freeBusyLines, usualLines), max_size=5),
)
calendarLines = st.builds(
    lambda head, parts: ["BEGIN:VCALENDAR"] + head + [line for part in parts for line in part] + ["END:VCALENDAR"],
    st.lists(st.sampled_from(["VERSION:2.0", "PRODID:-//Microsoft Corporation//Outlook 16.0 MIMEDIR//EN",
                              "METHOD:PUBLISH", "CALSCALE:GREGORIAN", "X-WR-CALNAME:Alice", "VERSION;X=1:2.0"]),
             max_size=3),
    rarely(st.lists(components, min_size=1, max_size=2), st.just([]), one=30),
)
_alphabet = st.sampled_from(list(":;,=\"\\ \t\r\nZTP/-0123456789aA") + ["ü", "\x00", "\x7f", "ſ", "\u2028"])


@st.composite
def mutated(draw):
    """
    An Outlook-like file, often mutated: lines deleted, duplicated,
    swapped, re-cased, garbled or inserted; folds, newlines, a byte order
    mark, stray bytes.
    """
    lines = draw(calendarLines)
    for _ in range(draw(rarely(st.just(0), st.integers(1, 3), one=2))):
        index = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["delete", "duplicate", "swap", "lower", "upper", "insert", "garble"]))
        if action == "delete":
            del lines[index]
        elif action == "duplicate":
            lines.insert(index, lines[index])
        elif action == "swap":
            other = draw(st.integers(0, len(lines) - 1))
            lines[index], lines[other] = lines[other], lines[index]
        elif action == "lower":
            lines[index] = lines[index].lower()
        elif action == "upper":
            lines[index] = lines[index].upper()
        elif action == "insert":
            lines.insert(index, draw(st.one_of(oddLines, usualLines, freeBusyLines, st.sampled_from(["", " x"]))))
        else:
            position = draw(st.integers(0, len(lines[index])))
            lines[index] = lines[index][:position] + draw(_alphabet) + lines[index][position + 1:]
        if not lines:
            break
    newline = draw(st.sampled_from(["\r\n", "\n"]))
    text = ""
    for line in lines:
        if line and draw(st.integers(1, 6)) == 1:
            position = draw(st.integers(0, len(line)))
            fold = draw(st.sampled_from(["\r\n ", "\n ", "\r\n\t", "\n\n ", "\r\n\r\n "]))
            line = line[:position] + fold + line[position:]
        text += line + draw(rarely(st.just(newline), st.sampled_from(["\r", "\n\n", "\r\r\n", "\n\r"]), one=30))
    data = text.encode("utf-8")
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    if data and draw(st.integers(1, 10)) == 1:
        position = draw(st.integers(0, len(data) - 1))
        data = data[:position] + bytes([draw(st.integers(0, 255))]) + data[position + 1:]
    return data


PROPERTIES = settings(max_examples=int(os.environ.get("FBTWIST_VFB_EXAMPLES", "400")), deadline=None,
                      database=None, suppress_health_check=list(HealthCheck))


class CheckedLinesTests(unittest.SynchronousTestCase):
    """
    A publish's check remembers the period lines it passed, and only those,
    in a bounded set.
    """

    def setUp(self):
        self.patch(vfb, "_checkedLines", set())
        self.checked = []
        check = vfb._checkPeriod
        self.patch(vfb, "_checkPeriod", lambda *groups: self.checked.append(groups) or check(*groups))

    def test_checkedOnce(self):
        """
        A period line checked before is not checked again, and the file is
        still readable.
        """
        self.assertTrue(vfb.readable(OUTLOOK_16))
        self.assertEqual(len(self.checked), 2)
        self.assertTrue(vfb.readable(OUTLOOK_16))
        self.assertEqual(len(self.checked), 2)
        another = OUTLOOK_16.replace(b"20210105T070000Z/20210105T073000Z", b"20210107T070000Z/PT1H")
        self.assertTrue(vfb.readable(another))
        self.assertEqual(len(self.checked), 3)

    def test_refusedNotRemembered(self):
        """
        A line that fails the check (an impossible day) is refused every
        time and never remembered.
        """
        data = OUTLOOK_16.replace(b"20210106T070000Z/20210106T073000Z", b"20210230T070000Z/20210230T073000Z")
        self.assertFalse(vfb.readable(data))
        self.assertFalse(vfb.readable(data))
        self.assertEqual(vfb._checkedLines, {"FREEBUSY:20210105T070000Z/20210105T073000Z"})
        self.assertEqual(len(self.checked), 3)

    def test_bounded(self):
        """
        The set never holds more than its bound: full, it starts again.
        """
        self.patch(vfb, "_CHECKED_LINES", 3)
        for day in range(10, 20):
            period = f"202101{day}T070000Z/PT1H".encode("ascii")
            self.assertTrue(vfb.readable(OUTLOOK_16.replace(b"20210105T070000Z/20210105T073000Z", period)))
            self.assertLessEqual(len(vfb._checkedLines), 3)
        self.assertIn("FREEBUSY:20210119T070000Z/PT1H", vfb._checkedLines)


class AgreementTests(unittest.SynchronousTestCase):
    """
    On generated and mutated files, the fast reader never disagrees with
    icalendar, and the public functions behave as with icalendar alone.
    """

    @PROPERTIES
    @given(mutated())
    def test_agrees(self, data):
        """
        Whenever the fast reader accepts a file, icalendar accepts it and
        reads the same; readFreeBusy and validateUpload give what they give
        with icalendar alone (the same result, or the same refusal), and
        refuse only with InvalidCalendar; the check a publish makes
        (readable) takes exactly the files the fast reader reads.
        """
        fast = vfb.read(data)
        self.assertEqual(vfb.readable(data), fast is not None)
        slow = outcome(withICalendar, data)
        if fast is not None:
            self.assertEqual(slow, ("ok", fast))
        self.assertEqual(outcome(ical.readFreeBusy, data), slow)
        self.assertIn(slow[0], ("ok", "InvalidCalendar"), slow)  # nothing else, which would be a 500
        expected = outcome(ical.validateFreeBusy, data)
        self.assertEqual(outcome(ical.validateUpload, "alice.vfb", data),
                         (("ok", None) if expected[0] == "ok" or not data else expected))

    @PROPERTIES
    @given(calendarLines)
    def test_wellFormed(self, lines):
        """
        Unmutated generated files (valid or not in their values) agree too.
        """
        data = ("\r\n".join(lines) + "\r\n").encode("utf-8")
        fast = vfb.read(data)
        self.assertEqual(vfb.readable(data), fast is not None)
        if fast is not None:
            self.assertEqual(outcome(withICalendar, data), ("ok", fast))
        self.assertEqual(outcome(ical.readFreeBusy, data), outcome(withICalendar, data))
