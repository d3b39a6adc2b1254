"""
The page people read, C{/calendar/}: the week grid in real headless
Chromium, served over real loopback HTTP (its HTML and JSON are tested in
memory, in L{tests.unit.test_page}).
"""

from twisted.internet import defer
from twisted.trial import unittest

from tests.browser import startBrowser
from tests.helpers import inline, startServer
from tests.unit.test_page import busyFile


class PageTestCase(unittest.TestCase):
    async def _setUp(self):
        self.server = await startServer(self, "--default-tz", "Europe/Berlin")
        # 10:00 to 11:30 in Berlin on Tuesday 24 November 2026.
        self.server.store.write(("alice.vfb",), busyFile("20261124T090000Z/20261124T103000Z"))

    def setUp(self):
        return defer.Deferred.fromCoroutine(self._setUp())


#: Facts about the laid-out page, measured in the browser (CSS pixels).
_MEASURE = """
function box(element) {
  var r = element.getBoundingClientRect();
  return {left: r.left, right: r.right, top: r.top, bottom: r.bottom};
}
function grid(person) { return document.querySelector("table[data-person='" + person + "']"); }
function column(person, day) { return grid(person).querySelector("td[data-day='" + day + "']"); }
function hourLabel(person, hour) { return box(grid(person).querySelectorAll("td.hours span")[hour]); }
return {
  legend: Array.prototype.map.call(document.querySelectorAll("ul.legend li"), function (li) {
    return li.textContent.trim(); }),
  people: Array.prototype.map.call(document.querySelectorAll("section.person h2"), function (h) {
    return h.textContent; }),
  tuesday: Array.prototype.map.call(column("alice", "2026-11-24").querySelectorAll(".block"), box),
  tuesdayColumn: box(column("alice", "2026-11-24")),
  hours: [9, 10, 11, 13, 15].map(function (hour) { return hourLabel("alice", hour); }),
  short: box(column("alice", "2026-11-25").querySelector(".block")),
  overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
  ready: document.documentElement.getAttribute("data-ready")
};
"""

_DETAIL = """
var detail = document.getElementById("detail"), block = document.querySelector(".block.selected");
function box(element) {
  var r = element.getBoundingClientRect();
  return {left: r.left, right: r.right, top: r.top, bottom: r.bottom};
}
return {hidden: detail.hidden, text: detail.innerText, detail: box(detail), block: block && box(block),
        width: document.documentElement.clientWidth, height: document.documentElement.clientHeight};
"""


class BrowserPageTests(PageTestCase):
    """
    The page in real headless Chromium, at a desktop's and a phone's size;
    screenshots are kept in the test's temporary directory.
    """

    async def _setUp(self):
        await super()._setUp()
        self.server.store.write(("alice.vfb",), busyFile(
            "20261124T090000Z/20261124T103000Z",
            # Tuesday 13:00 to 15:00, published as two periods.
            "20261124T120000Z/20261124T130000Z", "20261124T130000Z/20261124T140000Z",
            # A 15-minute meeting on Wednesday at 09:15.
            "FBTYPE=BUSY-TENTATIVE:20261125T081500Z/20261125T083000Z",
            "FBTYPE=BUSY-UNAVAILABLE:20261126T130000Z/20261127T170000Z",
        ))
        self.server.store.write(("bsmith.vfb",), busyFile("20261123T080000Z/20261123T090000Z"))
        # Sunday 16:00 to 17:00, in the last column of the third grid.
        self.server.store.write(("carol.vfb",), busyFile("20261129T150000Z/20261129T160000Z"))

    async def showWeek(self, screen: str, width: int, height: int, phone: bool):
        """
        Search for three people and one nobody in a browser of this size;
        check the layout; click the third person's block and a short one
        and check where their times are shown.

        @return: The browser, on the page.
        """
        browser = await startBrowser(self)
        await browser.setViewport(width, height, phone)
        url = self.server.url("/calendar/?week=2026-11-24")

        def search(driver):
            from selenium.webdriver.common.by import By

            driver.get(url)
            box = driver.find_element(By.ID, "who")
            box.send_keys("alice, betty, carol, nobody")
            box.submit()
            return driver.execute_script(_MEASURE)

        facts = await browser.call(search)
        self.assertEqual(facts["ready"], "1")
        self.assertEqual(facts["people"], ["alice", "betty", "carol", "nobody"])
        self.assertEqual(facts["legend"], ["busy", "tentative", "out of office", "Click a block for its exact times."])
        # No sideways scrolling.
        self.assertLessEqual(facts["overflow"], 0)
        # 10:00 to 11:30, and 13:00 to 15:00 as one element, each level
        # with the hours down the side.
        h9, h10, h11, h13, h15 = facts["hours"]
        pitch = h11["top"] - h10["top"]
        self.assertEqual(pitch, 24)
        first, second = facts["tuesday"]
        self.assertAlmostEqual(first["top"], h10["top"], delta=1.5)
        self.assertAlmostEqual(first["bottom"], h11["top"] + pitch / 2, delta=1.5)
        self.assertAlmostEqual(second["top"], h13["top"], delta=1.5)
        self.assertAlmostEqual(second["bottom"], h15["top"], delta=1.5)
        self.assertGreaterEqual(first["left"], facts["tuesdayColumn"]["left"])
        self.assertLessEqual(first["right"], facts["tuesdayColumn"]["right"])
        # The 15-minute meeting starts a quarter past and is tall enough to
        # see and click (its true length would be a quarter of an hour).
        short = facts["short"]
        self.assertAlmostEqual(short["top"], h9["top"] + pitch / 4, delta=1.5)
        self.assertGreaterEqual(short["bottom"] - short["top"], 12)
        self.assertLess(pitch / 4, 12)

        for person, day in [("carol", "2026-11-29"), ("alice", "2026-11-25")]:
            def click(driver, person=person, day=day):
                from selenium.webdriver.common.by import By

                block = driver.find_element(
                    By.CSS_SELECTOR, f"table[data-person='{person}'] td[data-day='{day}'] .block")
                if person == "carol":
                    # Where a reader scrolls to see the third person.
                    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", block)
                block.click()
                return driver.execute_script(_DETAIL)

            shown = await browser.call(click)
            self.assertFalse(shown["hidden"])
            self.assertInViewport(shown)
            self.assertNextTo(shown["detail"], shown["block"])
            if person == "carol":
                self.assertEqual(shown["text"], "carol\nbusy, Sun 29 Nov 16:00 to 17:00")
                await browser.screenshot(f"{screen}-third-person")
            else:
                self.assertEqual(shown["text"], "alice\ntentative, Wed 25 Nov 09:15 to 09:30")
        await browser.screenshot(f"{screen}-week", fullPage=True)
        messages = await browser.consoleMessages()
        self.assertEqual([m for m in messages if "Content Security Policy" in m], [])
        return browser

    def assertInViewport(self, shown):
        detail = shown["detail"]
        self.assertGreaterEqual(detail["left"], 0)
        self.assertGreaterEqual(detail["top"], 0)
        self.assertLessEqual(detail["right"], shown["width"])
        self.assertLessEqual(detail["bottom"], shown["height"])

    def assertNextTo(self, detail, block):
        """
        The detail box touches the block's side (within 10 px, overlapping
        it in height), or its top or bottom (overlapping it in width).
        """
        def overlap(a0, a1, b0, b1):
            return min(a1, b1) - max(a0, b0) > 0

        beside = (0 <= detail["left"] - block["right"] <= 10 or 0 <= block["left"] - detail["right"] <= 10) \
            and overlap(detail["top"], detail["bottom"], block["top"], block["bottom"])
        aboveOrBelow = (0 <= detail["top"] - block["bottom"] <= 10 or 0 <= block["top"] - detail["bottom"] <= 10) \
            and overlap(detail["left"], detail["right"], block["left"], block["right"])
        self.assertTrue(beside or aboveOrBelow, (detail, block))

    @inline
    async def test_desktop(self):
        """
        At 1280x800 the grids line up, the clicked block's times are shown
        beside it, Escape hides them and Enter on the block shows them
        again, and the next-week link leads to an empty week.
        """
        browser = await self.showWeek("desktop", 1280, 800, phone=False)

        def escapeThenNextWeek(driver):
            from selenium.webdriver.common.by import By
            from selenium.webdriver.common.keys import Keys

            isHidden = "return document.getElementById('detail').hidden"
            driver.switch_to.active_element.send_keys(Keys.ESCAPE)
            hidden = driver.execute_script(isHidden)
            # The block keeps the focus: Enter shows its times again.
            focused = driver.switch_to.active_element
            focused.send_keys(Keys.ENTER)
            shownAgain = not driver.execute_script(isHidden)
            focusedClass = focused.get_attribute("class")
            driver.find_element(By.ID, "next").click()
            return (hidden, shownAgain, focusedClass, driver.current_url,
                    len(driver.find_elements(By.CSS_SELECTOR, ".block")))

        hidden, shownAgain, focusedClass, current, count = await browser.call(escapeThenNextWeek)
        self.assertTrue(hidden)
        self.assertTrue(shownAgain)
        self.assertIn("block", focusedClass.split())
        self.assertIn("week=2026-11-30", current)
        self.assertEqual(count, 0)

    @inline
    async def test_phone(self):
        """
        At 390x844 (a phone) the page fits the width, and a clicked block's
        times are shown next to it on the screen.
        """
        await self.showWeek("phone", 390, 844, phone=True)
