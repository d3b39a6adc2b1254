"""
The backoff after a search account's password is refused, against a real
slapd: the password stays wrong until an operator changes it, so it is
tried again at growing delays (not on every request, which would lock
the account out of a directory that counts failed binds), and the outage
is logged once.
"""

import subprocess

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.logger import LogLevel
from twisted.trial.unittest import TestCase

import tests.helpers  # noqa: F401 (ldaptor's import-time warnings)
from fbtwist.directory.ldapdirectory import ACCOUNT_RETRY_MAX
from fbtwist.errors import DirectoryUnavailable
from tests.integration.test_directory_slapd import SEARCH_DN, SlapdTestMixin
from tests.slapd import hashPassword


class SearchAccountRefusedTests(SlapdTestMixin, TestCase):
    """
    A search account with a wrong password, then the password fixed in
    the directory.
    """

    def setUp(self):
        self.startSlapd()

    def setSearchPassword(self, password):
        subprocess.run(
            ["ldapmodify", "-x", "-H", self.slapd.url, "-D", self.slapd.rootDN, "-w", self.slapd.rootPassword],
            input=f"dn: {SEARCH_DN}\nchangetype: modify\nreplace: userPassword\nuserPassword: "
                  f"{hashPassword(password)}\n",
            text=True, check=True, capture_output=True, timeout=10,
        )

    async def attempt(self, directory, events):
        """
        @return: How many binds a lookup made, and whether it worked.
        """
        before = len([e for e in events if e.get("operation") == "bind"])
        try:
            await directory.resolveName("alice")
            worked = True
        except DirectoryUnavailable:
            worked = False
        return len([e for e in events if e.get("operation") == "bind"]) - before, worked

    async def test_backsOff(self):
        """
        After the refusal no bind is tried for retryMax seconds, then for
        twice as long, and so on up to ACCOUNT_RETRY_MAX; one warning says
        so; once the password works again, lookups work and that is logged.
        """
        clock = Clock()
        events = self.events()
        directory = self.directory(bindDN=SEARCH_DN, bindPassword="fixed-later", clock=clock, retryMax=30)
        self.assertEqual(await self.attempt(directory, events), (1, False))
        self.assertEqual(directory.retryDelay(), 30)
        for _ in range(20):
            self.assertEqual(await self.attempt(directory, events), (0, False))
        delays = []
        for _ in range(6):
            clock.advance(directory.retryDelay())
            self.assertEqual(await self.attempt(directory, events), (1, False))
            delays.append(directory.retryDelay())
        self.assertEqual(delays, [60, 120, 240, 480, ACCOUNT_RETRY_MAX, ACCOUNT_RETRY_MAX])

        ours = [e for e in events if e.get("log_namespace", "").startswith("fbtwist")]
        warnings = [e for e in ours if e["log_level"] >= LogLevel.warn]
        self.assertEqual(len(warnings), 1, warnings)
        self.assertIn(f"the search account {SEARCH_DN} cannot bind", warnings[0]["reason"])
        self.assertEqual(warnings[0]["server"], directory.server)

        self.setSearchPassword("fixed-later")
        clock.advance(directory.retryDelay())
        self.assertEqual(await self.attempt(directory, events), (1, True))
        self.assertEqual(directory.retryDelay(), 0)
        self.assertTrue([e for e in events if "available again" in e.get("log_format", "")])

    async def test_oneAttemptPerDelay(self):
        """
        When the delay ends, concurrent lookups (one per pool slot) make
        one bind between them: the others fail at once.
        """
        clock = Clock()
        events = self.events()
        directory = self.directory(bindDN=SEARCH_DN, bindPassword="wrong", clock=clock, retryMax=30, poolSize=4)
        self.assertEqual(await self.attempt(directory, events), (1, False))
        clock.advance(directory.retryDelay())
        before = len([e for e in events if e.get("operation") == "bind"])
        lookups = [directory.resolveName("alice") for _ in range(4)]
        results = await defer.DeferredList(lookups, consumeErrors=True)
        self.assertEqual([f.type for _, f in results], [DirectoryUnavailable] * 4)
        self.assertEqual(len([e for e in events if e.get("operation") == "bind"]) - before, 1)
        self.assertEqual(directory.retryDelay(), 60)
