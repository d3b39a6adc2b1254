"""
Messages an administrator or user reads say what happened and what to do,
as a colleague would.
"""

from twisted.cred.checkers import AllowAnonymousAccess
from twisted.cred.portal import Portal
from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import formatEvent, globalLogPublisher
from twisted.protocols import ftp
from twisted.python.filepath import FilePath
from twisted.trial import unittest

from fbtwist.access.permissions import Action, authorize
from fbtwist.access.realm import FreeBusyRealm
from fbtwist.calendar import ical
from fbtwist.directory.ldapdirectory import LDAPDirectory
from fbtwist.directory.ldapurl import parseLDAPURL
from fbtwist.directory.nameindex import NameIndexRefresher
from fbtwist.errors import InvalidCalendar, PermissionDenied
from fbtwist.ftp.server import CalendarFTPFactory
from fbtwist.ftp.shell import ftpAvatarFactory
from fbtwist.store.tree import CalendarStore
from fbtwist.tap import helpText
from tests.helpers import TOP, inline, logEvents, outlookVFB
from tests.memory import MemoryNetwork, startMemoryServer
from tests.unit.test_lookup import EVENTS


class PublishMessageTests(unittest.SynchronousTestCase):
    """
    What a publisher is told when a publish is refused.
    """

    def test_ownFilesNamed(self):
        """
        Another user's file: the answer names both files one may publish.
        """
        error = self.assertRaises(PermissionDenied, authorize, "bsmith", False, Action.WRITE, ("alice.vfb",))
        self.assertEqual(str(error), "bsmith may only publish bsmith.vfb or bsmith.ics")

    def test_eventsAsFreeBusy(self):
        """
        A calendar of events sent as .vfb is told to use .ics.
        """
        error = self.assertRaises(InvalidCalendar, ical.validateUpload, "bsmith.vfb", EVENTS)
        self.assertEqual(str(error),
                         "this is a calendar of events (VEVENT), not free/busy times (VFREEBUSY): "
                         "publish it as <login>.ics")


class LogMessageTests(unittest.TestCase):
    """
    What the log says.
    """

    @inline
    async def test_nameIndexNeverLoaded(self):
        """
        A first load of the name index that fails does not claim to keep an
        index loaded before: lookups search the directory meanwhile.
        """
        seen = []
        warned = defer.Deferred()

        def observe(event):
            seen.append(event)
            if "name index" in event.get("log_format", "") and not warned.called:
                warned.callback(event)

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        # A port nothing listens on: the directory cannot be reached.
        network = MemoryNetwork()
        directory = LDAPDirectory(parseLDAPURL("ldap://127.0.0.1:389/dc=example,dc=com"), network, timeout=2.0)
        self.addCleanup(directory.close)
        clock = Clock()
        refresher = NameIndexRefresher(directory, 600, clock)
        refresher.start()
        self.addCleanup(refresher.stop)
        clock.advance(0)
        event = await network.run(warned)
        self.assertIn("could not be loaded", formatEvent(event))
        self.assertIn("lookups search the directory until it is", formatEvent(event))
        self.assertNotIn("keeping the one loaded before", " ".join(formatEvent(e) for e in seen))

    def test_anonymousFTPLogin(self):
        """
        An anonymous FTP login is logged as anonymous, not None.
        """
        seen = logEvents(self)
        realm = FreeBusyRealm(CalendarStore(FilePath(self.mktemp())), directory=None)
        realm.registerAvatarFactory(ftp.IFTPShell, ftpAvatarFactory(1 << 20))
        factory = CalendarFTPFactory(Portal(realm, [AllowAnonymousAccess()]), MemoryReactorClock(),
                                     allowAnonymous=True)
        address = IPv4Address("TCP", "127.0.0.1", 40000)
        protocol = factory.buildProtocol(address)
        transport = StringTransport(peerAddress=address, hostAddress=IPv4Address("TCP", "127.0.0.1", 2121))
        protocol.makeConnection(transport)
        self.addCleanup(protocol.connectionLost, None)
        for line in (b"USER anonymous\r\n", b"PASS guest@example.com\r\n"):
            protocol.dataReceived(line)
        self.assertIn(b"230", transport.value())
        logins = [formatEvent(e) for e in seen if "FTP login" in e.get("log_format", "")]
        self.assertEqual(logins, ["FTP login by anonymous from 127.0.0.1"])


class LookupMessageTests(unittest.TestCase):
    """
    What a lookup client is told.
    """

    @inline
    async def test_plusInFormat(self):
        """
        format=application/calendar+json, its + read as a space, is a 406
        that says to write %2B.
        """
        server = startMemoryServer(self)
        server.store.write(("alice.vfb",), outlookVFB("alice@example.com"))
        response = await server.client().get(server.url("/calendar/alice.vfb?format=application/calendar+json"))
        body = await response.content()
        self.assertEqual(response.code, 406)
        self.assertIn(b"a + in a URL is read as a space, write format=application/calendar%2Bjson", body)


class SpellingTests(unittest.SynchronousTestCase):
    """
    The same thing is spelt the same way everywhere.
    """

    def test_startTLSExtension(self):
        """
        The StartTLS URL extension is !starttls in --help, the README and the
        example config, never ?starttls.
        """
        texts = {
            "--help": helpText(80),
            "README.rst": TOP.child("README.rst").getContent().decode("utf-8"),
            "etc/freebusy.ini": TOP.descendant(["etc", "freebusy.ini"]).getContent().decode("utf-8"),
        }
        for name, text in texts.items():
            self.assertIn("!starttls", text, name)
            self.assertNotIn("?starttls", text, name)
