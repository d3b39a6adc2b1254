"""
An administrator's first hour, in memory: a C{--help} a person can read
(grouped by topic, no token cut), the usage texts, and the demo's defaults
(loopback only, admin an administrator, one LDIF, C{bin/serve} arguments
added to its defaults).  What a real C{twistd freebusy} prints is tested in
L{tests.integration.test_startup}.
"""

import os
import re

from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage
from twisted.trial import unittest

from fbtwist.admin import AdminOptions, ImportOptions
from fbtwist.config import DEMO_LDIF, OTHER_TOPIC, TOPICS, settings, topicOf
from fbtwist.demo import serveArguments
from fbtwist.tap import DEMO_ADMIN_GROUP, Options, demoListener, helpText, makeService
from tests.helpers import TOP, logEvents


class HelpTests(unittest.TestCase):
    """
    C{--help} groups the options by topic and never cuts a token.
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
        return logEvents(self)

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

