"""
HTTPS end to end: a certificate made with the README's openssl command, an
C{ssl:} listener, publishing with Basic auth and looking up, with treq and
curl both verifying the certificate.
"""

from twisted.internet import utils
from twisted.internet.ssl import Certificate
from twisted.python.filepath import FilePath
from twisted.trial import unittest
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool

from tests.helpers import basicAuth, inline, listeningPort, outlookVFB, publicAnswer, startServer


async def makeCertificate(testCase, name: str = "localhost"):
    """
    A self-signed key and certificate for C{name} and 127.0.0.1, made as
    the README says.

    @return: The key's and the certificate's paths.
    """
    folder = FilePath(testCase.mktemp())
    folder.makedirs()
    key, cert = folder.child("key.pem"), folder.child("cert.pem")
    out, err, code = await utils.getProcessOutputAndValue("/usr/bin/openssl", [
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "365",
        "-keyout", key.path, "-out", cert.path,
        "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name},IP:127.0.0.1",
    ])
    testCase.assertEqual(code, 0, err)
    return key, cert


class HTTPSTests(unittest.TestCase):
    """
    fbtwist behind an C{ssl:} endpoint.
    """

    async def start(self):
        self.key, self.cert = await makeCertificate(self)
        description = f"ssl:0:interface=127.0.0.1:privateKey={self.key.path}:certKey={self.cert.path}"
        server = await startServer(self, "--http", description)
        self.port = (await listeningPort(server.service.getServiceNamed("http2"))).getHost().port
        return server

    def client(self, cert: FilePath):
        import treq
        from twisted.internet import reactor

        pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(pool.closeCachedConnections)
        policy = BrowserLikePolicyForHTTPS(trustRoot=Certificate.loadPEM(cert.getContent()))
        return treq.client.HTTPClient(Agent(reactor, contextFactory=policy, pool=pool))

    @inline
    async def test_publishAndLookUp(self):
        """
        Publish with Basic auth over HTTPS, look up over HTTPS; the set-up
        page gives https:// URLs.
        """
        server = await self.start()
        http = self.client(self.cert)
        base = f"https://localhost:{self.port}"
        body = outlookVFB("alice@example.com")
        response = await http.put(base + "/pub/calendar/alice.vfb", data=body, headers=basicAuth("alice"))
        await response.content()
        self.assertEqual(response.code, 201)
        response = await http.get(base + "/calendar/alice.vfb")
        self.assertEqual(await response.content(), publicAnswer(server.store, "alice"))
        response = await http.get(base + "/setup")
        page = (await response.content()).decode("utf-8")
        self.assertIn(f"https://localhost:{self.port}/pub/calendar/LOGIN.vfb", page)
        self.assertNotIn("loaded over plain HTTP", page)

    @inline
    async def test_curl(self):
        """
        curl verifies the certificate and publishes with Basic auth.
        """
        await self.start()
        vfb = FilePath(self.mktemp())
        vfb.setContent(outlookVFB("alice@example.com"))
        out, err, code = await utils.getProcessOutputAndValue("/usr/bin/curl", [
            "--silent", "--show-error", "--max-time", "10", "--cacert", self.cert.path,
            "-u", "alice:wonderland", "-T", vfb.path, "-o", "/dev/null", "-w", "%{http_code}",
            f"https://127.0.0.1:{self.port}/pub/calendar/alice.vfb",
        ])
        self.assertEqual((code, out), (0, b"201"), err)

    @inline
    async def test_otherCertificateRefused(self):
        """
        A client trusting another certificate refuses the connection, so the
        listener really presents the configured one.
        """
        await self.start()
        otherKey, otherCert = await makeCertificate(self)
        http = self.client(otherCert)
        with self.assertRaises(Exception) as caught:
            await http.get(f"https://localhost:{self.port}/calendar/alice.vfb")
        self.assertIn("certificate verify failed", repr(caught.exception))
