"""
Deterministic tests of L{fbtwist.ftp.server}: one FTP session on a
L{StringTransport}, a L{MemoryReactorClock}, a real store in a temporary
directory and the real realm; each defect of Twisted's FTP server
(docs/library-notes.rst) has a test here.
"""

import errno

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import Portal
from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.error import CannotListenError, ConnectionDone, ConnectionLost
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.protocols import ftp
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from fbtwist.access.checker import DirectoryChecker
from fbtwist.access.realm import FreeBusyRealm
from fbtwist.budget import ConnectionBudget
from fbtwist.errors import DirectoryUnavailable, TooManyAttempts
from fbtwist.ftp.server import CalendarFTPFactory, CRLFLineEnds, TooManyConnections, normalisedHost
from fbtwist.ftp.shell import ftpAvatarFactory
from fbtwist.store.tree import CalendarStore
from fbtwist.tap import makeService
from tests.helpers import (
    descriptorsExhausted,
    exhaustDescriptors,
    logEvents,
    outlookVFB,
    serviceOptions,
    treeNames,
)

CLIENT = "127.0.0.1"


class _Directory:
    """
    A directory that knows two users (and their passwords), or is down.
    """

    users = {"alice": "wonderland", "bob": "builder", "dave": "sécret-ß"}

    def __init__(self, down=False):
        self.down = down
        self.calls = []

    def authenticate(self, login, password):
        self.calls.append((login, password))
        if self.down:
            return defer.fail(DirectoryUnavailable("the directory does not answer."))
        if self.users.get(login) != password:
            return defer.fail(UnauthorizedLogin())
        return defer.succeed(login)

    def isMember(self, uid, group):
        return defer.succeed(False)


@implementer(ICredentialsChecker)
class _DownChecker:
    """
    A checker whose directory is down.
    """

    credentialInterfaces = (IUsernamePassword,)

    def requestAvatarId(self, credentials):
        return defer.fail(DirectoryUnavailable("the directory does not answer."))


class Session:
    """
    One FTP session over a StringTransport, as alice (or bob) on a real
    store.
    """

    def __init__(self, testCase, maxUpload=1 << 20, checker=None, peer=CLIENT, factory=None, reactor=None,
                 **factoryArgs):
        self.testCase = testCase
        if factory is None:
            self.reactor = MemoryReactorClock() if reactor is None else reactor
            self.store = CalendarStore(FilePath(testCase.mktemp()))
            realm = FreeBusyRealm(self.store, directory=None)
            realm.registerAvatarFactory(ftp.IFTPShell, ftpAvatarFactory(maxUpload))
            checker = checker or DirectoryChecker(_Directory())
            factory = CalendarFTPFactory(Portal(realm, [checker]), self.reactor, **factoryArgs)
        self.factory = factory
        self.reactor = factory.reactor
        address = IPv4Address("TCP", peer, 40000)
        self.protocol = factory.buildProtocol(address)
        self.transport = StringTransport(peerAddress=address, hostAddress=IPv4Address("TCP", "127.0.0.1", 2121))
        self.protocol.makeConnection(self.transport)
        self.replies()

    def send(self, line: str) -> None:
        self.protocol.dataReceived(line.encode("utf-8") + b"\r\n")

    def replies(self):
        lines = self.transport.value().decode("utf-8").split("\r\n")
        self.transport.clear()
        return [line for line in lines if line]

    def command(self, line: str):
        self.send(line)
        return self.replies()

    def login(self, user="alice", password="wonderland"):
        self.send(f"USER {user}")
        self.send(f"PASS {password}")
        replies = self.replies()
        self.testCase.assertTrue(replies[-1].startswith("230"), replies)

    def passive(self, peer=CLIENT):
        """
        PASV, then the client's data connection.

        @return: The data protocol and its transport.
        """
        self.testCase.assertTrue(self.command("PASV")[0].startswith("227"))
        factory = self.reactor.tcpServers[-1][1]
        data = factory.buildProtocol(IPv4Address("TCP", peer, 40001))
        transport = StringTransport()
        if data is not None:
            data.makeConnection(transport)
        return data, transport

    def publish(self, name, body, chunks=1):
        data, transport = self.passive()
        self.send(f"STOR {name}")
        size = len(body) // chunks + 1
        for start in range(0, len(body), size):
            data.dataReceived(body[start:start + size])
        data.connectionLost(Failure(ConnectionDone()))
        return self.replies()

    def temporaries(self):
        return [n for n in treeNames(self.store.root.path) if n.startswith(".")]


class LineEndsTests(SynchronousTestCase):
    """
    L{CRLFLineEnds}: the TYPE A conversion (Twisted's crashes on Python 3).
    """

    def test_bareLF(self):
        """
        Bare LFs become CRLF.
        """
        self.assertEqual(CRLFLineEnds().convert(b"a\nb\n"), b"a\r\nb\r\n")

    def test_crlfKept(self):
        """
        CRLF stays CRLF, also when a chunk ends between CR and LF.
        """
        ends = CRLFLineEnds()
        self.assertEqual(ends.convert(b"a\r") + ends.convert(b"\nb\r\n") + ends.convert(b"\n"), b"a\r\nb\r\n\r\n")

    def test_crcrlf(self):
        """
        CR CR LF (a Unix client sending CRLF lines in TYPE A) becomes CRLF,
        however the chunks are cut.
        """
        sent = b"a\r\r\nb\r\r\n\r\r\nc\n"
        for cut in range(len(sent) + 1):
            ends = CRLFLineEnds()
            converted = ends.convert(sent[:cut]) + ends.convert(sent[cut:]) + ends.flush()
            self.assertEqual(converted, b"a\r\nb\r\n\r\nc\r\n", cut)
        ends = CRLFLineEnds()
        self.assertEqual(b"".join(ends.convert(bytes([byte])) for byte in sent) + ends.flush(),
                         b"a\r\nb\r\n\r\nc\r\n")

    def test_loneCR(self):
        """
        A CR before anything but LF is kept, also at the very end.
        """
        ends = CRLFLineEnds()
        self.assertEqual(ends.convert(b"a\rb\r\r") + ends.flush(), b"a\rb\r\r")

    def test_longCRRunBounded(self):
        """
        A long run of CRs is not all held in memory.
        """
        ends = CRLFLineEnds()
        passed = ends.convert(b"\r" * 5000)
        self.assertEqual(len(passed), 5000 - CRLFLineEnds.maxHeld)
        self.assertEqual(passed + ends.convert(b"\n"), b"\r" * (5000 - CRLFLineEnds.maxHeld) + b"\r\n")


class NormalisedHostTests(SynchronousTestCase):
    """
    L{normalisedHost} compares IPv4-mapped addresses as IPv4.
    """

    def test_mapped(self):
        """
        ::ffff:127.0.0.1 is 127.0.0.1.
        """
        self.assertEqual(normalisedHost("::ffff:127.0.0.1"), "127.0.0.1")
        self.assertEqual(normalisedHost("::1"), "::1")


class LoginTests(SynchronousTestCase):
    """
    USER/PASS through the portal.
    """

    def test_wrongPassword(self):
        """
        A wrong password is 530; three of them close the session with 421.
        """
        session = Session(self)
        for attempt in range(2):
            session.send("USER alice")
            self.assertEqual(session.command("PASS nope")[-1], "530 Login incorrect.")
        session.send("USER alice")
        replies = session.command("PASS nope")
        self.assertTrue(replies[-1].startswith("421"), replies)
        self.assertTrue(session.transport.disconnecting)

    def test_noPasswordLogged(self):
        """
        Neither a right nor a wrong password appears in any log event.
        """
        events = logEvents(self)
        session = Session(self)
        session.send("USER alice")
        session.command("PASS not-the-password")
        session.login()
        logged = " ".join(repr(sorted(event.items(), key=str)) for event in events)
        self.assertIn("alice", logged)
        self.assertNotIn("wonderland", logged)
        self.assertNotIn("not-the-password", logged)

    def test_directoryDown(self):
        """
        A directory that cannot answer is 421 (not 530) and the session
        closes.
        """
        session = Session(self, checker=_DownChecker())
        session.send("USER alice")
        replies = session.command("PASS wonderland")
        self.assertEqual(replies[-1], "421 the directory does not answer. Try again later.")
        self.assertTrue(session.transport.disconnecting)

    def test_throttled(self):
        """
        A login refused for too many failed attempts is 421 and the session
        closes.
        """

        @implementer(ICredentialsChecker)
        class Throttled:
            credentialInterfaces = (IUsernamePassword,)

            def requestAvatarId(self, credentials):
                return defer.fail(TooManyAttempts())

        session = Session(self, checker=Throttled())
        session.send("USER alice")
        self.assertTrue(session.command("PASS wonderland")[-1].startswith("421 Too many failed logins"))
        self.assertTrue(session.transport.disconnecting)

    def test_peerOnCredentials(self):
        """
        The credentials carry the client's address for throttling.
        """
        seen = []

        class Checker(DirectoryChecker):
            def requestAvatarId(self, credentials):
                seen.append(credentials.peer)
                return super().requestAvatarId(credentials)

        session = Session(self, checker=Checker(_Directory()), peer="127.0.0.1")
        session.login()
        self.assertEqual(seen, ["127.0.0.1"])

    def test_utf8Password(self):
        """
        A UTF-8 password (which Twisted decodes as latin-1) logs in.
        """
        directory = _Directory()
        session = Session(self, checker=DirectoryChecker(directory))
        session.login("dave", "sécret-ß")
        self.assertEqual(directory.calls, [("dave", "sécret-ß")])

    def test_commandsNeedLogin(self):
        """
        Before login, only FEAT, SYST, NOOP, OPTS and QUIT are answered.
        """
        session = Session(self)
        self.assertTrue(session.command("PWD")[0].startswith("530"))
        self.assertTrue(session.command("SYST")[0].startswith("215"))
        self.assertIn(" UTF8", session.command("FEAT"))

    def test_commandsOutOfOrder(self):
        """
        PASS after login, RNTO without RNFR and an argument to a command
        that takes none get 503/500 replies, not an internal error (451),
        and the session goes on.
        """
        session = Session(self)
        session.login()
        self.assertTrue(session.command("PASS again")[0].startswith("503"))
        self.assertTrue(session.command("RNTO x.vfb")[0].startswith("503"))
        self.assertTrue(session.command("NOOP extra")[0].startswith("500"))
        self.assertTrue(session.command("SYST extra")[0].startswith("500"))
        self.assertTrue(session.command("PWD")[0].startswith("257"))
        self.assertEqual(self.flushLoggedErrors(), [])


class TransferTests(SynchronousTestCase):
    """
    STOR, RETR, LIST and NLST over a passive data connection.
    """

    def test_storeBinary(self):
        """
        TYPE I: the bytes are stored as sent, and 226 comes after commit.
        """
        session = Session(self)
        session.login()
        body = outlookVFB(newline=b"\n")
        replies = session.publish("/pub/calendar/alice.vfb", body)
        self.assertEqual(replies[0][:3], "125")
        self.assertEqual(replies[-1], "226 Transfer complete: /pub/calendar/alice.vfb created.")
        self.assertEqual(session.store.read(("alice.vfb",)), body)

    def test_storeASCII(self):
        """
        TYPE A (which crashes in Twisted on Python 3) stores the calendar
        with CRLF line ends, also across chunk boundaries.
        """
        session = Session(self)
        session.login()
        self.assertEqual(session.command("TYPE A"), ["200 Type set to A."])
        session.command("CWD /pub/calendar")
        replies = session.publish("alice.vfb", outlookVFB(newline=b"\n"), chunks=7)
        self.assertTrue(replies[-1].startswith("226"), replies)
        self.assertEqual(session.store.read(("alice.vfb",)), outlookVFB(newline=b"\r\n"))

    def test_storeASCIIFromUnix(self):
        """
        TYPE A from a Unix client whose file has CRLF lines (CR CR LF on the
        wire) is stored with CRLF line ends and accepted.
        """
        session = Session(self)
        session.login()
        session.command("TYPE A")
        replies = session.publish("/pub/calendar/alice.vfb", outlookVFB(newline=b"\r\r\n"), chunks=5)
        self.assertTrue(replies[-1].startswith("226"), replies)
        self.assertEqual(session.store.read(("alice.vfb",)), outlookVFB(newline=b"\r\n"))

    def test_retrieveASCII(self):
        """
        TYPE A sends a file stored with LF line ends with CRLF.
        """
        session = Session(self)
        session.store.write(("alice.vfb",), outlookVFB(newline=b"\n"))
        session.login()
        session.command("TYPE A")
        data, transport = session.passive()
        session.send("RETR /pub/calendar/alice.vfb")
        while transport.producer is not None:
            # A pull producer: what the reactor does as the socket drains.
            transport.producer.resumeProducing()
        self.assertEqual(transport.value(), outlookVFB(newline=b"\r\n"))
        self.assertTrue(transport.disconnecting)
        data.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(session.replies()[-1], "226 Transfer Complete.")

    def test_retrieveASCIIEndingInCR(self):
        """
        TYPE A sends a CR that ends a file (held back in case an LF came).
        """
        session = Session(self)
        session.store.write(("alice.vfb",), b"a\nb\r")
        session.login()
        session.command("TYPE A")
        data, transport = session.passive()
        session.send("RETR /pub/calendar/alice.vfb")
        while transport.producer is not None:
            transport.producer.resumeProducing()
        self.assertEqual(transport.value(), b"a\r\nb\r")

    def test_bareNLST(self):
        """
        NLST without an argument (what ftplib.nlst sends; 500 in Twisted)
        lists the working directory.
        """
        session = Session(self)
        session.store.write(("alice.vfb",), outlookVFB())
        session.store.write(("alice.ics",), outlookVFB())
        session.login()
        session.command("CWD /pub/calendar")
        data, transport = session.passive()
        session.send("NLST")
        self.assertEqual(sorted(transport.value().split(b"\r\n")), [b"", b"alice.ics", b"alice.vfb"])
        data.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(session.replies()[-1], "226 Transfer Complete.")

    def test_globNLST(self):
        """
        NLST with a pattern lists the matching names of its directory.
        """
        session = Session(self)
        for name in ("alice.vfb", "alice.ics"):
            session.store.write((name,), outlookVFB())
        session.login()
        data, transport = session.passive()
        session.send("NLST /pub/calendar/*.vfb")
        self.assertEqual(sorted(transport.value().split(b"\r\n")), [b"", b"alice.vfb"])
        data.connectionLost(Failure(ConnectionDone()))

    def test_bareNLSTAtTop(self):
        """
        NLST at / lists the virtual directory leading to the tree.
        """
        session = Session(self)
        session.login()
        data, transport = session.passive()
        session.send("NLST")
        self.assertEqual(transport.value(), b"pub\r\n")
        data.connectionLost(Failure(ConnectionDone()))

    def test_oversize552(self):
        """
        An upload past --max-upload is answered 552 (a reply Twisted fails
        to format), the data connection is closed at once and the old file
        stays.
        """
        session = Session(self, maxUpload=400)
        old = outlookVFB(busy="20210101T000000Z/20210101T010000Z")
        session.store.write(("alice.vfb",), old)
        session.login()
        data, transport = session.passive()
        session.send("STOR /pub/calendar/alice.vfb")
        data.dataReceived(b"x" * 300)
        data.dataReceived(b"x" * 300)
        self.assertTrue(transport.disconnecting)
        data.connectionLost(Failure(ConnectionLost()))
        replies = session.replies()
        self.assertTrue(replies[-1].startswith("552 /pub/calendar/alice.vfb: the file is larger than 400"), replies)
        self.assertEqual(session.store.read(("alice.vfb",)), old)
        self.assertEqual(session.temporaries(), [])

    def test_invalidCalendarKeepsOld(self):
        """
        An upload that is not a free/busy calendar is 550 with the reason;
        the old file stays.
        """
        session = Session(self)
        session.store.write(("alice.vfb",), outlookVFB())
        session.login()
        replies = session.publish("/pub/calendar/alice.vfb", b"garbage\r\n")
        self.assertTrue(replies[-1].startswith("550 /pub/calendar/alice.vfb: not iCalendar"), replies)
        self.assertEqual(session.store.read(("alice.vfb",)), outlookVFB())
        self.assertEqual(session.temporaries(), [])

    def test_brokenDataConnection(self):
        """
        A data connection reset mid-transfer is 426 and stores nothing.
        """
        session = Session(self)
        session.store.write(("alice.vfb",), outlookVFB())
        session.login()
        data, transport = session.passive()
        session.send("STOR /pub/calendar/alice.vfb")
        data.dataReceived(outlookVFB(busy="20220101T000000Z/20220101T010000Z"))
        data.connectionLost(Failure(ConnectionLost()))
        self.assertTrue(session.replies()[-1].startswith("426"))
        self.assertEqual(session.store.read(("alice.vfb",)), outlookVFB())
        self.assertEqual(session.temporaries(), [])

    def test_controlConnectionLost(self):
        """
        A client that disconnects mid-transfer leaves the old file and no
        temporary file.
        """
        session = Session(self)
        session.store.write(("alice.vfb",), outlookVFB())
        session.login()
        data, transport = session.passive()
        session.send("STOR /pub/calendar/alice.vfb")
        data.dataReceived(outlookVFB(busy="20220101T000000Z/20220101T010000Z")[:100])
        self.assertEqual(len(session.temporaries()), 1)
        session.protocol.connectionLost(Failure(ConnectionLost()))
        self.assertTrue(transport.disconnecting)
        data.connectionLost(Failure(ConnectionLost()))
        self.assertEqual(session.store.read(("alice.vfb",)), outlookVFB())
        self.assertEqual(session.temporaries(), [])

    def test_dataConnectionNeverArrives(self):
        """
        A STOR whose data connection never comes is 425 after the data
        timeout; nothing is stored.
        """
        session = Session(self, dataTimeout=5)
        session.store.write(("alice.vfb",), outlookVFB())
        session.login()
        session.command("PASV")
        session.send("STOR /pub/calendar/alice.vfb")
        self.assertEqual(session.replies(), [])
        session.reactor.advance(5)
        self.assertTrue(session.replies()[-1].startswith("425"))
        self.assertEqual(session.store.read(("alice.vfb",)), outlookVFB())
        self.assertEqual(session.temporaries(), [])

    def test_crossUser(self):
        """
        STOR of another user's file is 550 before any data is read.
        """
        session = Session(self)
        session.login()
        session.command("PASV")
        replies = session.command("STOR /pub/calendar/bob.vfb")
        self.assertEqual(replies, ["550 /pub/calendar/bob.vfb: alice may only publish alice.vfb or alice.ics"])
        self.assertIsNone(session.store.stat(("bob.vfb",)))

    def test_renameSaysWhy(self):
        """
        A user's RNTO to a name not theirs, or from another user's file, is
        550 naming the refused path and the user's own file names.
        """
        session = Session(self)
        session.store.write(("alice.vfb",), outlookVFB())
        session.store.write(("bob.vfb",), outlookVFB())
        session.login()
        session.command("CWD /pub/calendar")
        self.assertTrue(session.command("RNFR alice.vfb")[0].startswith("350"))
        self.assertEqual(session.command("RNTO x.vfb"),
                         ["550 /pub/calendar/x.vfb: alice may only publish alice.vfb or alice.ics"])
        session.command("RNFR bob.vfb")
        self.assertEqual(session.command("RNTO alice.vfb"),
                         ["550 /pub/calendar/bob.vfb: alice may only publish alice.vfb or alice.ics"])
        self.assertEqual(sorted(info.name for info in session.store.children(())), ["alice.vfb", "bob.vfb"])

    def test_noDataCommand(self):
        """
        STOR without PASV or PORT is 425.
        """
        session = Session(self)
        session.login()
        self.assertTrue(session.command("STOR /pub/calendar/alice.vfb")[0].startswith("425"))
        self.assertEqual(session.temporaries(), [])

    def test_publishEvents(self):
        """
        A publish and a rejection are logged with the agreed fields.
        """
        events = logEvents(self)
        session = Session(self)
        session.login()
        session.publish("/pub/calendar/alice.vfb", outlookVFB())
        session.command("PASV")
        session.command("STOR /pub/calendar/bob.vfb")
        published = [e for e in events if e.get("fbEvent") == "publish"]
        rejected = [e for e in events if e.get("fbEvent") == "publish-rejected"]
        self.assertEqual(
            [(e["uid"], e["protocol"], e["path"], e["size"]) for e in published],
            [("alice", "ftp", "alice.vfb", len(outlookVFB()))],
        )
        self.assertEqual([(e["uid"], e["protocol"], e["reason"]) for e in rejected], [("alice", "ftp", "forbidden")])


class DataConnectionSafetyTests(SynchronousTestCase):
    """
    PORT/EPRT bounce protection, passive address and ports, and commands
    going on after PASV.
    """

    def test_portForeignAddress(self):
        """
        PORT naming another address than the client's is refused (FTP
        bounce); nothing is connected.
        """
        session = Session(self)
        session.login()
        self.assertTrue(session.command("PORT 10,0,0,1,200,1")[0].startswith("501"))
        self.assertTrue(session.command("EPRT |1|192.0.2.1|51201|")[0].startswith("501"))
        self.assertEqual(session.reactor.tcpClients, [])

    def test_portPrivilegedPort(self):
        """
        PORT to the client's own address but a port below 1024 is refused.
        """
        session = Session(self)
        session.login()
        self.assertTrue(session.command("PORT 127,0,0,1,0,25")[0].startswith("501"))
        self.assertEqual(session.reactor.tcpClients, [])

    def test_portOwnAddress(self):
        """
        PORT and EPRT to the client's own address connect there.
        """
        session = Session(self)
        session.login()
        self.assertEqual(session.command("PORT 127,0,0,1,200,1"), ["200 PORT OK"])
        self.assertEqual(session.reactor.tcpClients[-1][:2], ("127.0.0.1", 51201))
        self.assertEqual(session.command("EPRT |1|127.0.0.1|51202|"), ["200 PORT OK"])
        self.assertEqual(session.reactor.tcpClients[-1][:2], ("127.0.0.1", 51202))

    def test_passiveFromOtherAddress(self):
        """
        A passive data connection from another address than the client's is
        refused.
        """
        session = Session(self)
        session.login()
        data, transport = session.passive(peer="192.0.2.7")
        self.assertIsNone(data)

    def test_earlyDataBounded(self):
        """
        Data sent on a data connection before any STOR is held up to a
        limit, then the connection is paused (not read into memory).
        """
        session = Session(self)
        session.login()
        data, transport = session.passive()
        data.dataReceived(b"x" * 70000)
        self.assertEqual(transport.producerState, "paused")
        session.send("STOR /pub/calendar/alice.vfb")
        self.assertEqual(transport.producerState, "producing")
        data.connectionLost(Failure(ConnectionDone()))
        self.assertTrue(session.replies()[-1].startswith("550"))

    def test_pasvDoesNotBlock(self):
        """
        After PASV the next command is answered before any data connection
        (Twisted waits for it, up to 10 seconds).
        """
        session = Session(self)
        session.login()
        session.command("PASV")
        self.assertEqual(session.command("NOOP"), ["200 Command OK"])
        self.assertEqual(session.command("PWD"), ['257 "/"'])

    def test_passiveHostAndPorts(self):
        """
        PASV announces --ftp-passive-host and listens in the passive port
        range, on the address the client reached.
        """
        session = Session(self, passiveHost="192.0.2.10", passivePorts=range(50000, 50001))
        session.login()
        self.assertEqual(session.command("PASV"), ["227 Entering Passive Mode (192,0,2,10,195,80)."])
        port, factory, backlog, interface = session.reactor.tcpServers[-1]
        self.assertEqual((port, interface), (50000, "127.0.0.1"))
        self.assertEqual(session.command("EPSV"), ["229 Entering Extended Passive Mode (|||50000|)."])


class _PortsReactor(MemoryReactorClock):
    """
    A memory reactor on which a TCP port, once listened on, cannot be
    listened on again until it stops listening (as with real sockets).

    @ivar listening: The port numbers listened on now.
    """

    def __init__(self):
        super().__init__()
        self.listening = set()

    def listenTCP(self, port, factory, backlog=50, interface=""):
        if port in self.listening:
            raise CannotListenError(interface, port, OSError(errno.EADDRINUSE, "Address already in use"))
        listeningPort = super().listenTCP(port, factory, backlog, interface)
        self.listening.add(port)
        stopListening = listeningPort.stopListening

        def stop():
            self.listening.discard(port)
            return stopListening()

        listeningPort.stopListening = stop
        return listeningPort


class PassivePortTests(SynchronousTestCase):
    """
    Passive data ports are given back when their data connection does not
    come.
    """

    def test_portFreedAtDataTimeout(self):
        """
        A PASV whose data connection never comes frees its port at the data
        timeout, though the session stays (NOOP): another session gets it.
        """
        reactor = _PortsReactor()
        first = Session(self, reactor=reactor, passivePorts=range(50000, 50001), dataTimeout=5)
        second = Session(self, factory=first.factory)
        first.login()
        second.login()
        self.assertTrue(first.command("PASV")[0].startswith("227"))
        self.assertTrue(second.command("PASV")[0].startswith("425"))
        reactor.advance(5)
        self.assertEqual(first.command("NOOP"), ["200 Command OK"])
        self.assertEqual(reactor.listening, set())
        self.assertTrue(second.command("PASV")[0].startswith("227"))
        # The first session's next transfer says its data connection never came.
        self.assertTrue(first.command("STOR /pub/calendar/alice.vfb")[0].startswith("425"))
        self.assertEqual(reactor.listening, {50000})


class OutOfDescriptorsTests(SynchronousTestCase):
    """
    A server out of file descriptors answers 421 and logs it once, not
    with a traceback per command.
    """

    def test_retrieveStoreAndList(self):
        """
        RETR (the file cannot be opened), STOR (the temporary file cannot
        be made) and LIST are 421 and close the session; one warning is
        logged, and another only a minute later; nothing is stored.
        """
        events = logEvents(self)
        reader = Session(self)
        reader.store.write(("alice.vfb",), outlookVFB())
        writer = Session(self, factory=reader.factory)
        later = Session(self, factory=reader.factory)
        for session in (reader, writer, later):
            session.login()
        data, transport = writer.passive()
        self.assertEqual(writer.command("STOR /pub/calendar/alice.vfb")[0][:3], "125")
        with descriptorsExhausted() as held:
            retrieved = reader.command("RETR /pub/calendar/alice.vfb")
            # Whatever the refused RETR (or a collection meanwhile) let go is
            # taken again: the STOR's first data must find none free.
            exhaustDescriptors(held)
            # The first data makes the temporary file.
            data.dataReceived(outlookVFB(busy="20220101T000000Z/20220101T010000Z"))
            self.assertTrue(transport.disconnecting)
            data.connectionLost(Failure(ConnectionLost()))
            stored = writer.replies()
            reader.reactor.advance(60)
            listed = later.command("LIST /pub/calendar")
        self.assertEqual(retrieved, ["421 /pub/calendar/alice.vfb: The server is too busy to answer right now;"
                                     " try again shortly."])
        self.assertTrue(reader.transport.disconnecting)
        self.assertTrue(stored[-1].startswith("421 /pub/calendar/alice.vfb: The server is too busy"), stored)
        self.assertTrue(writer.transport.disconnecting)
        self.assertTrue(listed[0].startswith("421 /pub/calendar: The server is too busy"), listed)
        self.assertTrue(later.transport.disconnecting)
        self.assertEqual(reader.store.read(("alice.vfb",)), outlookVFB())
        self.assertEqual(reader.temporaries(), [])
        warnings = [e for e in events if e.get("fbEvent") == "out-of-descriptors"]
        self.assertEqual([e["count"] for e in warnings], [1, 2])
        self.assertEqual([e for e in events if e.get("log_failure") is not None], [])


class SessionLimitTests(SynchronousTestCase):
    """
    Idle timeout and the cap on sessions per address.
    """

    def test_idleTimeout(self):
        """
        A session idle for --ftp-idle-timeout gets 421 and is closed.
        """
        session = Session(self, idleTimeout=60)
        session.login()
        session.reactor.advance(59)
        session.command("NOOP")
        session.reactor.advance(59)
        self.assertFalse(session.transport.disconnecting)
        session.reactor.advance(1)
        self.assertTrue(session.replies()[-1].startswith("421"))
        self.assertTrue(session.transport.disconnecting)

    def test_capPerAddress(self):
        """
        Past --ftp-max-connections-per-address, a new session from that
        address gets 421; other addresses and closed sessions make room.
        """
        events = logEvents(self)
        first = Session(self, maxConnectionsPerAddress=2)
        second = Session(self, factory=first.factory)
        refused = first.factory.buildProtocol(IPv4Address("TCP", CLIENT, 40002))
        self.assertIsInstance(refused, TooManyConnections)
        transport = StringTransport()
        refused.makeConnection(transport)
        self.assertTrue(transport.value().startswith(b"421"))
        other = Session(self, factory=first.factory, peer="127.0.0.2")
        second.protocol.connectionLost(Failure(ConnectionDone()))
        self.assertNotIsInstance(first.factory.buildProtocol(IPv4Address("TCP", CLIENT, 40003)), TooManyConnections)
        changes = [e["change"] for e in events if e.get("fbEvent") == "ftp-session"]
        self.assertEqual(changes, [1, 1, 1, -1])
        other.protocol.connectionLost(Failure(ConnectionDone()))

    def test_connectionBudget(self):
        """
        Past the process's connection budget (shared with HTTP), a new
        session from any address gets 421 "too busy", with one warning;
        a closed session makes room.
        """
        events = logEvents(self)
        budget = ConnectionBudget(2)
        first = Session(self, budget=budget)
        budget.opened()  # an HTTP connection
        self.assertEqual(budget.open, 2)
        for port in (40002, 40003):
            refused = first.factory.buildProtocol(IPv4Address("TCP", "127.0.0.9", port))
            self.assertIsInstance(refused, TooManyConnections)
            transport = StringTransport()
            refused.makeConnection(transport)
            self.assertEqual(transport.value(), b"421 The server is too busy right now; try again shortly.\r\n")
        self.assertEqual([e["count"] for e in events if e.get("fbEvent") == "connections-refused"], [1])
        first.protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(budget.open, 1)
        self.assertNotIsInstance(first.factory.buildProtocol(IPv4Address("TCP", CLIENT, 40004)), TooManyConnections)

    def test_budgetSharedWithHTTP(self):
        """
        The FTP listener counts against the HTTP site's connection budget.
        """
        top = makeService(serviceOptions("--http", "tcp:0", "--ftp", "tcp:0"), reactor=MemoryReactorClock())
        factory = top.getServiceNamed("ftp").factory
        self.assertIs(factory.budget, top.getServiceNamed("http").factory.budget)


class TLSCommandTests(SynchronousTestCase):
    """
    AUTH, PBSZ and PROT without a certificate configured, and in the wrong
    order.
    """

    def test_noCertificate(self):
        """
        Without --ftp-tls-certificate, AUTH TLS is 502 and FEAT does not
        offer it.
        """
        session = Session(self)
        self.assertTrue(session.command("AUTH TLS")[0].startswith("502"))
        self.assertNotIn(" AUTH TLS", session.command("FEAT"))

    def test_protectionNeedsAuth(self):
        """
        PBSZ and PROT before AUTH TLS are 503.
        """
        session = Session(self)
        self.assertTrue(session.command("PBSZ 0")[0].startswith("503"))
        self.assertTrue(session.command("PROT P")[0].startswith("503"))


class ReplyTests(SynchronousTestCase):
    """
    Replies never fail to format (Twisted raises for templates without %s).
    """

    def test_templateWithoutPlaceholder(self):
        """
        reply(552, path) sends Twisted's 552 text instead of raising.
        """
        session = Session(self)
        session.protocol.reply(ftp.EXCEEDED_STORAGE_ALLOC, "alice.vfb")
        self.assertEqual(session.replies(), [ftp.RESPONSE[ftp.EXCEEDED_STORAGE_ALLOC]])

    def test_twistedErrorReaches(self):
        """
        A Twisted FTPCmdError with a template without %s, raised by a
        command, still reaches the client.
        """
        session = Session(self)
        session.login()

        def fail(*args):
            error = ftp.FTPCmdError("alice.vfb")
            error.errorCode = ftp.EXCEEDED_STORAGE_ALLOC
            raise error

        session.protocol.ftp_SITE = fail
        self.assertEqual(session.command("SITE x"), [ftp.RESPONSE[ftp.EXCEEDED_STORAGE_ALLOC]])


class InterfaceTests(SynchronousTestCase):
    """
    The shell provides IFTPShell.
    """

    def test_shell(self):
        """
        The realm's FTP avatar provides IFTPShell.
        """
        from fbtwist.access.avatar import CalendarAvatar

        store = CalendarStore(FilePath(self.mktemp()))
        shell = ftpAvatarFactory(100)(CalendarAvatar("alice", False, store))
        self.assertTrue(verifyObject(ftp.IFTPShell, shell))
