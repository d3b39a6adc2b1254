"""
The TLS settings of explicit FTPS (C{AUTH TLS}, RFC 4217).

Kept apart from L{fbtwist.ftp.server} so that the options can check a
certificate without importing C{twisted.protocols.ftp} (which installs the
global reactor).
"""

from typing import Optional

from twisted.python.filepath import FilePath


def serverTLSOptions(certificate: FilePath, key: Optional[FilePath] = None):
    """
    The server side TLS options from PEM files.

    @param certificate: The certificate, and its private key unless C{key}
        is given.
    @return: A L{twisted.internet.ssl.CertificateOptions}.
    @raise ValueError: With a short reason when the files do not hold a
        certificate and its matching key.
    """
    from OpenSSL import SSL, crypto
    from twisted.internet import ssl

    pem = certificate.getContent()
    if key is not None:
        pem += b"\n" + key.getContent()
    try:
        private = ssl.PrivateCertificate.loadPEM(pem)
        options = private.options()
        # Fails when the key is not the certificate's.
        options.getContext().check_privatekey()
    except (crypto.Error, SSL.Error, ValueError, IndexError) as e:
        raise ValueError(f"not a PEM certificate with its private key ({e.__class__.__name__})") from None
    return options
