"""
L{fbtwist.directory.nameindex} against slapd: the index built by one paged
search (slapd with a size limit smaller than the directory), and lookups
over HTTP answered from it (the rule, the refresher and ldaptor's
in-memory server: L{tests.unit.test_nameindex}).
"""

import subprocess

from ldaptor.protocols.ldap import ldaperrors
from twisted.internet import defer, reactor
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import TestCase

import tests.helpers  # noqa: F401 (ldaptor's import-time warnings)
from fbtwist.directory.ldapdirectory import LDAPDirectory
from fbtwist.directory.ldapurl import parseLDAPURL
from fbtwist.directory.nameindex import NameIndexRefresher, indexOf
from tests.helpers import httpClient, logEvents, outlookVFB, publicAnswer, startServer
from tests.names import LDIF, NAMES, PEOPLE
from tests.slapd import SlapdServer


class LimitedSlapd(SlapdServer):
    """
    slapd with a size limit: C{size.soft} entries per search (a plain
    search of all users fails), and paged searches allowed in total unless
    C{paging} is false.
    """

    def __init__(self, basedir, ldif, sizeLimit: int, paging: bool = True):
        super().__init__(basedir, ldif, tls=False)
        self.limit = f"sizelimit size.soft={sizeLimit} size.hard={sizeLimit}" + (
            " size.prtotal=unlimited" if paging else "")

    def _config(self, installed, databaseDir):
        return super()._config(installed, databaseDir).replace("\ndatabase mdb", f"\n{self.limit}\ndatabase mdb", 1)

    def modify(self, ldif: str) -> None:
        """
        Change the directory as its administrator (C{ldapmodify}).
        """
        subprocess.run(
            ["ldapmodify", "-x", "-H", self.url, "-D", self.rootDN, "-w", self.rootPassword],
            input=ldif, text=True, check=True, capture_output=True, timeout=10,
        )


class SlapdNameIndexTests(TestCase):
    """
    Loading from slapd, whose size limit (3) is smaller than the directory.
    """

    def setUp(self):
        self.slapd = LimitedSlapd(self.mktemp(), LDIF, sizeLimit=3)
        self.slapd.start()
        self.addCleanup(self.slapd.stop)
        self.directory = self.makeDirectory()

    def makeDirectory(self, **kw):
        url = parseLDAPURL(f"ldap://127.0.0.1:{self.slapd.port}/{PEOPLE}?uid?one")
        directory = LDAPDirectory(url, reactor, timeout=2.0, **kw)
        self.addCleanup(directory.close)
        return directory

    async def test_paged(self):
        """
        Pages of 2 load all 11 entries, each page a directory-call event,
        then one info line; the load's connection is closed after.
        """
        seen = logEvents(self)
        index = await self.directory.loadNameIndex(pageSize=2)
        self.assertEqual(index.entries, 11)
        searches = [e for e in seen if e.get("fbEvent") == "directory-call" and e["operation"] == "search"]
        self.assertEqual(len(searches), 6)
        self.assertTrue(all(e["ok"] for e in searches))
        (loaded,) = [e for e in seen if "entries" in e]
        self.assertEqual((loaded["entries"], loaded["pages"]), (11, 6))
        await deferLater(reactor, 0.05)
        self.assertEqual(self.directory.openConnections(), 0)

    async def test_sameAnswersAsDirectory(self):
        """
        For every name the index holds, its answer is the directory
        search's; a name it does not hold resolves to nobody there too.
        """
        index = await self.directory.loadNameIndex(pageSize=4)
        held = 0
        for name in NAMES + [n.upper() for n in NAMES]:
            expected = await self.directory.resolveName(name)
            found, uid = index.get(name)
            if found:
                held += 1
                self.assertEqual(uid, expected, name)
            else:
                self.assertIsNone(expected, name)
        self.assertGreater(held, 40)

    async def test_sizeLimitWithoutPaging(self):
        """
        A server whose size limit also caps paged searches fails the load,
        saying why; the index loaded before stays.
        """
        self.slapd.stop()
        self.slapd = LimitedSlapd(self.mktemp(), LDIF, sizeLimit=3, paging=False)
        self.slapd.start()
        self.addCleanup(self.slapd.stop)
        directory = self.makeDirectory()
        before = directory.nameIndex = indexOf([("alice", [])])
        with self.assertRaises(ldaperrors.LDAPSizeLimitExceeded) as raised:
            await directory.loadNameIndex(pageSize=2)
        self.assertIn("size.prtotal", str(raised.exception))
        self.assertIs(directory.nameIndex, before)

    async def test_refresh(self):
        """
        A refresh sees an added user, a changed mail and a deleted user; a
        refresh while the directory is down keeps the old index and is
        tried again after the backoff delay.
        """
        clock = Clock()
        directory = self.makeDirectory(clock=clock, retryMax=5)
        refresher = NameIndexRefresher(directory, 600, clock)
        refresher.start()
        self.addCleanup(refresher.stop)
        clock.advance(0)
        first = await refresher.whenLoadEnds()
        index = directory.nameIndex
        self.assertEqual(index.get("alice"), (True, "alice"))
        self.assertEqual(index.get("zoe"), (False, None))
        self.slapd.modify(
            f"dn: uid=zoe,{PEOPLE}\nchangetype: add\nobjectClass: inetOrgPerson\nuid: zoe\ncn: zoe\nsn: z\n"
            "mail: zoe@example.com\n\n"
            f"dn: uid=bob,{PEOPLE}\nchangetype: modify\nreplace: mail\nmail: bobby@example.com\n\n"
            f"dn: uid=alice,{PEOPLE}\nchangetype: delete\n"
        )
        self.assertIsNone(first)
        clock.advance(600)
        await refresher.whenLoadEnds()
        index = directory.nameIndex
        self.assertEqual(index.get("zoe@example.com"), (True, "zoe"))
        self.assertEqual(index.get("bobby"), (True, "bob"))
        self.assertEqual(index.get("robert"), (True, "robert"))
        self.assertEqual(index.get("robert@example.com"), (False, None))
        self.assertEqual(index.get("alice"), (False, None))

        seen = logEvents(self)
        self.slapd.stop()
        clock.advance(600)
        await refresher.whenLoadEnds()
        self.assertIs(directory.nameIndex, index)
        self.assertTrue([e for e in seen if "not refreshed" in e.get("log_format", "")])
        self.slapd.start()
        (retry,) = clock.getDelayedCalls()
        self.assertEqual(retry.getTime() - clock.seconds(), 0.25)
        clock.advance(0.25)
        await refresher.whenLoadEnds()
        self.assertIsNot(directory.nameIndex, index)
        self.assertEqual(directory.nameIndex.get("zoe"), (True, "zoe"))


class LookupFromIndexTests(TestCase):
    """
    A whole fbtwist answers lookups from its index, even while the
    directory is down.
    """

    async def test_directoryDown(self):
        """
        Once the index is loaded, indexed names are found with the
        directory stopped; a name it does not hold still needs the
        directory (503).
        """
        slapd = LimitedSlapd(self.mktemp(), LDIF, sizeLimit=3)
        slapd.start()
        self.addCleanup(slapd.stop)
        server = await startServer(self, "--ldap", f"ldap://127.0.0.1:{slapd.port}/{PEOPLE}?uid?one")
        http = httpClient(self)
        import base64

        token = base64.b64encode(b"bob:bob-pw")
        response = await http.put(server.url("/pub/calendar/bob.vfb"), data=outlookVFB("bob@example.com"),
                                  headers={b"Authorization": [b"Basic " + token]})
        self.assertEqual(response.code, 201)
        await response.content()
        for _ in range(100):
            if server.directory.nameIndex is not None:
                break
            await deferLater(reactor, 0.05)
        self.assertEqual(server.directory.nameIndex.entries, 11)
        slapd.stop()
        for name in ("bob", "BOB", "Robert@Example.com"):
            response = await http.get(server.url(f"/calendar/{name}.vfb"))
            self.assertEqual((response.code, await response.content()), (200, publicAnswer(server.store, "bob")))
        response = await http.get(server.url("/calendar/pat.vfb"))
        self.assertEqual(response.code, 404)
        await response.content()
        response = await http.get(server.url("/calendar/newcomer.vfb"))
        self.assertEqual(response.code, 503)
        await response.content()


class StopWhileLoadingTests(TestCase):
    """
    Stopping during a load is no outage.
    """

    async def test_cancel(self):
        """
        A load cancelled part-way (fbtwist stopping) closes its connection,
        keeps the old index and sets no backoff.
        """
        slapd = LimitedSlapd(self.mktemp(), LDIF, sizeLimit=3)
        slapd.start()
        self.addCleanup(slapd.stop)
        directory = LDAPDirectory(parseLDAPURL(f"ldap://127.0.0.1:{slapd.port}/{PEOPLE}?uid?one"), reactor)
        self.addCleanup(directory.close)
        slapd.pause()
        self.addCleanup(slapd.resume)
        loading = directory.loadNameIndex()
        await deferLater(reactor, 0.2)
        loading.cancel()
        with self.assertRaises(defer.CancelledError):
            await loading
        self.assertIsNone(directory.nameIndex)
        self.assertEqual(directory.retryDelay(), 0)
