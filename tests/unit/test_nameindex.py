"""
L{fbtwist.directory.nameindex} in memory: the lookup-name rule, the paging
control, the index built by one search of ldaptor's in-memory server (which
does not page) over an in-memory network, its refreshes on a clock, and
its wiring by makeService.  Paged loads from slapd and lookups over HTTP
answered from it: L{tests.integration.test_nameindex}.
"""

import os

from ldaptor.protocols.ldap import ldaperrors
from twisted.internet import defer
from twisted.internet.task import Clock
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
from tests.helpers import logEvents
from tests.memory import MemoryNetwork, Settled
from tests.unit.test_directory import LDIF as ACTIVE_DIRECTORY_LDIF


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
        self.seen = logEvents(self)

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
        network = MemoryNetwork()
        port = network.listenTCP(0, DemoLDAPFactory(loadLDIF(path)), interface="127.0.0.1")
        url = parseLDAPURL(f"ldap://127.0.0.1:{port.getHost().port}/ou=users,dc=corp,dc=example?sAMAccountName?sub")
        directory = LDAPDirectory(url, network, mailAttributes=("mail", "mailAlternateAddress"))
        self.addCleanup(Settled(directory, network).close)
        index = await Settled(directory, network).loadNameIndex()
        self.assertIs(directory.nameIndex, index)
        # Five users and ou=users itself (a subtree search).
        self.assertEqual(index.entries, 6)
        self.assertEqual(index.get("alice.liddell"), (True, "alice"))
        self.assertEqual(index.get("ALICE@example.net"), (True, "alice"))
        self.assertEqual(index.get("josé@example.com"), (True, "josé"))
        self.assertEqual(index.get("*"), (True, "*"))
        self.assertEqual(index.get("twin"), (True, None))
        self.assertEqual(index.get("twin@example.org"), (True, "twin"))
        network.advance(0.1)
        network.settle()
        self.assertEqual(directory.openConnections(), 0)


class MalformedAnswerTests(TestCase):
    """
    A load from a server whose answer cannot be LDAP.
    """

    async def test_malformed(self):
        """
        Entries, then a message claiming 2 GB: the load fails at once with
        L{DirectoryUnavailable} saying what could not be read (nothing
        waits for the 2 GB), and its connection is closed.
        """
        from ldaptor.protocols import pureldap
        from twisted.internet.protocol import Factory, Protocol

        class Garbled(Protocol):
            def dataReceived(self, data):
                # The search request's message id is its second element.
                messageID = data[4]
                self.transport.write(pureldap.LDAPMessage(
                    pureldap.LDAPSearchResultEntry(objectName=b"uid=a,dc=x", attributes=[(b"uid", [b"a"])]),
                    id=messageID).toWire() + b"\x30\x84\x7f\xff\xff\xff")

        network = MemoryNetwork()
        port = network.listenTCP(0, Factory.forProtocol(Garbled), interface="127.0.0.1")
        url = parseLDAPURL(f"ldap://127.0.0.1:{port.getHost().port}/dc=x?uid?one")
        directory = LDAPDirectory(url, network)
        self.addCleanup(Settled(directory, network).close)
        with self.assertRaises(DirectoryUnavailable) as raised:
            await Settled(directory, network).loadNameIndex()
        self.assertIn("cannot be read (an LDAP message of 2147483647 bytes", str(raised.exception))
        self.assertIsNone(directory.nameIndex)
        network.advance(0.1)
        network.settle()
        self.assertEqual(directory.openConnections(), 0)


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

