"""
GET /setup in real headless Chromium over real loopback HTTP (the page and
the registry files are tested in memory, in L{tests.unit.test_setuppage}).
"""

from twisted.trial import unittest

from tests.browser import startBrowser
from tests.helpers import inline, startServer


class SetupPageBrowserTests(unittest.TestCase):
    """
    The page in headless Chromium.
    """

    @inline
    async def test_browser(self):
        """
        The page shows this server's search URL; entering a login shows that
        user's publish URL; the registry link points to the download.
        """
        server = await startServer(self)
        browser = await startBrowser(self)
        base = f"http://127.0.0.1:{server.port}"

        def visit(driver):
            from selenium.webdriver.common.by import By
            from selenium.webdriver.support import expected_conditions
            from selenium.webdriver.support.ui import WebDriverWait

            driver.get(base + "/setup")
            search = driver.find_element(By.ID, "outlook-search").text
            field = driver.find_element(By.ID, "login")
            field.send_keys("bsmith")
            driver.find_element(By.ID, "show").click()
            WebDriverWait(driver, 10).until(expected_conditions.url_contains("login=bsmith"))
            return (
                driver.title,
                search,
                driver.find_element(By.ID, "outlook-publish").text,
                driver.find_element(By.ID, "evolution-username").text,
                driver.find_element(By.ID, "reg-16.0").get_attribute("href"),
            )

        title, search, publish, username, href = await browser.call(visit)
        self.assertEqual(title, "Free/busy set-up")
        self.assertEqual(search, base + "/calendar/%NAME%.vfb")
        self.assertEqual(publish, base + "/pub/calendar/bsmith.vfb")
        self.assertEqual(username, "bsmith")
        self.assertEqual(href, base + "/setup/outlook-16.0.reg")
