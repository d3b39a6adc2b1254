"""
Tests for the validation in L{fbtwist.calendar.ical}: what real clients write is
accepted, anything else refused with a one-line reason.
"""

from twisted.trial import unittest

from fbtwist.calendar.ical import validateFreeBusy, validateUpload
from fbtwist.errors import InvalidCalendar
from tests.helpers import outlookVFB


class ValidateFreeBusyTests(unittest.SynchronousTestCase):
    """
    L{validateFreeBusy}.
    """

    def assertInvalid(self, data, fragment):
        error = self.assertRaises(InvalidCalendar, validateFreeBusy, data)
        self.assertIn(fragment, error.reason)
        self.assertNotIn("\n", error.reason)

    def test_outlook(self):
        """
        Outlook's file (no UID, bare ORGANIZER, no FBTYPE) with CRLF or LF.
        """
        for newline in (b"\r\n", b"\n"):
            calendar = validateFreeBusy(outlookVFB(newline=newline))
            self.assertEqual(len(calendar.walk("VFREEBUSY")), 1)

    def test_foldedAndSeveralPeriods(self):
        """
        Folded lines, several comma-separated periods, durations, FBTYPE and
        a byte order mark are fine.
        """
        data = (
            b"\xef\xbb\xbfBEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VFREEBUSY\r\n"
            b"FREEBUSY;FBTYPE=BUSY-TENTATIVE:20210106T070000Z/PT1H,20210107T070000Z/2021\r\n"
            b" 0107T080000Z\r\nEND:VFREEBUSY\r\nEND:VCALENDAR\r\n"
        )
        validateFreeBusy(data)

    def test_utf8(self):
        """
        UTF-8 text is accepted; other encodings are refused.
        """
        validateFreeBusy(outlookVFB("jürgen@example.com"))
        self.assertInvalid(outlookVFB("jürgen@example.com").replace("ü".encode(), b"\xfc"), "UTF-8")

    def test_garbage(self):
        """
        Text that is not iCalendar, an empty body, or an unterminated
        calendar is refused.
        """
        self.assertInvalid(b"hello world", "not iCalendar")
        self.assertInvalid(b"   \r\n", "empty")
        self.assertInvalid(b"BEGIN:VCALENDAR\nBEGIN:VFREEBUSY\n", "not iCalendar")

    def test_noFreeBusy(self):
        """
        A calendar without VFREEBUSY is refused.
        """
        self.assertInvalid(b"BEGIN:VCALENDAR\nBEGIN:VEVENT\nEND:VEVENT\nEND:VCALENDAR\n", "VFREEBUSY")

    def test_badPeriod(self):
        """
        A FREEBUSY period that does not parse is refused.
        """
        self.assertInvalid(outlookVFB(busy="tomorrow/never"), "not iCalendar")

    def test_notAPeriod(self):
        """
        A FREEBUSY of another value type, or a period ending past the year
        9999, is refused.
        """
        self.assertInvalid(outlookVFB().replace(b"FREEBUSY:", b"FREEBUSY;VALUE=TEXT:"), "not a period")
        self.assertInvalid(outlookVFB(busy="20210105T070000Z/P999999W"), "not iCalendar")

    def test_notACalendar(self):
        """
        Another top-level component is refused.
        """
        self.assertInvalid(b"BEGIN:VCARD\nVERSION:3.0\nFN:x\nEND:VCARD\n", "VCALENDAR")


class ValidateUploadTests(unittest.SynchronousTestCase):
    """
    L{validateUpload} decides by name.
    """

    def test_placeholder(self):
        """
        An empty body is a placeholder for any name.
        """
        validateUpload("alice.vfb", b"")

    def test_calendarNames(self):
        """
        .vfb and .ifb names (any case) must hold free/busy calendars.
        """
        for name in ["a.vfb", "a.IFB", "A.VFB"]:
            self.assertRaises(InvalidCalendar, validateUpload, name, b"junk")

    def test_otherNames(self):
        """
        Other names (only administrators may write them) are not checked.
        """
        validateUpload("notes.txt", b"junk")
