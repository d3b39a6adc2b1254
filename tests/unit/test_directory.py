"""
L{fbtwist.directory.ldapdirectory} on ldaptor's in-memory LDAP server over an
in-memory network (L{tests.memory}): filter injection, empty passwords,
several matching entries, Active Directory logins and mail attributes; and
ldaptor's client fed crafted responses carrying referrals.
"""

from ldaptor.protocols import pureldap
from ldaptor.protocols.ldap.ldapclient import LDAPClient
from ldaptor.protocols.ldap.ldapsyntax import LDAPEntry
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.testing import StringTransport
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

import tests.helpers  # noqa: F401 (ldaptor's import-time warnings)
from fbtwist.directory.client import DirectoryClient
from fbtwist.directory.demo import DemoLDAPFactory, loadLDIF
from fbtwist.directory.ldapdirectory import LDAPDirectory
from fbtwist.directory.ldapurl import parseLDAPURL
from fbtwist.interfaces import IDirectory
from tests.memory import MemoryNetwork, Settled

LDIF = """\
dn: dc=corp,dc=example
objectClass: dcObject
dc: corp

dn: ou=users,dc=corp,dc=example
objectClass: organizationalUnit
ou: users

dn: cn=Alice Liddell,ou=users,dc=corp,dc=example
objectClass: user
cn: Alice Liddell
sAMAccountName: alice
userPrincipalName: alice@corp.example
mail: alice.liddell@example.com
mailAlternateAddress: alice@example.net
userPassword: wonderland

dn: cn=Star,ou=users,dc=corp,dc=example
objectClass: user
cn: Star
sAMAccountName: *
userPassword: star-pw

dn: cn=Twin One,ou=users,dc=corp,dc=example
objectClass: user
cn: Twin One
sAMAccountName: twin
mail: twin@example.com
userPassword: twin-pw

dn: cn=Twin Two,ou=users,dc=corp,dc=example
objectClass: user
cn: Twin Two
sAMAccountName: twin
mail: twin@example.org
userPassword: twin-pw

dn: cn=Jose,ou=users,dc=corp,dc=example
objectClass: user
cn: Jose
sAMAccountName: josé
mail: josé@example.com
userPassword: olé

"""


class InMemoryDirectoryTests(TestCase):
    """
    An Active Directory-like tree (no schema) on the in-memory server.
    """

    def setUp(self):
        path = FilePath(self.mktemp())
        path.setContent(LDIF.encode("utf-8"))
        network = MemoryNetwork()
        port = network.listenTCP(0, DemoLDAPFactory(loadLDIF(path)), interface="127.0.0.1")
        url = parseLDAPURL(f"ldap://127.0.0.1:{port.getHost().port}/ou=users,dc=corp,dc=example?sAMAccountName?sub")
        self.ldapDirectory = LDAPDirectory(
            url, network, loginAttributes=("sAMAccountName", "userPrincipalName"),
            mailAttributes=("mail", "mailAlternateAddress"),
        )
        self.directory = Settled(self.ldapDirectory, network)
        self.addCleanup(self.directory.close)

    def test_interface(self):
        """
        LDAPDirectory provides IDirectory.
        """
        self.assertTrue(verifyObject(IDirectory, self.ldapDirectory))

    async def test_activeDirectoryLogins(self):
        """
        A user logs in by sAMAccountName or userPrincipalName; the uid is
        the sAMAccountName.
        """
        self.assertEqual(await self.directory.authenticate("alice", "wonderland"), "alice")
        self.assertEqual(await self.directory.authenticate("alice@corp.example", "wonderland"), "alice")

    async def test_injection(self):
        """
        Filter metacharacters in a login are matched literally, never as
        wildcards or filter syntax.
        """
        for login in ("a*", "*)(sAMAccountName=*", "*)(|(cn=*", "alice)(", "al\\2a", "\\", "ali\\ce", "*"):
            with self.assertRaises(UnauthorizedLogin, msg=login):
                await self.directory.authenticate(login, "wonderland")
            if login != "*":
                self.assertIsNone(await self.directory.resolveName(login), login)

    async def test_literalStar(self):
        """
        A user literally named C{*} logs in as themselves only.
        """
        self.assertEqual(await self.directory.authenticate("*", "star-pw"), "*")
        self.assertEqual(await self.directory.resolveName("*"), "*")

    async def test_nul(self):
        """
        A login with a NUL matches nobody.
        """
        with self.assertRaises(UnauthorizedLogin):
            await self.directory.authenticate("alice\x00", "wonderland")

    async def test_nonASCII(self):
        """
        Non-ASCII logins, passwords and mail addresses work.
        """
        self.assertEqual(await self.directory.authenticate("josé", "olé"), "josé")
        self.assertEqual(await self.directory.resolveName("josé@example.com"), "josé")
        with self.assertRaises(UnauthorizedLogin):
            await self.directory.authenticate("jose", "olé")

    async def test_emptyPassword(self):
        """
        An empty password or login never binds (it would be an anonymous
        bind).
        """
        for login, password in (("alice", ""), ("", "wonderland"), ("", "")):
            with self.assertRaises(UnauthorizedLogin):
                await self.directory.authenticate(login, password)

    async def test_severalEntries(self):
        """
        A login matching several entries logs nobody in, even with the
        right password.
        """
        with self.assertRaises(UnauthorizedLogin):
            await self.directory.authenticate("twin", "twin-pw")

    async def test_mailAttributes(self):
        """
        Lookup names match the local part and full address of any mail
        attribute.
        """
        self.assertEqual(await self.directory.resolveName("alice.liddell"), "alice")
        self.assertEqual(await self.directory.resolveName("alice@example.net"), "alice")
        self.assertEqual(await self.directory.resolveName("twin@example.org"), "twin")


def _tlv(tag: int, content: bytes) -> bytes:
    length = len(content)
    if length < 0x80:
        encoded = bytes([length])
    else:
        raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
        encoded = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + encoded + content


def _message(messageID: int, op: bytes) -> bytes:
    return _tlv(0x30, _tlv(0x02, messageID.to_bytes((messageID.bit_length() + 8) // 8, "big")) + op)


def _searchDone(code: int, referral: bytes = b"") -> bytes:
    return _tlv(0x65, _tlv(0x0A, bytes([code])) + _tlv(0x04, b"") + _tlv(0x04, b"") + referral)


def _entry(dn: bytes, uid: bytes) -> bytes:
    attribute = _tlv(0x30, _tlv(0x04, b"uid") + _tlv(0x31, _tlv(0x04, uid)))
    return _tlv(0x64, _tlv(0x04, dn) + _tlv(0x30, attribute))


REFERENCE = _tlv(0x73, _tlv(0x04, b"ldap://DomainDnsZones.corp.example/DC=DomainDnsZones,DC=corp,DC=example"))
REFERRAL = _tlv(0xA3, _tlv(0x04, b"ldap://other.example/dc=other,dc=example"))


class ReferralTests(SynchronousTestCase):
    """
    What Active Directory sends, fed byte for byte to the client.
    """

    def search(self, *responses):
        """
        Search, and answer with C{responses} (functions of the request's
        message ID giving bytes).
        """
        client = DirectoryClient()
        client.makeConnection(StringTransport())
        d = LDAPEntry(client, "dc=corp,dc=example").search(
            filterObject=pureldap.LDAPFilter_present("uid"), attributes=["uid"]
        )
        (messageID,) = client.onwire
        for response in responses:
            client.dataReceived(_message(messageID, response))
        return self.successResultOf(d)

    def test_referenceIgnored(self):
        """
        A continuation reference among the entries is skipped.
        """
        entries = self.search(_entry(b"uid=alice,dc=corp,dc=example", b"alice"), REFERENCE, _searchDone(0))
        self.assertEqual([e.dn.getText() for e in entries], ["uid=alice,dc=corp,dc=example"])

    def test_referralResultIsEmpty(self):
        """
        A search answered "referral" (result code 10 with URIs) is an empty
        result, not an error or a hung request.
        """
        self.assertEqual(self.search(REFERENCE, _searchDone(10, REFERRAL)), [])

    def test_successWithReferralField(self):
        """
        A successful result carrying a referral field keeps its entries.
        """
        entries = self.search(_entry(b"uid=bob,dc=corp,dc=example", b"bob"), _searchDone(0, REFERRAL))
        self.assertEqual(len(entries), 1)


class ReceiveTests(SynchronousTestCase):
    """
    The client's own receive loop (search entries decoded directly) gives
    what ldaptor's decoder gives, however the bytes are split.
    """

    def received(self, data: bytes, chunk: int):
        client = DirectoryClient()
        client.makeConnection(StringTransport())
        handled = []
        client.handle = handled.append
        for start in range(0, len(data), chunk):
            client.dataReceived(data[start:start + chunk])
        self.assertEqual(client.buffer, b"")
        return handled

    def test_sameAsLdaptor(self):
        """
        Entries with long, many and non-ASCII values, an entry with
        controls, a reference and a result decode as ldaptor decodes them,
        fed whole or byte by byte.
        """
        long = "x" * 70000
        wide = _tlv(0x30, b"".join(
            _tlv(0x30, _tlv(0x04, f"a{i}".encode()) + _tlv(0x31, _tlv(0x04, b"v") + _tlv(0x04, "é".encode())))
            for i in range(40)
        ))
        control = _tlv(0xA0, _tlv(0x30, _tlv(0x04, b"1.2.3") + _tlv(0x04, b"value")))
        messages = [
            _message(5, _entry(b"uid=alice,dc=corp,dc=example", b"alice")),
            _message(300, _entry("cn=José,dc=corp".encode(), long.encode())),
            _message(7, _tlv(0x64, _tlv(0x04, b"cn=wide") + wide)),
            _message(8, _entry(b"uid=c,dc=corp", b"c")),
            _tlv(0x30, _tlv(0x02, b"\x09") + _entry(b"uid=d", b"d") + control),
            _message(9, REFERENCE),
            _message(9, _searchDone(0)),
        ]
        reference = LDAPClient()
        expected = []
        reference.handle = expected.append
        reference.makeConnection(StringTransport())
        data = b"".join(messages)
        reference.dataReceived(data)
        self.assertEqual(len(expected), len(messages))
        for chunk in (len(data), 1, 1000):
            handled = self.received(data, chunk)
            self.assertEqual([repr(m) for m in handled], [repr(m) for m in expected])
            self.assertEqual([m.id for m in handled], [5, 300, 7, 8, 9, 9, 9])
