"""
Headless Chromium for the tests of pages people read (Debian's C{chromium}
and C{chromium-driver}, driven by selenium).

Selenium blocks, and the server under test runs on the test's own reactor,
so every browser call runs in a thread: use L{Browser.call}.
"""

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

    def screenshot(self, name: str) -> defer.Deferred:
        """
        Save a PNG of the page in the test's temporary directory.

        @return: A Deferred firing with the file's path.
        """
        path = os.path.abspath(self.testCase.mktemp()) + "-" + name + ".png"
        return self.call(lambda driver: (driver.save_screenshot(path), path)[1])


async def startBrowser(testCase) -> Browser:
    return await Browser(testCase).start()
