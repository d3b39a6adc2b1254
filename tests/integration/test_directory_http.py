"""
End to end: a whole fbtwist (makeService, real HTTP listener) checked against
a real slapd over plain LDAP, LDAPS and StartTLS; outages answered 503 and
recovered from without a restart; throttling answered 429; the admin group.
"""

import base64
import time

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests.helpers import httpClient, outlookVFB, publicAnswer, startServer
from tests.integration.test_directory_slapd import BASE, PASSWORDS, SEARCH_DN, SEARCH_PASSWORD, SlapdTestMixin


def auth(login, password=None):
    password = PASSWORDS[login] if password is None else password
    return {b"Authorization": [b"Basic " + base64.b64encode(f"{login}:{password}".encode("utf-8"))]}


class DirectoryHTTPTests(SlapdTestMixin, TestCase):
    """
    Publish with PUT and look up with GET through fbtwist against slapd.
    """

    def setUp(self):
        self.startSlapd()
        self.http = httpClient(self)

    async def server(self, *args):
        self.fbtwist = await startServer(self, *args)
        return self.fbtwist

    async def put(self, path, login="alice", password=None, body=None):
        response = await self.http.put(
            self.fbtwist.url(path), data=body or outlookVFB(f"{login}@example.com"), headers=auth(login, password)
        )
        await response.content()
        return response

    async def get(self, path):
        response = await self.http.get(self.fbtwist.url(path))
        return response, await response.content()

    async def publishAndLookUp(self):
        response = await self.put("/pub/calendar/bob.vfb", "bob")
        self.assertEqual(response.code, 201)
        response, content = await self.get("/calendar/robert.vfb")
        self.assertEqual((response.code, content), (200, publicAnswer(self.fbtwist.store, "bob")))
        response = await self.put("/pub/calendar/alice.vfb", "alice", "wrong")
        self.assertEqual(response.code, 401)

    async def test_plain(self):
        """
        Over plain LDAP a user publishes and anyone looks the file up by
        mail local part.
        """
        await self.server("--ldap", self.url())
        await self.publishAndLookUp()

    async def test_ldapsWithSearchAccount(self):
        """
        A TLS-only setup: LDAPS verified with --ldap-ca, a search account
        whose password comes from a file.
        """
        secret = self.mktemp()
        with open(secret, "w") as f:
            f.write(SEARCH_PASSWORD + "\n")
        await self.server(
            "--ldap", self.url("ldaps"), "--ldap-ca", self.slapd.caCertPath,
            "--bind-dn", SEARCH_DN, "--bind-password-file", secret,
        )
        await self.publishAndLookUp()

    async def test_startTLS(self):
        """
        StartTLS (--ldap-starttls) verified with --ldap-ca.
        """
        await self.server("--ldap", self.url(), "--ldap-starttls", "--ldap-ca", self.slapd.caCertPath)
        await self.publishAndLookUp()

    async def test_wrongCA(self):
        """
        A directory whose certificate does not verify: 503 with Retry-After
        to publishers and to lookups, never plain text.
        """
        await self.server("--ldap", self.url("ldaps"), "--ldap-ca", self.slapd.otherCACertPath)
        response = await self.put("/pub/calendar/bob.vfb", "bob")
        self.assertEqual(response.code, 503)
        self.assertTrue(response.headers.hasHeader(b"Retry-After"))
        response, _ = await self.get("/calendar/bob.vfb")
        self.assertEqual(response.code, 503)

    async def test_outageAndRecovery(self):
        """
        With slapd stopped, publishing and lookups get 503 within 2
        seconds; once it is back, they work again without a restart.
        """
        # Without the name index, whose names need no directory (tested
        # in test_nameindex).
        await self.server("--ldap", self.url(), "--auth-cache-ttl", "0", "--ldap-retry-max", "0.2",
                          "--name-index-refresh", "0")
        await self.publishAndLookUp()
        self.slapd.stop()
        started = time.monotonic()
        response = await self.put("/pub/calendar/bob.vfb", "bob")
        self.assertEqual(response.code, 503)
        self.assertEqual(response.headers.getRawHeaders(b"Retry-After"), [b"30"])
        # "robert" was resolved a moment ago and is served from the lookup
        # cache; a name not asked for yet needs the directory.
        response, _ = await self.get("/calendar/bob.vfb")
        self.assertEqual(response.code, 503)
        response, _ = await self.get("/calendar/robert.vfb")
        self.assertEqual(response.code, 200)
        self.assertLess(time.monotonic() - started, 2)
        self.slapd.start()
        await deferLater(reactor, 0.25)
        response = await self.put("/pub/calendar/bob.vfb", "bob")
        self.assertEqual(response.code, 204)
        response, _ = await self.get("/calendar/robert.vfb")
        self.assertEqual(response.code, 200)

    async def test_pausedDirectory(self):
        """
        A directory that stops answering gets clients a 503 within 2
        seconds (the default timeout), and service resumes after.
        """
        await self.server("--ldap", self.url(), "--ldap-retry-max", "0.2", "--name-index-refresh", "0")
        response, _ = await self.get("/calendar/alice.vfb")
        self.assertEqual(response.code, 404)
        self.slapd.pause()
        started = time.monotonic()
        response, _ = await self.get("/calendar/carol.vfb")
        self.assertEqual(response.code, 503)
        self.assertLess(time.monotonic() - started, 2)
        self.slapd.resume()
        await deferLater(reactor, 0.3)
        response, _ = await self.get("/calendar/alice.vfb")
        self.assertEqual(response.code, 404)

    async def test_bindCacheServesDuringOutage(self):
        """
        A publisher whose bind is cached keeps publishing while the
        directory is down.
        """
        await self.server("--ldap", self.url())
        self.assertEqual((await self.put("/pub/calendar/bob.vfb", "bob")).code, 201)
        self.slapd.stop()
        self.assertEqual((await self.put("/pub/calendar/bob.vfb", "bob")).code, 204)
        self.assertEqual((await self.put("/pub/calendar/bob.vfb", "bob", "guess")).code, 503)

    async def test_throttled(self):
        """
        After --login-failures wrong passwords the login gets 429, even with
        the right password, and so does an unknown login.
        """
        await self.server("--ldap", self.url(), "--login-failures", "3")
        for _ in range(3):
            self.assertEqual((await self.put("/pub/calendar/bob.vfb", "bob", "guess")).code, 401)
            self.assertEqual((await self.put("/pub/calendar/x.vfb", "nosuchuser", "guess")).code, 401)
        response = await self.put("/pub/calendar/bob.vfb", "bob")
        self.assertEqual(response.code, 429)
        self.assertTrue(response.headers.hasHeader(b"Retry-After"))
        self.assertEqual((await self.put("/pub/calendar/x.vfb", "nosuchuser", "guess")).code, 429)
        self.assertEqual((await self.put("/pub/calendar/alice.vfb", "alice")).code, 201)

    async def test_throttledWhateverTheSpacing(self):
        """
        slapd takes 'alice ' and ' ALICE' for alice; so does the throttle:
        after failures under those forms alice is locked out, and the 429
        says how long the lockout really lasts.
        """
        await self.server("--ldap", self.url(), "--login-failures", "3", "--login-lockout", "120")
        self.assertEqual((await self.put("/pub/calendar/alice.vfb", " ALICE ", PASSWORDS["alice"])).code, 201)
        for login in ("alice ", " alice", " ALICE"):
            self.assertEqual((await self.put("/pub/calendar/alice.vfb", login, "guess")).code, 401)
        for login in ("alice", "alice  "):
            response = await self.put("/pub/calendar/alice.vfb", login, PASSWORDS["alice"])
            self.assertEqual(response.code, 429)
            self.assertIn(int(response.headers.getRawHeaders(b"Retry-After")[0]), range(110, 121))

    async def test_throttledPerAccount(self):
        """
        Failures under an account's different logins (uid, mail address)
        add up: once locked out it is refused under any of them.
        """
        await self.server("--ldap", self.url(), "--ldap-login-attributes", "uid,mail", "--login-failures", "3")
        for login in ("bob", "robert@example.com", "bob"):
            self.assertEqual((await self.put("/pub/calendar/bob.vfb", login, "guess")).code, 401)
        for password in (PASSWORDS["bob"], "guess"):
            self.assertEqual((await self.put("/pub/calendar/bob.vfb", "robert@example.com", password)).code, 429)

    async def test_throttledByAddress(self):
        """
        Wrong passwords for many logins from one address lock the address
        out (the HTTP guard hands the client address to the checker).
        """
        await self.server("--ldap", self.url(), "--login-failures-per-address", "4")
        for login in ("alice", "bob", "carol", "pat1"):
            self.assertEqual((await self.put(f"/pub/calendar/{login}.vfb", login, "guess")).code, 401)
        self.assertEqual((await self.put("/pub/calendar/alice.vfb", "alice")).code, 429)

    async def test_ambiguousName(self):
        """
        A local part two users share is 404; their full addresses work.
        """
        await self.server("--ldap", self.url())
        self.assertEqual((await self.put("/pub/calendar/pat1.vfb", "pat1")).code, 201)
        response, _ = await self.get("/calendar/pat.vfb")
        self.assertEqual(response.code, 404)
        response, _ = await self.get("/calendar/pat@example.com.vfb")
        self.assertEqual(response.code, 200)

    async def test_adminGroups(self):
        """
        Members of the --admin-group (groupOfNames, groupOfUniqueNames,
        posixGroup) may publish others' files; others may not.
        """
        for group, admin in (("admins", "alice"), ("uadmins", "bob"), ("padmins", "carol")):
            await self.server("--ldap", self.url(), "--admin-group", f"cn={group},ou=groups,{BASE}")
            self.assertIn((await self.put("/pub/calendar/pat2.vfb", admin)).code, (201, 204))
            outsider = "pat1"
            self.assertEqual((await self.put("/pub/calendar/pat2.vfb", outsider)).code, 403)
            await self.fbtwist.stop()
