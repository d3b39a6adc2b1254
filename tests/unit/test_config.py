"""
The config file: the example covers every setting, the command line wins,
and bad input is refused with a sentence naming it.
"""

import re

from twisted.python import usage
from twisted.python.filepath import FilePath
from twisted.trial import unittest

from fbtwist.config import ConfigError, buildConfig, readConfigFile, settings
from fbtwist.tap import Options
from tests.helpers import ETC

EXAMPLE = ETC.child("freebusy.ini")


class ExampleConfigTests(unittest.SynchronousTestCase):
    """
    etc/freebusy.ini documents every setting and is usable as it is.
    """

    def test_everySettingDocumented(self):
        """
        Each Config field's option appears in the example, set or commented
        out (so a setting added later must be documented there too).
        """
        text = EXAMPLE.getContent().decode("utf-8")
        missing = [
            f.metadata["option"] for f in settings()
            if not re.search(r"^#? ?%s = " % re.escape(f.metadata["option"]), text, re.MULTILINE)
        ]
        self.assertEqual(missing, [])

    def test_exampleIsValid(self):
        """
        The example file parses and builds a config as shipped.
        """
        config = buildConfig({}, EXAMPLE.path)
        self.assertEqual(config.http, ("tcp:8080",))
        self.assertEqual(config.root.path, "/var/lib/fbtwist")

    def test_commentedExamplesAreValid(self):
        """
        Uncommenting every example line still gives a valid config (the
        example values are real), apart from files that do not exist here.
        """
        lines = []
        for line in EXAMPLE.getContent().decode("utf-8").splitlines():
            match = re.match(r"^# ?([a-z-]+ = .*)$", line)
            if match and match.group(1).partition(" = ")[0] not in FILE_SETTINGS + ("http",):
                lines.append(match.group(1))
        secret = FilePath(self.mktemp())
        secret.setContent(b"s3cret\n")
        lines.append("bind-password-file = " + secret.path)
        values = {}
        for line in lines:
            key, _, value = line.partition(" = ")
            values[key] = value
        self.assertEqual(sorted(values), sorted(
            [f.metadata["option"] for f in settings() if f.metadata["option"] not in FILE_SETTINGS + ("http", "root")]
            + ["bind-password-file"]
        ))
        path = FilePath(self.mktemp())
        path.setContent(("[freebusy]\n" + "\n".join(lines) + "\n").encode("utf-8"))
        config = buildConfig({}, path.path)
        self.assertEqual(config.metrics, "http")
        self.assertEqual(config.logFormat, "combined")
        self.assertEqual(config.shutdownGrace, 10.0)

    def test_commentedValuesAreTheDefaults(self):
        """
        A commented setting shows fbtwist's default (the header says so):
        for every setting that has a default, the example's value is it.
        Settings without one (None, or an empty list) show an example;
        demo-ldif's default is where fbtwist is installed.
        """
        text = EXAMPLE.getContent().decode("utf-8")
        wrong = []
        for f in settings():
            option = f.metadata["option"]
            if f.default in (None, ()) or option == "demo-ldif":
                continue
            match = re.search(r"^# %s = (.*)$" % re.escape(option), text, re.MULTILINE)
            if match is None:
                continue
            value = f.metadata["parse"](match.group(1))
            if (value,) != (f.default,) and (value,) != f.default:
                wrong.append((option, match.group(1), f.default))
        self.assertEqual(wrong, [])


#: Settings naming files that exist only on a real server.
FILE_SETTINGS = ("bind-password-file", "demo-ldif", "ldap-ca", "ftp-tls-certificate", "ftp-tls-key",
                 "federation-credentials", "federation-ca")


class PrecedenceTests(unittest.SynchronousTestCase):
    """
    Command line over config file over defaults.
    """

    def write(self, text: str) -> str:
        path = FilePath(self.mktemp())
        path.setContent(text.encode("utf-8"))
        return path.path

    def test_commandLineWins(self):
        """
        A value on the command line replaces the file's; the file's other
        values stay; unset values keep their defaults.
        """
        path = self.write("[freebusy]\nmax-upload = 2M\nrealm = From the file\nlog-format = json\n")
        options = Options()
        options.parseOptions(["--config", path, "--max-upload", "3M"])
        self.assertEqual(options.config.maxUpload, 3 << 20)
        self.assertEqual(options.config.realm, "From the file")
        self.assertEqual(options.config.logFormat, "json")
        self.assertEqual(options.config.shutdownGrace, 10.0)

    def test_repeatable(self):
        """
        A repeatable option takes one value per line in the file; given on
        the command line, its values replace the file's list.
        """
        path = self.write("[freebusy]\nhttp = tcp:8080\n  tcp:8081\n")
        self.assertEqual(buildConfig({}, path).http, ("tcp:8080", "tcp:8081"))
        self.assertEqual(buildConfig({"http": ["tcp:9090"]}, path).http, ("tcp:9090",))

    def test_secretFromFile(self):
        """
        The bind password is read from the first line of the named file and
        is not shown in the config's repr.
        """
        secret = FilePath(self.mktemp())
        secret.setContent(b"s3cret-Pw\nsecond line\n")
        config = buildConfig({}, self.write(f"[freebusy]\nbind-dn = cn=s,dc=x\nbind-password-file = {secret.path}\n"))
        self.assertEqual(config.bindPassword, "s3cret-Pw")
        self.assertNotIn("s3cret-Pw", repr(config))


class ConfigErrorTests(unittest.SynchronousTestCase):
    """
    Bad input gives one sentence naming the setting and its source.
    """

    def write(self, text: str) -> str:
        path = FilePath(self.mktemp())
        path.setContent(text.encode("utf-8"))
        return path.path

    def assertUsageError(self, args, *fragments):
        options = Options()
        error = self.assertRaises(usage.UsageError, options.parseOptions, args)
        for fragment in fragments:
            self.assertIn(fragment, str(error))
        self.assertNotIn("Traceback", str(error))

    def test_unknownKey(self):
        """
        An unknown key is named, with the file and the setting it is close to.
        """
        path = self.write("[freebusy]\nmax-uplaod = 2M\n")
        self.assertUsageError(["--config", path], f"{path}: unknown setting max-uplaod: did you mean max-upload?")

    def test_passwordValueRefused(self):
        """
        A password cannot be given as a value, in the file or on the command
        line (where getopt would take --bind-password for the -file option):
        the answer says to name a file.
        """
        path = self.write("[freebusy]\nbind-password = hunter2\n")
        self.assertUsageError(["--config", path], f"{path}: passwords are only read from files: use bind-password-file")
        for args in (["--bind-password", "hunter2"], ["--bind-password=hunter2"]):
            self.assertUsageError(args, "passwords are only read from files: use --bind-password-file")

    def test_badValueInFile(self):
        """
        A bad value in the file is named with its key and the file.
        """
        path = self.write("[freebusy]\nlog-format = xml\n")
        self.assertUsageError(["--config", path], f"log-format = xml in {path}: expected combined or json")

    def test_badValueOnCommandLine(self):
        """
        A bad value on the command line is named by its option.
        """
        self.assertUsageError(["--shutdown-grace", "-1"], "--shutdown-grace", "between 0 and 3600")
        self.assertUsageError(["--metrics", "nonsense:1"], "--metrics", "not a usable endpoint")
        self.assertUsageError(["--max-upload", "lots"], "--max-upload")

    def test_unknownSection(self):
        """
        Settings outside [freebusy] are refused, naming the section.
        """
        path = self.write("[server]\nhttp = tcp:1\n")
        self.assertUsageError(["--config", path], "unknown section [server]")

    def test_missingFile(self):
        """
        A config file that cannot be read is named.
        """
        self.assertUsageError(["--config", "/nonexistent/freebusy.ini"], "/nonexistent/freebusy.ini")

    def test_notINI(self):
        """
        A file that is not INI is refused with the parser's reason.
        """
        path = self.write("http = tcp:8080\n")
        error = self.assertRaises(ConfigError, readConfigFile, path)
        self.assertIn("not valid INI", str(error))

    def test_metricsValues(self):
        """
        --metrics takes http, none or an endpoint.
        """
        self.assertEqual(buildConfig({"metrics": "none"}).metrics, "none")
        self.assertEqual(buildConfig({}).metrics, "http")
        self.assertEqual(buildConfig({"metrics": "tcp:9464"}).metrics, "tcp:9464")
