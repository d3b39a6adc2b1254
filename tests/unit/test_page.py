"""
The page people read, C{/calendar/}: HTML and JSON over HTTP in memory
(L{tests.memory}); the grid's blocks and cells.
"""

import json
import re
from html import unescape

from twisted.trial import unittest

from tests.helpers import inline
from tests.memory import startMemoryServer


def busyFile(*periods: str) -> bytes:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN", "BEGIN:VFREEBUSY",
             "DTSTART:20260101T000000Z", "DTEND:20270101T000000Z"]
    # A period with parameters is written "FBTYPE=...:start/end".
    lines += [f"FREEBUSY;{p}" if ":" in p else f"FREEBUSY:{p}" for p in periods]
    lines += ["END:VFREEBUSY", "END:VCALENDAR", ""]
    return "\r\n".join(lines).encode()


def grid(html: bytes, person: str) -> str:
    """
    The week grid of one person.
    """
    return html.split(f'data-person="{person}"'.encode(), 1)[1].split(b"</table>", 1)[0].decode()


def blocks(html: bytes, person: str) -> list:
    """
    Each busy block of a person's grid: (day, classes, title).
    """
    found = []
    for td in re.finditer(r'<td data-day="([^"]*)"[^>]*>(.*?)</td>', grid(html, person)):
        for button in re.finditer(r'<button type="button" title="([^"]*)" class="([^"]*)">', td.group(2)):
            found.append((td.group(1), set(button.group(2).split()), unescape(button.group(1))))
    return found


class PageTestCase(unittest.TestCase):
    def setUp(self):
        self.server = startMemoryServer(self, "--default-tz", "Europe/Berlin")
        self.http = self.server.client()
        # 10:00 to 11:30 in Berlin on Tuesday 24 November 2026.
        self.server.store.write(("alice.vfb",), busyFile("20261124T090000Z/20261124T103000Z"))

    async def get(self, path, accept="text/html"):
        response = await self.http.get(self.server.url(path), headers={b"Accept": [accept.encode()]})
        return response, await response.content()


class PageTests(PageTestCase):
    """
    The server-rendered page and its JSON twin.
    """

    @inline
    async def test_searchBox(self):
        """
        Without names the page is a search box, with our own CSS and JS and
        nothing from elsewhere, and no inline script or style.
        """
        response, content = await self.get("/calendar/")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders(b"Content-Type"), [b"text/html; charset=utf-8"])
        self.assertTrue(content.startswith(b"<!DOCTYPE html>\n<html lang=\"en\">"))
        self.assertIn(b'<input id="who" name="who"', content)
        self.assertIn(b'autofocus="autofocus"', content)
        self.assertIn(b'href="/calendar/page.css"', content)
        self.assertIn(b'<script src="/calendar/page.js" defer="defer"></script>', content)
        self.assertEqual(content.count(b"<script"), 1)
        self.assertNotIn(b"style=", content)
        self.assertNotIn(b"<style", content)
        self.assertNotIn(b"http://", content)
        self.assertNotIn(b"https://", content)
        self.assertNotIn(b'class="legend"', content)
        self.assertIn(b"default-src 'none'", response.headers.getRawHeaders(b"Content-Security-Policy")[0])
        for name, kind in [("page.css", b"text/css"), ("page.js", b"text/javascript")]:
            response, body = await self.get("/calendar/" + name)
            self.assertEqual(response.code, 200)
            self.assertTrue(response.headers.getRawHeaders(b"Content-Type")[0].startswith(kind))
            self.assertTrue(body)

    @inline
    async def test_weekGrid(self):
        """
        A busy period is one block in the cell of the hour it starts in,
        placed and sized in five-minute steps, with its times in words;
        previous and next week links.
        """
        response, content = await self.get("/calendar/?who=alice&week=2026-11-26")
        self.assertEqual(response.code, 200)
        self.assertEqual(blocks(content, "alice"), [
            ("2026-11-24", {"block", "busy", "hour-10", "at-0", "h-1", "f-6"}, "busy, Tue 24 Nov 10:00 to 11:30"),
        ])
        self.assertIn(b'href="/calendar/?who=alice&amp;week=2026-11-16"', content)
        self.assertIn(b'href="/calendar/?who=alice&amp;week=2026-11-30"', content)

    @inline
    async def test_legendAndWords(self):
        """
        A legend names the three kinds of busy time, and blocks are labelled
        in the same words ("tentative", "out of office"), never as FBTYPE
        values.
        """
        self.server.store.write(("alice.vfb",), busyFile(
            "20261124T090000Z/20261124T100000Z",
            "FBTYPE=BUSY-TENTATIVE:20261125T090000Z/20261125T100000Z",
            "FBTYPE=BUSY-UNAVAILABLE:20261126T090000Z/20261126T100000Z",
        ))
        _, content = await self.get("/calendar/?who=alice&week=2026-11-23")
        legend = re.search(rb'<ul class="legend"[^>]*>(.*?)</ul>', content, re.S).group(1).decode()
        self.assertEqual(re.findall(r'<span class="swatch (\w+)"></span> ([\w ]+)</li>', legend),
                         [("busy", "busy"), ("tentative", "tentative"), ("away", "out of office")])
        self.assertEqual([(b[1] & {"busy", "tentative", "away"}, b[2]) for b in blocks(content, "alice")], [
            ({"busy"}, "busy, Tue 24 Nov 10:00 to 11:00"),
            ({"tentative"}, "tentative, Wed 25 Nov 10:00 to 11:00"),
            ({"away"}, "out of office, Thu 26 Nov 10:00 to 11:00"),
        ])
        self.assertIn(b"<span>out of office</span>", content)
        self.assertNotIn(b"busy-unavailable", content.lower())
        self.assertNotIn(b"busy-tentative", content.lower())

    @inline
    async def test_adjacentPeriodsOneBlock(self):
        """
        Periods published back to back, one running into the next day, are
        one block a day; where the kind changes a new block begins.
        """
        self.server.store.write(("alice.vfb",), busyFile(
            "20261124T090000Z/20261124T100000Z,20261124T100000Z/20261124T110000Z",
            "20261124T110000Z/20261124T120000Z",
            "FBTYPE=BUSY-TENTATIVE:20261124T120000Z/20261124T123000Z",
            "20261124T210000Z/20261125T010000Z",
        ))
        _, content = await self.get("/calendar/?who=alice&week=2026-11-23")
        self.assertEqual([(b[0], b[1] - {"block"}, b[2]) for b in blocks(content, "alice")], [
            ("2026-11-24", {"busy", "hour-10", "at-0", "h-3", "f-0"}, "busy, Tue 24 Nov 10:00 to 13:00"),
            ("2026-11-24", {"tentative", "hour-13", "at-0", "h-0", "f-6"}, "tentative, Tue 24 Nov 13:00 to 13:30"),
            ("2026-11-24", {"busy", "hour-22", "at-0", "h-2", "f-0"}, "busy, Tue 24 Nov 22:00 to Wed 25 Nov 02:00"),
            ("2026-11-25", {"busy", "hour-0", "at-0", "h-2", "f-0"}, "busy, Tue 24 Nov 22:00 to Wed 25 Nov 02:00"),
        ])

    @inline
    async def test_shortEvent(self):
        """
        A 15-minute meeting is a block of three five-minute steps starting
        a quarter past, and a 2-minute one still takes one step.
        """
        self.server.store.write(("alice.vfb",), busyFile(
            "20261124T081500Z/20261124T083000Z", "20261124T094100Z/20261124T094300Z"))
        _, content = await self.get("/calendar/?who=alice&week=2026-11-23")
        self.assertEqual([(b[1] - {"block", "busy"}, b[2]) for b in blocks(content, "alice")], [
            ({"hour-9", "at-3", "h-0", "f-3"}, "busy, Tue 24 Nov 09:15 to 09:30"),
            ({"hour-10", "at-8", "h-0", "f-1"}, "busy, Tue 24 Nov 10:41 to 10:43"),
        ])

    @inline
    async def test_zoneKept(self):
        """
        A zone asked for with tz= sets the grid's hours and is kept by the
        search form and the week links; the server's zone is not repeated.
        """
        _, content = await self.get("/calendar/?who=alice&week=2026-11-24&tz=America/New_York")
        self.assertEqual([(b[0], b[1], b[2]) for b in blocks(content, "alice")],
                         [("2026-11-24", {"block", "busy", "hour-4", "at-0", "h-1", "f-6"},
                           "busy, Tue 24 Nov 04:00 to 05:30")])
        form = re.search(rb'<form .*?</form>', content, re.S).group(0)
        self.assertIn(b'<input type="hidden" name="tz" value="America/New_York" />', form)
        self.assertIn(b'<input type="hidden" name="week" value="2026-11-23" />', form)
        self.assertIn(b'href="/calendar/?who=alice&amp;week=2026-11-30&amp;tz=America%2FNew_York"', content)
        for query in ["who=alice", "who=alice&tz=Europe/Berlin"]:
            _, content = await self.get("/calendar/?" + query)
            self.assertNotIn(b'name="tz"', content)
            self.assertNotIn(b"tz=", content)

    @inline
    async def test_json(self):
        """
        Accept: application/json gives the same data; unknown people are
        marked as not found.
        """
        response, content = await self.get("/calendar/?who=alice,nobody&week=2026-11-24", "application/json")
        self.assertEqual(response.code, 200)
        data = json.loads(content)
        self.assertEqual(data["timezone"], "Europe/Berlin")
        self.assertEqual(data["week"], {"start": "2026-11-22T23:00:00Z", "end": "2026-11-29T23:00:00Z"})
        self.assertEqual(data["days"][0], "2026-11-23")
        self.assertEqual(data["people"], [
            {"name": "alice", "found": True,
             "busy": [{"start": "2026-11-24T09:00:00Z", "end": "2026-11-24T10:30:00Z", "fbtype": "BUSY"}]},
            {"name": "nobody", "found": False, "busy": []},
        ])
        self.assertEqual(data["next"], "/calendar/?who=alice%2Cnobody&week=2026-11-30")

    @inline
    async def test_dstWeeks(self):
        """
        The hour skipped in March is marked as a gap in that day's column;
        the October week spans 169 hours.
        """
        _, content = await self.get("/calendar/?who=alice&week=2026-03-29")
        self.assertEqual(re.findall(r'<td data-day="([^"]*)"[^>]*><div title="([^"]*)" class="([^"]*)">',
                                    grid(content, "alice")),
                         [("2026-03-29", "no 02:00 this day: clocks go forward", "gap hour-2 at-0 h-1 f-0")])
        self.assertEqual(grid(content, "alice").count("gap"), 1)
        _, content = await self.get("/calendar/?who=alice&week=2026-10-25", "application/json")
        week = json.loads(content)["week"]
        self.assertEqual(week, {"start": "2026-10-18T22:00:00Z", "end": "2026-10-25T23:00:00Z"})

    @inline
    async def test_escaped(self):
        """
        Names are escaped wherever they appear.
        """
        response, content = await self.get('/calendar/?who=<script>alert(1)</script>,"><img src=x>')
        self.assertEqual(response.code, 200)
        self.assertNotIn(b"<script>alert", content)
        self.assertNotIn(b"<img", content)
        self.assertIn(b"&lt;script&gt;alert(1)&lt;/script&gt;", content)
        self.assertIn(b'value="&lt;script&gt;alert(1)&lt;/script&gt;, &quot;&gt;&lt;img src=x&gt;"', content)

    @inline
    async def test_badParameters(self):
        """
        A bad week, a bad zone or too many people are 400.
        """
        for query in ["week=someday", "tz=Mars/Olympus", "who=" + ",".join(f"p{i}" for i in range(21))]:
            response, _ = await self.get("/calendar/?" + query)
            self.assertEqual((query, response.code), (query, 400))

    @inline
    async def test_rootPage(self):
        """
        / is a small HTML page linking the page people read and the set-up
        page, under the same strict Content-Security-Policy.
        """
        for accept in ["text/html", "*/*"]:
            response, content = await self.get("/", accept)
            self.assertEqual(response.code, 200)
            self.assertEqual(response.headers.getRawHeaders(b"Content-Type"), [b"text/html; charset=utf-8"])
            self.assertIn(b"default-src 'none'", response.headers.getRawHeaders(b"Content-Security-Policy")[0])
            self.assertTrue(content.startswith(b"<!DOCTYPE html>"))
            self.assertIn(b'<a href="/calendar/">', content)
            self.assertIn(b'<a href="/setup">', content)
            self.assertIn(b"PUT /pub/calendar/&lt;login&gt;.vfb", content)
        response = await self.http.head(self.server.url("/"))
        self.assertEqual(response.code, 200)
        self.assertEqual(await response.content(), b"")


class RootElementTests(unittest.SynchronousTestCase):
    """
    The page at /.
    """

    def test_withoutSetupPage(self):
        """
        A site without a set-up page does not link one.
        """
        from twisted.web.template import flattenString

        from fbtwist.web.page import RootElement

        pages = [self.successResultOf(flattenString(None, RootElement(setup=setup))) for setup in (True, False)]
        self.assertIn(b'href="/setup"', pages[0])
        self.assertNotIn(b"/setup", pages[1])
        self.assertIn(b'href="/calendar/"', pages[1])


class BlockTests(unittest.SynchronousTestCase):
    """
    Busy periods as the grid draws them.
    """

    def blocks(self, day, zone, *spans):
        from datetime import datetime, timezone
        from zoneinfo import ZoneInfo

        from fbtwist.calendar.freebusy import Period
        from fbtwist.web.page import dayBlocks

        def utc(text):
            return datetime.strptime(text, "%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc)

        return [b.geometry() for b in dayBlocks(
            [Period(utc(s), utc(e)) for s, e in spans], day, ZoneInfo(zone))]

    def test_steps(self):
        """
        Starts are rounded down and ends up to five minutes, a block is at
        least one step long, and a day's block stops at midnight.
        """
        from datetime import date

        day = date(2026, 1, 5)
        self.assertEqual(self.blocks(day, "UTC", ("20260105T101500", "20260105T103000")),
                         [["hour-10", "at-3", "h-0", "f-3"]])
        self.assertEqual(self.blocks(day, "UTC", ("20260105T101701", "20260105T101702")),
                         [["hour-10", "at-3", "h-0", "f-1"]])
        self.assertEqual(self.blocks(day, "UTC", ("20260105T225900", "20260107T000000")),
                         [["hour-22", "at-11", "h-1", "f-1"]])
        self.assertEqual(self.blocks(day, "UTC", ("20260104T120000", "20260107T000000")),
                         [["hour-0", "at-0", "h-24", "f-0"]])
        self.assertEqual(self.blocks(day, "UTC", ("20260104T120000", "20260105T000000")), [])

    def test_dst(self):
        """
        Blocks follow the wall clock on the days clocks change: across the
        skipped hour, and inside the hour that comes twice.
        """
        from datetime import date

        # 01:30 to 03:30 in Berlin on 29 March 2026 is one hour.
        self.assertEqual(self.blocks(date(2026, 3, 29), "Europe/Berlin", ("20260329T003000", "20260329T013000")),
                         [["hour-1", "at-6", "h-2", "f-0"]])
        # 02:30 summer time to 02:15 winter time on 25 October 2026.
        self.assertEqual(self.blocks(date(2026, 10, 25), "Europe/Berlin", ("20261025T003000", "20261025T011500")),
                         [["hour-2", "at-6", "h-0", "f-1"]])

    def test_describe(self):
        """
        Periods are told in words: the kind, the day, and the end's day only
        when it is another.
        """
        from datetime import datetime, timezone
        from zoneinfo import ZoneInfo

        from fbtwist.calendar.freebusy import Period
        from fbtwist.web.page import describe

        berlin = ZoneInfo("Europe/Berlin")

        def period(start, end, fbtype="BUSY"):
            return Period(datetime(*start, tzinfo=timezone.utc), datetime(*end, tzinfo=timezone.utc), fbtype)

        self.assertEqual(describe(period((2026, 11, 24, 9), (2026, 11, 24, 10, 30)), berlin),
                         "busy, Tue 24 Nov 10:00 to 11:30")
        self.assertEqual(describe(period((2026, 11, 24, 9), (2026, 11, 24, 23), "BUSY-TENTATIVE"), berlin),
                         "tentative, Tue 24 Nov 10:00 to midnight")
        self.assertEqual(describe(period((2026, 11, 24, 9), (2026, 11, 26, 17), "BUSY-UNAVAILABLE"), berlin),
                         "out of office, Tue 24 Nov 10:00 to Thu 26 Nov 18:00")
        self.assertEqual(describe(period((2026, 11, 24, 9), (2026, 11, 25, 23)), berlin),
                         "busy, Tue 24 Nov 10:00 to Thu 26 Nov 00:00")


class CellTests(unittest.SynchronousTestCase):
    """
    The hours of the grid.
    """

    def test_dstGap(self):
        """
        The hour skipped when Berlin's clocks go forward takes no time.
        """
        from datetime import date
        from zoneinfo import ZoneInfo

        from fbtwist.web.page import Cell

        self.assertFalse(Cell(date(2026, 3, 29), 2, ZoneInfo("Europe/Berlin")).exists)
        self.assertEqual((lambda c: c.end - c.start)(Cell(date(2026, 10, 25), 2, ZoneInfo("Europe/Berlin"))).seconds,
                         7200)

