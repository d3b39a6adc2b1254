"""
L{fbtwist.directory.nameindex}: the lookup-name rule, the index built by one paged
search (ldaptor's in-memory server, which does not page, and slapd with a
size limit smaller than the directory), its refreshes, and lookups over
HTTP answered from it.
"""

import os
import subprocess

from ldaptor.protocols.ldap import ldaperrors
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.task import Clock, deferLater
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase, TestCase

import tests.helpers  # noqa: F401 (ldaptor's import-time warnings)
from fbtwist.directory.demo import DemoLDAPFactory, loadLDIF
from fbtwist.directory.ldapdirectory import LDAPDirectory
from fbtwist.directory.ldapurl import parseLDAPURL
from fbtwist.directory.mappedindex import MappedIndexFollower
from fbtwist.directory.nameindex import NameIndexRefresher, indexOf
from fbtwist.directory.paging import pagedResultsControl, pagedResultsCookie
from fbtwist.errors import DirectoryUnavailable
from tests.helpers import httpClient, outlookVFB, publicAnswer, startServer
from tests.integration.test_directory_slapd import SlapdTestMixin
from tests.names import LDIF, NAMES, PEOPLE
from tests.slapd import SlapdServer
from tests.unit.test_directory import LDIF as ACTIVE_DIRECTORY_LDIF


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


def events(testCase):
    """
    Log events seen until the test ends.
    """
    return SlapdTestMixin.events(testCase)


class NameRuleTests(SynchronousTestCase):
    """
    The matching rule, on records (uid, addresses).
    """

    def test_uidFirst(self):
        """
        A uid matches case-insensitively and wins over another user's mail
        local part.
        """
        index = indexOf([("Robert", ["rob@example.com"]), ("bob", ["robert@example.com"])])
        self.assertEqual(index.get("robert"), (True, "Robert"))
        self.assertEqual(index.get("ROBERT@example.com"), (True, "bob"))
        self.assertEqual(index.get("rob"), (True, "Robert"))

    def test_ambiguousLocalPart(self):
        """
        A local part two users share resolves to nobody; their full
        addresses still work.
        """
        index = indexOf([("pat1", ["pat@example.com"]), ("pat2", ["Pat@example.org"])])
        self.assertEqual(index.get("pat"), (True, None))
        self.assertEqual(index.get("pat@example.org"), (True, "pat2"))

    def test_oneUserSeveralAddresses(self):
        """
        One user's several addresses with the same local part are not
        ambiguous.
        """
        index = indexOf([("bob", ["bob@example.com", "BOB@example.net"])])
        self.assertEqual(index.get("bob@example.net"), (True, "bob"))
        self.assertEqual(index.get("Bob"), (True, "bob"))

    def test_sharedUid(self):
        """
        A uid two entries share falls through to the mail addresses.
        """
        index = indexOf([("twin", ["twin@example.com"]), ("twin", ["other@example.com"])])
        self.assertEqual(index.get("twin"), (True, "twin"))
        index = indexOf([("twin", ["a@example.com"]), ("TWIN", ["b@example.com"])])
        self.assertEqual(index.get("twin"), (True, None))

    def test_unknown(self):
        """
        A name the index does not hold is reported as such (the directory
        is asked), unlike an ambiguous one.
        """
        index = indexOf([("alice", ["alice@example.com"])])
        for name in ("bob", "alice@example.org", "example.com", "alic", ""):
            self.assertEqual(index.get(name), (False, None), name)
        self.assertEqual((len(index), index.entries), (2, 1))

    def test_noUid(self):
        """
        An entry without a uid makes its addresses resolve to nobody.
        """
        index = indexOf([(None, ["x@example.com"])])
        self.assertEqual(index.get("x"), (True, None))

    def test_interned(self):
        """
        Keys and uids are interned: a lower-case uid is stored once.
        """
        uid = "".join(["user", "0042"])
        index = indexOf([(uid, [uid + "@example.com"])])
        (key,) = [k for k in index.names() if "@" not in k]
        self.assertIs(key, index.get(key)[1])

    def test_pagedResultsControl(self):
        """
        The control asks for a page size after a cookie, not critically;
        the cookie is read back from a response.
        """
        oid, critical, value = pagedResultsControl(250, b"abc")
        self.assertEqual((oid, critical), (b"1.2.840.113556.1.4.319", False))
        self.assertEqual(value, b"\x30\x09\x02\x02\x00\xfa\x04\x03abc")
        self.assertEqual(pagedResultsCookie([(oid, None, value)]), b"abc")
        self.assertEqual(pagedResultsCookie([(oid, None, b"\x30\x05\x02\x01\x00\x04\x00")]), b"")
        self.assertEqual(pagedResultsCookie(None), b"")


class FakeDirectory:
    def __init__(self):
        self.loads = []
        self.cancelled = []
        self.delay = 0.0

    def loadNameIndex(self):
        d = defer.Deferred(self.cancelled.append)
        self.loads.append(d)
        return d

    def retryDelay(self):
        return self.delay


class RefresherTests(SynchronousTestCase):
    """
    When the index is loaded, with a L{Clock}.
    """

    def setUp(self):
        self.clock = Clock()
        self.directory = FakeDirectory()
        self.refresher = NameIndexRefresher(self.directory, 600, self.clock)
        self.seen = events(self)

    def test_schedule(self):
        """
        A first load at start; the next C{interval} after it completes.
        """
        self.refresher.start()
        self.clock.advance(0)
        self.assertEqual(len(self.directory.loads), 1)
        self.clock.advance(1000)
        self.assertEqual(len(self.directory.loads), 1)
        self.directory.loads[0].callback(None)
        self.clock.advance(599)
        self.assertEqual(len(self.directory.loads), 1)
        self.clock.advance(1)
        self.assertEqual(len(self.directory.loads), 2)

    def test_failureFollowsBackoff(self):
        """
        A failed load is logged and tried again after the directory's
        backoff delay, or after the interval when there is none.
        """
        self.refresher.start()
        self.clock.advance(0)
        self.directory.delay = 2.0
        self.directory.loads[0].errback(Failure(DirectoryUnavailable("the directory x is unavailable")))
        (warning,) = [e for e in self.seen if e.get("log_level").name == "warn"]
        self.assertIn("unavailable", warning["reason"])
        self.clock.advance(2)
        self.assertEqual(len(self.directory.loads), 2)
        self.directory.delay = 0.0
        self.directory.loads[1].errback(Failure(ldaperrors.LDAPSizeLimitExceeded("too many")))
        self.clock.advance(599)
        self.assertEqual(len(self.directory.loads), 2)
        self.clock.advance(1)
        self.assertEqual(len(self.directory.loads), 3)

    def test_unexpectedFailureLogged(self):
        """
        A load failing for an unexpected reason is logged with its
        traceback, and tried again later.
        """
        self.refresher.start()
        self.clock.advance(0)
        self.directory.loads[0].errback(Failure(ZeroDivisionError("bug")))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.clock.advance(600)
        self.assertEqual(len(self.directory.loads), 2)

    def test_stop(self):
        """
        Stopping cancels a load in progress and schedules no more.
        """
        self.refresher.start()
        self.clock.advance(0)
        self.refresher.stop()
        self.assertEqual(self.directory.cancelled, self.directory.loads)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual([e for e in self.seen if e.get("log_level").name == "warn"], [])


class InMemoryLoadTests(TestCase):
    """
    ldaptor's in-memory server ignores the paging control: one plain search
    loads everything.
    """

    async def test_load(self):
        """
        The index of an Active Directory-like tree, and the lookups it
        answers.
        """
        path = FilePath(self.mktemp())
        path.setContent(ACTIVE_DIRECTORY_LDIF.encode("utf-8"))
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(DemoLDAPFactory(loadLDIF(path)))
        self.addCleanup(port.stopListening)
        url = parseLDAPURL(f"ldap://127.0.0.1:{port.getHost().port}/ou=users,dc=corp,dc=example?sAMAccountName?sub")
        directory = LDAPDirectory(url, reactor, mailAttributes=("mail", "mailAlternateAddress"))
        self.addCleanup(directory.close)
        index = await directory.loadNameIndex()
        self.assertIs(directory.nameIndex, index)
        # Five users and ou=users itself (a subtree search).
        self.assertEqual(index.entries, 6)
        self.assertEqual(index.get("alice.liddell"), (True, "alice"))
        self.assertEqual(index.get("ALICE@example.net"), (True, "alice"))
        self.assertEqual(index.get("josé@example.com"), (True, "josé"))
        self.assertEqual(index.get("*"), (True, "*"))
        self.assertEqual(index.get("twin"), (True, None))
        self.assertEqual(index.get("twin@example.org"), (True, "twin"))
        await deferLater(reactor, 0.1)
        self.assertEqual(directory.openConnections(), 0)


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
        seen = events(self)
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

        seen = events(self)
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


class WiringTests(SynchronousTestCase):
    """
    makeService gives the directory service a refresher where lookups are
    served.
    """

    def refresher(self, *args, adoptedFDs=None):
        from twisted.internet.testing import MemoryReactorClock

        from fbtwist.tap import makeService
        from tests.helpers import serviceOptions

        options = serviceOptions("--ftp", "none", "--root", self.mktemp(), *args)
        top = makeService(options, reactor=MemoryReactorClock(), adoptedFDs=adoptedFDs)
        return top.getServiceNamed("directory").nameIndex

    def test_default(self):
        """
        By default the index is refreshed every 600 s.
        """
        refresher = self.refresher()
        self.assertEqual(refresher.interval, 600)

    def test_off(self):
        """
        --name-index-refresh 0 switches it off.
        """
        self.assertIsNone(self.refresher("--name-index-refresh", "0"))

    def test_workersMaster(self):
        """
        The master of --workers loads the index, into a file of
        --name-index-dir only this user may write to.
        """
        folder = self.mktemp()
        refresher = self.refresher("--workers", "2", "--http", "tcp:0", "--name-index-dir", folder)
        self.assertIsInstance(refresher, NameIndexRefresher)
        self.assertEqual(os.path.dirname(refresher.directory.indexFile), folder)
        self.assertEqual(os.stat(folder).st_mode & 0o777, 0o700)

    def test_worker(self):
        """
        Each worker of --workers maps the master's file, no load of its own.
        """
        folder = self.mktemp()
        master = self.refresher("--workers", "2", "--http", "tcp:0", "--name-index-dir", folder)
        follower = self.refresher("--workers", "2", "--http", "tcp:0", "--name-index-refresh", "60",
                                  "--name-index-dir", folder, adoptedFDs=[1000])
        self.assertIsInstance(follower, MappedIndexFollower)
        self.assertEqual(follower.path, master.directory.indexFile)
        self.assertEqual(follower.maxAge, 180)

    def test_inMemory(self):
        """
        --name-index-dir none: each process loads and keeps its own index.
        """
        refresher = self.refresher("--workers", "2", "--http", "tcp:0", "--name-index-dir", "none",
                                   adoptedFDs=[1000])
        self.assertIsInstance(refresher, NameIndexRefresher)
        self.assertIsNone(refresher.directory.indexFile)

    def test_unsafeDirectory(self):
        """
        A directory others may write to is not used (a planted index would
        choose the DN a login binds as): the index stays in memory.
        """
        folder = self.mktemp()
        os.mkdir(folder)
        os.chmod(folder, 0o777)
        refresher = self.refresher("--name-index-dir", folder)
        self.assertIsNone(refresher.directory.indexFile)
