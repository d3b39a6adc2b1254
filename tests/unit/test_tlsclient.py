"""
L{fbtwist.tlsclient} in memory: TLS handshakes over L{iosim} between a
server with a test certificate and a client using L{VerifyingClientTLS}.
The same cases run against slapd in L{tests.integration.test_directory_tls}; these
keep the contract with Twisted (its connection, our verification
callback) quick to check after an upgrade.
"""

from cryptography.hazmat.primitives import serialization
from twisted.internet.interfaces import IHandshakeListener, IOpenSSLClientConnectionCreator
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import Certificate, PrivateCertificate
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from fbtwist.tlsclient import ServerCertificateRefused, VerifyingClientTLS
from tests.slapd import _pem, _TestPKI


@implementer(IHandshakeListener)
class _Client(Protocol):
    handshook = False
    lost = None

    def handshakeCompleted(self):
        self.handshook = True

    def connectionLost(self, reason):
        self.lost = reason


def handshake(pki, hostname, trustCert=None):
    """
    @return: The client protocol after a TLS handshake with a server
        presenting C{pki}'s server certificate.
    """
    key = pki.serverKey.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    serverOptions = PrivateCertificate.loadPEM(_pem(pki.serverCert) + key).options()
    trustRoot = Certificate.loadPEM(_pem(trustCert or pki.caCert))
    client = _Client()
    clientOptions = VerifyingClientTLS(hostname, trustRoot)
    clientFactory = TLSMemoryBIOFactory(clientOptions, True, Factory.forProtocol(lambda: client))
    serverFactory = TLSMemoryBIOFactory(serverOptions, False, Factory.forProtocol(Protocol))
    _, _, pump = iosim.connectedServerAndClient(
        lambda: serverFactory.buildProtocol(None), lambda: clientFactory.buildProtocol(None), greet=False)
    pump.flush()
    return client


class VerifyingClientTLSTests(SynchronousTestCase):
    """
    Certificates accepted and refused, and why.
    """

    def assertRefused(self, client, because):
        self.assertFalse(client.handshook)
        self.assertIsNotNone(client.lost)
        client.lost.trap(ServerCertificateRefused)
        self.assertIn(because, client.lost.getErrorMessage())

    def test_interface(self):
        """
        It provides IOpenSSLClientConnectionCreator.
        """
        verifyObject(IOpenSSLClientConnectionCreator, VerifyingClientTLS("localhost"))

    def test_rightAltName(self):
        """
        A certificate naming the host in a subjectAltName, by name or by
        address, is accepted whatever its CN.
        """
        pki = _TestPKI(commonName="evil.example.test")
        for hostname in ("localhost", "127.0.0.1"):
            client = handshake(pki, hostname)
            self.assertTrue(client.handshook)
            self.assertIsNone(client.lost)

    def test_cnOnly(self):
        """
        A certificate without subjectAltName is refused even when its CN
        is the host.
        """
        pki = _TestPKI(commonName="localhost", altNames=())
        self.assertRefused(handshake(pki, "localhost"), "no subjectAltName")

    def test_wrongAltName(self):
        """
        A certificate for other names is refused, saying which it holds.
        """
        pki = _TestPKI(altNames=("evil.example.test",))
        self.assertRefused(handshake(pki, "localhost"), "it names evil.example.test")

    def test_unreadableAltName(self):
        """
        A certificate whose names cannot be read is refused.
        """
        pki = _TestPKI(commonName="127.0.0.1", altNames=("DNS:127.0.0.1",))
        self.assertRefused(handshake(pki, "127.0.0.1"), "could not be checked")

    def test_expired(self):
        """
        An expired certificate is refused as such.
        """
        self.assertRefused(handshake(_TestPKI(expired=True), "localhost"), "it has expired")

    def test_unknownCA(self):
        """
        A certificate of a CA not trusted is refused as such.
        """
        pki = _TestPKI()
        self.assertRefused(handshake(pki, "localhost", trustCert=pki.otherCACert), "its CA is not trusted")
