"""
What anonymous readers get: the one rendering
(L{fbtwist.calendar.publicview.publicView}) itself, valid for vobject and
with a jCal twin holding the same calendar (every C{/calendar/} answer
through vobject and libical, and anonymous FTP, are tested in
L{tests.integration.test_publicview}).
"""

import json
from datetime import datetime, timezone

import vobject
from twisted.trial import unittest

from fbtwist.calendar import publicview
from fbtwist.calendar.freebusy import FreeBusy, Period
from tests.helpers import outlookVFB

#: Every FBTYPE, a duration period, no UID, no ORGANIZER, no window.
TYPED = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VFREEBUSY\r\n"
    "FREEBUSY:20210105T070000Z/20210105T080000Z\r\n"
    "FREEBUSY:20210105T100000Z/PT2H\r\n"
    "FREEBUSY;FBTYPE=BUSY-TENTATIVE:20210105T150000Z/20210105T160000Z\r\n"
    "FREEBUSY;FBTYPE=BUSY-UNAVAILABLE:20210106T150000Z/20210106T160000Z\r\n"
    "FREEBUSY;FBTYPE=FREE:20210106T070000Z/20210106T080000Z\r\n"
    "END:VFREEBUSY\r\nEND:VCALENDAR\r\n"
).encode("ascii")


def vobjectErrors(body: bytes) -> list:
    """
    What vobject's validation (which insists on DTSTAMP, and on one
    VCALENDAR) says of C{body}: nothing when it is valid.
    """
    try:
        calendar = vobject.readOne(body.decode("utf-8"))
        calendar.validate(raiseException=True)
        calendar.serialize(validate=True)
    except Exception as e:
        return [f"vobject: {e}"]
    return []


def jcalAsText(body: bytes) -> list:
    """
    The content lines a jCal answer stands for (RFC 7265 section 3, for the
    value types an answer uses), written independently of the server's
    renderer, to compare with its iCalendar answer.
    """

    def component(name, properties, subcomponents):
        lines = [f"BEGIN:{name.upper()}"]
        for prop, params, kind, value in properties:
            head = prop.upper() + "".join(f";{k.upper()}={v}" for k, v in params.items())
            if kind == "date-time":
                value = value.replace("-", "").replace(":", "")
            elif kind == "period":
                value = "/".join(v.replace("-", "").replace(":", "") for v in value)
            lines.append(f"{head}:{value}")
        for sub in subcomponents:
            lines += component(*sub)
        return lines + [f"END:{name.upper()}"]

    return component(*json.loads(body))


def textLines(body: bytes) -> list:
    return body.decode("utf-8").replace("\r\n ", "").split("\r\n")[:-1]


class PublicViewTests(unittest.SynchronousTestCase):
    """
    The one rendering itself.
    """

    stamp = datetime(2026, 1, 2, 3, 4, 5, 678, timezone.utc)

    def test_outlookFile(self):
        """
        Outlook's file gets a UID, a mailto: ORGANIZER and its DTSTAMP the
        given second; its window and period are kept.
        """
        body = publicview.publicFreeBusy(outlookVFB(), "alice", self.stamp)
        lines = textLines(body)
        for line in ["UID:fbtwist-alice", "DTSTAMP:20260102T030405Z", "ORGANIZER:mailto:someone@example.com",
                     "DTSTART:20201227T230000Z", "DTEND:20210228T230000Z",
                     "FREEBUSY:20210105T070000Z/20210105T073000Z"]:
            self.assertIn(line, lines)
        self.assertEqual(vobjectErrors(body), [])

    def test_noOrganizerNoWindow(self):
        """
        Without ORGANIZER the owner's stable URN stands in; without a window
        the periods' span is the window; every FBTYPE is kept.
        """
        body = publicview.publicFreeBusy(TYPED, "bob", self.stamp)
        lines = textLines(body)
        self.assertIn("ORGANIZER:" + publicview.publicOrganizer("bob"), lines)
        self.assertTrue(publicview.publicOrganizer("bob").startswith("urn:uuid:"))
        self.assertNotEqual(publicview.publicOrganizer("bob"), publicview.publicOrganizer("alice"))
        self.assertIn("DTSTART:20210105T070000Z", lines)
        self.assertIn("DTEND:20210106T160000Z", lines)
        self.assertEqual([line for line in lines if line.startswith("FREEBUSY")], [
            "FREEBUSY:20210105T070000Z/20210105T080000Z",
            "FREEBUSY:20210105T100000Z/20210105T120000Z",
            "FREEBUSY;FBTYPE=BUSY-TENTATIVE:20210105T150000Z/20210105T160000Z",
            "FREEBUSY;FBTYPE=FREE:20210106T070000Z/20210106T080000Z",
            "FREEBUSY;FBTYPE=BUSY-UNAVAILABLE:20210106T150000Z/20210106T160000Z",
        ])

    def test_nothingAtAll(self):
        """
        No periods and no window: a window of the stamp, still valid.
        """
        body = publicview.publicView(FreeBusy(), "carol", self.stamp)
        self.assertIn("DTSTART:20260102T030405Z", textLines(body))
        self.assertIn("DTEND:20260102T030405Z", textLines(body))
        self.assertEqual(vobjectErrors(body), [])

    def test_jcalSameCalendar(self):
        """
        The jCal rendering holds the same properties as the text one.
        """
        fb = FreeBusy([Period(datetime(2021, 1, 5, 7, tzinfo=timezone.utc),
                              datetime(2021, 1, 5, 8, tzinfo=timezone.utc), "BUSY-TENTATIVE")],
                      organizer="x@example.com")
        text = publicview.publicView(fb, "alice", self.stamp)
        jcal = publicview.publicView(fb, "alice", self.stamp, jcal=True)
        self.assertEqual(jcalAsText(jcal), textLines(text))

