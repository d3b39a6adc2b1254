"""
The FTP options and the FTP service in L{fbtwist.tap.makeService}.
"""

from twisted.internet.testing import MemoryReactorClock
from twisted.protocols.ftp import IFTPShell
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from fbtwist.ftp.server import CalendarFTPFactory
from fbtwist.tap import makeService
from tests.helpers import serviceOptions


class FTPOptionsTests(SynchronousTestCase):
    """
    --ftp-* options: defaults, parsing and clear errors.
    """

    def test_defaults(self):
        """
        Anonymous FTP is off, any passive port, no announced address.
        """
        config = serviceOptions().config
        self.assertEqual(config.ftp, "tcp:2121")
        self.assertFalse(config.ftpAnonymous)
        self.assertIsNone(config.ftpPassivePorts)
        self.assertIsNone(config.ftpPassiveHost)
        self.assertEqual(config.ftpIdleTimeout, 300.0)
        self.assertEqual(config.ftpMaxConnectionsPerAddress, 8)

    def test_values(self):
        """
        Every FTP option is parsed into the config.
        """
        config = serviceOptions(
            "--ftp", "none", "--ftp-anonymous", "--ftp-passive-ports", "50000-50100",
            "--ftp-passive-host", "203.0.113.7", "--ftp-idle-timeout", "60", "--ftp-data-timeout", "3",
            "--ftp-max-connections-per-address", "2",
        ).config
        self.assertIsNone(config.ftp)
        self.assertTrue(config.ftpAnonymous)
        self.assertEqual(config.ftpPassivePorts, range(50000, 50101))
        self.assertEqual(config.ftpPassiveHost, "203.0.113.7")
        self.assertEqual((config.ftpIdleTimeout, config.ftpDataTimeout), (60.0, 3.0))
        self.assertEqual(config.ftpMaxConnectionsPerAddress, 2)

    def test_badValues(self):
        """
        Bad values give one sentence naming the option.
        """
        for args, words in (
            (("--ftp-passive-ports", "50100-50000"), "--ftp-passive-ports"),
            (("--ftp-passive-ports", "80-90"), "1024"),
            (("--ftp-passive-host", "::1"), "IPv4"),
            (("--ftp-max-connections-per-address", "0"), "between 1 and"),
            (("--ftp-idle-timeout", "never"), "--ftp-idle-timeout"),
        ):
            with self.assertRaises(usage.UsageError) as raised:
                serviceOptions(*args)
            self.assertIn(words, str(raised.exception))

    def test_tlsOptions(self):
        """
        --ftp-tls-required needs a certificate; a file that is not a PEM
        certificate with its key is refused when the options are read.
        """
        with self.assertRaises(usage.UsageError) as raised:
            serviceOptions("--ftp-tls-required")
        self.assertIn("--ftp-tls-certificate", str(raised.exception))
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("not a certificate\n")
        with self.assertRaises(usage.UsageError) as raised:
            serviceOptions("--ftp-tls-certificate", path)
        self.assertIn("not a PEM certificate", str(raised.exception))

    def test_configFile(self):
        """
        The INI file sets the FTP options too, the switch with yes/no.
        """
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("[freebusy]\nftp-anonymous = yes\nftp-passive-ports = 50000-50009\n")
        config = serviceOptions("--config", path).config
        self.assertTrue(config.ftpAnonymous)
        self.assertEqual(config.ftpPassivePorts, range(50000, 50010))
        with open(path, "w") as f:
            f.write("[freebusy]\nftp-anonymous = perhaps\n")
        with self.assertRaises(usage.UsageError) as raised:
            serviceOptions("--config", path)
        self.assertIn("ftp-anonymous", str(raised.exception))


class FTPServiceTests(SynchronousTestCase):
    """
    makeService adds the FTP listener on the shared portal.
    """

    def build(self, *args):
        reactor = MemoryReactorClock()
        root = self.mktemp()
        service = makeService(serviceOptions("--root", root, "--http", "tcp:0", *args), reactor=reactor)
        service.startService()
        self.addCleanup(service.stopService)
        return service, reactor

    def test_ftpService(self):
        """
        --ftp ENDPOINT adds a service named ftp, on the portal HTTP uses,
        with the FTP options applied.
        """
        service, reactor = self.build(
            "--ftp", "tcp:2121:interface=127.0.0.1", "--ftp-passive-host", "192.0.2.10", "--ftp-anonymous",
        )
        listener = service.getServiceNamed("ftp")
        factory = listener.factory
        self.assertIsInstance(factory, CalendarFTPFactory)
        self.assertIs(factory.portal, service.portal)
        self.assertIn(IFTPShell, service.portal.realm.avatarFactories)
        self.assertEqual(factory.passiveHost, "192.0.2.10")
        self.assertTrue(factory.allowAnonymous)
        self.assertIn((2121, "127.0.0.1"), [(port, interface) for port, _, _, interface in reactor.tcpServers])

    def test_ftpNone(self):
        """
        --ftp none: no FTP service.
        """
        service, reactor = self.build("--ftp", "none")
        self.assertRaises(KeyError, service.getServiceNamed, "ftp")
