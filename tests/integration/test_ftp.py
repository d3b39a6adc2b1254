"""
End-to-end tests of FTP publishing: the whole fbtwist (makeService, the real
reactor) on loopback, driven by Python's ftplib (in a thread, so that the
reactor keeps serving) and by lftp (a subprocess), against the embedded demo
directory and against a real OpenLDAP.
"""

import ftplib
import io
import os
import re
import socket
import struct

from twisted.internet import defer, reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.internet.utils import getProcessOutputAndValue
from twisted.logger import globalLogPublisher
from twisted.python.filepath import FilePath
from twisted.trial import unittest

from tests.davhelpers import propfindBody
from tests.helpers import (
    PASSWORDS,
    basicAuth,
    descriptorsExhausted,
    exhaustDescriptors,
    httpClient,
    inline,
    listeningPort,
    outlookVFB,
    publicAnswer,
    startServer,
    treeNames,
)
from tests.slapd import PEOPLE, SlapdServer, personEntry, unitEntry

#: Bounds every FTP client call.
CLIENT_TIMEOUT = 10




async def startFTPServer(testCase, *args):
    """
    A whole fbtwist with its FTP listener on a free loopback port
    (C{server.ftpPort}).
    """
    server = await startServer(testCase, "--ftp", "tcp:0:interface=127.0.0.1", *args)
    port = await listeningPort(server.service.getServiceNamed("ftp"))
    server.ftpPort = port.getHost().port
    return server


def connect(port, login="alice", password=None) -> ftplib.FTP:
    """
    An ftplib client logged in as C{login} (its demo password by default).
    """
    client = ftplib.FTP()
    client.connect("127.0.0.1", port, timeout=CLIENT_TIMEOUT)
    try:
        client.login(login, PASSWORDS[login] if password is None else password)
    except BaseException:
        client.close()
        raise
    return client


def inThread(f, *args):
    """
    Run a blocking ftplib function in a thread; the client is closed by it.
    """
    return deferToThread(f, *args)


def storeReply(client, command, data, blocksize=8192) -> str:
    """
    STOR C{data} and return the reply text, whether it is a success, an
    error, or an error that came after the server cut the data connection.
    """
    try:
        return client.storbinary(command, io.BytesIO(data), blocksize)
    except ftplib.Error as e:
        return str(e)
    except OSError:
        try:
            return client.getresp()
        except ftplib.Error as e:
            return str(e)


def resetOnClose(sock) -> None:
    """
    Make closing C{sock} send a TCP reset (a client that dies).
    """
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def lftp(port: int, commands: str, login="alice", password=None, settings="set ftp:ssl-allow no;"):
    """
    Run lftp against the server.

    @return: C{(output, errors, exit code)} as text.
    """
    password = PASSWORDS[login] if password is None else password
    script = (
        f"{settings} set net:max-retries 1; set net:timeout 5; set net:reconnect-interval-base 1; "
        "set cmd:fail-exit yes; set xfer:clobber on; "
        f"open -u {login},{password} -p {port} 127.0.0.1; {commands}"
    )
    out, err, code = await getProcessOutputAndValue(
        "/usr/bin/timeout", ["30", "lftp", "-c", script],
        env={"HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8"},
    )
    return out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), code


class FTPLibPublishTests(unittest.TestCase):
    """
    Publishing as Outlook 98 does, with Python's ftplib.
    """

    async def _setUp(self):
        self.server = await startFTPServer(self, "--max-upload", "4096")
        self.port = self.server.ftpPort
        self.http = httpClient(self)

    def setUp(self):
        return defer.Deferred.fromCoroutine(self._setUp())

    async def lookup(self, name):
        response = await self.http.get(self.server.url(f"/calendar/{name}.vfb"))
        return response.code, await response.content()

    @inline
    async def test_outlookPublishBinary(self):
        """
        STOR /pub/calendar/alice.vfb in TYPE I is 226, and the HTTP lookup
        serves the file.
        """
        body = outlookVFB(organizer="alice@example.com")

        def publish():
            with connect(self.port) as client:
                client.sendcmd("TYPE I")
                return client.storbinary("STOR /pub/calendar/alice.vfb", io.BytesIO(body))

        reply = await inThread(publish)
        self.assertTrue(reply.startswith("226"), reply)
        self.assertEqual(self.server.store.read(("alice.vfb",)), body)
        self.assertEqual(await self.lookup("alice"), (200, publicAnswer(self.server.store, "alice")))

    @inline
    async def test_outlookPublishASCII(self):
        """
        STOR in TYPE A stores the calendar with CRLF line ends; the HTTP
        lookup serves it.
        """

        def publish():
            with connect(self.port, "bsmith") as client:
                client.cwd("/pub/calendar")
                return client.storlines("STOR bsmith.vfb", io.BytesIO(outlookVFB(newline=b"\n")))

        reply = await inThread(publish)
        self.assertTrue(reply.startswith("226"), reply)
        self.assertEqual(self.server.store.read(("bsmith.vfb",)), outlookVFB(newline=b"\r\n"))
        self.assertEqual(await self.lookup("betty"), (200, publicAnswer(self.server.store, "bsmith")))

    @inline
    async def test_overwriteAndReadBack(self):
        """
        A second STOR replaces the file; RETR, SIZE, MDTM and LIST see it.
        """
        first = outlookVFB(busy="20210105T070000Z/20210105T073000Z")
        second = outlookVFB(busy="20220105T070000Z/20220105T073000Z")

        def publish():
            with connect(self.port) as client:
                client.cwd("/pub/calendar")
                replies = [client.storbinary("STOR alice.vfb", io.BytesIO(body)) for body in (first, second)]
                received = io.BytesIO()
                client.retrbinary("RETR alice.vfb", received.write)
                listing = []
                client.retrlines("LIST", listing.append)
                return replies, received.getvalue(), client.size("alice.vfb"), client.sendcmd("MDTM alice.vfb"), listing

        replies, received, size, mdtm, listing = await inThread(publish)
        self.assertIn("created", replies[0])
        self.assertIn("replaced", replies[1])
        self.assertEqual(received, second)
        self.assertEqual(size, len(second))
        self.assertTrue(mdtm.startswith("213 20"))
        self.assertEqual(len(listing), 1)
        self.assertTrue(listing[0].startswith("-rw-r--r--") and listing[0].endswith(" alice.vfb"), listing)

    @inline
    async def test_activeMode(self):
        """
        PORT (active mode) to the client's own address works.
        """

        def publish():
            with connect(self.port) as client:
                client.set_pasv(False)
                return client.storbinary("STOR /pub/calendar/alice.vfb", io.BytesIO(outlookVFB()))

        self.assertTrue((await inThread(publish)).startswith("226"))
        self.assertEqual(self.server.store.read(("alice.vfb",)), outlookVFB())

    @inline
    async def test_extendedModes(self):
        """
        EPSV and EPRT (RFC 2428) data connections publish too.
        """
        first = outlookVFB(busy="20210105T070000Z/20210105T073000Z")
        second = outlookVFB(busy="20220105T070000Z/20220105T073000Z")

        def publish():
            replies = []
            with connect(self.port) as client:
                client.voidcmd("TYPE I")
                port = int(client.sendcmd("EPSV").split("|")[3])
                with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) as data:
                    client.sendcmd("STOR /pub/calendar/alice.vfb")
                    data.sendall(first)
                replies.append(client.voidresp())
                with socket.create_server(("127.0.0.1", 0)) as listener:
                    listener.settimeout(CLIENT_TIMEOUT)
                    client.voidcmd(f"EPRT |1|127.0.0.1|{listener.getsockname()[1]}|")
                    client.sendcmd("STOR /pub/calendar/alice.vfb")
                    data, _ = listener.accept()
                    with data:
                        data.sendall(second)
                replies.append(client.voidresp())
            return replies

        replies = await inThread(publish)
        self.assertEqual([r[:3] for r in replies], ["226", "226"])
        self.assertEqual(self.server.store.read(("alice.vfb",)), second)

    @inline
    async def test_crossUser(self):
        """
        STOR of another user's file is 550 and creates nothing.
        """

        def publish():
            with connect(self.port) as client:
                return storeReply(client, "STOR /pub/calendar/bsmith.vfb", outlookVFB())

        self.assertTrue((await inThread(publish)).startswith("550"))
        self.assertIsNone(self.server.store.stat(("bsmith.vfb",)))

    @inline
    async def test_badPassword(self):
        """
        A wrong password is 530.
        """
        with self.assertRaises(ftplib.error_perm) as raised:
            await inThread(connect, self.port, "alice", "wrong")
        self.assertTrue(str(raised.exception).startswith("530"))

    @inline
    async def test_utf8Password(self):
        """
        dave's UTF-8 password (sécret-ß) logs in and publishes.
        """

        def publish():
            with connect(self.port, "dave") as client:
                return client.storbinary("STOR /pub/calendar/dave.vfb", io.BytesIO(outlookVFB()))

        self.assertTrue((await inThread(publish)).startswith("226"))

    @inline
    async def test_traversal(self):
        """
        .., absolute paths and backslashes never leave the tree.
        """
        outside = FilePath(self.mktemp())
        outside.makedirs()
        target = outside.child("x.vfb")

        def attack():
            replies = []
            with connect(self.port) as client:
                for command in ("CWD /../..", "CWD /etc", "CWD ../../..", "SIZE /etc/passwd",
                                "CWD " + outside.path, "MKD ../../x"):
                    try:
                        replies.append(client.sendcmd(command))
                    except ftplib.Error as e:
                        replies.append(str(e))
                received = []
                for path in ("../../../../etc/passwd", "/pub/calendar/../../../etc/passwd", outside.path):
                    try:
                        client.retrbinary("RETR " + path, received.append)
                    except ftplib.Error as e:
                        replies.append(str(e))
                for path in ("/pub/calendar/../../" + target.path, target.path, "/pub/calendar/..\\..\\alice.vfb",
                             "/pub/calendar/.alice.vfb", "/pub/alice.vfb", "/alice.vfb"):
                    replies.append(storeReply(client, "STOR " + path, outlookVFB()))
                replies.append(client.pwd())
            return replies, received

        replies, received = await inThread(attack)
        self.assertEqual(received, [])
        self.assertEqual(replies[-1], "/")
        for reply in replies[:-1]:
            self.assertRegex(reply, r"^55[03] ", replies)
        self.assertFalse(target.exists())
        self.assertEqual(treeNames(self.server.store.root.path), [])

    @inline
    async def test_listingAsPROPFIND(self):
        """
        FTP LIST and NLST show a user the same members as a WebDAV PROPFIND
        of the collection: their own files only.
        """
        for name in ("alice.vfb", "alice.ics", "bsmith.vfb"):
            self.server.store.write((name,), outlookVFB())

        def session():
            with connect(self.port) as client:
                lines = []
                client.retrlines("LIST /pub/calendar", lines.append)
                return sorted(client.nlst("/pub/calendar")), sorted(line.split()[-1] for line in lines)

        nlst, listed = await inThread(session)
        response = await self.http.request(
            "PROPFIND", self.server.url("/pub/calendar/"), headers={**basicAuth("alice"), "Depth": "1"},
            data=propfindBody("getetag"),
        )
        self.assertEqual(response.code, 207)
        hrefs = re.findall(r"<D:href>/pub/calendar/([^<]+)</D:href>", (await response.text()))
        self.assertEqual(sorted(hrefs), ["alice.ics", "alice.vfb"])
        self.assertEqual(nlst, sorted(hrefs))
        self.assertEqual(listed, sorted(hrefs))

    @inline
    async def test_brokenDataConnectionKeepsOld(self):
        """
        A data connection reset mid-upload is 426; the old file stays and
        no temporary file is left.
        """
        self.server.store.write(("alice.vfb",), outlookVFB())

        def upload():
            with connect(self.port) as client:
                client.voidcmd("TYPE I")
                conn = client.transfercmd("STOR /pub/calendar/alice.vfb")
                conn.sendall(outlookVFB(busy="20220101T000000Z/20220101T010000Z")[:120])
                resetOnClose(conn)
                conn.close()
                try:
                    return client.voidresp()
                except ftplib.Error as e:
                    return str(e)

        self.assertTrue((await inThread(upload)).startswith("426"))
        self.assertEqual(self.server.store.read(("alice.vfb",)), outlookVFB())
        self.assertEqual(treeNames(self.server.store.root.path), ["alice.vfb"])

    @inline
    async def test_clientDiesMidUpload(self):
        """
        A client whose connections die mid-upload leaves the old file and,
        once the server notices, no temporary file.
        """
        self.server.store.write(("alice.vfb",), outlookVFB())

        def upload():
            client = connect(self.port)
            client.voidcmd("TYPE I")
            conn = client.transfercmd("STOR /pub/calendar/alice.vfb")
            conn.sendall(outlookVFB(busy="20220101T000000Z/20220101T010000Z")[:120])
            for sock in (client.sock, conn):
                resetOnClose(sock)
                sock.close()
            client.close()

        await inThread(upload)
        for attempt in range(50):
            if treeNames(self.server.store.root.path) == ["alice.vfb"]:
                break
            await deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(treeNames(self.server.store.root.path), ["alice.vfb"])
        self.assertEqual(self.server.store.read(("alice.vfb",)), outlookVFB())

    @inline
    async def test_invalidCalendarKeepsOld(self):
        """
        An upload that is not a free/busy calendar is 550 with the reason;
        the old file stays.
        """
        self.server.store.write(("alice.vfb",), outlookVFB())

        def publish():
            with connect(self.port) as client:
                return storeReply(client, "STOR /pub/calendar/alice.vfb", b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n")

        reply = await inThread(publish)
        self.assertTrue(reply.startswith("550 /pub/calendar/alice.vfb: "), reply)
        self.assertIn("VFREEBUSY", reply)
        self.assertEqual(self.server.store.read(("alice.vfb",)), outlookVFB())

    @inline
    async def test_oversize(self):
        """
        An upload larger than --max-upload is answered 552 and the old file
        stays.
        """
        self.server.store.write(("alice.vfb",), outlookVFB())

        def publish():
            with connect(self.port) as client:
                reply = storeReply(client, "STOR /pub/calendar/alice.vfb", b"x" * 200_000, blocksize=1024)
                return reply, client.sendcmd("NOOP")

        reply, noop = await inThread(publish)
        self.assertTrue(reply.startswith("552 "), reply)
        self.assertTrue(noop.startswith("200"))
        self.assertEqual(self.server.store.read(("alice.vfb",)), outlookVFB())
        self.assertEqual(treeNames(self.server.store.root.path), ["alice.vfb"])

    @inline
    async def test_portForeignAddress(self):
        """
        PORT and EPRT naming another host are refused (no FTP bounce).
        """

        def bounce():
            replies = []
            with connect(self.port) as client:
                for command in ("PORT 192,0,2,1,0,80", "EPRT |1|192.0.2.1|80|", "PORT 127,0,0,1,0,22"):
                    try:
                        replies.append(client.sendcmd(command))
                    except ftplib.Error as e:
                        replies.append(str(e))
            return replies

        for reply in await inThread(bounce):
            self.assertTrue(reply.startswith("501"), reply)

    @inline
    async def test_bareNLSTAndCommands(self):
        """
        Bare NLST (ftplib's nlst()), PWD, CDUP, FEAT, SYST, NOOP, DELE of
        one's own file; MKD, RMD, RNFR/RNTO refused.
        """
        self.server.store.write(("alice.vfb",), outlookVFB())
        self.server.store.write(("bsmith.vfb",), outlookVFB())

        def session():
            results = {}
            with connect(self.port) as client:
                results["top"] = client.nlst()
                client.cwd("pub/calendar")
                results["pwd"] = client.pwd()
                results["nlst"] = sorted(client.nlst())
                results["feat"] = client.sendcmd("FEAT")
                results["syst"] = client.sendcmd("SYST")
                results["noop"] = client.sendcmd("NOOP")
                refused = []
                for command in ("MKD sub", "RMD /pub/calendar", "DELE bsmith.vfb"):
                    try:
                        refused.append(client.sendcmd(command))
                    except ftplib.Error as e:
                        refused.append(str(e))
                try:
                    client.rename("alice.vfb", "x.vfb")
                except ftplib.Error as e:
                    refused.append(str(e))
                results["refused"] = refused
                results["dele"] = client.delete("alice.vfb")
                client.sendcmd("CDUP")
                results["cdup"] = client.pwd()
            return results

        results = await inThread(session)
        self.assertEqual(results["top"], ["pub"])
        self.assertEqual(results["pwd"], "/pub/calendar")
        self.assertEqual(results["nlst"], ["alice.vfb"])
        self.assertIn("UTF8", results["feat"])
        self.assertTrue(results["syst"].startswith("215"))
        self.assertTrue(results["noop"].startswith("200"))
        for reply in results["refused"]:
            self.assertTrue(reply.startswith("550"), results["refused"])
        self.assertTrue(results["dele"].startswith("250"))
        self.assertEqual(results["cdup"], "/pub")
        self.assertIsNone(self.server.store.stat(("alice.vfb",)))
        self.assertIsNotNone(self.server.store.stat(("bsmith.vfb",)))


class FTPOptionsTests(unittest.TestCase):
    """
    Anonymous FTP and the connection cap, on a real listener.
    """

    @inline
    async def test_anonymousOffByDefault(self):
        """
        Without --ftp-anonymous, the anonymous login is refused.
        """
        server = await startFTPServer(self)
        with self.assertRaises(ftplib.error_perm):
            await inThread(connect, server.ftpPort, "anonymous", "guest@example.com")

    @inline
    async def test_anonymousReadOnly(self):
        """
        With --ftp-anonymous, anonymous users list and download but cannot
        upload.
        """
        server = await startFTPServer(self, "--ftp-anonymous")
        server.store.write(("alice.vfb",), outlookVFB())

        def session():
            with connect(server.ftpPort, "ftp", "guest@example.com") as client:
                client.cwd("/pub/calendar")
                names = client.nlst()
                received = io.BytesIO()
                client.retrbinary("RETR alice.vfb", received.write)
                return names, received.getvalue(), storeReply(client, "STOR alice.vfb", outlookVFB(busy="x"))

        names, received, reply = await inThread(session)
        self.assertEqual(names, ["alice.vfb"])
        self.assertEqual(received, publicAnswer(server.store, "alice"))
        self.assertTrue(reply.startswith("550"), reply)

    @inline
    async def test_anonymousReadsNoDetails(self):
        """
        Anonymous FTP gives the same privacy as the lookup URLs: event
        details in a published file are stripped, a full .ics calendar is
        not served at all.
        """
        server = await startFTPServer(self, "--ftp-anonymous")
        detailed = outlookVFB().replace(
            b"FREEBUSY:", b"COMMENT:salary talk with the boss\r\nFREEBUSY;X-SUMMARY=Secret:"
        )
        server.store.write(("alice.vfb",), detailed)
        server.store.write(("bsmith.ics",), b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n")

        def session():
            with connect(server.ftpPort, "ftp", "guest@example.com") as client:
                received = io.BytesIO()
                client.retrbinary("RETR /pub/calendar/alice.vfb", received.write)
                try:
                    client.retrbinary("RETR /pub/calendar/bsmith.ics", received.write)
                    ics = "226"
                except ftplib.error_perm as e:
                    ics = str(e)
                return received.getvalue(), ics

        received, ics = await inThread(session)
        self.assertIn(b"FREEBUSY", received)
        self.assertIn(b"20210105T070000Z", received)
        self.assertNotIn(b"salary", received)
        self.assertNotIn(b"Secret", received)
        self.assertTrue(ics.startswith("550"), ics)

    @inline
    async def test_connectionCap(self):
        """
        Past --ftp-max-connections-per-address, a new connection gets 421.
        """
        server = await startFTPServer(self, "--ftp-max-connections-per-address", "2")

        def sessions():
            first, second = connect(server.ftpPort), connect(server.ftpPort)
            try:
                third = ftplib.FTP()
                try:
                    third.connect("127.0.0.1", server.ftpPort, timeout=CLIENT_TIMEOUT)
                except ftplib.Error as e:
                    return str(e)
                finally:
                    third.close()
                return "connected"
            finally:
                first.quit()
                second.quit()

        self.assertTrue((await inThread(sessions)).startswith("421"))

    @inline
    async def test_passivePorts(self):
        """
        PASV uses a port from --ftp-passive-ports and announces
        --ftp-passive-host.
        """
        probe = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")
        free = probe.getHost().port
        await probe.stopListening()
        server = await startFTPServer(self, "--ftp-passive-ports", f"{free}-{free}", "--ftp-passive-host", "192.0.2.10")

        def session():
            with connect(server.ftpPort) as client:
                pasv = client.sendcmd("PASV")
                epsv = client.sendcmd("EPSV")
                client.cwd("/pub/calendar")
                return pasv, epsv, client.nlst()

        pasv, epsv, names = await inThread(session)
        self.assertEqual(names, [])
        self.assertEqual(pasv, f"227 Entering Passive Mode (192,0,2,10,{free >> 8},{free & 255}).")
        self.assertEqual(epsv, f"229 Entering Extended Passive Mode (|||{free}|).")

    @inline
    async def test_passivePortFreedAtDataTimeout(self):
        """
        A passive port whose data connection never came is free again after
        --ftp-data-timeout, while its session lives on: another session's
        PASV gets it.
        """
        probe = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")
        free = probe.getHost().port
        await probe.stopListening()
        server = await startFTPServer(self, "--ftp-passive-ports", f"{free}-{free}", "--ftp-data-timeout", "0.2")
        first = await inThread(connect, server.ftpPort)
        self.addCleanup(first.close)
        second = await inThread(connect, server.ftpPort, "bsmith")
        self.addCleanup(second.close)

        def pasv(client):
            try:
                return client.sendcmd("PASV")
            except ftplib.Error as e:
                return str(e)

        self.assertTrue((await inThread(pasv, first)).startswith("227"))
        self.assertTrue((await inThread(pasv, second)).startswith("425"))
        await deferLater(reactor, 0.4, lambda: None)
        self.assertTrue((await inThread(first.sendcmd, "NOOP")).startswith("200"))
        self.assertTrue((await inThread(pasv, second)).startswith("227"))


class OutOfDescriptorsTests(unittest.TestCase):
    """
    The whole server, out of file descriptors for a while.
    """

    @inline
    async def test_passiveRetrieveStoreThenRecovers(self):
        """
        With no descriptor left, PASV, RETR and STOR are each 421 (one
        warning in the log, no traceback); once descriptors are free again
        the server serves as before.
        """
        server = await startFTPServer(self)
        server.store.write(("alice.vfb",), outlookVFB())
        ftpFactory = server.service.getServiceNamed("ftp").factory
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)

        def prepare(transferType):
            client = connect(server.ftpPort)
            client.sendcmd(transferType)
            host, port = ftplib.parse227(client.sendcmd("PASV"))
            return client, socket.create_connection((host, port), timeout=CLIENT_TIMEOUT)

        pasvClient = await inThread(connect, server.ftpPort)
        retrClient, retrData = await inThread(prepare, "TYPE I")
        storClient, storData = await inThread(prepare, "TYPE A")
        for sock in (pasvClient, retrClient, retrData, storClient, storData):
            self.addCleanup(sock.close)
        # The STOR starts (and the server has taken both data connections).
        self.assertTrue((await inThread(storClient.sendcmd, "STOR /pub/calendar/alice.vfb")).startswith("125"))
        self.assertEqual(len([s for s in ftpFactory.instances if s.dtpInstance is not None]), 2)

        def reply(client, command):
            try:
                return client.sendcmd(command)
            except ftplib.Error as e:
                return str(e)

        def closedByServer(*sockets):
            for sock in sockets:
                sock.settimeout(CLIENT_TIMEOUT)
                try:
                    while sock.recv(4096):
                        pass
                except ConnectionResetError:
                    pass

        def storeData():
            storData.sendall(outlookVFB(busy="20220101T000000Z/20220101T010000Z"))
            try:
                return storClient.getresp()
            except ftplib.Error as e:
                return str(e)

        with descriptorsExhausted() as held:
            pasv = await inThread(reply, pasvClient, "PASV")
            await inThread(closedByServer, pasvClient.sock)
            exhaustDescriptors(held)
            retr = await inThread(reply, retrClient, "RETR /pub/calendar/alice.vfb")
            await inThread(closedByServer, retrClient.sock, retrData)
            exhaustDescriptors(held)
            stor = await inThread(storeData)
        self.assertTrue(pasv.startswith("421 The server is too busy"), pasv)
        self.assertTrue(retr.startswith("421 /pub/calendar/alice.vfb: The server is too busy"), retr)
        self.assertTrue(stor.startswith("421 /pub/calendar/alice.vfb: The server is too busy"), stor)
        self.assertEqual([e["count"] for e in events if e.get("fbEvent") == "out-of-descriptors"], [1])
        self.assertEqual([e for e in events if e.get("log_failure") is not None], [])
        self.assertEqual(server.store.read(("alice.vfb",)), outlookVFB())

        def publish():
            with connect(server.ftpPort) as client:
                return client.storbinary("STOR /pub/calendar/alice.vfb",
                                         io.BytesIO(outlookVFB(busy="20230101T000000Z/20230101T010000Z")))

        self.assertTrue((await inThread(publish)).startswith("226"))


class LftpTests(unittest.TestCase):
    """
    The same publishes with lftp, a real command-line FTP client.
    """

    async def _setUp(self):
        self.server = await startFTPServer(self, "--max-upload", "4096")
        self.port = self.server.ftpPort
        self.local = FilePath(self.mktemp())
        self.local.makedirs()

    def setUp(self):
        return defer.Deferred.fromCoroutine(self._setUp())

    def localFile(self, name, content):
        path = self.local.child(name)
        path.setContent(content)
        return path.path

    @inline
    async def test_publishPassiveBinaryAndASCII(self):
        """
        put in binary and in ASCII (passive mode) publishes; the ASCII
        upload is stored with CRLF line ends; overwriting works.
        """
        source = self.localFile("alice.vfb", outlookVFB(newline=b"\n"))
        out, err, code = await lftp(
            self.port, f"set ftp:passive-mode on; put {source} -o /pub/calendar/alice.vfb",
        )
        self.assertEqual(code, 0, err)
        self.assertEqual(self.server.store.read(("alice.vfb",)), outlookVFB(newline=b"\n"))
        out, err, code = await lftp(self.port, f"set ftp:passive-mode on; cd /pub/calendar; put -a {source}")
        self.assertEqual(code, 0, err)
        self.assertEqual(self.server.store.read(("alice.vfb",)), outlookVFB(newline=b"\r\n"))

    @inline
    async def test_publishActive(self):
        """
        put in active mode (PORT/EPRT) publishes.
        """
        source = self.localFile("alice.vfb", outlookVFB())
        out, err, code = await lftp(self.port, f"set ftp:passive-mode off; cd /pub/calendar; put {source}")
        self.assertEqual(code, 0, err)
        self.assertEqual(self.server.store.read(("alice.vfb",)), outlookVFB())

    @inline
    async def test_listAndGet(self):
        """
        cls (bare NLST), ls (LIST) and get work.
        """
        self.server.store.write(("alice.vfb",), outlookVFB())
        target = self.local.child("got.vfb")
        out, err, code = await lftp(
            self.port, f"cd /pub/calendar; cls; ls; get alice.vfb -o {target.path}",
        )
        self.assertEqual(code, 0, err)
        self.assertIn("alice.vfb\n", out)
        self.assertIn("-rw-r--r--", out)
        self.assertEqual(target.getContent(), outlookVFB())

    @inline
    async def test_crossUser(self):
        """
        put to another user's file fails with 550.
        """
        source = self.localFile("bsmith.vfb", outlookVFB())
        out, err, code = await lftp(self.port, f"cd /pub/calendar; put {source}")
        self.assertNotEqual(code, 0)
        self.assertIn("550", err)
        self.assertIsNone(self.server.store.stat(("bsmith.vfb",)))

    @inline
    async def test_oversize(self):
        """
        put of a file over --max-upload fails with 552; the old file stays.
        """
        self.server.store.write(("alice.vfb",), outlookVFB())
        source = self.localFile("alice.vfb", b"x" * 300_000)
        out, err, code = await lftp(self.port, f"cd /pub/calendar; put {source}")
        self.assertNotEqual(code, 0)
        self.assertIn("552", err)
        self.assertEqual(self.server.store.read(("alice.vfb",)), outlookVFB())

    @inline
    async def test_badPassword(self):
        """
        A wrong password fails with 530.
        """
        out, err, code = await lftp(self.port, "cd /pub/calendar", password="wrong")
        self.assertNotEqual(code, 0)
        self.assertIn("530", err)


class TnftpTests(unittest.TestCase):
    """
    TYPE A with tnftp, the BSD command-line client Unix systems ship as
    C{ftp}: it puts a CR before every LF it sends, whatever was there.
    """

    async def _setUp(self):
        self.server = await startFTPServer(self)
        self.local = FilePath(self.mktemp())
        self.local.makedirs()

    def setUp(self):
        return defer.Deferred.fromCoroutine(self._setUp())

    async def tnftp(self, commands: str) -> str:
        """
        Log in as alice with tnftp, run C{commands} (one a line) and return
        what it printed.
        """
        script = self.local.child("script")
        script.setContent(
            f"open 127.0.0.1 {self.server.ftpPort}\nuser alice {PASSWORDS['alice']}\n{commands}\nquit\n".encode()
        )
        out, err, code = await getProcessOutputAndValue(
            "/usr/bin/timeout", ["30", "sh", "-c", 'exec tnftp -n -v < "$0"', script.path],
            env={"HOME": self.local.path, "LANG": "C.UTF-8"},
        )
        self.assertEqual(code, 0, (out, err))
        return out.decode("utf-8", "replace")

    @inline
    async def test_asciiUploadOfCRLFFile(self):
        """
        An ASCII upload of a file with CRLF lines (CR CR LF on the wire) is
        stored with CRLF line ends; one with LF lines too.
        """
        crlf = self.local.child("crlf.vfb")
        crlf.setContent(outlookVFB(newline=b"\r\n"))
        lf = self.local.child("lf.vfb")
        lf.setContent(outlookVFB(newline=b"\n", busy="20220101T000000Z/20220101T010000Z"))
        output = await self.tnftp(f"ascii\nput {crlf.path} /pub/calendar/alice.vfb")
        self.assertIn("226 Transfer complete: /pub/calendar/alice.vfb created.", output)
        self.assertEqual(self.server.store.read(("alice.vfb",)), outlookVFB(newline=b"\r\n"))
        output = await self.tnftp(f"ascii\nput {lf.path} /pub/calendar/alice.vfb")
        self.assertIn("226 Transfer complete: /pub/calendar/alice.vfb replaced.", output)
        self.assertEqual(self.server.store.read(("alice.vfb",)),
                         outlookVFB(newline=b"\r\n", busy="20220101T000000Z/20220101T010000Z"))


class DirectoryDownTests(unittest.TestCase):
    """
    A directory that cannot be reached is 421 over FTP, never 530.
    """

    @inline
    async def test_login421(self):
        """
        Logging in while the directory is down: 421.
        """
        probe = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")
        number = probe.getHost().port
        await probe.stopListening()
        server = await startFTPServer(
            self, "--ldap", f"ldap://127.0.0.1:{number}/ou=people,dc=example,dc=com", "--ldap-timeout", "2",
        )
        with self.assertRaises(ftplib.error_temp) as raised:
            await inThread(connect, server.ftpPort)
        self.assertTrue(str(raised.exception).startswith("421"))


SLAPD_LDIF = (
    unitEntry(PEOPLE)
    + personEntry("uid=alice", "Alice Liddell", "Liddell", uid="alice", mail="alice@example.com",
                  password=PASSWORDS["alice"])
    + personEntry("uid=dave", "Dave", "Dave", uid="dave", mail="dave@example.org", password=PASSWORDS["dave"])
)


class OpenLDAPTests(unittest.TestCase):
    """
    The Outlook 98 publish end to end against a real OpenLDAP (slapd).
    """

    async def _setUp(self):
        self.slapd = SlapdServer(self.mktemp(), SLAPD_LDIF, tls=False)
        self.slapd.start()
        self.addCleanup(self.slapd.stop)
        self.server = await startFTPServer(
            self, "--ldap", f"ldap://127.0.0.1:{self.slapd.port}/ou=people,dc=example,dc=com?uid?one",
        )
        self.http = httpClient(self)

    def setUp(self):
        return defer.Deferred.fromCoroutine(self._setUp())

    @inline
    async def test_publishAndLookup(self):
        """
        alice and dave (UTF-8 password) publish by FTP; a wrong password is
        530; the HTTP lookup serves the published file.
        """
        body = outlookVFB(organizer="dave@example.org")

        def publish():
            with connect(self.server.ftpPort, "dave") as client:
                client.cwd("/pub/calendar")
                reply = client.storbinary("STOR dave.vfb", io.BytesIO(body))
            with connect(self.server.ftpPort, "alice") as client:
                reply2 = client.storlines("STOR /pub/calendar/alice.vfb", io.BytesIO(outlookVFB()))
            try:
                connect(self.server.ftpPort, "alice", "wrong")
            except ftplib.error_perm as e:
                return reply, reply2, str(e)
            return reply, reply2, "logged in"

        reply, reply2, wrong = await inThread(publish)
        self.assertTrue(reply.startswith("226") and reply2.startswith("226"), (reply, reply2))
        self.assertTrue(wrong.startswith("530"), wrong)
        response = await self.http.get(self.server.url("/calendar/dave.vfb"))
        self.assertEqual(response.code, 200)
        self.assertEqual(await response.content(), publicAnswer(self.server.store, "dave"))


def selfSignedCertificate(path: FilePath) -> FilePath:
    """
    Write a self-signed certificate for 127.0.0.1 with its key to C{path}.
    """
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    path.setContent(
        certificate.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    )
    return path


class FTPSTests(unittest.TestCase):
    """
    Explicit FTPS (AUTH TLS, PBSZ, PROT P) with ftplib.FTP_TLS and lftp.
    """

    async def _setUp(self):
        self.certificate = selfSignedCertificate(FilePath(self.mktemp()))
        self.server = await startFTPServer(self, "--ftp-tls-certificate", self.certificate.path,
                                           "--ftp-tls-required")
        self.port = self.server.ftpPort

    def setUp(self):
        return defer.Deferred.fromCoroutine(self._setUp())

    def tlsClient(self) -> ftplib.FTP_TLS:
        import ssl

        context = ssl.create_default_context(cafile=self.certificate.path)
        client = ftplib.FTP_TLS(context=context)
        client.connect("127.0.0.1", self.port, timeout=CLIENT_TIMEOUT)
        return client

    @inline
    async def test_publishOverTLS(self):
        """
        AUTH TLS, login, PROT P, then STOR (passive and active) and RETR
        over protected data connections, the certificate verified.
        """
        body = outlookVFB(busy="20220105T070000Z/20220105T073000Z")

        def publish():
            client = self.tlsClient()
            try:
                client.auth()
                client.login("alice", PASSWORDS["alice"])
                client.prot_p()
                stored = client.storbinary("STOR /pub/calendar/alice.vfb", io.BytesIO(outlookVFB()))
                client.set_pasv(False)
                stored2 = client.storbinary("STOR /pub/calendar/alice.vfb", io.BytesIO(body))
                client.set_pasv(True)
                received = io.BytesIO()
                client.retrbinary("RETR /pub/calendar/alice.vfb", received.write)
                client.quit()
                return stored, stored2, received.getvalue()
            finally:
                client.close()

        stored, stored2, received = await inThread(publish)
        self.assertTrue(stored.startswith("226") and stored2.startswith("226"), (stored, stored2))
        self.assertEqual(received, body)
        self.assertEqual(self.server.store.read(("alice.vfb",)), body)

    @inline
    async def test_clearLoginRefused(self):
        """
        With --ftp-tls-required, USER before AUTH TLS is 530: the password
        is never sent in clear.
        """

        with self.assertRaises(ftplib.error_perm) as raised:
            await inThread(connect, self.port)
        self.assertIn("AUTH TLS", str(raised.exception))

    @inline
    async def test_lftpOverTLS(self):
        """
        lftp with ftp:ssl-force and protected data publishes.
        """
        local = FilePath(self.mktemp())
        local.makedirs()
        source = local.child("alice.vfb")
        source.setContent(outlookVFB())
        out, err, code = await lftp(
            self.port,
            f"set ssl:ca-file {self.certificate.path}; cd /pub/calendar; put {source.path}; cls",
            settings="set ftp:ssl-force true; set ftp:ssl-protect-data true; set ssl:check-hostname no;",
        )
        self.assertEqual(code, 0, err)
        self.assertIn("alice.vfb", out)
        self.assertEqual(self.server.store.read(("alice.vfb",)), outlookVFB())
