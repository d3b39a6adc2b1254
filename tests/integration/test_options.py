"""
Tests for C{twistd freebusy}'s options, config file, service tree and
packaging.
"""

import os
import subprocess
import sys
import threading

from twisted.application.service import IServiceMaker
from twisted.cred.checkers import ANONYMOUS
from twisted.internet.testing import MemoryReactorClock as MemoryReactor
from twisted.plugin import getPlugins
from twisted.protocols.ftp import IFTPShell
from twisted.python import usage
from twisted.python.filepath import FilePath
from twisted.trial import unittest
from twisted.web.resource import IResource

import fbtwist
from fbtwist.config import Config
from fbtwist.tap import Options, makeService, threadRunner

TOP = FilePath(__file__).parent().parent().parent()


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
    L{fbtwist.tap.threadRunner}: the store's slow steps go to a thread
    pool of their own.
    """

    def test_memoryReactor(self):
        """
        A reactor without threads (a test's) gets none: the store runs them
        in the calling thread.
        """
        self.assertIsNone(threadRunner(MemoryReactor()))

    def test_threadPool(self):
        """
        With the real reactor the function runs in a thread of its pool and
        the Deferred fires with its result in the reactor thread.
        """
        from twisted.internet import reactor

        d = threadRunner(reactor)(lambda x: (x, threading.current_thread()), 7)

        def check(result):
            value, thread = result
            self.assertEqual(value, 7)
            self.assertIsNot(thread, threading.main_thread())
            self.assertIs(threading.current_thread(), threading.main_thread())

        return d.addCallback(check)


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

    def runCommand(self, args, env=None):
        return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)

    def test_twistdHelp(self):
        """
        `twistd freebusy --help` lists the options.
        """
        result = self.runCommand([sys.executable, "-m", "twisted", "freebusy", "--help"],
                           env=dict(os.environ, PYTHONPATH=TOP.path))
        self.assertEqual(result.returncode, 0, result.stderr)
        for option in ("--http", "--ftp", "--root", "--ldap", "--bind-dn", "--max-upload", "--config"):
            self.assertIn(option, result.stdout)

    def test_installedWheel(self):
        """
        A regular (non-editable) install carries the plugin and the demo
        directory: twistd finds freebusy there.
        """
        target = FilePath(self.mktemp())
        build = self.runCommand([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                           "--no-build-isolation", "--no-cache-dir", "--target", target.path, TOP.path])
        self.assertEqual(build.returncode, 0, build.stderr)
        self.assertTrue(target.descendant(["twisted", "plugins", "fbtwist_plugin.py"]).exists())
        self.assertFalse(target.descendant(["twisted", "plugins", "__init__.py"]).exists())
        self.assertTrue(target.descendant(["fbtwist", "data", "demo.ldif"]).isfile())
        distInfo = target.child(f"fbtwist-{fbtwist.__version__}.dist-info")
        self.assertIn("fbtwist-admin = fbtwist.admin:run", distInfo.child("entry_points.txt").getContent().decode())
        env = dict(os.environ, PYTHONPATH=target.path)
        check = self.runCommand([sys.executable, "-c",
                           "import fbtwist, fbtwist.config as c; print(fbtwist.__file__); print(c.DEMO_LDIF.isfile())"],
                          env=env)
        self.assertIn(target.path, check.stdout)
        self.assertIn("True", check.stdout)
        result = self.runCommand([sys.executable, "-m", "twisted", "freebusy", "--help"], env=env)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("--max-upload", result.stdout)


class SettleMemoryTests(unittest.TestCase):
    """
    L{fbtwist.tap.settleMemory}, run once a server process has started.
    """

    def test_startupObjectsFrozen(self):
        """
        What was built to start is out of the garbage collector's reach: a
        full collection afterwards has next to nothing to walk.  (In a child
        process: freezing the test runner's objects would keep them.)
        """
        script = (
            "import gc, time\n"
            "import fbtwist.tap, fbtwist.web.lookup, fbtwist.web.dav.resource\n"
            "fbtwist.tap.settleMemory()\n"
            "print(gc.get_freeze_count(), sum(gc.get_count()), len(gc.get_objects()))\n"
        )
        out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True,
                             cwd=TOP.path, timeout=60).stdout
        frozen, pending, tracked = (int(n) for n in out.split())
        self.assertGreater(frozen, 10_000)
        self.assertLess(tracked, 1_000)
