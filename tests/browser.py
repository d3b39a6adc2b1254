"""
Headless Chromium for the tests of pages people read (Debian's C{chromium}
and C{chromium-driver}, driven by selenium).

Selenium blocks, and the server under test runs on the test's own reactor,
so every browser call runs in a thread: use L{Browser.call}.
"""

import base64
import os

from twisted.internet import defer, threads

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

#: Flags that keep Chromium quiet on a machine with no network but loopback.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--window-size=1280,900",
]


class Browser:
    """
    One headless Chromium session, quit by the test's cleanup.
    """

    def __init__(self, testCase):
        self.testCase = testCase
        self.driver = None

    def _start(self):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument("--user-data-dir=" + os.path.abspath(self.testCase.mktemp()))
        # What the page's console says (Content-Security-Policy refusals).
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)

    async def start(self) -> "Browser":
        if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
            raise RuntimeError("headless browser tests need: apt-get install chromium chromium-driver")
        self.driver = await threads.deferToThread(self._start)
        self.testCase.addCleanup(lambda: threads.deferToThread(self.driver.quit))
        return self

    def call(self, function, *args, **kwargs) -> defer.Deferred:
        """
        Run C{function(driver, *args, **kwargs)} in a thread.
        """
        return threads.deferToThread(function, self.driver, *args, **kwargs)

    def setViewport(self, width: int, height: int, mobile: bool = False) -> defer.Deferred:
        """
        Lay pages out for a screen of C{width} by C{height} CSS pixels, as a
        phone does when C{mobile} (the page's viewport meta tag applies).
        """
        return self.call(lambda driver: driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}))

    def screenshot(self, name: str, fullPage: bool = False) -> defer.Deferred:
        """
        Save a PNG of what the window shows (or of the whole page) in the
        test's temporary directory.

        @return: A Deferred firing with the file's path.
        """
        path = os.path.abspath(self.testCase.mktemp()) + "-" + name + ".png"

        def save(driver):
            if not fullPage:
                driver.save_screenshot(path)
                return path
            shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
            with open(path, "wb") as f:
                f.write(base64.b64decode(shot["data"]))
            return path

        return self.call(save)

    def consoleMessages(self) -> defer.Deferred:
        """
        What the page's console said since last asked (errors and warnings
        included).
        """
        return self.call(lambda driver: [entry["message"] for entry in driver.get_log("browser")])


async def startBrowser(testCase) -> Browser:
    return await Browser(testCase).start()
