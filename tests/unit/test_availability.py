"""
Availability (RFC 7953): the site's working hours, published
C{VAVAILABILITY} components, and the busy time they imply over a range,
across the weeks the clocks change and for people in different zones.
"""

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from twisted.trial import unittest

from fbtwist.availability.model import Availability, Block, Window, unavailable
from fbtwist.availability.vavailability import availabilityOf, readAvailability, renderAvailability
from fbtwist.availability.workhours import WorkingHoursError, parseWorkingHours
from fbtwist.calendar.derive import TooExpensive
from fbtwist.calendar.freebusy import BUSY, BUSY_TENTATIVE, BUSY_UNAVAILABLE, Period
from fbtwist.errors import InvalidCalendar

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def spans(periods):
    """
    Periods as (start, end) pairs of UTC C{YYYY-MM-DD HH:MM} strings, for
    readable expectations.
    """
    return [(p.start.strftime("%Y-%m-%d %H:%M"), p.end.strftime("%Y-%m-%d %H:%M")) for p in periods]


def calendar(*lines: str) -> bytes:
    body = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN", *lines, "END:VCALENDAR"]
    return ("\r\n".join(body) + "\r\n").encode("utf-8")


def available(*lines: str) -> list:
    return ["BEGIN:AVAILABLE", "UID:" + str(abs(hash(lines))), "DTSTAMP:20260101T000000Z", *lines,
            "END:AVAILABLE"]


def vavailability(*lines: str) -> list:
    return ["BEGIN:VAVAILABILITY", "UID:" + str(abs(hash(lines))), "DTSTAMP:20260101T000000Z", *lines,
            "END:VAVAILABILITY"]


class WorkingHoursTests(unittest.SynchronousTestCase):
    """
    L{parseWorkingHours}: the site's default working hours.
    """

    def test_weekdays(self):
        """
        Mon-Fri 08:00-18:00 in Berlin leaves the nights and the weekend busy.
        """
        model = parseWorkingHours("Mon-Fri 08:00-18:00", BERLIN)
        periods = unavailable(model, utc(2026, 1, 9), utc(2026, 1, 13))
        self.assertEqual(spans(periods), [
            ("2026-01-09 00:00", "2026-01-09 07:00"),
            ("2026-01-09 17:00", "2026-01-12 07:00"),
            ("2026-01-12 17:00", "2026-01-13 00:00"),
        ])
        self.assertEqual({p.fbtype for p in periods}, {BUSY_UNAVAILABLE})

    def test_pastRanges(self):
        """
        The site's hours hold for ranges long past too (a week of 2023, a
        day of 1999), not only from the day the weekly rules count from.
        """
        model = parseWorkingHours("Mon-Fri 08:00-18:00", BERLIN)
        self.assertEqual(spans(unavailable(model, utc(2023, 3, 6), utc(2023, 3, 7))), [
            ("2023-03-06 00:00", "2023-03-06 07:00"),
            ("2023-03-06 17:00", "2023-03-07 00:00"),
        ])
        self.assertEqual(spans(unavailable(model, utc(1999, 6, 1, 12), utc(1999, 6, 1, 13))), [])

    def test_severalWindowsAndGroups(self):
        """
        Groups separated by ";" and several windows a day: a lunch break on
        Monday to Thursday, Friday afternoon off.
        """
        model = parseWorkingHours("Mon-Thu 08:00-12:00,13:00-17:00; Fri 08:00-12:00", BERLIN)
        periods = unavailable(model, utc(2026, 1, 15, 6), utc(2026, 1, 16, 18))
        self.assertEqual(spans(periods), [
            ("2026-01-15 06:00", "2026-01-15 07:00"),
            ("2026-01-15 11:00", "2026-01-15 12:00"),
            ("2026-01-15 16:00", "2026-01-16 07:00"),
            ("2026-01-16 11:00", "2026-01-16 18:00"),
        ])

    def test_dayNames(self):
        """
        Full names, abbreviations of two letters or more in any case, lists,
        ranges wrapping over the weekend and a window ending at 24:00.
        """
        model = parseWorkingHours("monday,WED-thurs 09:00-10:00; Sa-Su 20:00-24:00", UTC)
        text = renderAvailability(model).to_ical().decode()
        self.assertIn("BYDAY=MO,WE,TH", text)
        self.assertIn("BYDAY=SA,SU", text)
        wrapped = parseWorkingHours("Fri-Mon 10:00-11:00", UTC)
        self.assertIn("BYDAY=MO,FR,SA,SU", renderAvailability(wrapped).to_ical().decode())
        # Saturday 2026-01-10: free from 20:00 to midnight.
        self.assertEqual(spans(unavailable(model, utc(2026, 1, 10), utc(2026, 1, 11))),
                         [("2026-01-10 00:00", "2026-01-10 20:00")])

    def test_errors(self):
        """
        Malformed working hours are refused with one sentence naming the
        part at fault.
        """
        cases = {
            "": "empty",
            "  ; ": "empty",
            "Mon-Fri": "'Mon-Fri' is not days and times",
            "Moo 08:00-18:00": "'Moo'",
            "T 08:00-09:00": "'T'",
            "Mon 18:00-08:00": "ends before it starts",
            "Mon 08:00-08:00": "ends before it starts",
            "Mon 25:00-26:00": "not a time of day",
            "Mon 24:00-24:00": "not a time of day",
            "Mon 08:60-09:00": "not a time of day",
            "Mon 8-18": "'8-18' in 'Mon 8-18' is not a time window",
            "Mon,,Tue 08:00-09:00": "empty day",
            "Mon 08:00-12:00,11:00-13:00": "on Monday the windows 08:00-12:00 and 11:00-13:00 overlap",
            "Mon-Fri 08:00-17:00; Fri 08:00-12:00": "on Friday the windows",
        }
        for text, expected in cases.items():
            with self.assertRaises(WorkingHoursError, msg=text) as caught:
                parseWorkingHours(text, BERLIN)
            message = str(caught.exception)
            self.assertIn(expected, message, text)
            self.assertNotIn("\n", message)


class DaylightSavingTests(unittest.SynchronousTestCase):
    """
    Working hours follow the wall clock of their zone through the weeks the
    clocks change, and are clipped exactly to short ranges.
    """

    def test_springForwardBerlin(self):
        """
        Berlin moves to summer time on Sunday 2026-03-29: 08:00 is 07:00 UTC
        on the Friday before and 06:00 UTC on the Monday after.
        """
        model = parseWorkingHours("Mon-Fri 08:00-18:00", BERLIN)
        periods = unavailable(model, utc(2026, 3, 27), utc(2026, 3, 31))
        self.assertEqual(spans(periods), [
            ("2026-03-27 00:00", "2026-03-27 07:00"),
            ("2026-03-27 17:00", "2026-03-30 06:00"),
            ("2026-03-30 16:00", "2026-03-31 00:00"),
        ])

    def test_fallBackBerlin(self):
        """
        Berlin returns to winter time on Sunday 2026-10-25: 08:00 is 06:00
        UTC on the Friday before and 07:00 UTC on the Monday after.
        """
        model = parseWorkingHours("Mon-Fri 08:00-18:00", BERLIN)
        periods = unavailable(model, utc(2026, 10, 23), utc(2026, 10, 27))
        self.assertEqual(spans(periods), [
            ("2026-10-23 00:00", "2026-10-23 06:00"),
            ("2026-10-23 16:00", "2026-10-26 07:00"),
            ("2026-10-26 17:00", "2026-10-27 00:00"),
        ])

    def test_newYork(self):
        """
        New York changes its clocks on other Sundays (2026-03-08, 2026-11-01).
        """
        model = parseWorkingHours("Mon-Fri 09:00-17:00", NEW_YORK)
        march = unavailable(model, utc(2026, 3, 6, 12), utc(2026, 3, 9, 23))
        self.assertEqual(spans(march), [
            ("2026-03-06 12:00", "2026-03-06 14:00"),
            ("2026-03-06 22:00", "2026-03-09 13:00"),
            ("2026-03-09 21:00", "2026-03-09 23:00"),
        ])
        november = unavailable(model, utc(2026, 10, 30, 12), utc(2026, 11, 2, 23))
        self.assertEqual(spans(november), [
            ("2026-10-30 12:00", "2026-10-30 13:00"),
            ("2026-10-30 21:00", "2026-11-02 14:00"),
            ("2026-11-02 22:00", "2026-11-02 23:00"),
        ])

    def test_dayOfTheChange(self):
        """
        A whole-day window on the days the clocks change lasts from midnight
        to midnight: 23 hours in March, 25 in October.
        """
        model = parseWorkingHours("Sun 00:00-24:00", BERLIN)
        march = unavailable(model, utc(2026, 3, 28, 12), utc(2026, 3, 30))
        self.assertEqual(spans(march), [("2026-03-28 12:00", "2026-03-28 23:00"),
                                        ("2026-03-29 22:00", "2026-03-30 00:00")])
        october = unavailable(model, utc(2026, 10, 24, 12), utc(2026, 10, 26))
        self.assertEqual(spans(october), [("2026-10-24 12:00", "2026-10-24 22:00"),
                                          ("2026-10-25 23:00", "2026-10-26 00:00")])

    def test_shorterThanADay(self):
        """
        A range of a few hours gets exactly its part: cut at both ends,
        nothing when it lies inside working hours, all of it when outside.
        """
        model = parseWorkingHours("Mon-Fri 08:00-18:00", BERLIN)
        self.assertEqual(spans(unavailable(model, utc(2026, 3, 30, 5, 15), utc(2026, 3, 30, 6, 45))),
                         [("2026-03-30 05:15", "2026-03-30 06:00")])
        self.assertEqual(unavailable(model, utc(2026, 3, 30, 6), utc(2026, 3, 30, 16)), [])
        self.assertEqual(unavailable(model, utc(2026, 3, 30, 15, 59), utc(2026, 3, 30, 16, 1)),
                         [Period(utc(2026, 3, 30, 16), utc(2026, 3, 30, 16, 1), BUSY_UNAVAILABLE)])
        self.assertEqual(spans(unavailable(model, utc(2026, 3, 29, 10), utc(2026, 3, 29, 11))),
                         [("2026-03-29 10:00", "2026-03-29 11:00")])
        self.assertEqual(unavailable(model, utc(2026, 3, 30, 12), utc(2026, 3, 30, 12)), [])

    def test_differentZones(self):
        """
        The same working hours in Berlin and New York are different UTC
        times; a range given in another zone means the same instants.
        """
        berlin = parseWorkingHours("Mon-Fri 09:00-17:00", BERLIN)
        newYork = parseWorkingHours("Mon-Fri 09:00-17:00", NEW_YORK)
        start = datetime(2026, 1, 12, 0, 0, tzinfo=ZoneInfo("Asia/Tokyo"))  # 2026-01-11 15:00 UTC
        end = start + timedelta(days=1)
        self.assertEqual(spans(unavailable(berlin, start, end)), [("2026-01-11 15:00", "2026-01-12 08:00")])
        self.assertEqual(spans(unavailable(newYork, start, end)), [("2026-01-11 15:00", "2026-01-12 14:00")])


#: A zone as Outlook writes one: its own name, rules from 1601.
OWN_ZONE = ["BEGIN:VTIMEZONE", "TZID:Our Office", "BEGIN:STANDARD", "DTSTART:16010101T030000",
            "TZOFFSETFROM:+0200", "TZOFFSETTO:+0100", "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10",
            "END:STANDARD", "BEGIN:DAYLIGHT", "DTSTART:16010101T020000", "TZOFFSETFROM:+0100",
            "TZOFFSETTO:+0200", "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3", "END:DAYLIGHT",
            "END:VTIMEZONE"]

RFC_EXAMPLE = calendar(
    "BEGIN:VTIMEZONE", "TZID:America/Montreal", "BEGIN:STANDARD", "DTSTART:19671029T020000",
    "TZOFFSETFROM:-0400", "TZOFFSETTO:-0500", "RRULE:FREQ=YEARLY;BYDAY=1SU;BYMONTH=11", "TZNAME:EST",
    "END:STANDARD", "BEGIN:DAYLIGHT", "DTSTART:19870405T020000", "TZOFFSETFROM:-0500", "TZOFFSETTO:-0400",
    "RRULE:FREQ=YEARLY;BYDAY=2SU;BYMONTH=3", "TZNAME:EDT", "END:DAYLIGHT", "END:VTIMEZONE",
    *vavailability(
        "ORGANIZER:mailto:bernard@example.com",
        "DTSTART;TZID=America/Montreal:20111002T000000",
        "DTEND;TZID=America/Montreal:20111202T000000",
        *available("SUMMARY:Monday to Thursday from 9:00 to 17:00",
                   "DTSTART;TZID=America/Montreal:20111002T090000",
                   "DTEND;TZID=America/Montreal:20111002T170000",
                   "RRULE:FREQ=WEEKLY;BYDAY=MO,TU,WE,TH", "LOCATION:Main Office"),
        *available("SUMMARY:Friday from 9:00 to 12:00",
                   "DTSTART;TZID=America/Montreal:20111007T090000",
                   "DTEND;TZID=America/Montreal:20111007T120000",
                   "RRULE:FREQ=WEEKLY", "LOCATION:Branch Office"),
    ),
)


class ReadAvailabilityTests(unittest.SynchronousTestCase):
    """
    L{readAvailability}: published C{VAVAILABILITY} components, the RFC 7953
    rules for combining them, and refusing what is malformed.
    """

    def test_rfcExample(self):
        """
        RFC 7953's second example: Monday to Thursday 9 to 17, Friday 9 to
        12, in Montreal, only between 2 October and 2 December 2011 (the
        Montreal clocks went back on 6 November).
        """
        # The RFC's Friday window starts on 2011-10-06, a Thursday, so it
        # would repeat on Thursdays; here it starts on the Friday meant.
        model = readAvailability(RFC_EXAMPLE)
        # Thursday 2011-10-06 and Friday 2011-10-07 (EDT, UTC-4).
        self.assertEqual(spans(unavailable(model, utc(2011, 10, 6, 12), utc(2011, 10, 8))), [
            ("2011-10-06 12:00", "2011-10-06 13:00"),
            ("2011-10-06 21:00", "2011-10-07 13:00"),
            ("2011-10-07 16:00", "2011-10-08 00:00"),
        ])
        # Monday 2011-11-07 (EST, UTC-5).
        self.assertEqual(spans(unavailable(model, utc(2011, 11, 7, 12), utc(2011, 11, 7, 23))), [
            ("2011-11-07 12:00", "2011-11-07 14:00"), ("2011-11-07 22:00", "2011-11-07 23:00")])
        # Outside the component's range nothing is said: free.
        self.assertEqual(spans(unavailable(model, utc(2011, 9, 30), utc(2011, 10, 2, 12))),
                         [("2011-10-02 04:00", "2011-10-02 12:00")])
        self.assertEqual(unavailable(model, utc(2011, 12, 2, 5), utc(2011, 12, 9)), [])
        self.assertEqual(model.zone.tzname(datetime(2011, 12, 1)), "EST")

    def test_busyType(self):
        """
        BUSYTYPE gives the type of the time outside the windows; an unknown
        value counts as BUSY-UNAVAILABLE, as RFC 7953 asks.
        """
        for value, expected in [("BUSY", BUSY), ("BUSY-TENTATIVE", BUSY_TENTATIVE),
                                ("X-LUNCH", BUSY_UNAVAILABLE), ("FREE", BUSY_UNAVAILABLE)]:
            model = readAvailability(calendar(*vavailability(
                "BUSYTYPE:" + value,
                *available("DTSTART:20260105T090000Z", "DTEND:20260105T170000Z"))))
            periods = unavailable(model, utc(2026, 1, 5), utc(2026, 1, 6))
            self.assertEqual([p.fbtype for p in periods], [expected, expected], value)

    def test_priority(self):
        """
        Where a block of higher PRIORITY (1 highest, 0 lowest) covers time,
        lower blocks say nothing: a holiday week with no windows makes the
        whole week busy, a short week overrides the usual hours, and the
        usual hours hold elsewhere.
        """
        usual = vavailability(*available("DTSTART:20260105T080000Z", "DTEND:20260105T160000Z",
                                         "RRULE:FREQ=DAILY"))
        holiday = vavailability("PRIORITY:1", "BUSYTYPE:BUSY", "DTSTART:20260112T000000Z",
                                "DTEND:20260114T000000Z")
        short = vavailability("PRIORITY:5", "DTSTART:20260114T000000Z", "DTEND:20260116T000000Z",
                              *available("DTSTART:20260114T120000Z", "DTEND:20260114T140000Z",
                                         "RRULE:FREQ=DAILY"))
        model = readAvailability(calendar(*usual, *holiday, *short))
        periods = unavailable(model, utc(2026, 1, 11, 12), utc(2026, 1, 17))
        self.assertEqual([(s, e, p.fbtype) for (s, e), p in zip(spans(periods), periods)], [
            ("2026-01-11 16:00", "2026-01-12 00:00", BUSY_UNAVAILABLE),
            ("2026-01-12 00:00", "2026-01-14 00:00", BUSY),
            ("2026-01-14 00:00", "2026-01-14 12:00", BUSY_UNAVAILABLE),
            ("2026-01-14 14:00", "2026-01-15 12:00", BUSY_UNAVAILABLE),
            ("2026-01-15 14:00", "2026-01-16 08:00", BUSY_UNAVAILABLE),
            ("2026-01-16 16:00", "2026-01-17 00:00", BUSY_UNAVAILABLE),
        ])
        # The same blocks with the priorities swapped: the usual hours win.
        reversed_ = readAvailability(calendar(*vavailability("PRIORITY:1", *usual[3:-1]), *holiday[:3],
                                              "PRIORITY:9", *holiday[4:]))
        self.assertEqual(spans(unavailable(reversed_, utc(2026, 1, 12), utc(2026, 1, 13))),
                         [("2026-01-12 00:00", "2026-01-12 08:00"), ("2026-01-12 16:00", "2026-01-13 00:00")])

    def test_samePriorityCombines(self):
        """
        Blocks of the same priority combine: Monday to Thursday in one and
        Friday in another make a five-day week.
        """
        model = readAvailability(calendar(
            *vavailability(*available("DTSTART;TZID=Europe/Berlin:20260105T090000",
                                      "DTEND;TZID=Europe/Berlin:20260105T170000",
                                      "RRULE:FREQ=WEEKLY;BYDAY=MO,TU,WE,TH")),
            *vavailability("BUSYTYPE:BUSY", *available("DTSTART;TZID=Europe/Berlin:20260109T090000",
                                                       "DTEND;TZID=Europe/Berlin:20260109T120000",
                                                       "RRULE:FREQ=WEEKLY")),
        ))
        periods = unavailable(model, utc(2026, 1, 15, 12), utc(2026, 1, 16, 18))
        self.assertEqual(spans(periods), [("2026-01-15 16:00", "2026-01-16 08:00"),
                                          ("2026-01-16 11:00", "2026-01-16 18:00")])
        # Where both say busy, the stronger type holds the time.
        self.assertEqual({p.fbtype for p in periods}, {BUSY_UNAVAILABLE})

    def test_recurrenceParts(self):
        """
        RDATE (date-times and periods), EXDATE and an occurrence moved by a
        RECURRENCE-ID all count.
        """
        model = readAvailability(calendar(*vavailability(
            "BEGIN:AVAILABLE", "UID:series", "DTSTAMP:20260101T000000Z",
            "DTSTART;TZID=Europe/Berlin:20260105T090000", "DTEND;TZID=Europe/Berlin:20260105T100000",
            "RRULE:FREQ=DAILY;UNTIL=20260108", "EXDATE;TZID=Europe/Berlin:20260106T090000",
            "RDATE;TZID=Europe/Berlin:20260110T090000",
            "RDATE;VALUE=PERIOD:20260111T100000Z/PT3H", "END:AVAILABLE",
            "BEGIN:AVAILABLE", "UID:series", "DTSTAMP:20260101T000000Z",
            "RECURRENCE-ID;TZID=Europe/Berlin:20260107T090000",
            "DTSTART;TZID=Europe/Berlin:20260107T150000", "DTEND;TZID=Europe/Berlin:20260107T160000",
            "END:AVAILABLE",
        )))
        start, end = utc(2026, 1, 5), utc(2026, 1, 13)
        busy = [(p.start, p.end) for p in unavailable(model, start, end)]
        free, cursor = [], start
        for first, last in busy:
            if cursor < first:
                free.append((cursor, first))
            cursor = last
        self.assertEqual(spans(Period(a, b) for a, b in free), [
            ("2026-01-05 08:00", "2026-01-05 09:00"),
            ("2026-01-07 14:00", "2026-01-07 15:00"),
            ("2026-01-08 08:00", "2026-01-08 09:00"),
            ("2026-01-10 08:00", "2026-01-10 09:00"),
            ("2026-01-11 10:00", "2026-01-11 13:00"),
        ])

    def test_ownVTimezone(self):
        """
        A TZID that only the file's VTIMEZONE defines (as Outlook writes
        them) is read with that definition, summer time included.
        """
        model = readAvailability(calendar(*OWN_ZONE, *vavailability(*available(
            "DTSTART;TZID=Our Office:20260302T080000", "DTEND;TZID=Our Office:20260302T180000",
            "RRULE:FREQ=WEEKLY;BYDAY=MO"))))
        self.assertEqual(spans(unavailable(model, utc(2026, 3, 23), utc(2026, 3, 31))), [
            ("2026-03-23 00:00", "2026-03-23 07:00"),
            ("2026-03-23 17:00", "2026-03-30 06:00"),
            ("2026-03-30 16:00", "2026-03-31 00:00"),
        ])
        # Rendered, the zone goes with it (under its own name) and means the same.
        again = readAvailability(renderAvailability(model).to_ical())
        self.assertEqual(unavailable(again, utc(2026, 1, 1), utc(2027, 1, 1)),
                         unavailable(model, utc(2026, 1, 1), utc(2027, 1, 1)))

    def test_zoneWorkNotCounted(self):
        """
        The work of a VTIMEZONE written as rules from 1601 (redone by
        C{dateutil} for every offset looked up) does not count as the
        windows' work: two years of a weekday window fit in a small bound.
        """
        model = readAvailability(calendar(*OWN_ZONE, *vavailability(*available(
            "DTSTART;TZID=Our Office:20260302T080000", "DTEND;TZID=Our Office:20260302T180000",
            "RRULE:FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;UNTIL=20271231T170000Z"))))
        periods = unavailable(model, utc(2026, 1, 1), utc(2028, 1, 1), ruleIterations=5000)
        # 480 weekdays from 2 March 2026 to the end of 2027: busy time
        # before each, and after the last.
        self.assertEqual(len(periods), 481)
        self.assertEqual(spans(periods[-2:]), [("2027-12-30 17:00", "2027-12-31 07:00"),
                                               ("2027-12-31 17:00", "2028-01-01 00:00")])

    def test_untilHeldExactly(self):
        """
        An UNTIL ends the occurrences at its exact moment in UTC, whatever
        the zone: an occurrence starting at the UNTIL counts, one a minute
        later does not.
        """
        def model(until):
            return readAvailability(calendar(*vavailability(*available(
                "DTSTART;TZID=America/New_York:20260302T090000", "DURATION:PT1H",
                "RRULE:FREQ=DAILY;UNTIL=" + until))))
        included = unavailable(model("20260310T130000Z"), utc(2026, 3, 10), utc(2026, 3, 11))
        self.assertEqual(spans(included), [("2026-03-10 00:00", "2026-03-10 13:00"),
                                           ("2026-03-10 14:00", "2026-03-11 00:00")])
        excluded = unavailable(model("20260310T125900Z"), utc(2026, 3, 10), utc(2026, 3, 11))
        self.assertEqual(spans(excluded), [("2026-03-10 00:00", "2026-03-11 00:00")])

    def test_rangeByDuration(self):
        """
        A VAVAILABILITY's range may be DTSTART plus a DURATION, its days
        counted on the wall clock: two days from Saturday midnight in
        Berlin end at Monday midnight, summer time having begun between.
        """
        model = readAvailability(calendar(*vavailability(
            "DTSTART;TZID=Europe/Berlin:20260328T000000", "DURATION:P2D",
            *available("DTSTART:20260328T100000Z", "DTEND:20260328T120000Z"))))
        self.assertEqual(spans(unavailable(model, utc(2026, 3, 27), utc(2026, 4, 1))), [
            ("2026-03-27 23:00", "2026-03-28 10:00"),
            ("2026-03-28 12:00", "2026-03-29 22:00"),
        ])

    def test_durations(self):
        """
        A DURATION counts its days on the wall clock and its hours exactly;
        an AVAILABLE's end in another zone is an exact length.
        """
        model = readAvailability(calendar(*vavailability(
            *available("DTSTART;TZID=Europe/Berlin:20260328T200000", "DURATION:PT10H"),
            *available("DTSTART;TZID=Europe/Berlin:20261024T120000", "DURATION:P1D"),
            *available("DTSTART;TZID=Europe/Berlin:20260601T120000", "DTEND:20260601T120000Z"))))
        free = [(p.start, p.end) for p in unavailable(model, utc(2026, 1, 1), utc(2027, 1, 1))]
        gaps = [(a[1], b[0]) for a, b in zip(free, free[1:])]
        self.assertEqual(spans(Period(a, b) for a, b in gaps), [
            ("2026-03-28 19:00", "2026-03-29 05:00"),  # 10 hours, across the change
            ("2026-06-01 10:00", "2026-06-01 12:00"),
            ("2026-10-24 10:00", "2026-10-25 11:00"),  # noon to noon: 25 hours
        ])

    def test_malformed(self):
        """
        Each malformed component is refused with one sentence (for a 400 at
        publish).
        """
        window = available("DTSTART:20260105T090000Z", "DTEND:20260105T170000Z")
        cases = [
            (b"not a calendar", "not iCalendar"),
            (calendar("BEGIN:VEVENT", "DTSTART:20260101T000000Z", "END:VEVENT"), "no VAVAILABILITY"),
            (calendar(*vavailability(*available("DTSTART:20260105T090000", "DTEND:20260105T170000"))),
             "AVAILABLE 1 of VAVAILABILITY 1's DTSTART is a floating time"),
            (calendar(*vavailability(*available("DTSTART;VALUE=DATE:20260105", "DURATION:P1D"))),
             "is a date"),
            (calendar(*vavailability(*available("DTEND:20260105T170000Z"))), "has no DTSTART"),
            (calendar(*vavailability(*available("DTSTART:20260105T090000Z"))), "neither DTEND nor DURATION"),
            (calendar(*vavailability(*available("DTSTART:20260105T090000Z", "DTEND:20260105T080000Z"))),
             "ends (20260105T080000Z) before it starts (20260105T090000Z)"),
            (calendar(*vavailability(*available("DTSTART:20260105T090000Z", "DTEND:20260105T170000Z",
                                                "DURATION:PT1H"))), "both DTEND and DURATION"),
            (calendar(*vavailability("PRIORITY:12", *window)), "PRIORITY is 12"),
            (calendar(*vavailability("PRIORITY:high", *window)), "not iCalendar"),
            (calendar(*vavailability("DURATION:P1D", *window)), "DURATION but no DTSTART"),
            (calendar(*vavailability("DTSTART:20260105T000000Z", "DTEND:20260104T000000Z", *window)),
             "VAVAILABILITY 1 ends"),
            (calendar(*vavailability(*available("DTSTART:20260105T090000Z", "DURATION:-PT1H"))),
             "DURATION is not positive"),
            (calendar(*vavailability(*available("DTSTART:20260105T090000Z", "DTEND:20260105T170000Z",
                                                "RRULE:FREQ=MINUTELY"))), "repeats MINUTELY"),
            (calendar(*vavailability(*available("DTSTART:20260105T090000Z", "DTEND:20260105T170000Z",
                                                "RRULE:FREQ=WEEKLY;BYDAY=XX"))), "weekday"),
            (calendar(*vavailability(*available("DTSTART:20260105T090000Z", "DTEND:20260105T170000Z",
                                                "RRULE:BYDAY=MO"))), "RRULE"),
        ]
        for data, expected in cases:
            with self.assertRaises(InvalidCalendar, msg=data) as caught:
                readAvailability(data)
            self.assertIn(expected, caught.exception.reason, data)
            self.assertNotIn("\n", caught.exception.reason)

    def test_neverMatchingRuleRefused(self):
        """
        A rule that never matches (30 February) would step day by day to
        the year 9999: the reader refuses it within its usual work bound.
        """
        data = calendar(*vavailability(*available("DTSTART:20260105T090000Z", "DTEND:20260105T170000Z",
                                                  "RRULE:FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30")))
        self.assertRaises(TooExpensive, readAvailability, data)

    def test_lookupBounded(self):
        """
        The busy time of a model is bounded too: a model that was never
        read (or read with a larger bound) cannot make a lookup run on.
        """
        window = Window(start=utc(2026, 1, 5, 9), wallLength=timedelta(hours=8),
                        rules=("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30",))
        model = Availability(blocks=(Block(windows=(window,)),))
        self.assertRaises(TooExpensive, unavailable, model, utc(2026, 3, 1), utc(2026, 3, 2), 20000)

    def test_oldStartIsCheap(self):
        """
        A weekly window that began years ago is expanded from near the
        range, not from its start: a lookup fits in a small work bound.
        """
        model = readAvailability(calendar(*vavailability(*available(
            "DTSTART;TZID=Europe/Berlin:19900101T080000", "DTEND;TZID=Europe/Berlin:19900101T180000",
            "RRULE:FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR")), ))
        periods = unavailable(model, utc(2026, 3, 27), utc(2026, 3, 31), ruleIterations=2000)
        self.assertEqual(spans(periods), [
            ("2026-03-27 00:00", "2026-03-27 07:00"),
            ("2026-03-27 17:00", "2026-03-30 06:00"),
            ("2026-03-30 16:00", "2026-03-31 00:00"),
        ])


class RenderAvailabilityTests(unittest.SynchronousTestCase):
    """
    L{renderAvailability}: a model as a C{VAVAILABILITY} in the person's
    zone, read back as the same model.
    """

    def test_workingHoursInTheirZone(self):
        """
        Working hours render as a VAVAILABILITY with weekly windows in the
        person's zone, its VTIMEZONE included, and read back unchanged.
        """
        model = parseWorkingHours("Mon-Thu 08:00-12:00,13:00-17:00; Fri 08:00-12:00", NEW_YORK)
        stamp = utc(2026, 1, 1, 12, 0, 30)
        text = renderAvailability(model, stamp).to_ical().decode()
        self.assertIn("BEGIN:VTIMEZONE\r\nTZID:America/New_York", text)
        self.assertIn("DTSTART;TZID=America/New_York:19700105T130000", text)
        self.assertIn("BUSYTYPE:BUSY-UNAVAILABLE", text)
        self.assertIn("DTSTAMP:20260101T120030Z", text)
        self.assertEqual(readAvailability(text.encode()), model)

    def test_roundTrip(self):
        """
        A published model with priorities, ranges, RDATE periods, EXDATEs,
        durations and several zones renders to a calendar that reads back
        as the same busy time.
        """
        model = readAvailability(calendar(
            *vavailability("PRIORITY:3", "BUSYTYPE:BUSY", "DTSTART;TZID=Europe/Berlin:20260301T000000",
                           "DTEND:20260501T000000Z",
                           *available("DTSTART;TZID=Europe/Berlin:20260302T083000", "DURATION:P1DT2H",
                                      "RRULE:FREQ=WEEKLY;INTERVAL=2;UNTIL=20260430T000000Z",
                                      "EXDATE;TZID=Europe/Berlin:20260316T083000",
                                      "RDATE;VALUE=PERIOD:20260320T100000Z/20260320T120000Z")),
            *vavailability(*available("DTSTART;TZID=America/New_York:20260302T090000",
                                      "DTEND:20260302T150000Z", "RRULE:FREQ=DAILY;COUNT=40")),
        ))
        again = availabilityOf(renderAvailability(model))
        self.assertEqual(again, model)
        start, end = utc(2026, 2, 1), utc(2026, 6, 1)
        self.assertEqual(unavailable(again, start, end), unavailable(model, start, end))
