"""
Tests for L{tests.slapd}: the throwaway OpenLDAP server really serves the
LDIF, checks passwords, speaks LDAPS and StartTLS with the test CA, and
survives a restart.
"""

import base64
import socket
import warnings

from OpenSSL import SSL
from service_identity import VerificationError
from twisted.internet import defer, error, reactor
from twisted.internet.endpoints import (
    HostnameEndpoint,
    connectProtocol,
    wrapClientTLS,
)
from twisted.internet.protocol import connectionDone
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.trial.unittest import SynchronousTestCase, TestCase

with warnings.catch_warnings():
    # ldaptor's import-time pyparsing deprecations.
    warnings.simplefilter("ignore", DeprecationWarning)
    from ldaptor.protocols import pureldap
    from ldaptor.protocols.ldap import ldaperrors
    from ldaptor.protocols.ldap.ldapclient import LDAPClient
    from ldaptor.protocols.ldap.ldapsyntax import LDAPEntry

from tests.slapd import PEOPLE, SlapdError, SlapdServer, hashPassword, ldifEntry, personEntry, unitEntry

BASE = "dc=example,dc=com"
ALICE = "uid=alice,ou=people," + BASE

LDIF = (
    ldifEntry(BASE, "dcObject", "organization", dc="example", o="Example")
    + unitEntry(PEOPLE)
    + personEntry("uid=alice", "Alice Liddell", "Liddell", uid="alice", mail="alice@example.com",
                  password="alice-pw")
    + personEntry("uid=bob", "Bob Builder", "Builder", uid="bob", password="bób-pw")
)


def uidFilter(uid):
    """
    @return: the filter C{(uid=<uid>)} as an ldaptor object.
    """
    return pureldap.LDAPFilter_equalityMatch(
        attributeDesc=pureldap.LDAPAttributeDescription("uid"),
        assertionValue=pureldap.LDAPAssertionValue(uid),
    )


class _Client(LDAPClient):
    """
    An L{LDAPClient} whose disconnection can be awaited.
    """

    def __init__(self):
        super().__init__()
        self.lost = defer.Deferred()

    def connectionLost(self, reason=connectionDone):
        super().connectionLost(reason)
        self.lost.callback(None)


async def connect(testCase, endpoint):
    """
    Connect an LDAP client, to be disconnected when C{testCase} ends.

    @return: the connected L{_Client}.
    """
    client = await connectProtocol(endpoint, _Client())

    def disconnect():
        client.transport.abortConnection()
        return client.lost

    testCase.addCleanup(disconnect)
    return client


class SlapdServerTests(TestCase):
    """
    Tests for L{SlapdServer} through a real ldaptor client.
    """

    def setUp(self):
        self.server = SlapdServer(self.mktemp(), LDIF)
        self.server.start()
        self.addCleanup(self.server.stop)
        with open(self.server.caCertPath, "rb") as f:
            self.ca = Certificate.loadPEM(f.read())
        with open(self.server.otherCACertPath, "rb") as f:
            self.otherCA = Certificate.loadPEM(f.read())

    def endpoint(self, port=None):
        """
        @return: an endpoint for the server's plain port, or C{port}.
        """
        return HostnameEndpoint(
            reactor, self.server.host, port or self.server.port
        )

    def ldapsEndpoint(self, trustRoot, hostname="localhost"):
        """
        @return: an LDAPS endpoint for the server that trusts C{trustRoot}
            and expects the certificate to name C{hostname}.
        """
        return wrapClientTLS(
            optionsForClientTLS(hostname, trustRoot=trustRoot),
            self.endpoint(self.server.ldapsPort),
        )

    def connect(self, endpoint=None):
        """
        Connect a client to C{endpoint}, by default the plain port.
        """
        return connect(self, endpoint or self.endpoint())

    def uids(self, client):
        """
        @return: a L{Deferred} firing with the sorted C{uid} values under
            C{ou=people}.
        """
        d = LDAPEntry(client, "ou=people," + BASE).search(
            filterObject=pureldap.LDAPFilter_present("uid"),
            attributes=["uid"],
        )
        d.addCallback(
            lambda entries: sorted(v.decode() for e in entries for v in e["uid"])
        )
        return d

    def serverCertificate(self):
        """
        @return: the certificate the server should present.
        """
        with open(self.server.serverCertPath, "rb") as f:
            return Certificate.loadPEM(f.read())

    async def test_search(self):
        """
        An anonymous client over plain TCP finds the LDIF's entries.
        """
        client = await self.connect()
        self.assertEqual(await self.uids(client), ["alice", "bob"])
        [alice] = await LDAPEntry(client, BASE).search(
            filterObject=uidFilter("alice"), attributes=["mail", "cn"]
        )
        self.assertEqual(str(alice.dn), ALICE)
        self.assertEqual(set(alice["mail"]), {b"alice@example.com"})

    async def test_userPasswordHidden(self):
        """
        Anonymous clients cannot read C{userPassword}; the root DN can.
        """
        client = await self.connect()
        [anonymous] = await LDAPEntry(client, BASE).search(
            filterObject=uidFilter("alice"), attributes=["userPassword", "cn"]
        )
        self.assertIn("cn", anonymous)
        self.assertNotIn("userPassword", anonymous)

        await LDAPEntry(client, self.server.rootDN).bind(
            self.server.rootPassword
        )
        [root] = await LDAPEntry(client, BASE).search(
            filterObject=uidFilter("alice"), attributes=["userPassword"]
        )
        [hashed] = root["userPassword"]
        self.assertTrue(hashed.startswith(b"{SSHA}"))

    async def test_bind(self):
        """
        A user binds with the password hashed into the LDIF, non-ASCII ones
        included.
        """
        client = await self.connect()
        await LDAPEntry(client, ALICE).bind("alice-pw")
        await LDAPEntry(client, "uid=bob,ou=people," + BASE).bind(
            "bób-pw".encode("utf-8")
        )

    async def test_bindWrongPassword(self):
        """
        A wrong password is refused with invalidCredentials.
        """
        client = await self.connect()
        await self.assertFailure(
            LDAPEntry(client, ALICE).bind("wrong"),
            ldaperrors.LDAPInvalidCredentials,
        )

    async def test_ldaps(self):
        """
        LDAPS works with the test CA, and the server presents its test
        certificate.
        """
        client = await self.connect(self.ldapsEndpoint(self.ca))
        await LDAPEntry(client, ALICE).bind("alice-pw")
        self.assertEqual(await self.uids(client), ["alice", "bob"])
        peer = Certificate(client.transport.getPeerCertificate())
        self.assertEqual(peer.digest(), self.serverCertificate().digest())

    async def test_ldapsOtherCA(self):
        """
        LDAPS fails when the client trusts only the unrelated CA.
        """
        client = await self.connect(self.ldapsEndpoint(self.otherCA))
        await self.assertFailure(self.uids(client), SSL.Error)

    async def test_ldapsWrongHostname(self):
        """
        LDAPS fails when the client expects a name the certificate lacks.
        """
        client = await self.connect(
            self.ldapsEndpoint(self.ca, hostname="ldap.example.org")
        )
        await self.assertFailure(self.uids(client), VerificationError)

    async def test_startTLS(self):
        """
        StartTLS on the plain port works with the test CA.
        """
        client = await self.connect()
        await client.startTLS(optionsForClientTLS("localhost", trustRoot=self.ca))
        await LDAPEntry(client, ALICE).bind("alice-pw")
        self.assertEqual(await self.uids(client), ["alice", "bob"])
        peer = Certificate(client.transport.getPeerCertificate())
        self.assertEqual(peer.digest(), self.serverCertificate().digest())

    async def test_startTLSOtherCA(self):
        """
        StartTLS fails when the client trusts only the unrelated CA.
        """
        client = await self.connect()
        await client.startTLS(
            optionsForClientTLS("localhost", trustRoot=self.otherCA)
        )
        await self.assertFailure(self.uids(client), SSL.Error)

    async def test_restart(self):
        """
        After stop() the ports refuse connections; start() brings the same
        data back on the same ports, changes made over LDAP included.
        """
        client = await self.connect()
        await LDAPEntry(client, self.server.rootDN).bind(
            self.server.rootPassword
        )
        await LDAPEntry(client, "ou=people," + BASE).addChild(
            "uid=carol",
            {
                "objectClass": ["inetOrgPerson"],
                "uid": ["carol"],
                "cn": ["Carol"],
                "sn": ["Carol"],
            },
        )
        port, ldapsPort = self.server.port, self.server.ldapsPort

        self.server.stop()
        self.assertFalse(self.server.running)
        await self.assertFailure(
            connectProtocol(self.endpoint(), _Client()),
            error.ConnectionRefusedError,
        )

        self.server.start()
        self.assertEqual(
            (self.server.port, self.server.ldapsPort), (port, ldapsPort)
        )
        client = await self.connect()
        self.assertEqual(await self.uids(client), ["alice", "bob", "carol"])
        client = await self.connect(self.ldapsEndpoint(self.ca))
        await LDAPEntry(client, ALICE).bind("alice-pw")

    async def test_pause(self):
        """
        A paused server accepts connections but does not answer until
        resumed.
        """
        client = await self.connect()
        self.server.pause()
        pending = LDAPEntry(client, ALICE).bind("alice-pw")
        pending.addTimeout(0.3, reactor)
        await self.assertFailure(pending, defer.TimeoutError)
        self.server.resume()
        client = await self.connect()
        await LDAPEntry(client, ALICE).bind("alice-pw")


class SlapdServerConfigurationTests(TestCase):
    """
    Tests for L{SlapdServer}'s handling of its arguments and failures.
    """

    async def test_baseEntryAdded(self):
        """
        An LDIF without the suffix entry gets one, and TLS can be left out.
        """
        server = SlapdServer(
            self.mktemp(), "", tls=False, suffix="o=test", rootPassword="pw"
        )
        self.assertIsNone(server.url)
        server.start()
        self.addCleanup(server.stop)
        client = await connect(
            self, HostnameEndpoint(reactor, server.host, server.port)
        )
        [base] = await LDAPEntry(client, "o=test").search(
            scope=pureldap.LDAP_SCOPE_baseObject, attributes=["o"]
        )
        self.assertEqual(set(base["o"]), {b"test"})
        self.assertEqual(server.url, "ldap://127.0.0.1:{}/".format(server.port))
        self.assertIsNone(server.ldapsPort)
        self.assertIsNone(server.ldapsUrl)
        self.assertIsNone(server.caCertPath)
        self.assertEqual(server.rootDN, "cn=admin,o=test")
        self.assertTrue(server.running)

    def test_badLDIF(self):
        """
        An LDIF slapadd rejects makes start() fail with slapadd's message.
        """
        server = SlapdServer(
            self.mktemp(), "dn: uid=x,{}\nobjectClass: nosuchclass\n".format(BASE)
        )
        exc = self.assertRaises(SlapdError, server.start)
        self.assertIn("slapadd", str(exc))
        self.assertIn("nosuchclass", str(exc))
        self.assertFalse(server.running)

    def test_startTwice(self):
        """
        start() on a running server raises rather than starting another.
        """
        server = SlapdServer(self.mktemp(), "", tls=False)
        server.start()
        self.addCleanup(server.stop)
        self.assertRaises(SlapdError, server.start)

    def test_portTaken(self):
        """
        If another process holds the port at restart, start() says so.
        """
        server = SlapdServer(self.mktemp(), "", tls=False)
        server.start()
        self.addCleanup(server.stop)
        server.stop()
        squatter = socket.socket()
        self.addCleanup(squatter.close)
        # Not refused by a TIME_WAIT left by start()'s readiness check.
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind((server.host, server.port))
        squatter.listen()
        exc = self.assertRaises(SlapdError, server.start)
        self.assertIn("Address already in use", str(exc))
        self.assertFalse(server.running)


class HashPasswordTests(SynchronousTestCase):
    """
    Tests for L{hashPassword}; slapd accepting its output is proved by
    L{SlapdServerTests.test_bind}.
    """

    def test_format(self):
        """
        The value is {SSHA} and base64 of a 20-byte digest and the salt.
        """
        value = hashPassword("secret", salt=b"12345678")
        self.assertTrue(value.startswith("{SSHA}"))
        raw = base64.b64decode(value[len("{SSHA}"):])
        self.assertEqual((len(raw), raw[20:]), (28, b"12345678"))

    def test_textIsUTF8(self):
        """
        A str password is hashed as its UTF-8 bytes.
        """
        self.assertEqual(
            hashPassword("bób", salt=b"salt"),
            hashPassword("bób".encode("utf-8"), salt=b"salt"),
        )

    def test_randomSalt(self):
        """
        Without a salt, two hashes of one password differ.
        """
        self.assertNotEqual(hashPassword("secret"), hashPassword("secret"))
