"""
The headless browser fixture works against a page served on loopback.
"""

from twisted.internet import defer, reactor
from twisted.trial import unittest
from twisted.web.resource import Resource

from fbtwist.web import FreeBusySite

from tests.browser import startBrowser


class _Page(Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        return b"<!doctype html><title>t</title><p id='x'>hello</p><script>document.title='ran'</script>"


class BrowserTests(unittest.TestCase):
    """
    Chromium loads a loopback page, runs its script, and takes a screenshot.
    """

    def test_loadsPage(self):
        """
        The page's text and the title set by its script are seen.
        """

        async def run():
            site = FreeBusySite(_Page(), maxUploadSize=1000)
            port = reactor.listenTCP(0, site, interface="127.0.0.1")
            self.addCleanup(site.disconnectAll)
            self.addCleanup(port.stopListening)
            browser = await startBrowser(self)
            url = f"http://127.0.0.1:{port.getHost().port}/"

            def visit(driver):
                from selenium.webdriver.common.by import By

                driver.get(url)
                return driver.title, driver.find_element(By.ID, "x").text

            self.assertEqual(await browser.call(visit), ("ran", "hello"))
            path = await browser.screenshot("page")
            with open(path, "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")

        return defer.Deferred.fromCoroutine(run())
