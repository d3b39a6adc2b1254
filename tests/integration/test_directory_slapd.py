"""
L{fbtwist.directory.ldapdirectory.LDAPDirectory} against a real OpenLDAP (tests/slapd.py):
plain, LDAPS and StartTLS with verified certificates, a search account,
the connection pool, outages and recovery, group membership.
"""

import time

from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.ssl import trustRootFromCertificates
from twisted.protocols import portforward
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

import tests.helpers  # noqa: F401 (ldaptor's import-time warnings)
from fbtwist.config import caCertificates
from fbtwist.directory.entries import firstValue
from fbtwist.directory.filters import equalityFilter
from fbtwist.directory.ldapdirectory import LDAPDirectory
from fbtwist.directory.ldapurl import parseLDAPURL
from fbtwist.errors import DirectoryUnavailable
from tests.helpers import logEvents
from tests.slapd import SlapdServer, hashPassword

BASE = "dc=example,dc=com"
PEOPLE = "ou=people," + BASE
SEARCH_DN = "cn=fbtwist,ou=services," + BASE
SEARCH_PASSWORD = "search-secret"

PASSWORDS = {"alice": "alice-pw", "bob": "bób-pw", "carol": "carol-pw", "pat1": "pat1-pw", "pat2": "pat2-pw"}


def _person(uid, mail=None, extra=""):
    mailLine = f"mail: {mail}\n" if mail else ""
    return (
        f"dn: uid={uid},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\n"
        f"{mailLine}{extra}userPassword: {hashPassword(PASSWORDS[uid])}\n\n"
    )


LDIF = (
    f"dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n"
    f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n\n"
    f"dn: ou=services,{BASE}\nobjectClass: organizationalUnit\nou: services\n\n"
    f"dn: ou=groups,{BASE}\nobjectClass: organizationalUnit\nou: groups\n\n"
    f"dn: {SEARCH_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: fbtwist\n"
    f"userPassword: {hashPassword(SEARCH_PASSWORD)}\n\n"
    + _person("alice", "alice@example.com")
    + _person("bob", "robert@example.com", "mail: bob@example.com\n")
    + _person("carol", "carol@example.com")
    + _person("pat1", "pat@example.com")
    + _person("pat2", "pat@example.org")
    + f"dn: cn=admins,ou=groups,{BASE}\nobjectClass: groupOfNames\ncn: admins\nmember: uid=alice,{PEOPLE}\n\n"
    + f"dn: cn=uadmins,ou=groups,{BASE}\nobjectClass: groupOfUniqueNames\ncn: uadmins\n"
    f"uniqueMember: uid=bob,{PEOPLE}\n\n"
    + f"dn: cn=padmins,ou=groups,{BASE}\nobjectClass: posixGroup\ncn: padmins\ngidNumber: 500\nmemberUid: carol\n\n"
)


class ConnectionCounter(portforward.ProxyFactory):
    """
    Forwards loopback connections to slapd and counts them.
    """

    noisy = False

    def __init__(self, host, port):
        super().__init__(host, port)
        self.connections = 0
        self.servers = []

    def buildProtocol(self, addr):
        self.connections += 1
        server = super().buildProtocol(addr)
        self.servers.append(server)
        return server


class SlapdTestMixin:
    """
    A running slapd (self.slapd) and a way to build directories on it.
    """

    def startSlapd(self):
        self.slapd = SlapdServer(self.mktemp(), LDIF)
        self.slapd.start()
        self.addCleanup(self.slapd.stop)

    def url(self, scheme="ldap", host="127.0.0.1", port=None, suffix="?uid?one"):
        port = port or (self.slapd.ldapsPort if scheme == "ldaps" else self.slapd.port)
        return f"{scheme}://{host}:{port}/{PEOPLE}{suffix}"

    def trustRoot(self, path=None):
        return trustRootFromCertificates(caCertificates(FilePath(path or self.slapd.caCertPath)))

    def directory(self, url=None, **kw):
        kw.setdefault("timeout", 1.0)
        directory = LDAPDirectory(parseLDAPURL(url or self.url()), reactor, **kw)
        self.addCleanup(directory.close)
        return directory

    def events(self):
        """
        Log events seen until the test ends.
        """
        return logEvents(self)

    async def proxy(self, port, interface="127.0.0.1"):
        counter = ConnectionCounter("127.0.0.1", port)
        listening = await TCP4ServerEndpoint(reactor, 0, interface=interface).listen(counter)
        self.addCleanup(listening.stopListening)
        return counter, listening.getHost().port


class PlainAndTLSTests(SlapdTestMixin, TestCase):
    """
    Search-then-bind over plain LDAP, LDAPS and StartTLS; TLS is verified.
    """

    def setUp(self):
        self.startSlapd()

    async def assertWorks(self, directory):
        self.assertEqual(await directory.authenticate("alice", "alice-pw"), "alice")
        with self.assertRaises(UnauthorizedLogin):
            await directory.authenticate("alice", "wrong")
        self.assertEqual(await directory.resolveName("robert"), "bob")

    async def test_plain(self):
        """
        Over plain LDAP a user binds, a wrong password fails, names resolve.
        """
        await self.assertWorks(self.directory())

    async def test_ldaps(self):
        """
        Over LDAPS with the test CA as trust root everything works.
        """
        await self.assertWorks(self.directory(self.url("ldaps"), trustRoot=self.trustRoot()))

    async def test_ldapsByHostName(self):
        """
        A host name (resolved, every address tried) is verified against the
        certificate's DNS name.
        """
        await self.assertWorks(self.directory(self.url("ldaps", host="localhost"), trustRoot=self.trustRoot()))

    async def test_startTLSOption(self):
        """
        StartTLS asked by the option works with the test CA.
        """
        await self.assertWorks(self.directory(startTLS=True, trustRoot=self.trustRoot()))

    async def test_startTLSExtension(self):
        """
        StartTLS asked by the URL extension works with the test CA.
        """
        await self.assertWorks(self.directory(self.url(suffix="?uid?one??!starttls"), trustRoot=self.trustRoot()))

    async def assertRefused(self, directory, events):
        with self.assertRaises(DirectoryUnavailable):
            await directory.authenticate("alice", "alice-pw")
        with self.assertRaises(DirectoryUnavailable):
            await directory.resolveName("alice")
        refusals = [e for e in events if "refusing the directory" in e.get("log_format", "")]
        self.assertTrue(refusals)
        self.assertEqual(refusals[0]["server"], directory.server)
        return refusals[0]["reason"]

    async def test_ldapsOtherCA(self):
        """
        An LDAPS server whose CA is not trusted is refused and logged.
        """
        events = self.events()
        directory = self.directory(self.url("ldaps"), trustRoot=self.trustRoot(self.slapd.otherCACertPath))
        self.assertIn("does not verify", await self.assertRefused(directory, events))

    async def test_startTLSOtherCA(self):
        """
        A StartTLS server whose CA is not trusted is refused, with no plain
        text fallback: nothing is searched.
        """
        events = self.events()
        directory = self.directory(startTLS=True, trustRoot=self.trustRoot(self.slapd.otherCACertPath))
        await self.assertRefused(directory, events)
        self.assertFalse([e for e in events if e.get("operation") == "search"])

    async def test_ldapsWrongHostName(self):
        """
        A certificate for another name (the server reached as 127.0.0.2)
        is refused.
        """
        events = self.events()
        counter, port = await self.proxy(self.slapd.ldapsPort, interface="127.0.0.2")
        directory = self.directory(self.url("ldaps", host="127.0.0.2", port=port), trustRoot=self.trustRoot())
        self.assertIn("does not match", await self.assertRefused(directory, events))

    async def test_startTLSWrongHostName(self):
        """
        StartTLS to a server reached under a name not in its certificate
        is refused.
        """
        events = self.events()
        counter, port = await self.proxy(self.slapd.port, interface="127.0.0.2")
        directory = self.directory(self.url(host="127.0.0.2", port=port), startTLS=True, trustRoot=self.trustRoot())
        self.assertIn("does not match", await self.assertRefused(directory, events))

    async def test_directoryCallEvents(self):
        """
        Each connect, search and bind emits a directory-call event with its
        duration, outcome and server, and never a password.
        """
        events = self.events()
        directory = self.directory()
        await directory.authenticate("alice", "alice-pw")
        calls = [e for e in events if e.get("fbEvent") == "directory-call"]
        self.assertEqual({e["operation"] for e in calls}, {"connect", "search", "bind"})
        for e in calls:
            self.assertTrue(e["ok"])
            self.assertIsInstance(e["seconds"], float)
            self.assertEqual(e["server"], directory.server)
        self.assertNotIn("alice-pw", repr(events))


class SearchTests(SlapdTestMixin, TestCase):
    """
    The search account, scopes, URL filters, names and groups.
    """

    def setUp(self):
        self.startSlapd()

    async def test_searchAccount(self):
        """
        With a search account the directory binds for its searches.
        """
        directory = self.directory(bindDN=SEARCH_DN, bindPassword=SEARCH_PASSWORD)
        self.assertEqual(await directory.authenticate("carol", "carol-pw"), "carol")

    async def test_searchAccountWrongPassword(self):
        """
        A search account that cannot bind is an outage (503), not a wrong
        user password.
        """
        directory = self.directory(bindDN=SEARCH_DN, bindPassword="nope")
        with self.assertRaises(DirectoryUnavailable):
            await directory.authenticate("carol", "carol-pw")

    async def test_scopeOne(self):
        """
        Scope one below the base finds no users two levels down.
        """
        directory = self.directory(f"ldap://127.0.0.1:{self.slapd.port}/{BASE}?uid?one")
        self.assertIsNone(await directory.resolveName("alice"))
        directory = self.directory(f"ldap://127.0.0.1:{self.slapd.port}/{BASE}?uid?sub")
        self.assertEqual(await directory.resolveName("alice"), "alice")

    async def test_urlFilter(self):
        """
        The URL's filter restricts who may log in.
        """
        directory = self.directory(self.url(suffix="?uid?sub?(mail=*@example.com)"))
        self.assertEqual(await directory.authenticate("alice", "alice-pw"), "alice")
        self.assertEqual(await directory.resolveName("pat1"), "pat1")
        with self.assertRaises(UnauthorizedLogin):
            await directory.authenticate("pat2", "pat2-pw")

    async def test_loginAttributes(self):
        """
        With several login attributes a user logs in by any of them, and
        the uid is always the URL's attribute.
        """
        directory = self.directory(loginAttributes=("uid", "mail"))
        self.assertEqual(await directory.authenticate("robert@example.com", "bób-pw"), "bob")
        self.assertEqual(await directory.authenticate("bob", "bób-pw"), "bob")

    async def test_names(self):
        """
        A uid, a mail local part (any value of the attribute), a full
        address; an ambiguous local part is nobody while the full addresses
        work.
        """
        directory = self.directory()
        self.assertEqual(await directory.resolveName("alice"), "alice")
        self.assertEqual(await directory.resolveName("robert"), "bob")
        self.assertEqual(await directory.resolveName("bob@example.com"), "bob")
        self.assertIsNone(await directory.resolveName("pat"))
        self.assertEqual(await directory.resolveName("pat@example.com"), "pat1")
        self.assertEqual(await directory.resolveName("pat@example.org"), "pat2")
        self.assertIsNone(await directory.resolveName("nobody"))

    async def test_groups(self):
        """
        Membership by groupOfNames member, groupOfUniqueNames uniqueMember
        and posixGroup memberUid; non-members and missing groups are not.
        """
        directory = self.directory()
        group = "cn={},ou=groups," + BASE
        self.assertTrue(await directory.isMember("alice", group.format("admins")))
        self.assertTrue(await directory.isMember("bob", group.format("uadmins")))
        self.assertTrue(await directory.isMember("carol", group.format("padmins")))
        self.assertFalse(await directory.isMember("bob", group.format("admins")))
        self.assertFalse(await directory.isMember("alice", group.format("padmins")))
        self.assertFalse(await directory.isMember("alice", group.format("missing")))
        self.assertFalse(await directory.isMember("*", group.format("admins")))


class ConnectionTests(SlapdTestMixin, TestCase):
    """
    Searches share a few persistent connections; outages give 503 fast and
    service resumes by itself.
    """

    def setUp(self):
        self.startSlapd()

    async def test_pool(self):
        """
        Many lookups, one after another and concurrent, use no more
        connections than the pool holds.
        """
        counter, port = await self.proxy(self.slapd.port)
        directory = self.directory(self.url(port=port), poolSize=2)
        for _ in range(5):
            self.assertEqual(await directory.resolveName("alice"), "alice")
        results = await defer.gatherResults([directory.resolveName("robert") for _ in range(20)])
        self.assertEqual(results, ["bob"] * 20)
        self.assertEqual(counter.connections, 2)

    async def test_bindPoolReused(self):
        """
        User binds, right or wrong, reuse one pooled connection; searches
        keep to theirs.
        """
        counter, port = await self.proxy(self.slapd.port)
        directory = self.directory(self.url(port=port), poolSize=1)
        for _ in range(3):
            self.assertEqual(await directory.authenticate("alice", "alice-pw"), "alice")
            with self.assertRaises(UnauthorizedLogin):
                await directory.authenticate("bob", "wrong")
        self.assertEqual(counter.connections, 2)
        self.assertEqual(directory.openConnections(), 2)

    async def test_bindConnectionNeverSearches(self):
        """
        After a user's bind, searches still run as the search identity
        (anonymous here): they cannot read what only that user may read.
        """
        directory = self.directory(poolSize=1, bindPoolSize=1)
        for _ in range(2):
            self.assertEqual(await directory.authenticate("alice", "alice-pw"), "alice")
            entries = await directory.search(equalityFilter("uid", "alice"), ["userPassword", "uid"])
            self.assertEqual(firstValue(entries[0], "uid"), "alice")
            self.assertIsNone(firstValue(entries[0], "userPassword"))

    async def test_concurrentBinds(self):
        """
        Concurrent binds each get a connection; at most bindPoolSize stay
        open for the next ones.
        """
        counter, port = await self.proxy(self.slapd.port)
        directory = self.directory(self.url(port=port), poolSize=1, bindPoolSize=2)
        logins = ["alice", "bob", "carol", "pat1", "pat2"]
        opened = []
        for _ in range(2):
            results = await defer.gatherResults([directory.authenticate(u, PASSWORDS[u]) for u in logins])
            self.assertEqual(results, logins)
            self.assertEqual(len(directory.idleBindConnections()), 2)
            opened.append(counter.connections - sum(opened))
        # 1 search connection and up to 5 for binds; then at most 3 more
        # beside the 2 kept.
        self.assertLessEqual(opened[0], 1 + 5)
        self.assertLessEqual(opened[1], 3)
        await deferLater(0.1)
        self.assertEqual(directory.openConnections(), 1 + 2)

    async def test_serverClosedBindConnection(self):
        """
        A pooled bind connection the server closed is replaced: the next
        login works.
        """
        counter, port = await self.proxy(self.slapd.port)
        directory = self.directory(self.url(port=port), poolSize=1)
        self.assertEqual(await directory.authenticate("alice", "alice-pw"), "alice")
        for server in counter.servers:
            server.transport.loseConnection()
        await deferLater(0.1)
        self.assertEqual(await directory.authenticate("alice", "alice-pw"), "alice")
        self.assertEqual(counter.connections, 4)

    async def test_closeDuringBind(self):
        """
        A bind in flight when the directory is closed closes its connection
        when done: closing waits for it, and nothing stays open.
        """
        counter, port = await self.proxy(self.slapd.port)
        directory = self.directory(self.url(port=port), poolSize=1)
        self.assertEqual(await directory.authenticate("alice", "alice-pw"), "alice")
        # The search connection, then the bind connection alice used (now
        # pooled): nothing sent on the latter reaches slapd, so bob's bind
        # stays in flight.
        search, bind = counter.servers
        bind.transport.pauseProducing()
        binding = directory.authenticate("bob", PASSWORDS["bob"])
        await deferLater(0.1)
        self.assertNoResult(binding)
        self.assertEqual(directory.idleBindConnections(), [])
        closed = directory.close().addTimeout(2, reactor)
        bind.transport.resumeProducing()
        self.assertEqual(await binding, "bob")
        await closed
        self.assertEqual(directory.openConnections(), 0)

    async def test_staleBindConnectionRetried(self):
        """
        A bind on a pooled connection that turns out closed (the client had
        not noticed yet) is retried once on a new connection.
        """
        counter, port = await self.proxy(self.slapd.port)
        directory = self.directory(self.url(port=port), poolSize=1)
        self.assertEqual(await directory.authenticate("alice", "alice-pw"), "alice")
        (pooled,) = directory.idleBindConnections()
        pooled.transport.loseConnection()
        self.assertTrue(pooled.connected)
        self.assertEqual(await directory.authenticate("alice", "alice-pw"), "alice")
        with self.assertRaises(UnauthorizedLogin):
            await directory.authenticate("alice", "wrong")
        self.assertEqual(counter.connections, 3)

    async def test_stopAndRestart(self):
        """
        With slapd stopped calls fail at once with DirectoryUnavailable;
        after a restart service resumes without a new directory object.
        """
        directory = self.directory(retryMax=0.2)
        self.assertEqual(await directory.resolveName("alice"), "alice")
        self.slapd.stop()
        started = time.monotonic()
        with self.assertRaises(DirectoryUnavailable):
            await directory.resolveName("alice")
        with self.assertRaises(DirectoryUnavailable):
            await directory.authenticate("alice", "alice-pw")
        self.assertLess(time.monotonic() - started, 2)
        self.slapd.start()
        await deferLater(0.25)
        self.assertEqual(await directory.resolveName("alice"), "alice")
        self.assertEqual(await directory.authenticate("alice", "alice-pw"), "alice")

    async def test_pausedServerTimesOut(self):
        """
        A server that accepts but never answers fails within the timeout;
        later calls fail at once during the backoff delay; after resume
        service comes back.
        """
        directory = self.directory(timeout=0.5, retryMax=0.2)
        self.assertEqual(await directory.resolveName("alice"), "alice")
        self.slapd.pause()
        started = time.monotonic()
        with self.assertRaises(DirectoryUnavailable):
            await directory.resolveName("alice")
        self.assertLess(time.monotonic() - started, 1.0)
        started = time.monotonic()
        with self.assertRaises(DirectoryUnavailable):
            await directory.resolveName("alice")
        self.assertLess(time.monotonic() - started, 0.1)
        self.slapd.resume()
        await deferLater(0.3)
        self.assertEqual(await directory.resolveName("alice"), "alice")


def deferLater(seconds):
    from twisted.internet.task import deferLater as later

    return later(reactor, seconds)


class BackoffTests(SlapdTestMixin, TestCase):
    """
    The reconnect delays after failures, timed by a L{Clock}.
    """

    def setUp(self):
        self.startSlapd()

    async def attempt(self, directory, events):
        """
        @return: Whether a lookup tried to connect, and whether it worked.
        """
        before = len([e for e in events if e.get("operation") == "connect"])
        try:
            await directory.resolveName("alice")
            worked = True
        except DirectoryUnavailable:
            worked = False
        return len([e for e in events if e.get("operation") == "connect"]) > before, worked

    async def test_backoff(self):
        """
        After a failure no connection is tried for 0.25 s, then 0.5 s,
        doubling up to the maximum; a success resets the delay.
        """
        from twisted.internet.task import Clock

        clock = Clock()
        events = self.events()
        directory = self.directory(clock=clock, retryMax=1.0)
        self.slapd.stop()
        self.assertEqual(await self.attempt(directory, events), (True, False))
        for delay in (0.25, 0.5, 1.0, 1.0):
            clock.advance(delay - 0.01)
            self.assertEqual(await self.attempt(directory, events), (False, False))
            clock.advance(0.01)
            self.assertEqual(await self.attempt(directory, events), (True, False))
        self.slapd.start()
        clock.advance(1.0)
        self.assertEqual(await self.attempt(directory, events), (True, True))
        self.slapd.stop()
        await deferLater(0.05)
        self.assertEqual(await self.attempt(directory, events), (True, False))
        clock.advance(0.25)
        self.assertEqual(await self.attempt(directory, events), (True, False))
