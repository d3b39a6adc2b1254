"""
Tests for C{twistd freebusy}'s options, config file, service tree and
plugin, in memory (twistd itself, the installed package and a server
process: L{tests.integration.test_options}).
"""

import os

from twisted.application.service import IServiceMaker
from twisted.cred.checkers import ANONYMOUS
from twisted.internet.testing import MemoryReactorClock as MemoryReactor
from twisted.plugin import getPlugins
from twisted.protocols.ftp import IFTPShell
from twisted.python import usage
from twisted.python.filepath import FilePath
from twisted.trial import unittest
from twisted.web.resource import IResource

from fbtwist.config import Config
from fbtwist.tap import Options, makeService, threadRunner


def parse(*args):
    options = Options()
    options.parseOptions(list(args))
    return options.config


class OptionsTests(unittest.TestCase):
    """
    Options and the config file they may read.
    """

    def test_defaults(self):
        """
        Without options: HTTP on 8080, FTP on 2121, 1 MiB uploads, no LDAP.
        """
        config = parse()
        self.assertEqual(config.http, ("tcp:8080",))
        self.assertEqual(config.ftp, "tcp:2121")
        self.assertEqual(config.maxUpload, 1 << 20)
        self.assertIsNone(config.ldap)
        self.assertTrue(config.root.path.endswith(os.path.join("var", "freebusy")))

    def test_values(self):
        """
        Repeatable --http, --ftp none, sizes with suffixes, an LDAP URL.
        """
        config = parse("--http", "tcp:1", "--http", "tcp:2:interface=127.0.0.1", "--ftp", "none",
                       "--max-upload", "2M", "--ldap", "ldap://h/dc=x?cn?one")
        self.assertEqual(config.http, ("tcp:1", "tcp:2:interface=127.0.0.1"))
        self.assertIsNone(config.ftp)
        self.assertEqual(config.maxUpload, 2 << 20)
        self.assertEqual(config.ldap.attribute, "cn")

    def test_badValues(self):
        """
        Bad values are one UsageError sentence naming the option.
        """
        for args, fragment in [
            (["--max-upload", "lots"], "--max-upload"),
            (["--ldap", "http://x/"], "--ldap"),
            (["--http", "carrier-pigeon:1"], "--http"),
            (["--ldap-timeout", "-1"], "--ldap-timeout"),
            (["--bind-password-file", "/nonexistent/secret"], "--bind-password-file"),
            (["--admin-group", "not a dn"], "--admin-group"),
            (["--root", __file__], "not a directory"),
            (["--root", __file__ + "/tree"], "cannot be created"),
            (["--root", "/proc/fbtwist"], "--root /proc/fbtwist"),
        ]:
            error = self.assertRaises(usage.UsageError, parse, *args)
            self.assertIn(fragment, str(error))
            self.assertNotIn("\n", str(error))

    def test_passwordFile(self):
        """
        The search password comes from the first line of a file and is not
        shown in the config's repr.
        """
        secret = FilePath(self.mktemp())
        secret.setContent(b"s3cret\nignored\n")
        config = parse("--bind-dn", "cn=search,dc=example,dc=com", "--bind-password-file", secret.path)
        self.assertEqual(config.bindPassword, "s3cret")
        self.assertNotIn("s3cret", repr(config))

    def test_configFile(self):
        """
        The file sets options; the command line wins; repeatable options
        take one value per line.
        """
        ini = FilePath(self.mktemp())
        ini.setContent(b"[freebusy]\nhttp = tcp:1\n  tcp:2\nmax-upload = 10K\nrealm = Example\n")
        config = parse("--config", ini.path, "--max-upload", "20K")
        self.assertEqual(config.http, ("tcp:1", "tcp:2"))
        self.assertEqual(config.maxUpload, 20 << 10)
        self.assertEqual(config.realm, "Example")

    def test_configFileErrors(self):
        """
        Unknown keys or sections, bad values and unreadable files name what
        is wrong.
        """
        for content, fragment in [
            (b"[freebusy]\nmax-uplaod = 1\n", "unknown setting max-uplaod: did you mean max-upload?"),
            (b"[other]\nx = 1\n", "unknown section [other]"),
            (b"[freebusy]\nmax-upload = huge\n", "max-upload = huge in"),
            (b"no section\n", "not valid INI"),
            (b"[freebusy]\nftp = tcp:1\n tcp:2\n", "takes one value"),
        ]:
            ini = FilePath(self.mktemp())
            ini.setContent(content)
            error = self.assertRaises(usage.UsageError, parse, "--config", ini.path)
            self.assertIn(fragment, str(error))
        error = self.assertRaises(usage.UsageError, parse, "--config", "/nonexistent.ini")
        self.assertIn("cannot read", str(error))

    def test_everyFieldIsAnOption(self):
        """
        Each Config field has an option and help text.
        """
        options = Options()
        # Repeatable options are opt_ methods (--http, --federate, ...).
        longNames = {p[0] for p in options.optParameters + options.optFlags} | {
            name for name in (f.metadata["option"] for f in Config.__dataclass_fields__.values())
            if callable(getattr(options, "opt_" + name.replace("-", "_"), None))}
        for field in Config.__dataclass_fields__.values():
            self.assertIn(field.metadata["option"], longNames)
            self.assertTrue(field.metadata["help"])


class MakeServiceTests(unittest.TestCase):
    """
    makeService builds named services on the given reactor.
    """

    def test_services(self):
        """
        One HTTP service per --http, the demo directory without --ldap, the
        calendar tree created.
        """
        root = FilePath(self.mktemp())
        options = Options()
        options.parseOptions(["--http", "tcp:8080", "--http", "tcp:8081", "--ftp", "none", "--root", root.path])
        reactor = MemoryReactor()
        service = makeService(options, reactor=reactor)
        self.assertEqual(service.getServiceNamed("http").description, "tcp:8080:interface=127.0.0.1")
        self.assertEqual(service.getServiceNamed("http2").description, "tcp:8081:interface=127.0.0.1")
        self.assertIsNotNone(service.getServiceNamed("ldap-demo"))
        self.assertTrue(root.isdir())
        service.startService()
        ports = sorted(p[0] for p in reactor.tcpServers)
        self.assertEqual(ports, [0, 8080, 8081])
        service.stopService()

    def test_realmAnswersEveryProtocol(self):
        """
        The realm of the built portal gives the web's and FTP's avatars, even
        with FTP switched off (the portal registers every protocol's).
        """
        options = Options()
        options.parseOptions(["--http", "tcp:0", "--ftp", "none", "--root", self.mktemp()])
        realm = makeService(options, reactor=MemoryReactor()).portal.realm
        for interface in (IResource, IFTPShell):
            (answered, avatar, logout) = self.successResultOf(realm.requestAvatar(ANONYMOUS, None, interface))
            self.assertIs(answered, interface)
            self.assertTrue(interface.providedBy(avatar), avatar)

    def test_realDirectory(self):
        """
        With --ldap there is no demo directory.
        """
        options = Options()
        options.parseOptions(["--ldap", "ldap://h/dc=x", "--root", self.mktemp()])
        service = makeService(options, reactor=MemoryReactor())
        self.assertRaises(KeyError, service.getServiceNamed, "ldap-demo")


class ThreadRunnerTests(unittest.TestCase):
    """
    L{fbtwist.tap.threadRunner}: the store's slow steps go to the reactor's
    thread pool.
    """

    def test_memoryReactor(self):
        """
        A reactor without threads (a test's) gets none: the store runs them
        in the calling thread.
        """
        self.assertIsNone(threadRunner(MemoryReactor()))


class PluginTests(unittest.TestCase):
    """
    The twistd plugin is found and installs correctly.
    """

    def test_discovered(self):
        """
        twisted.plugin finds the freebusy service maker.
        """
        makers = {p.tapname: p for p in getPlugins(IServiceMaker)}
        self.assertIn("freebusy", makers)
        self.assertIs(makers["freebusy"].options, Options)
