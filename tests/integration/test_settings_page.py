"""
The settings page (C{/settings}) in headless Chromium: a signed-in user
chooses who may see them and sets their working hours with the forms, and
a form another site's page sends in the user's browser is refused.
"""

import base64
import re

from twisted.internet import defer, reactor
from twisted.trial import unittest
from twisted.web.resource import Resource
from twisted.web.server import Site

from fbtwist.access.settings import Audience, SettingsStore, Shown, VisibilitySettings
from tests.browser import startBrowser
from tests.helpers import PASSWORDS, httpClient, inline, startServer


def submit(driver, buttonId: str) -> None:
    """
    Click the button C{buttonId} and wait for the page the form's answer
    (a redirect, or the page with a notice) brings.
    """
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    old = driver.find_element(By.TAG_NAME, "html")

    def replaced(_):
        # Selenium's staleness_of, also for Chromium's other way of saying
        # that the element belongs to a page no longer shown (while the
        # next page loads), which it raises as a plain WebDriverException.
        try:
            old.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as e:
            if "does not belong to the document" in str(e):
                return True
            raise
        return False

    driver.find_element(By.ID, buttonId).click()
    WebDriverWait(driver, 10).until(replaced)


class _ForgingPage(Resource):
    """
    Another site's page that posts a form to fbtwist's /settings at once.
    """

    isLeaf = True

    def __init__(self, target: str, token: str):
        super().__init__()
        self.target, self.token = target, token

    def render_GET(self, request):
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        return (f"<!doctype html><title>win a prize</title><form id='f' method='post' action='{self.target}'>"
                f"<input name='action' value='visibility'><input name='token' value='{self.token}'>"
                f"<input name='who' value='everyone'><input name='detail' value='full'></form>"
                f"<script>document.getElementById('f').submit()</script>").encode("utf-8")


class SettingsPageBrowserTests(unittest.TestCase):
    """
    alice, signed in, uses the page's forms in Chromium.
    """

    async def _setUp(self):
        self.server = await startServer(self)
        self.http = httpClient(self)
        self.browser = await startBrowser(self)
        credentials = base64.b64encode(f"alice:{PASSWORDS['alice']}".encode()).decode()
        # Basic credentials on every request, as a browser sends them once
        # the user has signed in.
        await self.browser.call(lambda driver: driver.execute_cdp_cmd("Network.enable", {}))
        await self.browser.call(lambda driver: driver.execute_cdp_cmd(
            "Network.setExtraHTTPHeaders", {"headers": {"Authorization": "Basic " + credentials}}))

    def setUp(self):
        return defer.Deferred.fromCoroutine(self._setUp())

    @inline
    async def test_formsSave(self):
        """Choosing "members of these groups", busy only, and Monday's hours in Berlin saves both, shown again."""
        url = self.server.url("/settings")

        def fill(driver):
            from selenium.webdriver.common.by import By

            driver.get(url)
            driver.find_element(By.ID, "who-groups").click()
            driver.find_element(By.ID, "groups").send_keys("team")
            driver.find_element(By.ID, "detail-busy").click()
            submit(driver, "save-visibility")
            saved = driver.find_element(By.ID, "who-groups").is_selected()
            tz = driver.find_element(By.ID, "tz")
            tz.clear()
            tz.send_keys("Europe/Berlin")
            for day in ("tue", "wed", "thu", "fri"):
                driver.find_element(By.ID, f"day-{day}").clear()
            monday = driver.find_element(By.ID, "day-mon")
            monday.clear()
            monday.send_keys("08:00-12:00, 13:00-17:00")
            submit(driver, "save-hours")
            return saved, driver.find_element(By.ID, "day-mon").get_attribute("value"), driver.page_source

        saved, monday, page = await self.browser.call(fill)
        self.assertTrue(saved)
        self.assertEqual(monday, "08:00-12:00, 13:00-17:00")
        self.assertIn("These are your own working hours", page)
        self.assertEqual(SettingsStore(self.server.store).get("alice"),
                         VisibilitySettings(Audience.GROUPS, Shown.BUSY, ("team",)))
        self.assertIn(b"Europe/Berlin", self.server.store.read(("alice.avail.ics",)))
        self.assertEqual([m for m in await self.browser.consoleMessages() if "SEVERE" in m], [])

    @inline
    async def test_errorShown(self):
        """Overlapping windows are refused on the page, in words."""

        def fill(driver):
            from selenium.webdriver.common.by import By

            driver.get(self.server.url("/settings"))
            monday = driver.find_element(By.ID, "day-mon")
            monday.clear()
            monday.send_keys("08:00-12:00, 11:00-13:00")
            submit(driver, "save-hours")
            return driver.find_element(By.ID, "notice").text

        self.assertIn("overlap", await self.browser.call(fill))

    @inline
    async def test_otherSitesFormRefused(self):
        """A form another origin's page submits in alice's browser, even with a valid token, changes nothing."""
        response = await self.http.get(self.server.url("/settings"),
                                       headers={b"Authorization": [b"Basic " + base64.b64encode(
                                           f"alice:{PASSWORDS['alice']}".encode())]})
        token = re.search(rb'name="token" value="([^"]+)"', await response.content()).group(1).decode()
        SettingsStore(self.server.store).save("alice", VisibilitySettings(Audience.NOBODY, Shown.BUSY))
        evil = reactor.listenTCP(0, Site(_ForgingPage(self.server.url("/settings"), token)), interface="127.0.0.1")
        self.addCleanup(evil.stopListening)

        def visit(driver):
            driver.get(f"http://localhost:{evil.getHost().port}/")
            return driver.page_source

        page = await self.browser.call(visit)
        self.assertIn("another site", page)
        self.assertEqual(SettingsStore(self.server.store).get("alice").who, Audience.NOBODY)
