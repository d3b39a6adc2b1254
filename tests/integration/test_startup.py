"""
An administrator's first hour with a real C{twistd freebusy}: start-up
mistakes answered in one sentence, its C{--help} and C{--version} (the
help's text and the demo's defaults are tested in memory, in
L{tests.unit.test_startup}).
"""

import os
import socket
import subprocess
import sys
import time

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

from twisted.python.filepath import FilePath
from twisted.trial import unittest

import fbtwist
from tests.helpers import TOP


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
    twistd's C{--help} and C{--version}, and the admin command's; the
    version has one source.
    """

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

    def test_adminVersion(self):
        """
        fbtwist-admin --version is fbtwist's version too.
        """
        result = subprocess.run([sys.executable, "-m", "fbtwist.admin", "--version"], capture_output=True,
                                text=True, timeout=60, env=dict(os.environ, PYTHONPATH=TOP.path))
        self.assertEqual(result.stdout, f"fbtwist-admin {fbtwist.__version__}\n")
