"""
An administrator's first hour: start-up mistakes answered in one sentence
(by a real C{twistd freebusy}), a C{--help} a person can read, C{--version},
and the demo's defaults (loopback only, admin an administrator, one LDIF,
C{bin/serve} arguments added to its defaults).
"""

import os
import re
import socket
import subprocess
import sys
import time

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

from twisted.internet.testing import MemoryReactorClock
from twisted.logger import globalLogPublisher
from twisted.python import usage
from twisted.python.filepath import FilePath
from twisted.trial import unittest

import fbtwist
from fbtwist.admin import AdminOptions, ImportOptions
from fbtwist.config import DEMO_LDIF, OTHER_TOPIC, TOPICS, settings, topicOf
from fbtwist.demo import serveArguments
from fbtwist.tap import DEMO_ADMIN_GROUP, Options, demoListener, helpText, makeService

TOP = FilePath(__file__).parent().parent().parent()


def runTwistd(testCase, *args: str, env=None) -> subprocess.CompletedProcess:
    """
    Run C{twistd -n freebusy ARGS} from the source tree until it exits.
    """
    twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
    cwd = FilePath(testCase.mktemp())
    cwd.makedirs()
    return subprocess.run(
        [twistd, "-n", "--pidfile=", "freebusy", *args], cwd=cwd.path, capture_output=True, text=True,
        timeout=60, env=dict(os.environ, PYTHONPATH=TOP.path, PYTHONWARNINGS="ignore", **(env or {})),
    )


def printedLines(result: subprocess.CompletedProcess):
    return [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]


class StartupErrorTests(unittest.TestCase):
    """
    A real C{twistd freebusy} refuses each first-hour mistake with one
    sentence, no help text and no traceback, and a non-zero exit status.
    """

    def assertOneSentence(self, result, *fragments):
        lines = printedLines(result)
        self.assertNotEqual(result.returncode, 0, lines)
        # twistd's own usage line, then the sentence.
        self.assertEqual(len(lines), 2, lines)
        self.assertEqual(lines[0], "Usage: twistd [options]")
        for fragment in fragments:
            self.assertIn(fragment, lines[1])
        self.assertNotIn("Traceback", result.stdout + result.stderr)

    def test_typoInConfigFile(self):
        """
        A misspelt key in the config file is named with the file and the
        setting it is close to.
        """
        ini = FilePath(self.mktemp())
        ini.setContent(b"[freebusy]\nmax-uplaod = 2M\n")
        self.assertOneSentence(runTwistd(self, "--config", ini.path),
                               f"{ini.path}: unknown setting max-uplaod: did you mean max-upload?")

    def test_typoOnCommandLine(self):
        """
        A misspelt option on the command line gets the same suggestion.
        """
        self.assertOneSentence(runTwistd(self, "--max-uplaod", "2M"),
                               "unknown setting --max-uplaod: did you mean --max-upload?")

    def test_passwordAsValue(self):
        """
        bind-password (a password on the command line) says to use a file.
        """
        self.assertOneSentence(runTwistd(self, "--bind-password", "hunter2"),
                               "passwords are only read from files: use --bind-password-file")

    def test_badValues(self):
        """
        A missing password file, a bad --ldap URL, a bad size and a --root
        that cannot be created each name the setting and the value.
        """
        for args, fragments in [
            (("--bind-dn", "cn=x,dc=example,dc=com", "--bind-password-file", "/nonexistent/pw"),
             ("--bind-password-file /nonexistent/pw: cannot read the file (No such file or directory)",)),
            (("--ldap", "htp://ldap.example.com/dc=example,dc=com"),
             ("--ldap htp://ldap.example.com/dc=example,dc=com: ", "ldap://")),
            (("--max-upload", "lots"), ("--max-upload lots: expected a size in bytes such as 1048576 or 1M",)),
            (("--root", "/proc/fbtwist-calendars"), ("--root /proc/fbtwist-calendars", "name a directory")),
        ]:
            self.assertOneSentence(runTwistd(self, *args), *fragments)

    def test_portInUse(self):
        """
        A port in use ends twistd with one line naming the setting and the
        endpoint, not a traceback.
        """
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = runTwistd(self, "--http", f"tcp:{port}:interface=127.0.0.1", "--ftp", "none",
                           "--root", os.path.abspath(self.mktemp()))
        self.assertNotEqual(result.returncode, 0)
        output = result.stdout + result.stderr
        self.assertNotIn("Traceback", output)
        (line,) = [line for line in output.splitlines() if "cannot listen" in line]
        self.assertIn(f"fbtwist cannot listen on --http tcp:{port}:interface=127.0.0.1: Address already in use; "
                      "stop what uses that port or give --http another endpoint", line)


    def test_portInUseDaemon(self):
        """
        A daemonizing twistd whose port is in use ends at once, its parent
        printing the sentence (twistd's parent waits for an exception).
        """
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        folder = FilePath(self.mktemp())
        folder.makedirs()
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        result = subprocess.run(
            [twistd, "--pidfile", folder.child("twistd.pid").path, "--logfile", folder.child("twistd.log").path,
             "freebusy", "--http", f"tcp:{port}:interface=127.0.0.1", "--ftp", "none",
             "--root", folder.child("root").path],
            cwd=folder.path, capture_output=True, text=True, timeout=60,
            env=dict(os.environ, PYTHONPATH=TOP.path, PYTHONWARNINGS="ignore"),
        )
        self.assertNotEqual(result.returncode, 0)
        self.assertIn(f"fbtwist cannot listen on --http tcp:{port}:", result.stderr)
        # The daemon removes its pid file as it exits, which may be just
        # after its parent has reported the error.
        pidFile = folder.child("twistd.pid")
        deadline = time.monotonic() + 10
        while pidFile.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
            pidFile.changed()
        self.assertFalse(pidFile.exists())


class HelpTests(unittest.TestCase):
    """
    C{--help} groups the options by topic and never cuts a token; the
    version has one source.
    """

    def test_groupedByTopic(self):
        """
        Every setting is listed once, under its topic's heading, the
        headings in their order.
        """
        text = helpText(80)
        headings = [line for line in text.splitlines() if line and not line.startswith(" ")]
        self.assertEqual(headings, ["General"] + [t for t, _ in TOPICS])
        sections = re.split(r"^(?=\S)", text, flags=re.MULTILINE)
        for f in settings():
            option = "--" + f.metadata["option"]
            found = [s.splitlines()[0] for s in sections if re.search(r"^  %s(=|\s|$)" % re.escape(option), s, re.M)]
            self.assertEqual(found, [f.metadata["topic"]], option)

    def test_topicOfNewSettings(self):
        """
        A setting added without a topic gets one from its name's prefix.
        """
        self.assertEqual(topicOf("ftp"), "Listeners")
        self.assertEqual(topicOf("ftp-something-new"), "FTP")
        self.assertEqual(topicOf("ldap-tls-minimum"), "Directory (LDAP)")
        self.assertEqual(topicOf("http-request-timeout"), "Listeners")
        self.assertEqual(topicOf("frobnicate"), OTHER_TOPIC)

    def test_tokensNotCut(self):
        """
        At any width, endpoint descriptions, URLs and option names in the
        help stay whole on one line.
        """
        for width in (60, 80, 100):
            text = helpText(width)
            for token in ("ssl:8443:privateKey=key.pem:certKey=cert.pem", "ldap://host:port/BASE?ATTR?SCOPE?FILTER",
                          "tcp:9464:interface=127.0.0.1", "ldap://host/BASE?uid?sub??!starttls",
                          "sAMAccountName,userPrincipalName", "--ftp-tls-certificate"):
                self.assertIn(token, text, (width, token))

    def test_twistdHelp(self):
        """
        twistd freebusy --help prints the grouped help (and nothing on
        standard error), at the terminal's width.
        """
        result = runTwistd(self, "--help", env={"COLUMNS": "70"})
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("\nDirectory (LDAP)\n  --ldap=URL", result.stdout)
        self.assertIn("ssl:8443:privateKey=key.pem:certKey=cert.pem", result.stdout)
        for line in result.stdout.splitlines():
            if len(line) > 70:
                # Only a token too long for the column may stick out.
                self.assertGreater(max(len(word) for word in line.split()), 70 - 30 - 10, line)

    def test_version(self):
        """
        twistd freebusy --version prints fbtwist's version, which
        pyproject.toml takes from fbtwist.__version__.
        """
        result = runTwistd(self, "--version")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout.splitlines()[0].split(" (")[0], f"fbtwist {fbtwist.__version__}")
        with open(TOP.child("pyproject.toml").path, "rb") as f:
            project = tomllib.load(f)
        self.assertIn("version", project["project"]["dynamic"])
        self.assertEqual(project["tool"]["setuptools"]["dynamic"]["version"], {"attr": "fbtwist.__version__"})

    def test_adminHelp(self):
        """
        fbtwist-admin's help, and each command's, starts with its usage
        line.
        """
        self.assertTrue(str(AdminOptions()).startswith(
            "Usage: fbtwist-admin [--config FILE | --root DIR] check|import ...\n"))
        options = AdminOptions()
        options.subCommand = "import"
        sub = ImportOptions()
        sub.parent = options
        self.assertTrue(str(sub).startswith(
            "Usage: fbtwist-admin [--config FILE | --root DIR] import [--overwrite] [--dry-run] SOURCE...\n"))

    def test_adminVersion(self):
        """
        fbtwist-admin --version is fbtwist's version too.
        """
        result = subprocess.run([sys.executable, "-m", "fbtwist.admin", "--version"], capture_output=True,
                                text=True, timeout=60, env=dict(os.environ, PYTHONPATH=TOP.path))
        self.assertEqual(result.stdout, f"fbtwist-admin {fbtwist.__version__}\n")

    def test_errorWithoutHelp(self):
        """
        After a mistake, the options' usage text is empty: twistd prints it
        before the error, which would otherwise scroll away.
        """
        options = Options()
        self.assertIn("--max-upload", options.getUsage())
        self.assertRaises(usage.UsageError, options.parseOptions, ["--max-upload", "lots"])
        self.assertEqual(options.getUsage(), "")


class DemoDefaultsTests(unittest.TestCase):
    """
    The demo directory's passwords are in the README: with it, fbtwist
    listens on loopback unless told otherwise, and bin/serve keeps its
    loopback defaults whatever else it is given.
    """

    def interfaces(self, *args):
        options = Options()
        options.parseOptions(["--root", self.mktemp(), *args])
        reactor = MemoryReactorClock()
        service = makeService(options, reactor=reactor)
        service.startService()
        self.addCleanup(service.stopService)
        return {port: interface for port, factory, backlog, interface in reactor.tcpServers}

    def warnings(self):
        seen = []
        globalLogPublisher.addObserver(seen.append)
        self.addCleanup(globalLogPublisher.removeObserver, seen.append)
        return seen

    def test_demoOnLoopback(self):
        """
        With the demo directory, tcp:8080 and tcp:2121 (the defaults) listen
        on 127.0.0.1, and tcp6: on ::1.
        """
        self.assertEqual(self.interfaces(), {0: "127.0.0.1", 8080: "127.0.0.1", 2121: "127.0.0.1"})
        self.assertEqual(self.interfaces("--http", "tcp6:8081", "--ftp", "none")[8081], "::1")

    def test_explicitInterface(self):
        """
        An interface= of the operator's is kept, with a warning when it is
        not loopback.
        """
        seen = self.warnings()
        self.assertEqual(self.interfaces("--http", "tcp:8080:interface=0.0.0.0")[8080], "0.0.0.0")
        (warning,) = [e for e in seen if "demo passwords" in e.get("log_format", "")]
        self.assertEqual(warning["interface"], "0.0.0.0")
        self.assertEqual(demoListener("tcp:8080:interface=127.0.0.1"), "tcp:8080:interface=127.0.0.1")
        self.assertEqual(demoListener("unix:/run/fbtwist.sock"), "unix:/run/fbtwist.sock")

    def test_realDirectoryEverywhere(self):
        """
        With --ldap the endpoints are taken as given (every interface for
        tcp:8080).
        """
        interfaces = self.interfaces("--ldap", "ldap://ldap.example.com/dc=example,dc=com")
        self.assertEqual(interfaces, {8080: "", 2121: ""})

    def test_serveArguments(self):
        """
        bin/serve adds its loopback listeners to any arguments, unless they
        give that listener (or a config file) themselves.
        """
        loopback = ["--http", "tcp:8080:interface=127.0.0.1", "--ftp", "tcp:2121:interface=127.0.0.1"]
        self.assertEqual(serveArguments([]), loopback)
        self.assertEqual(serveArguments(["--lookup-auth"]), loopback + ["--lookup-auth"])
        self.assertEqual(serveArguments(["--http", "tcp:9090"]),
                         ["--ftp", "tcp:2121:interface=127.0.0.1", "--http", "tcp:9090"])
        self.assertEqual(serveArguments(["--ftp=none"]), ["--http", "tcp:8080:interface=127.0.0.1", "--ftp=none"])
        self.assertEqual(serveArguments(["--config", "x.ini"]), ["--config", "x.ini"])

    def test_demoAdmin(self):
        """
        With the demo directory its admin group is the administrators' (so
        the demo user admin is one); --admin-group or --ldap replace it.
        """
        def adminGroup(*args):
            options = Options()
            options.parseOptions(["--root", self.mktemp(), "--ftp", "none", *args])
            return makeService(options, reactor=MemoryReactorClock()).portal.realm.adminGroup

        self.assertEqual(adminGroup(), DEMO_ADMIN_GROUP)
        self.assertEqual(adminGroup("--admin-group", "cn=x,dc=example,dc=com"), "cn=x,dc=example,dc=com")
        self.assertIsNone(adminGroup("--ldap", "ldap://ldap.example.com/dc=example,dc=com"))
        self.assertIn("member: uid=admin,ou=people,dc=example,dc=com",
                      DEMO_LDIF.getContent().decode("utf-8").split(f"dn: {DEMO_ADMIN_GROUP}\n", 1)[1])

    def test_oneDemoLDIF(self):
        """
        There is one demo LDIF, the one the server loads, and the README
        names it.
        """
        self.assertFalse(TOP.descendant(["etc", "demo.ldif"]).exists())
        self.assertFalse(os.path.islink(DEMO_LDIF.path))
        self.assertTrue(DEMO_LDIF.isfile())
        self.assertIn("``fbtwist/data/demo.ldif``", TOP.child("README.rst").getContent().decode("utf-8"))
