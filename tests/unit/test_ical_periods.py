"""
The pure free/busy logic (L{fbtwist.calendar.freebusy}) and reading published files
down to what readers may learn (L{fbtwist.calendar.ical.readFreeBusy}).
"""

import json
from datetime import datetime, timedelta, timezone

from twisted.trial import unittest

from fbtwist.calendar import freebusy, ical
from fbtwist.calendar.freebusy import (
    BUSY,
    BUSY_TENTATIVE,
    BUSY_UNAVAILABLE,
    FREE,
    FreeBusy,
    Period,
    RangeError,
    clipPeriods,
    mergePeriods,
    normaliseFBType,
    parseRange,
)
from tests.helpers import outlookVFB


def t(hour, minute=0, day=5):
    return datetime(2021, 1, day, hour, minute, tzinfo=timezone.utc)


class FBTypeTests(unittest.SynchronousTestCase):
    """
    FBTYPE values as readers must take them.
    """

    def test_normalise(self):
        """
        Absent and unknown values are BUSY; known ones in any case are kept.
        """
        self.assertEqual(normaliseFBType(None), BUSY)
        self.assertEqual(normaliseFBType("x-out-of-office"), BUSY)
        self.assertEqual(normaliseFBType("busy-tentative"), BUSY_TENTATIVE)
        self.assertEqual(normaliseFBType("FREE"), FREE)


class MergeTests(unittest.SynchronousTestCase):
    """
    Unioning periods.
    """

    def test_overlappingAndAdjacent(self):
        """
        Overlapping and touching periods of one type become one, sorted.
        """
        merged = mergePeriods([Period(t(10), t(12)), Period(t(7), t(8)), Period(t(11), t(13)), Period(t(8), t(9))])
        self.assertEqual(merged, [Period(t(7), t(9), BUSY), Period(t(10), t(13), BUSY)])

    def test_strongestWins(self):
        """
        Where types overlap the strongest holds the time; FREE is dropped
        unless asked for.
        """
        periods = [Period(t(8), t(12), BUSY_TENTATIVE), Period(t(9), t(10), BUSY_UNAVAILABLE),
                   Period(t(9, 30), t(11), BUSY), Period(t(13), t(14), FREE)]
        self.assertEqual(mergePeriods(periods), [
            Period(t(8), t(9), BUSY_TENTATIVE),
            Period(t(9), t(10), BUSY_UNAVAILABLE),
            Period(t(10), t(11), BUSY),
            Period(t(11), t(12), BUSY_TENTATIVE),
        ])
        self.assertEqual(mergePeriods(periods, keepFree=True)[-1], Period(t(13), t(14), FREE))

    def test_emptyAndReversed(self):
        """
        Empty and reversed periods vanish.
        """
        self.assertEqual(mergePeriods([Period(t(9), t(9)), Period(t(10), t(9))]), [])


class ClipTests(unittest.SynchronousTestCase):
    """
    Cutting periods to a range.
    """

    def test_bothEdges(self):
        """
        Periods crossing either edge are cut there; one covering the whole
        range becomes the range; outside ones go.
        """
        periods = [Period(t(6), t(8)), Period(t(9), t(10)), Period(t(11), t(13)), Period(t(14), t(15))]
        self.assertEqual(clipPeriods(periods, t(7), t(12)),
                         [Period(t(7), t(8)), Period(t(9), t(10)), Period(t(11), t(12))])
        self.assertEqual(clipPeriods([Period(t(0), t(23))], t(7), t(12)), [Period(t(7), t(12))])

    def test_touchingEmptyAndReversed(self):
        """
        Periods only touching the range, empty or reversed periods and a
        reversed range give nothing; periods inside are kept as they are.
        """
        inside = Period(t(8), t(9), BUSY_TENTATIVE)
        periods = [Period(t(5), t(7)), Period(t(12), t(13)), Period(t(10), t(10)), Period(t(11), t(9)), inside]
        self.assertEqual(clipPeriods(periods, t(7), t(12)), [inside])
        self.assertIs(clipPeriods(periods, t(7), t(12))[0], inside)
        self.assertEqual(clipPeriods([Period(t(0), t(23))], t(12), t(7)), [])


class RangeTests(unittest.SynchronousTestCase):
    """
    CalConnect start/end/period.
    """

    now = datetime(2026, 11, 24, 15, 30, tzinfo=timezone.utc)
    window = timedelta(days=42)

    def test_none(self):
        """
        No parameter, no range.
        """
        self.assertIsNone(parseRange(None, None, None, self.now, self.window))

    def test_defaults(self):
        """
        A missing start is today 00:00 UTC; a missing end is start plus the
        window.
        """
        r = parseRange(None, None, "P1W", self.now, self.window)
        self.assertEqual(r, (datetime(2026, 11, 24, tzinfo=timezone.utc), datetime(2026, 12, 1, tzinfo=timezone.utc)))
        r = parseRange("20261201T120000Z", None, None, self.now, self.window)
        self.assertEqual(r.end - r.start, self.window)

    def test_offsetsConvertedToUTC(self):
        """
        An explicit offset is converted to UTC.
        """
        r = parseRange("2026-11-24T10:00:00+01:00", "20261124T120000Z", None, self.now, self.window)
        self.assertEqual(r.start, datetime(2026, 11, 24, 9, tzinfo=timezone.utc))

    def test_errors(self):
        """
        Floating, malformed, reversed, too long, zero durations are refused
        with a reason.
        """
        for args in [("20261124T100000", None, None), ("x", None, None), (None, "20261101", None),
                     ("20260101", "20300101", None), ("20260101", None, "P0D"), ("20260101", None, "P"),
                     ("20260101", None, "P99999999D"), ("99991231", None, "P7D")]:
            with self.assertRaises(RangeError, msg=str(args)):
                parseRange(*args, now=self.now, window=self.window)


class RenderTests(unittest.SynchronousTestCase):
    """
    Rendering one VFREEBUSY as iCalendar and jCal.
    """

    fb = FreeBusy([Period(t(7), t(8)), Period(t(9), t(10), BUSY_TENTATIVE), Period(t(11), t(12), FREE)],
                  t(0), t(0, day=6), "mailto:alice@example.com")
    stamp = datetime(2021, 1, 1, tzinfo=timezone.utc)

    def test_iCalendarParses(self):
        """
        The text is CRLF, parses as one VFREEBUSY with UID and DTSTAMP, and
        long lines are folded.
        """
        long = FreeBusy([], t(0), t(1), "mailto:" + "ä" * 80 + "@example.com")
        for fb in (self.fb, long):
            data = freebusy.renderICalendar(fb, "u1", self.stamp)
            self.assertTrue(all(len(line) <= 75 for line in data.split(b"\r\n")))
            self.assertNotIn(b"\n", data.replace(b"\r\n", b""))
            parsed, clean = ical.readFreeBusy(data)
            self.assertTrue(clean)
            self.assertEqual(parsed.organizer, fb.organizer)
            self.assertEqual(parsed.periods, sorted(fb.periods))

    def test_styles(self):
        """
        Published: FBTYPE only where not BUSY; explicit: on every period;
        simple: none, and no FREE.
        """
        def lines(style):
            data = freebusy.renderICalendar(self.fb, "u1", self.stamp, style)
            return [line for line in data.split(b"\r\n") if line.startswith(b"FREEBUSY")]

        self.assertEqual(lines(freebusy.STYLE_PUBLISHED), [
            b"FREEBUSY:20210105T070000Z/20210105T080000Z",
            b"FREEBUSY;FBTYPE=BUSY-TENTATIVE:20210105T090000Z/20210105T100000Z",
            b"FREEBUSY;FBTYPE=FREE:20210105T110000Z/20210105T120000Z",
        ])
        self.assertEqual(lines(freebusy.STYLE_EXPLICIT)[0], b"FREEBUSY;FBTYPE=BUSY:20210105T070000Z/20210105T080000Z")
        self.assertEqual(lines(freebusy.STYLE_SIMPLE), [
            b"FREEBUSY:20210105T070000Z/20210105T080000Z", b"FREEBUSY:20210105T090000Z/20210105T100000Z",
        ])

    def test_jCal(self):
        """
        jCal holds the same properties with RFC 7265 value forms.
        """
        data = json.loads(freebusy.renderJCal(self.fb, "u1", self.stamp))
        self.assertEqual(data[0], "vcalendar")
        props = data[2][0][1]
        self.assertIn(["dtstart", {}, "date-time", "2021-01-05T00:00:00Z"], props)
        self.assertIn(["freebusy", {"fbtype": "BUSY-TENTATIVE"}, "period",
                       ["2021-01-05T09:00:00Z", "2021-01-05T10:00:00Z"]], props)

    def test_sameInstantAnyZone(self):
        """
        A moment is written in UTC whatever zone it was given in, also when
        the same instant was written before in another zone (and after).
        """
        from zoneinfo import ZoneInfo

        berlin = ZoneInfo("Europe/Berlin")
        inBerlin = FreeBusy([Period(datetime(2021, 1, 5, 8, tzinfo=berlin), datetime(2021, 1, 5, 9, 13, 7,
                                                                                      tzinfo=berlin))])
        inUTC = FreeBusy([Period(t(7), t(8) + timedelta(minutes=13, seconds=7))])
        first = freebusy.renderICalendar(inUTC, "u1", self.stamp)
        self.assertIn(b"FREEBUSY:20210105T070000Z/20210105T081307Z\r\n", first)
        self.assertEqual(freebusy.renderICalendar(inBerlin, "u1", self.stamp), first)
        self.assertEqual(freebusy.renderICalendar(inUTC, "u1", self.stamp), first)

    def test_periodsRenderedOnce(self):
        """
        Answers holding the same periods (replies to different attendees)
        render those periods once, each style apart, long lines folded.
        """
        longType = "X-" + "AWAY" * 20
        fb = FreeBusy([Period(t(7), t(8)), Period(t(9), t(10), longType)], t(0), t(0, day=6))
        freebusy._periodLines.cache_clear()
        first = freebusy.renderICalendar(fb, "u1", self.stamp, freebusy.STYLE_EXPLICIT, "REPLY", "a@example.com")
        second = freebusy.renderICalendar(fb, "u2", self.stamp, freebusy.STYLE_EXPLICIT, "REPLY", "b@example.com")
        published = freebusy.renderICalendar(fb, "u1", self.stamp)
        self.assertEqual(freebusy._periodLines.cache_info().hits, 1)
        self.assertIn(b"\r\nATTENDEE:mailto:b@example.com\r\n", second)
        self.assertEqual(first.replace(b"u1", b"u2").replace(b"a@example", b"b@example"), second)
        self.assertIn(b"\r\nFREEBUSY;FBTYPE=BUSY:20210105T070000Z/20210105T080000Z\r\n", first)
        self.assertIn(b"\r\nFREEBUSY:20210105T070000Z/20210105T080000Z\r\n", published)
        self.assertTrue(all(len(line) <= 75 for line in first.split(b"\r\n")))
        self.assertEqual([p[:2] for p in ical.readFreeBusy(first)[0].periods], [p[:2] for p in fb.periods])

    def test_renderedPeriodsNotWalkedByGarbageCollector(self):
        """
        The periods of answers rendered before are kept in a form the
        garbage collector stops following: rendering 300 answers of 20
        periods each leaves it no more objects to walk (it walked 6,000
        periods before).
        """
        import gc

        freebusy._periodLines.cache_clear()
        gc.collect()
        before = len(gc.get_objects())
        answers = [FreeBusy([Period(t(7, day=1 + n % 5) + timedelta(minutes=n, seconds=i),
                                    t(8, day=1 + n % 5) + timedelta(minutes=n, seconds=i)) for i in range(20)])
                   for n in range(300)]
        rendered = [freebusy.renderICalendar(fb, "u1", self.stamp) for fb in answers]
        del answers
        gc.collect()
        gc.collect()
        self.assertLess(len(gc.get_objects()) - before, 100)
        self.assertEqual(freebusy._periodLines.cache_info().currsize, 300)
        self.assertIn(b"\r\nFREEBUSY:20210101T070000Z/20210101T080000Z\r\n", rendered[0])

    def test_controlCharactersInAddresses(self):
        """
        Control characters in an organizer or attendee address are left
        out, so that no line can be added through them.
        """
        fb = FreeBusy([], t(0), t(1), "mailto:alice@example.com\r\nX-EVIL:1\x7f")
        data = freebusy.renderICalendar(fb, "u1", self.stamp, method="REPLY", attendee="bob@example.com\n\tX")
        self.assertIn(b"\r\nORGANIZER:mailto:alice@example.comX-EVIL:1\r\n", data)
        self.assertIn(b"\r\nATTENDEE:mailto:bob@example.comX\r\n", data)


class ReadTests(unittest.SynchronousTestCase):
    """
    Reading a published file down to periods, and deciding whether it may
    be served as it is.
    """

    def test_outlookIsClean(self):
        """
        Outlook's file (no UID, bare ORGANIZER, no FBTYPE) is clean.
        """
        fb, clean = ical.readFreeBusy(outlookVFB())
        self.assertTrue(clean)
        self.assertEqual(fb.periods, [Period(t(7), t(7, 30))])
        self.assertEqual(fb.organizer, "someone@example.com")

    def test_detailsMakeUnclean(self):
        """
        A SUMMARY, an X-SUMMARY parameter, an ATTENDEE, a VEVENT or a
        calendar-level X- property each make the file unclean.
        """
        base = outlookVFB().decode()
        for extra in ["SUMMARY:Lunch\r\nFREEBUSY", "ATTENDEE:mailto:bob@example.com\r\nFREEBUSY",
                      "FREEBUSY;X-SUMMARY=Lunch", "COMMENT:x\r\nFREEBUSY", "ORGANIZER;X-NOTE=secret:x\r\nFREEBUSY"]:
            data = base.replace("\r\nFREEBUSY", "\r\n" + extra, 1).encode()
            self.assertFalse(ical.readFreeBusy(data)[1], extra)
        withEvent = base.replace("END:VCALENDAR", "BEGIN:VEVENT\r\nDTSTART:20210105T070000Z\r\nSUMMARY:x\r\n"
                                 "END:VEVENT\r\nEND:VCALENDAR").encode()
        self.assertFalse(ical.readFreeBusy(withEvent)[1])
        xwr = base.replace("METHOD:PUBLISH", "METHOD:PUBLISH\r\nX-WR-CALNAME:Alice private").encode()
        self.assertFalse(ical.readFreeBusy(xwr)[1])

    def test_propertiesTwice(self):
        """
        DTSTART, DTEND or ORGANIZER written twice: the window spans all
        values, the first owner counts.
        """
        data = outlookVFB().replace(b"DTSTART:", b"DTSTART:20201201T000000Z\r\nDTSTART:").replace(
            b"DTEND:", b"DTEND:20210301T000000Z\r\nDTEND:").replace(
            b"ORGANIZER:", b"ORGANIZER:first@example.com\r\nORGANIZER:")
        fb, clean = ical.readFreeBusy(data)
        self.assertEqual((fb.start, fb.end, fb.organizer), (datetime(2020, 12, 1, tzinfo=timezone.utc),
                                                          datetime(2021, 3, 1, tzinfo=timezone.utc),
                                                          "first@example.com"))
        self.assertTrue(clean)

    def test_windowOfAnotherType(self):
        """
        A DTSTART or DTEND of another value type (TEXT, PERIOD) gives no
        window edge.
        """
        data = outlookVFB().replace(b"DTSTART:20201227T230000Z", b"DTSTART;VALUE=TEXT:soon").replace(
            b"DTEND:20210228T230000Z", b"DTEND;VALUE=PERIOD:20210105T070000Z/PT1H")
        fb, _ = ical.readFreeBusy(data)
        self.assertEqual((fb.start, fb.end, len(fb.periods)), (None, None, 1))

    def test_severalComponents(self):
        """
        Periods of every VFREEBUSY count; the window spans them all.
        """
        one = outlookVFB().decode()
        two = one.replace("END:VCALENDAR", "BEGIN:VFREEBUSY\r\nDTSTART:20210301T000000Z\r\nDTEND:20210302T000000Z\r\n"
                          "FREEBUSY:20210301T090000Z/PT1H,20210301T110000Z/PT1H\r\nEND:VFREEBUSY\r\nEND:VCALENDAR")
        fb, clean = ical.readFreeBusy(two.encode())
        self.assertTrue(clean)
        self.assertEqual(len(fb.periods), 3)
        self.assertEqual(fb.end, datetime(2021, 3, 2, tzinfo=timezone.utc))
