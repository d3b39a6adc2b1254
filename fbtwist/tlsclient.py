"""
Client TLS that fails closed: the options every TLS connection to the
directory is made with (LDAPS and StartTLS alike).

Twisted's L{optionsForClientTLS} verifies the certificate chain with OpenSSL
and the server's name with service-identity, but treats only
service-identity's C{VerificationError} (a name that does not match) as a
failure.  Any other exception raised while checking the name, such as the
C{CertificateError} that service-identity raises for a certificate without
a subjectAltName, is logged and the certificate accepted.  The options made
here keep Twisted's context (trust root, protocol versions, ciphers, SNI)
and replace only the verification callback by one that refuses a
certificate unless its name was positively verified.

Names are checked as RFC 6125 and service-identity check them: against the
certificate's subjectAltName entries (DNS names for a host name, IP
addresses for an address), never against its subject's CN.  A certificate
without a subjectAltName is refused even if its CN names the host.
"""

import ipaddress

from OpenSSL import SSL
from service_identity import VerificationError
from service_identity.hazmat import DNS_ID, IPAddress_ID, verify_service_identity
from service_identity.pyopenssl import extract_patterns
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.ssl import optionsForClientTLS
from twisted.python.failure import Failure
from zope.interface import implementer

#: What OpenSSL's verification error numbers (X509_V_ERR_*) that a
#: directory's certificate most often fails with mean, for the log line.
_VERIFY_ERRORS = {
    9: "it is not valid yet",
    10: "it has expired",
    18: "it is self-signed",
    19: "its CA is not trusted (see --ldap-ca)",
    20: "its CA is not trusted (see --ldap-ca)",
    21: "its CA is not trusted (see --ldap-ca)",
    26: "it may not be used for a TLS server",
}


class ServerCertificateRefused(Exception):
    """
    The server's certificate was refused; the message says why, in words
    fit for a log line ("its certificate ...").
    """


@implementer(IOpenSSLClientConnectionCreator)
class VerifyingClientTLS:
    """
    Client TLS options verifying the server's certificate chain against
    C{trustRoot} and its name against C{hostname}, failing closed: any
    doubt refuses the certificate.  A refused connection is lost with a
    L{ServerCertificateRefused} (or OpenSSL's C{SSL.Error}) as its reason.

    @param hostname: The name (DNS name or IP address) the server was
        asked for.
    @param trustRoot: The CAs to trust (the platform's when C{None}).
    """

    def __init__(self, hostname: str, trustRoot=None):
        self._options = optionsForClientTLS(hostname, trustRoot=trustRoot)
        try:
            ipaddress.ip_address(hostname)
        except ValueError:
            self._serviceID = DNS_ID(hostname)
        else:
            self._serviceID = IPAddress_ID(hostname)
        self.hostname = hostname

    def clientConnectionForTLS(self, tlsProtocol) -> SSL.Connection:
        connection = self._options.clientConnectionForTLS(tlsProtocol)
        connection.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT,
                              self._verifier(tlsProtocol))
        return connection

    def _verifier(self, tlsProtocol):
        # The protocol is dropped once the server's own certificate has been
        # judged: the connection holds this callback, the protocol holds
        # the connection.
        protocol = [tlsProtocol]

        def verify(connection, certificate, errorNumber: int, depth: int, ok: int) -> bool:
            if depth != 0 and ok:
                # The chain above the server's certificate: OpenSSL's word.
                return True
            try:
                reason = self._refusal(certificate, errorNumber, depth, ok)
            except BaseException as e:
                # Whatever goes wrong while checking refuses the certificate.
                reason = f"its certificate could not be checked ({e!r})"
            if reason is not None and protocol:
                protocol.pop().failVerification(Failure(ServerCertificateRefused(reason)))
            elif depth == 0:
                protocol.clear()
            return reason is None

        return verify

    def _refusal(self, certificate, errorNumber: int, depth: int, ok: int):
        """
        @return: Why the certificate at C{depth} is refused, or C{None}
            when it is accepted.
        """
        if not ok:
            what = _VERIFY_ERRORS.get(errorNumber, f"OpenSSL verification error {errorNumber}")
            where = f" (certificate {depth} of its chain)" if depth else ""
            return f"its certificate does not verify: {what}{where}"
        patterns = extract_patterns(certificate)
        if not patterns:
            # service-identity raises its CertificateError here, which
            # Twisted's own check logs and then accepts the certificate.
            return (f"its certificate does not match the host name {self.hostname} (it has no subjectAltName,"
                    " and a name in its subject's CN alone is not accepted)")
        try:
            verify_service_identity(patterns, [self._serviceID], [])
        except VerificationError:
            names = ", ".join(_text(p) for p in patterns)
            return f"its certificate does not match the host name {self.hostname} (it names {names})"
        return None


def _text(pattern) -> str:
    value = getattr(pattern, "pattern", pattern)
    return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
