"""
Apple's C{X-CALENDARSERVER-MASK-UID} in an outbox free/busy request, on the
whole server in memory: Apple Calendar's recorded request
(C{apple-macos-07-outbox-freebusy.http}) replayed against published full
calendars holding the meeting being moved.
"""

from xml.etree.ElementTree import fromstring

from tests.unit.test_caldav_rooms import C, CalDAVTestCase, D, freeBusyLines

#: The UID the recorded request masks.
MASKED = "5C0B8F7E-2D4A-4B8B-A1C6-0E9F3D2B7A14"
FIXTURE = "apple-macos-07-outbox-freebusy.http"
VALUES = {"outbox": "/caldav/calendars/alice/outbox/"}


def fullCalendar(*events) -> bytes:
    """
    A calendar of C{(uid, organizer or None, start hour, end hour)} events
    on 2026-12-07 (UTC).
    """
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN"]
    for uid, organizer, start, end in events:
        lines += ["BEGIN:VEVENT", "UID:" + uid, "DTSTAMP:20261201T000000Z",
                  f"DTSTART:20261207T{start:02d}0000Z", f"DTEND:20261207T{end:02d}0000Z", "SUMMARY:Secret"]
        if organizer is not None:
            lines.append("ORGANIZER:" + organizer)
        lines.append("END:VEVENT")
    lines.append("END:VCALENDAR")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


class MaskUIDTests(CalDAVTestCase):
    """
    The meeting being moved does not block itself.
    """

    def setUp(self):
        super().setUp()
        # alice organizes the meeting (10-11) and keeps a lunch of her own
        # (12-13, no organizer); betty has alice's meeting and her own
        # lunch, also without an organizer.
        self.server.store.write(("alice.ics",), fullCalendar(
            (MASKED, "mailto:alice@example.com", 10, 11), ("alice-lunch", None, 12, 13)))
        self.server.store.write(("bsmith.ics",), fullCalendar(
            (MASKED, "mailto:ALICE@example.com", 10, 11), ("betty-lunch", None, 12, 13),
            ("standup", "mailto:alice@example.com", 8, 9)))

    def answers(self, body: bytes):
        found = {}
        for response in fromstring(body).iter(C + "response"):
            recipient = response.find(C + "recipient").find(D + "href").text
            found[recipient] = freeBusyLines(response.find(C + "calendar-data").text)
        return found

    def test_appleRequestMasks(self):
        """
        Apple Calendar's request leaves the masked meeting out of the
        organizer's and the attendee's time, and nothing else.
        """
        status, _, body = self.replay(FIXTURE, VALUES)
        self.assertEqual(status, 200, body)
        self.assertEqual(self.answers(body), {
            "mailto:alice@example.com": ["FREEBUSY;FBTYPE=BUSY:20261207T120000Z/20261207T130000Z"],
            "mailto:betty@example.com": ["FREEBUSY;FBTYPE=BUSY:20261207T080000Z/20261207T090000Z",
                                         "FREEBUSY;FBTYPE=BUSY:20261207T120000Z/20261207T130000Z"],
        })
        self.assertNotIn(b"Secret", body)

    def test_withoutMask(self):
        """The same request without the mask (or masking another UID) shows the meeting."""
        line = f"X-CALENDARSERVER-MASK-UID:{MASKED}\r\n".encode("ascii")
        for replacement in (b"", b"X-CALENDARSERVER-MASK-UID:something-else\r\n"):
            status, _, body = self.replay(FIXTURE, VALUES, edit=lambda b, r=replacement: b.replace(line, r))
            self.assertEqual(status, 200, body)
            answers = self.answers(body)
            self.assertIn("FREEBUSY;FBTYPE=BUSY:20261207T100000Z/20261207T110000Z",
                          answers["mailto:alice@example.com"])
            self.assertIn("FREEBUSY;FBTYPE=BUSY:20261207T100000Z/20261207T110000Z",
                          answers["mailto:betty@example.com"])

    def test_onlyTheOrganizersMeetings(self):
        """
        Masking an attendee's own event without an organizer (betty's
        lunch) changes nothing: only the organizer's meetings, and their
        own calendar's events, may be masked.
        """
        line = f"X-CALENDARSERVER-MASK-UID:{MASKED}".encode("ascii")
        status, _, body = self.replay(FIXTURE, VALUES, edit=lambda b: b.replace(
            line, b"X-CALENDARSERVER-MASK-UID:betty-lunch"))
        self.assertEqual(status, 200, body)
        self.assertEqual(len(self.answers(body)["mailto:betty@example.com"]), 3)

    def test_badMask(self):
        """A mask with control characters or longer than a UID is refused with a reason."""
        line = f"X-CALENDARSERVER-MASK-UID:{MASKED}".encode("ascii")
        status, _, body = self.replay(FIXTURE, VALUES, edit=lambda b: b.replace(
            line, b"X-CALENDARSERVER-MASK-UID:" + b"x" * 300))
        self.assertEqual(status, 403, body)
        self.assertIn(b"X-CALENDARSERVER-MASK-UID", body)

    def test_freeBusyFileUnmasked(self):
        """A published free/busy file has no events: the mask leaves it as it is."""
        self.server.store.write(("bsmith.vfb",), (
            "BEGIN:VCALENDAR\r\nPRODID:-//test//EN\r\nVERSION:2.0\r\nMETHOD:PUBLISH\r\nBEGIN:VFREEBUSY\r\n"
            "DTSTAMP:20261201T000000Z\r\nDTSTART:20261201T000000Z\r\nDTEND:20261231T000000Z\r\n"
            "FREEBUSY:20261207T100000Z/20261207T110000Z\r\nEND:VFREEBUSY\r\nEND:VCALENDAR\r\n").encode("ascii"))
        status, _, body = self.replay(FIXTURE, VALUES)
        self.assertEqual(self.answers(body)["mailto:betty@example.com"],
                         ["FREEBUSY;FBTYPE=BUSY:20261207T100000Z/20261207T110000Z"])
