"""
Working hours on a whole server in memory (L{tests.memory}): the site's
(C{--working-hours} in C{--default-tz}) and each person's own
C{<login>.avail.ics}, published over HTTP (checked like the other calendar
files; over FTP with a real client: L{tests.integration.test_workhours}),
marking time outside them C{BUSY-UNAVAILABLE} in lookups with
C{workhours=1} or, with C{--apply-working-hours}, in every lookup.
"""

from twisted.python import usage
from twisted.trial import unittest

from tests.helpers import availability, basicAuth, freeBusy, inline, serviceOptions
from tests.memory import startMemoryServer
from tests.unit.test_lookup import periodsOf

UNAVAILABLE = "BUSY-UNAVAILABLE"


class WorkingHoursTestCase(unittest.TestCase):
    serverArgs = ("--default-tz", "Europe/Berlin", "--working-hours", "Mon-Fri 08:00-18:00")

    def setUp(self):
        self.server = startMemoryServer(self, *self.serverArgs)
        self.http = self.server.client()
        for uid in ("alice", "bsmith"):
            self.server.store.write((uid + ".vfb",), freeBusy("20250331T070000Z/20250331T073000Z"))

    async def periods(self, name: str, query: str):
        response = await self.http.get(self.server.url(f"/calendar/{name}.vfb?{query}"))
        body = await response.content()
        self.assertEqual(response.code, 200, body)
        return periodsOf(body)[0]


class SiteWorkingHoursTests(WorkingHoursTestCase):
    """
    People who publish no working hours have the site's, on the wall clock
    of C{--default-tz}, across daylight-saving changes.
    """

    @inline
    async def test_shortRangesAcrossDaylightSaving(self):
        """
        Two hours around 08:00 in Berlin: 07:00Z is the start of work on the
        Friday before the clocks change, 06:00Z on the Monday after; the
        periods are clipped to the range.
        """
        self.assertEqual(
            await self.periods("alice", "start=20250328T060000Z&end=20250328T080000Z&workhours=1"),
            [("20250328T060000Z", "20250328T070000Z", UNAVAILABLE)])
        self.assertEqual(
            await self.periods("alice", "start=20250331T050000Z&end=20250331T080000Z&workhours=1"),
            [("20250331T050000Z", "20250331T060000Z", UNAVAILABLE),
             ("20250331T070000Z", "20250331T073000Z", None)])

    @inline
    async def test_weekend(self):
        """
        A Saturday is unavailable all day; a whole Monday is unavailable
        before 08:00 and from 18:00 Berlin time.
        """
        self.assertEqual(
            await self.periods("alice", "start=20250329T000000Z&end=20250330T000000Z&workhours=1"),
            [("20250329T000000Z", "20250330T000000Z", UNAVAILABLE)])
        self.assertEqual(
            await self.periods("alice", "start=20250331T000000Z&end=20250401T000000Z&workhours=yes"),
            [("20250331T000000Z", "20250331T060000Z", UNAVAILABLE),
             ("20250331T070000Z", "20250331T073000Z", None),
             ("20250331T160000Z", "20250401T000000Z", UNAVAILABLE)])

    @inline
    async def test_onlyWhenAsked(self):
        """
        Without workhours=1 the published periods are served as they are;
        workhours=0 is the same; workhours=maybe is a 400.
        """
        expected = [("20250331T070000Z", "20250331T073000Z", None)]
        self.assertEqual(await self.periods("alice", "start=20250331T000000Z&end=20250401T000000Z"), expected)
        self.assertEqual(
            await self.periods("alice", "start=20250331T000000Z&end=20250401T000000Z&workhours=0"), expected)
        response = await self.http.get(self.server.url("/calendar/alice.vfb?workhours=maybe"))
        self.assertEqual((response.code, await response.content()), (400, b"workhours must be 1 or 0.\n"))

    @inline
    async def test_group(self):
        """
        A group lookup with workhours=1 marks time outside its members'
        working hours.
        """
        response = await self.http.get(self.server.url(
            "/calendar/group/admins.vfb?start=20250329T000000Z&end=20250329T020000Z&workhours=1"))
        # admins has published nothing: the group is a miss, as without workhours.
        self.assertEqual(response.code, 404)
        await response.content()
        self.server.store.write(("admin.vfb",), freeBusy())
        response = await self.http.get(self.server.url(
            "/calendar/group/admins.vfb?start=20250329T000000Z&end=20250329T020000Z&workhours=1"))
        self.assertEqual(periodsOf(await response.content())[0],
                         [("20250329T000000Z", "20250329T020000Z", UNAVAILABLE)])


class OwnWorkingHoursTests(WorkingHoursTestCase):
    """
    A person's own C{<login>.avail.ics} replaces the site's hours, in its
    own zone.
    """

    @inline
    async def test_publishedOverHTTP(self):
        """
        bsmith publishes 09:00-17:00 New York over WebDAV: the Friday before
        the US clocks change work starts at 14:00Z, the Monday after at
        13:00Z; alice keeps the site's hours.
        """
        response = await self.http.put(
            self.server.url("/pub/calendar/bsmith.avail.ics"), data=availability(),
            headers={**basicAuth("bsmith"), b"Content-Type": [b"text/calendar"]})
        self.assertEqual(response.code, 201, await response.content())
        self.assertEqual(
            await self.periods("bsmith", "start=20250307T120000Z&end=20250307T150000Z&workhours=1"),
            [("20250307T120000Z", "20250307T140000Z", UNAVAILABLE)])
        self.assertEqual(
            await self.periods("betty", "start=20250310T120000Z&end=20250310T150000Z&workhours=1"),
            [("20250310T120000Z", "20250310T130000Z", UNAVAILABLE)])
        self.assertEqual(
            await self.periods("alice", "start=20250310T120000Z&end=20250310T150000Z&workhours=1"), [])

    @inline
    async def test_republishedHoursChangeTheAnswer(self):
        """
        Publishing other hours changes the answer (and its entity tag).
        """
        self.server.store.write(("alice.avail.ics",), availability("Europe/Berlin", "100000", "120000"))
        query = "start=20250331T070000Z&end=20250331T110000Z&workhours=1"
        first = await self.http.get(self.server.url(f"/calendar/alice.vfb?{query}"))
        self.assertEqual(periodsOf(await first.content())[0],
                         [("20250331T070000Z", "20250331T073000Z", None),
                          ("20250331T070000Z", "20250331T080000Z", UNAVAILABLE),
                          ("20250331T100000Z", "20250331T110000Z", UNAVAILABLE)])
        self.server.store.write(("alice.avail.ics",), availability("Europe/Berlin", "090000", "130000"))
        second = await self.http.get(self.server.url(f"/calendar/alice.vfb?{query}"))
        self.assertEqual(periodsOf(await second.content())[0],
                         [("20250331T070000Z", "20250331T073000Z", None)])
        self.assertNotEqual(first.headers.getRawHeaders(b"ETag"), second.headers.getRawHeaders(b"ETag"))

    @inline
    async def test_unreadableFileFallsBackToTheSite(self):
        """
        Working hours written past the publish check (by another program)
        that cannot be read leave the site's hours in force.
        """
        self.server.store.write(("alice.avail.ics",), b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n")
        self.assertEqual(
            await self.periods("alice", "start=20250328T060000Z&end=20250328T080000Z&workhours=1"),
            [("20250328T060000Z", "20250328T070000Z", UNAVAILABLE)])

    @inline
    async def test_invalidRefusedOverHTTP(self):
        """
        Working hours that are not a readable VAVAILABILITY are refused with
        400 and the reason; nobody may publish another's working hours.
        """
        headers = {**basicAuth("alice"), b"Content-Type": [b"text/calendar"]}
        badPriority = availability().replace(b"BEGIN:VAVAILABILITY\r\n", b"BEGIN:VAVAILABILITY\r\nPRIORITY:12\r\n")
        response = await self.http.put(self.server.url("/pub/calendar/alice.avail.ics"), headers=headers,
                                       data=badPriority)
        body = await response.content()
        self.assertEqual(response.code, 400, body)
        self.assertIn(b"PRIORITY", body)
        response = await self.http.put(self.server.url("/pub/calendar/alice.avail.ics"), headers=headers,
                                       data=freeBusy())
        self.assertEqual(response.code, 400)
        self.assertIn(b"VAVAILABILITY", await response.content())
        response = await self.http.put(self.server.url("/pub/calendar/bsmith.avail.ics"), headers=headers,
                                       data=availability())
        self.assertEqual(response.code, 403)
        await response.content()
        self.assertIsNone(self.server.store.stat(("alice.avail.ics",)))


class ApplyWorkingHoursTests(WorkingHoursTestCase):
    """
    C{--apply-working-hours} marks time outside working hours in every
    answer.
    """

    serverArgs = WorkingHoursTestCase.serverArgs + ("--apply-working-hours",)

    @inline
    async def test_everyAnswer(self):
        """
        A lookup without workhours=1 is marked too.
        """
        self.assertEqual(
            await self.periods("alice", "start=20250329T000000Z&end=20250329T010000Z"),
            [("20250329T000000Z", "20250329T010000Z", UNAVAILABLE)])


class WorkingHoursOptionTests(unittest.SynchronousTestCase):
    """
    C{--working-hours} is checked at start-up.
    """

    def test_badValue(self):
        """
        Working hours that cannot be read are one clear sentence naming the
        option.
        """
        with self.assertRaises(usage.UsageError) as caught:
            serviceOptions("--working-hours", "Mon-Fri 8-18")
        self.assertIn("--working-hours", str(caught.exception))
        self.assertIn("is not a time window such as 08:00-18:00", str(caught.exception))
