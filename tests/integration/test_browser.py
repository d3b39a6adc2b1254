"""
The headless browser fixture works against a page served on loopback.
"""

from twisted.internet import defer, reactor
from twisted.trial import unittest
from twisted.web.resource import Resource

from fbtwist.web.site import FreeBusySite
from tests.browser import startBrowser


class _Page(Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        return (b"<!doctype html><meta name='viewport' content='width=device-width, initial-scale=1'>"
                b"<title>t</title><p id='x'>hello</p><div style='height: 2000px'></div>"
                b"<script>document.title='ran'</script>")


def pngSize(path: str) -> tuple:
    """
    The width and height of a PNG image (from its header).
    """
    import struct

    with open(path, "rb") as f:
        header = f.read(24)
    assert header[:8] == b"\x89PNG\r\n\x1a\n", header
    return struct.unpack(">II", header[16:24])


class BrowserTests(unittest.TestCase):
    """
    Chromium loads a loopback page, runs its script, and takes a screenshot.
    """

    def serve(self) -> str:
        site = FreeBusySite(_Page(), maxUploadSize=1000)
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(site.disconnectAll)
        self.addCleanup(port.stopListening)
        return f"http://127.0.0.1:{port.getHost().port}/"

    def test_loadsPage(self):
        """
        The page's text and the title set by its script are seen.
        """

        async def run():
            url = self.serve()
            browser = await startBrowser(self)

            def visit(driver):
                from selenium.webdriver.common.by import By

                driver.get(url)
                return driver.title, driver.find_element(By.ID, "x").text

            self.assertEqual(await browser.call(visit), ("ran", "hello"))
            path = await browser.screenshot("page")
            pngSize(path)

        return defer.Deferred.fromCoroutine(run())

    def test_viewport(self):
        """
        A phone's viewport lays the page out at its width; a screenshot is
        that size, and a full-page one as long as the page.
        """

        async def run():
            url = self.serve()
            browser = await startBrowser(self)
            await browser.setViewport(390, 844, mobile=True)

            def visit(driver):
                driver.get(url)
                return driver.execute_script(
                    "return [document.documentElement.clientWidth, document.documentElement.scrollHeight]")

            width, height = await browser.call(visit)
            self.assertEqual(width, 390)
            self.assertGreater(height, 2000)
            self.assertEqual(pngSize(await browser.screenshot("window")), (390, 844))
            self.assertEqual(pngSize(await browser.screenshot("page", fullPage=True)), (390, height))

        return defer.Deferred.fromCoroutine(run())
