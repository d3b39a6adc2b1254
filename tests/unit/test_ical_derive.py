"""
Free/busy derived from a full calendar (L{fbtwist.calendar.derive.deriveFreeBusy}):
recurrences with exceptions, cancelled and transparent events, tentative
ones, VTIMEZONE and the DST weeks, all-day and floating events.
"""

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from twisted.trial import unittest

from fbtwist.calendar import derive as derivation
from fbtwist.calendar import ical
from fbtwist.calendar.freebusy import BUSY, BUSY_TENTATIVE, BUSY_UNAVAILABLE, Period
from fbtwist.errors import InvalidCalendar

UTC = timezone.utc

OUTLOOK_ZONE = """BEGIN:VTIMEZONE
TZID:Our Office
BEGIN:STANDARD
DTSTART:16010101T030000
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:16010101T020000
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3
END:DAYLIGHT
END:VTIMEZONE"""


def calendar(*events: str, header: str = "") -> bytes:
    """
    A VCALENDAR around the given VEVENT bodies (each without BEGIN/END).
    """
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN"]
    if header:
        lines.append(header)
    for index, body in enumerate(events):
        lines += ["BEGIN:VEVENT", "DTSTAMP:20260101T000000Z"]
        if "UID:" not in body:
            lines.append(f"UID:event-{index}")
        lines += [body.strip(), "END:VEVENT"]
    lines.append("END:VCALENDAR")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def derive(data: bytes, start, end, zone=ZoneInfo("UTC")):
    return [(p.start, p.end, p.fbtype) for p in derivation.deriveFreeBusy(ical.parseEvents(data), start, end, zone)]


class RecurrenceTests(unittest.SynchronousTestCase):
    """
    RRULE, RDATE, EXDATE, overridden and cancelled instances.
    """

    def test_exceptions(self):
        """
        A weekly series loses its EXDATE and cancelled instance, gains its
        RDATE, and its overridden instance moves.
        """
        data = calendar(
            "UID:series\nDTSTART:20260105T100000Z\nDTEND:20260105T110000Z\nRRULE:FREQ=WEEKLY;COUNT=5\n"
            "EXDATE:20260112T100000Z\nRDATE:20260107T100000Z".replace("\n", "\r\n"),
            "UID:series\nRECURRENCE-ID:20260119T100000Z\nDTSTART:20260119T140000Z\n"
            "DTEND:20260119T150000Z".replace("\n", "\r\n"),
            "UID:series\nRECURRENCE-ID:20260126T100000Z\nDTSTART:20260126T100000Z\n"
            "DTEND:20260126T110000Z\nSTATUS:CANCELLED".replace("\n", "\r\n"),
        )
        self.assertEqual(derive(data, utc(2026, 1, 1), utc(2026, 3, 1)), [
            (utc(2026, 1, 5, 10), utc(2026, 1, 5, 11), BUSY),
            (utc(2026, 1, 7, 10), utc(2026, 1, 7, 11), BUSY),
            (utc(2026, 1, 19, 14), utc(2026, 1, 19, 15), BUSY),
            (utc(2026, 2, 2, 10), utc(2026, 2, 2, 11), BUSY),
        ])

    def test_clippedToRange(self):
        """
        Only occurrences in the range count, cut at its edges.
        """
        data = calendar("DTSTART:20260105T100000Z\r\nDURATION:PT2H\r\nRRULE:FREQ=DAILY")
        self.assertEqual(derive(data, utc(2026, 1, 6, 11), utc(2026, 1, 7, 11)), [
            (utc(2026, 1, 6, 11), utc(2026, 1, 6, 12), BUSY),
            (utc(2026, 1, 7, 10), utc(2026, 1, 7, 11), BUSY),
        ])


class StatusTests(unittest.SynchronousTestCase):
    """
    What an event's status and transparency make of its time.
    """

    def test_statuses(self):
        """
        Cancelled and transparent events take no time, tentative ones are
        BUSY-TENTATIVE, Outlook's OOF is BUSY-UNAVAILABLE; where busy and
        tentative overlap, busy holds the time.
        """
        data = calendar(
            "DTSTART:20260105T080000Z\r\nDTEND:20260105T090000Z\r\nSTATUS:CANCELLED",
            "DTSTART:20260105T090000Z\r\nDTEND:20260105T100000Z\r\nTRANSP:TRANSPARENT",
            "DTSTART:20260105T100000Z\r\nDTEND:20260105T120000Z\r\nSTATUS:TENTATIVE",
            "DTSTART:20260105T110000Z\r\nDTEND:20260105T113000Z\r\nSTATUS:CONFIRMED",
            "DTSTART:20260105T130000Z\r\nDTEND:20260105T140000Z\r\nX-MICROSOFT-CDO-BUSYSTATUS:OOF",
            "DTSTART:20260105T150000Z\r\nDTEND:20260105T160000Z\r\nX-MICROSOFT-CDO-BUSYSTATUS:FREE",
            "DTSTART:20260105T170000Z",
        )
        self.assertEqual(derive(data, utc(2026, 1, 5), utc(2026, 1, 6)), [
            (utc(2026, 1, 5, 10), utc(2026, 1, 5, 11), BUSY_TENTATIVE),
            (utc(2026, 1, 5, 11), utc(2026, 1, 5, 11, 30), BUSY),
            (utc(2026, 1, 5, 11, 30), utc(2026, 1, 5, 12), BUSY_TENTATIVE),
            (utc(2026, 1, 5, 13), utc(2026, 1, 5, 14), BUSY_UNAVAILABLE),
        ])

    def test_overlapsMerged(self):
        """
        Overlapping and adjacent busy events become one period.
        """
        data = calendar(
            "DTSTART:20260105T080000Z\r\nDTEND:20260105T100000Z",
            "DTSTART:20260105T090000Z\r\nDTEND:20260105T110000Z",
            "DTSTART:20260105T110000Z\r\nDTEND:20260105T113000Z",
        )
        self.assertEqual(derive(data, utc(2026, 1, 5), utc(2026, 1, 6)),
                         [(utc(2026, 1, 5, 8), utc(2026, 1, 5, 11, 30), BUSY)])


class TimeZoneTests(unittest.SynchronousTestCase):
    """
    VTIMEZONE and DST, all-day and floating events.
    """

    weekly = "DTSTART;TZID={tz}:{start}T090000\r\nDTEND;TZID={tz}:{start}T100000\r\nRRULE:FREQ=WEEKLY;COUNT=3"

    def test_marchDST(self):
        """
        09:00 in a zone known only by its VTIMEZONE (Berlin's rules) is 08:00 UTC before the
        last Sunday of March 2026 and 07:00 UTC after it.
        """
        data = calendar(self.weekly.format(tz="Our Office", start="20260319"))
        data = data.replace(b"BEGIN:VEVENT", OUTLOOK_ZONE.replace("\n", "\r\n").encode() + b"\r\nBEGIN:VEVENT", 1)
        self.assertEqual([p[:2] for p in derive(data, utc(2026, 3, 16), utc(2026, 4, 6))], [
            (utc(2026, 3, 19, 8), utc(2026, 3, 19, 9)),
            (utc(2026, 3, 26, 8), utc(2026, 3, 26, 9)),
            (utc(2026, 4, 2, 7), utc(2026, 4, 2, 8)),
        ])

    def test_octoberDST(self):
        """
        09:00 Europe/Berlin is 07:00 UTC before the last Sunday of October
        2026 and 08:00 UTC after it.
        """
        data = calendar(self.weekly.format(tz="Europe/Berlin", start="20261015"))
        self.assertEqual([p[:2] for p in derive(data, utc(2026, 10, 12), utc(2026, 11, 2))], [
            (utc(2026, 10, 15, 7), utc(2026, 10, 15, 8)),
            (utc(2026, 10, 22, 7), utc(2026, 10, 22, 8)),
            (utc(2026, 10, 29, 8), utc(2026, 10, 29, 9)),
        ])

    def test_allDayInCalendarZone(self):
        """
        All-day events are days in X-WR-TIMEZONE; the day clocks go forward
        is 23 hours long, the day they go back 25.
        """
        data = calendar(
            "DTSTART;VALUE=DATE:20260329\r\nDTEND;VALUE=DATE:20260330",
            "DTSTART;VALUE=DATE:20261025",
            header="X-WR-TIMEZONE:Europe/Berlin",
        )
        self.assertEqual(derive(data, utc(2026, 1, 1), utc(2027, 1, 1)), [
            (utc(2026, 3, 28, 23), utc(2026, 3, 29, 22), BUSY),
            (utc(2026, 10, 24, 22), utc(2026, 10, 25, 23), BUSY),
        ])

    def test_allDayInDefaultZone(self):
        """
        Without X-WR-TIMEZONE, all-day and floating events are in the
        server's --default-tz.
        """
        data = calendar(
            "DTSTART;VALUE=DATE:20260105\r\nDTEND;VALUE=DATE:20260107",
            "DTSTART:20260110T090000\r\nDTEND:20260110T100000",
        )
        zone = ZoneInfo("America/New_York")
        self.assertEqual(derive(data, utc(2026, 1, 1), utc(2026, 2, 1), zone), [
            (utc(2026, 1, 5, 5), utc(2026, 1, 7, 5), BUSY),
            (utc(2026, 1, 10, 14), utc(2026, 1, 10, 15), BUSY),
        ])

    def test_floatingInCalendarZone(self):
        """
        A floating time is in X-WR-TIMEZONE, which wins over the default.
        """
        data = calendar("DTSTART:20260710T090000\r\nDTEND:20260710T100000", header="X-WR-TIMEZONE:Europe/Berlin")
        self.assertEqual(derive(data, utc(2026, 7, 1), utc(2026, 8, 1), ZoneInfo("America/New_York")),
                         [(utc(2026, 7, 10, 7), utc(2026, 7, 10, 8), BUSY)])


class ValidationTests(unittest.SynchronousTestCase):
    """
    What may be published as <uid>.ics.
    """

    def test_needsEvents(self):
        """
        A calendar without VEVENT, or an event without DTSTART, is refused;
        a calendar of events is accepted.
        """
        with self.assertRaises(InvalidCalendar) as caught:
            ical.validateUpload("alice.ics", b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n")
        self.assertIn("VEVENT", caught.exception.reason)
        with self.assertRaises(InvalidCalendar):
            ical.validateUpload("alice.ics", calendar("SUMMARY:no start"))
        with self.assertRaises(InvalidCalendar):
            ical.validateUpload("alice.ics", b"not a calendar")
        ical.validateUpload("alice.ics", calendar("DTSTART:20260105T080000Z\r\nDTEND:20260105T090000Z"))
        ical.validateUpload("alice.ICS", b"")  # a placeholder


class BoundTests(unittest.SynchronousTestCase):
    """
    A published calendar cannot make lookups expand without end.
    """

    def test_tooFrequentRefused(self):
        """
        Events repeating every second or minute are refused at upload.
        """
        for frequency in ["SECONDLY", "MINUTELY"]:
            data = calendar(f"DTSTART:20000101T000000Z\r\nDTEND:20000101T000001Z\r\nRRULE:FREQ={frequency}")
            with self.assertRaises(InvalidCalendar) as caught:
                ical.validateUpload("alice.ics", data)
            self.assertIn(frequency, caught.exception.reason)

    def test_occurrencesBounded(self):
        """
        At most MAX_OCCURRENCES occurrences are kept.
        """
        self.patch(derivation, "MAX_OCCURRENCES", 3)
        data = calendar("DTSTART:20260105T100000Z\r\nDTEND:20260105T110000Z\r\nRRULE:FREQ=DAILY")
        self.assertEqual(len(derive(data, utc(2026, 1, 5), utc(2026, 2, 1))), 3)


#: Five events whose rule never matches (there is no 30 February): without a
#: bound on the rule's steps, 16 s of CPU.
BOMB = calendar(*["DTSTART:20260101T090000Z\r\nDTEND:20260101T100000Z\r\nRRULE:FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30"] * 5)


class ExpansionLimitTests(unittest.SynchronousTestCase):
    """
    The work of an expansion is bounded by the steps its rules take, not by
    the occurrences they produce.
    """

    def test_neverMatchingRuleCutOff(self):
        """
        The bomb is refused within the default limit, in seconds, with the
        one-line reason.
        """
        import time

        began = time.process_time()
        with self.assertRaises(derivation.TooExpensive) as caught:
            derivation.deriveBounded(BOMB, utc(2026, 11, 1), utc(2027, 12, 1), ZoneInfo("UTC"))
        self.assertEqual(caught.exception.reason, "this calendar's rules are too expensive to expand")
        self.assertLess(time.process_time() - began, 10)

    def test_ruleStepsCounted(self):
        """
        One never-matching rule gets through a limit of steps only if that
        covers its steps to the year 9999; ten thousand are not enough,
        though it produces no occurrence but its DTSTART.
        """
        one = calendar("DTSTART:20260101T090000Z\r\nDTEND:20260101T100000Z\r\nRRULE:FREQ=YEARLY;BYMONTH=2;"
                       "BYMONTHDAY=30")
        # Yearly: one step a year, some 8,000 to the year 9999.
        self.assertEqual(derivation.deriveBounded(one, utc(2026, 1, 1), utc(2027, 1, 1), ZoneInfo("UTC"), 100_000),
                         [Period(utc(2026, 1, 1, 9), utc(2026, 1, 1, 10), BUSY)])
        with self.assertRaises(derivation.TooExpensive):
            derivation.deriveBounded(one, utc(2026, 1, 1), utc(2027, 1, 1), ZoneInfo("UTC"), 10_000)

    def test_ordinaryCalendarsUnchanged(self):
        """
        Within the limit, the bounded expansion gives the same periods as
        the unbounded one, and the thread's trace function is restored.
        """
        import sys

        data = calendar(
            "UID:series\nDTSTART;TZID=Europe/Berlin:20250105T100000\nDTEND;TZID=Europe/Berlin:20250105T110000\n"
            "RRULE:FREQ=WEEKLY;BYDAY=MO,WE\nEXDATE;TZID=Europe/Berlin:20261104T100000".replace("\n", "\r\n"),
            "DTSTART;VALUE=DATE:20261110\r\nDTEND;VALUE=DATE:20261112",
            "DTSTART:20261120T080000Z\r\nDURATION:PT90M\r\nSTATUS:TENTATIVE",
        )
        zone = ZoneInfo("Europe/Berlin")

        def tracer(frame, event, arg):
            return None

        sys.settrace(tracer)
        try:
            bounded = derivation.deriveBounded(data, utc(2026, 11, 1), utc(2026, 12, 1), zone)
            self.assertIs(sys.gettrace(), tracer)
        finally:
            sys.settrace(None)
        unbounded = derivation.deriveFreeBusy(ical.parseEvents(data), utc(2026, 11, 1), utc(2026, 12, 1), zone)
        self.assertEqual(bounded, unbounded)
        self.assertGreater(len(bounded), 5)


class ByEventTests(unittest.SynchronousTestCase):
    """
    Each event's own busy time, by UID and organizer, and the masks that
    leave one out (L{derivation.EventMask}).
    """

    #: A weekly meeting alice organizes (one occurrence moved), a lunch
    #: without an organizer overlapping it, and a review carol organizes.
    DATA = calendar(
        "UID:weekly\r\nORGANIZER;CN=Alice:MAILTO:Alice@Example.com\r\nDTSTART:20261207T090000Z\r\n"
        "DTEND:20261207T100000Z\r\nRRULE:FREQ=WEEKLY;COUNT=3",
        "UID:weekly\r\nORGANIZER:mailto:alice@example.com\r\nRECURRENCE-ID:20261214T090000Z\r\n"
        "DTSTART:20261214T150000Z\r\nDTEND:20261214T160000Z",
        "UID:lunch\r\nDTSTART:20261207T093000Z\r\nDTEND:20261207T110000Z",
        "UID:review\r\nORGANIZER:mailto:carol@example.com\r\nDTSTART:20261208T090000Z\r\nDTEND:20261208T100000Z",
    )

    def byEvent(self):
        return derivation.deriveBusyByEvent(ical.parseEvents(self.DATA), utc(2026, 12, 1), utc(2027, 1, 1),
                                            ZoneInfo("UTC"))

    def test_eventsKept(self):
        """Occurrences are grouped by UID and organizer (address without mailto: and case); merged as before."""
        merged, events = self.byEvent()
        self.assertEqual(merged, derivation.deriveFreeBusy(ical.parseEvents(self.DATA), utc(2026, 12, 1),
                                                           utc(2027, 1, 1), ZoneInfo("UTC")))
        found = {(e.uid, e.organizer): [(p.start, p.end) for p in e.periods] for e in events}
        self.assertEqual(found, {
            ("weekly", "alice@example.com"): [(utc(2026, 12, 7, 9), utc(2026, 12, 7, 10)),
                                              (utc(2026, 12, 14, 15), utc(2026, 12, 14, 16)),
                                              (utc(2026, 12, 21, 9), utc(2026, 12, 21, 10))],
            ("lunch", None): [(utc(2026, 12, 7, 9, 30), utc(2026, 12, 7, 11))],
            ("review", "carol@example.com"): [(utc(2026, 12, 8, 9), utc(2026, 12, 8, 10))],
        })

    def test_maskOnlyTheOrganizers(self):
        """
        A mask leaves out the UID's events its organizer organizes, every
        occurrence; an overlapping event keeps its time; another
        organizer's event stays, even named by its UID.
        """
        merged, events = self.byEvent()
        mask = derivation.EventMask("weekly", frozenset(["alice@example.com"]))
        periods = [(p.start, p.end) for p in derivation.maskedPeriods(events, mask)]
        self.assertEqual(periods, [(utc(2026, 12, 7, 9, 30), utc(2026, 12, 7, 11)),
                                   (utc(2026, 12, 8, 9), utc(2026, 12, 8, 10))])
        self.assertIsNone(derivation.maskedPeriods(events, mask._replace(uid="review", unorganized=True)))

    def test_maskWithoutOrganizer(self):
        """An event without an organizer is masked only where the mask says so (the organizer's own calendar)."""
        merged, events = self.byEvent()
        lunch = derivation.EventMask("lunch", frozenset(["alice@example.com"]))
        self.assertIsNone(derivation.maskedPeriods(events, lunch))
        own = derivation.maskedPeriods(events, lunch._replace(unorganized=True))
        self.assertNotIn(utc(2026, 12, 7, 10, 30), [p.end for p in own])
        self.assertEqual(own[0].start, utc(2026, 12, 7, 9))
        self.assertEqual(own[0].end, utc(2026, 12, 7, 10))

    def test_maskOfNothing(self):
        """A mask matching no event (or an empty UID) changes nothing: the merged periods hold."""
        merged, events = self.byEvent()
        for mask in (derivation.EventMask("other", frozenset(["alice@example.com"]), True),
                     derivation.EventMask("", frozenset(["alice@example.com"]), True),
                     derivation.EventMask("weekly", frozenset(["dave@example.com"]), False)):
            self.assertIsNone(derivation.maskedPeriods(events, mask), mask)
