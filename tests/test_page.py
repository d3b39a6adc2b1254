"""
The page people read, C{/calendar/}: HTML and JSON over real loopback HTTP,
and the week grid in real headless Chromium.
"""

import json
import re

from twisted.internet import defer
from twisted.trial import unittest

from tests.browser import startBrowser
from tests.helpers import httpClient, startServer, inline




def busyFile(*periods: str) -> bytes:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN", "BEGIN:VFREEBUSY",
             "DTSTART:20260101T000000Z", "DTEND:20270101T000000Z"]
    lines += [f"FREEBUSY:{p}" for p in periods]
    lines += ["END:VFREEBUSY", "END:VCALENDAR", ""]
    return "\r\n".join(lines).encode()


def cell(html: bytes, person: str, day: str, hour: int) -> str:
    """
    The opening tag of one grid cell.
    """
    table = html.split(f'data-person="{person}"'.encode(), 1)[1].split(b"</table>", 1)[0].decode()
    match = re.search(rf'<td data-day="{day}" data-hour="{hour}"[^>]*>', table)
    assert match, (person, day, hour)
    return match.group(0)


def classes(tag: str) -> set:
    match = re.search(r'class="([^"]*)"', tag)
    return set(match.group(1).split()) if match else set()


class PageTestCase(unittest.TestCase):
    async def _setUp(self):
        self.server = await startServer(self, "--default-tz", "Europe/Berlin")
        self.http = httpClient(self)
        # 10:00 to 11:30 in Berlin on Tuesday 24 November 2026.
        self.server.store.write(("alice.vfb",), busyFile("20261124T090000Z/20261124T103000Z"))

    def setUp(self):
        return defer.Deferred.fromCoroutine(self._setUp())

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
        nothing from elsewhere.
        """
        response, content = await self.get("/calendar/")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders(b"Content-Type"), [b"text/html; charset=utf-8"])
        self.assertIn(b'<input id="who" name="who"', content)
        self.assertIn(b'href="/calendar/page.css"', content)
        self.assertIn(b'src="/calendar/page.js"', content)
        self.assertNotIn(b"http://", content)
        self.assertNotIn(b"https://", content)
        self.assertIn(b"default-src 'none'", response.headers.getRawHeaders(b"Content-Security-Policy")[0])
        for name, kind in [("page.css", b"text/css"), ("page.js", b"text/javascript")]:
            response, body = await self.get("/calendar/" + name)
            self.assertEqual(response.code, 200)
            self.assertTrue(response.headers.getRawHeaders(b"Content-Type")[0].startswith(kind))
            self.assertTrue(body)

    @inline
    async def test_weekGrid(self):
        """
        The busy hours of the week asked for are marked in the grid in the
        server's zone, with previous and next week links.
        """
        response, content = await self.get("/calendar/?who=alice&week=2026-11-26")
        self.assertEqual(response.code, 200)
        self.assertEqual(classes(cell(content, "alice", "2026-11-24", 10)) - {"today"}, {"busy"})
        self.assertEqual(classes(cell(content, "alice", "2026-11-24", 11)) - {"today"},
                         {"busy", "partial", "from-0", "to-2"})
        self.assertIn("10:00 to 2026-11-24 11:30", cell(content, "alice", "2026-11-24", 11))
        self.assertNotIn("busy", classes(cell(content, "alice", "2026-11-24", 9)))
        self.assertNotIn("busy", classes(cell(content, "alice", "2026-11-23", 10)))
        self.assertNotIn("busy", classes(cell(content, "alice", "2026-11-24", 12)))
        self.assertIn(b'href="/calendar/?who=alice&amp;week=2026-11-16"', content)
        self.assertIn(b'href="/calendar/?who=alice&amp;week=2026-11-30"', content)

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
        The hour skipped in March is marked as a gap; the October week
        spans 169 hours.
        """
        _, content = await self.get("/calendar/?who=alice&week=2026-03-29")
        self.assertIn("gap", classes(cell(content, "alice", "2026-03-29", 2)))
        self.assertNotIn("gap", classes(cell(content, "alice", "2026-03-29", 3)))
        self.assertNotIn("gap", classes(cell(content, "alice", "2026-03-28", 2)))
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

    @inline
    async def test_badParameters(self):
        """
        A bad week, a bad zone or too many people are 400.
        """
        for query in ["week=someday", "tz=Mars/Olympus", "who=" + ",".join(f"p{i}" for i in range(21))]:
            response, _ = await self.get("/calendar/?" + query)
            self.assertEqual((query, response.code), (query, 400))


class BrowserPageTests(PageTestCase):
    """
    The page in real headless Chromium.
    """

    @inline
    async def test_busyBlockInBrowser(self):
        """
        Searching for alice shows her published busy block in the right
        cells; clicking one shows its times (our script ran); the next-week
        link leads to an empty week.  A screenshot is kept.
        """
        browser = await startBrowser(self)
        url = self.server.url("/calendar/?week=2026-11-24")

        def search(driver):
            from selenium.webdriver.common.by import By

            driver.get(url)
            box = driver.find_element(By.ID, "who")
            box.send_keys("alice, betty")
            box.submit()
            table = "table[data-person='alice']"
            busy = [(c.get_attribute("data-day"), c.get_attribute("data-hour"))
                    for c in driver.find_elements(By.CSS_SELECTOR, table + " td.busy")]
            target = driver.find_element(By.CSS_SELECTOR, table + " td[data-day='2026-11-24'][data-hour='10']")
            color = target.value_of_css_property("background-color")
            target.click()
            detail = driver.find_element(By.ID, "detail").text
            missing = driver.find_element(By.CSS_SELECTOR, "p.missing").text
            return busy, color, detail, missing, driver.execute_script(
                "return document.documentElement.getAttribute('data-ready')")

        busy, color, detail, missing, ready = await browser.call(search)
        self.assertEqual(busy, [("2026-11-24", "10"), ("2026-11-24", "11")])
        self.assertEqual(color, "rgba(59, 111, 212, 1)")
        self.assertEqual(detail, "alice: 2026-11-24 10:00 to 2026-11-24 11:30 busy")
        self.assertIn("Nobody by this name", missing)
        self.assertEqual(ready, "1")
        path = await browser.screenshot("week")
        with open(path, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")

        def nextWeek(driver):
            from selenium.webdriver.common.by import By

            driver.find_element(By.ID, "next").click()
            return driver.current_url, len(driver.find_elements(By.CSS_SELECTOR, "td.busy"))

        current, count = await browser.call(nextWeek)
        self.assertIn("week=2026-11-30", current)
        self.assertEqual(count, 0)


class CellTests(unittest.SynchronousTestCase):
    """
    The hours of the grid.
    """

    def test_quarters(self):
        """
        One stretch of busy time inside an hour gives the quarters it
        touches; a whole hour, or two stretches, shows as wholly busy.
        """
        from datetime import date, datetime, timezone
        from zoneinfo import ZoneInfo

        from fbtwist.freebusy import Period
        from fbtwist.page import Cell

        def quarters(*spans):
            c = Cell(date(2026, 1, 5), 10, ZoneInfo("UTC"))
            c.cover([Period(datetime(2026, 1, 5, 10, a, tzinfo=timezone.utc),
                            datetime(2026, 1, 5, 10, b, tzinfo=timezone.utc) if b < 60 else
                            datetime(2026, 1, 5, 11, 0, tzinfo=timezone.utc)) for a, b in spans])
            return c.fbtype, c.quarters()

        self.assertEqual(quarters((20, 40)), ("BUSY", (1, 3)))
        self.assertEqual(quarters((0, 30)), ("BUSY", (0, 2)))
        self.assertEqual(quarters((50, 60)), ("BUSY", (3, 4)))
        self.assertEqual(quarters((0, 60)), ("BUSY", None))
        self.assertEqual(quarters((0, 15), (45, 60)), ("BUSY", None))
        self.assertEqual(quarters(), (None, None))

    def test_dstGap(self):
        """
        The hour skipped when Berlin's clocks go forward takes no time.
        """
        from datetime import date
        from zoneinfo import ZoneInfo

        from fbtwist.page import Cell

        self.assertFalse(Cell(date(2026, 3, 29), 2, ZoneInfo("Europe/Berlin")).exists)
        self.assertEqual((lambda c: c.end - c.start)(Cell(date(2026, 10, 25), 2, ZoneInfo("Europe/Berlin"))).seconds,
                         7200)
