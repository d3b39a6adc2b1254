"""
Brute-force throttling against a real slapd: a wrong password names the
entry it was for, under any of its names, so that failed logins are
counted per entry (the throttle itself is tested in memory, in
L{tests.unit.test_throttle}).
"""

from twisted.cred.error import UnauthorizedLogin
from twisted.trial.unittest import TestCase

import tests.helpers  # noqa: F401 (ldaptor's import-time warnings)
from fbtwist.errors import WrongPassword
from tests.integration.test_directory_slapd import SlapdTestMixin


class DirectoryNamesEntryTests(SlapdTestMixin, TestCase):
    """
    Against slapd: a wrong password for an existing entry says which entry
    (for counting), under any of its names; an unknown login names none.
    """

    def setUp(self):
        self.startSlapd()

    async def test_wrongPasswordNamesEntry(self):
        """
        A wrong password by uid or mail address fails with WrongPassword
        naming bob; an unknown login with a plain UnauthorizedLogin.
        """
        directory = self.directory(loginAttributes=("uid", "mail"))
        for login in ("bob", " Robert@Example.com"):
            with self.assertRaises(WrongPassword) as caught:
                await directory.authenticate(login, "guess")
            self.assertEqual(caught.exception.uid, "bob")
        with self.assertRaises(UnauthorizedLogin) as caught:
            await directory.authenticate("nobody", "guess")
        self.assertNotIsInstance(caught.exception, WrongPassword)

