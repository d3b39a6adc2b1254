"""
The directory's TLS certificate checks against a real slapd serving
certificates of every kind that matters: LDAPS and StartTLS, the server
reached by IP address and by DNS name.  A certificate is accepted only
when a trusted CA issued it, it is valid now, and a subjectAltName names
the host asked for; its CN is never looked at.
"""

from twisted.internet import reactor
from twisted.logger import LogLevel
from twisted.trial.unittest import TestCase

import tests.helpers  # noqa: F401 (ldaptor's import-time warnings)
from fbtwist.directory.ldapdirectory import LDAPDirectory
from fbtwist.directory.ldapurl import parseLDAPURL
from fbtwist.errors import DirectoryUnavailable
from tests.helpers import httpClient, outlookVFB, startServer
from tests.integration.test_directory_http import auth
from tests.integration.test_directory_slapd import LDIF, PEOPLE, SlapdTestMixin
from tests.slapd import SlapdServer


class CertificateTestsMixin(SlapdTestMixin):
    """
    A slapd serving the class's C{certificate}; helpers
    that connect to it the four ways.
    """

    #: How the server certificate differs from the usual one (see
    #: L{SlapdServer}).
    certificate = {}

    def setUp(self):
        self.slapd = SlapdServer(self.mktemp(), LDIF, certificate=self.certificate)
        self.slapd.start()
        self.addCleanup(self.slapd.stop)

    def connect(self, how, trustRoot=None):
        """
        A directory on the server, reached C{how}: C{"ldaps"} or
        C{"starttls"}, then C{"ip"} (127.0.0.1) or C{"dns"} (localhost).
        """
        scheme, reach = how.split("-")
        host = "127.0.0.1" if reach == "ip" else "localhost"
        port = self.slapd.ldapsPort if scheme == "ldaps" else self.slapd.port
        url = f"{'ldaps' if scheme == 'ldaps' else 'ldap'}://{host}:{port}/{PEOPLE}?uid?one"
        directory = LDAPDirectory(
            parseLDAPURL(url), reactor, timeout=2.0, startTLS=scheme == "starttls",
            trustRoot=trustRoot or self.trustRoot(),
        )
        self.addCleanup(directory.close)
        return directory

    async def assertAccepted(self, how):
        directory = self.connect(how)
        self.assertEqual(await directory.authenticate("alice", "alice-pw"), "alice")

    async def assertRefused(self, how, because, trustRoot=None):
        """
        Logging in fails as an outage, nothing is sent but the handshake
        (no bind carries a password, no search), and one error line names
        the server and says C{because}.
        """
        events = self.events()
        directory = self.connect(how, trustRoot)
        with self.assertRaises(DirectoryUnavailable):
            await directory.authenticate("alice", "alice-pw")
        # Again, within the backoff delay: no second line.
        with self.assertRaises(DirectoryUnavailable):
            await directory.resolveName("alice")
        self.assertFalse([e for e in events if e.get("operation") in ("bind", "search")])
        lines = [e for e in events if e.get("log_namespace", "").startswith("fbtwist")
                 and e["log_level"] >= LogLevel.warn]
        self.assertEqual(len(lines), 1, lines)
        self.assertEqual(lines[0]["log_level"], LogLevel.error)
        self.assertEqual(lines[0]["server"], directory.server)
        self.assertIn(because, lines[0]["reason"])
        self.assertFalse([e for e in events if e.get("log_failure") is not None])


#: The four ways to reach the server: the test's name and words.
WAYS = {
    "ldaps-ip": ("test_ldapsByAddress", "LDAPS to 127.0.0.1"),
    "ldaps-dns": ("test_ldapsByName", "LDAPS to localhost"),
    "starttls-ip": ("test_startTLSByAddress", "StartTLS to 127.0.0.1"),
    "starttls-dns": ("test_startTLSByName", "StartTLS to localhost"),
}


def eachWay(cls):
    """
    Give a L{CertificateTestsMixin} class one test per way in its
    C{expected} table: L{None} where the certificate is accepted, else what
    the refusal says.
    """
    for how, because in cls.expected.items():
        name, words = WAYS[how]

        async def test(self, how=how, because=because):
            if because is None:
                await self.assertAccepted(how)
            else:
                await self.assertRefused(how, because)

        test.__name__ = name
        test.__doc__ = f"{words}: " + ("accepted." if because is None else f"refused ({because}).")
        setattr(cls, name, test)
    return cls


@eachWay
class CNOnlyMatchingTests(CertificateTestsMixin, TestCase):
    """
    A certificate with no subjectAltName whose CN is the host asked for
    is refused (RFC 6125: the CN is not a name to check when the client
    checks subjectAltNames).
    """

    certificate = {"commonName": "localhost", "altNames": ()}
    expected = {
        "ldaps-dns": "no subjectAltName",
        "starttls-dns": "no subjectAltName",
    }


@eachWay
class CNOnlyMatchingAddressTests(CertificateTestsMixin, TestCase):
    """
    The same for an IP address in the CN.
    """

    certificate = {"commonName": "127.0.0.1", "altNames": ()}
    expected = {
        "ldaps-ip": "no subjectAltName",
        "starttls-ip": "no subjectAltName",
    }


@eachWay
class CNOnlyOtherHostTests(CertificateTestsMixin, TestCase):
    """
    A certificate of the trusted CA with no subjectAltName and a CN naming
    another host is refused: no password is sent to it.
    """

    certificate = {"commonName": "evil.example.test", "altNames": ()}
    expected = {
        "ldaps-ip": "no subjectAltName",
        "ldaps-dns": "no subjectAltName",
        "starttls-ip": "no subjectAltName",
        "starttls-dns": "no subjectAltName",
    }

    async def test_http(self):
        """
        A whole fbtwist with --ldap-ca answers publishers and lookups 503
        with Retry-After.
        """
        events = self.events()
        url = f"ldaps://127.0.0.1:{self.slapd.ldapsPort}/{PEOPLE}?uid?one"
        server = await startServer(self, "--ldap", url, "--ldap-ca", self.slapd.caCertPath,
                                   "--name-index-refresh", "0")
        http = httpClient(self)
        response = await http.put(server.url("/pub/calendar/alice.vfb"), data=outlookVFB("alice@example.com"),
                                  headers=auth("alice"))
        await response.content()
        self.assertEqual(response.code, 503)
        self.assertTrue(response.headers.hasHeader(b"Retry-After"))
        response = await http.get(server.url("/calendar/alice.vfb"))
        await response.content()
        self.assertEqual(response.code, 503)
        self.assertTrue(response.headers.hasHeader(b"Retry-After"))
        self.assertFalse([e for e in events if e.get("operation") in ("bind", "search")])


@eachWay
class WrongAltNameTests(CertificateTestsMixin, TestCase):
    """
    A certificate whose subjectAltNames name other hosts is refused, even
    with the host's name in its CN.
    """

    certificate = {"commonName": "localhost", "altNames": ("evil.example.test", "192.0.2.1")}
    expected = {
        "ldaps-ip": "it names evil.example.test, 192.0.2.1",
        "ldaps-dns": "does not match the host name localhost",
        "starttls-ip": "does not match the host name 127.0.0.1",
        "starttls-dns": "does not match the host name localhost",
    }


@eachWay
class RightAltNameTests(CertificateTestsMixin, TestCase):
    """
    A certificate whose subjectAltNames name the host is accepted, whatever
    its CN says; a CA that did not issue it is refused.
    """

    certificate = {"commonName": "evil.example.test", "altNames": ("localhost", "127.0.0.1")}
    expected = {
        "ldaps-ip": None,
        "ldaps-dns": None,
        "starttls-ip": None,
        "starttls-dns": None,
    }

    async def test_ldapsUnknownCA(self):
        """
        LDAPS with another CA as the trust root: refused.
        """
        await self.assertRefused("ldaps-ip", "its CA is not trusted",
                                 trustRoot=self.trustRoot(self.slapd.otherCACertPath))

    async def test_startTLSUnknownCA(self):
        """
        StartTLS with another CA as the trust root: refused.
        """
        await self.assertRefused("starttls-dns", "its CA is not trusted",
                                 trustRoot=self.trustRoot(self.slapd.otherCACertPath))


@eachWay
class UnreadableAltNameTests(CertificateTestsMixin, TestCase):
    """
    A certificate whose only subjectAltName is an IP address written as a
    DNS name, which service-identity cannot read (Twisted accepted it), is
    refused.
    """

    certificate = {"commonName": "127.0.0.1", "altNames": ("DNS:127.0.0.1",)}
    expected = {
        "ldaps-ip": "could not be checked",
        "starttls-ip": "could not be checked",
    }


@eachWay
class ExpiredTests(CertificateTestsMixin, TestCase):
    """
    An expired certificate, otherwise right, is refused.
    """

    certificate = {"expired": True}
    expected = {
        "ldaps-ip": "has expired",
        "starttls-dns": "has expired",
    }
