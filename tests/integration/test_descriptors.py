"""
Running out of file descriptors: a passing condition answered 503 with
C{Retry-After} and logged once, never a 500 with a traceback; the server
recovers when descriptors are free again; with this process's limit
lowered, and a server process started with a low one (the mapping itself
is tested in L{tests.unit.test_descriptors}).
"""

import socket

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.python.filepath import FilePath
from twisted.trial import unittest

from fbtwist.errors import OutOfDescriptors
from fbtwist.store.tree import CalendarStore
from tests.helpers import descriptorsExhausted, inline, statusOf
from tests.processes import startTwistd


class StoreTests(unittest.SynchronousTestCase):
    """
    The store, out of descriptors, raises the domain error.
    """

    def test_storeRead(self):
        """
        A store read that finds no descriptor left raises
        L{OutOfDescriptors}, and works again once descriptors are free.
        """
        store = CalendarStore(FilePath(self.mktemp()))
        store.write(("alice.vfb",), b"data")
        with descriptorsExhausted():
            self.assertRaises(OutOfDescriptors, store.read, ("alice.vfb",))
        self.assertEqual(store.read(("alice.vfb",)), b"data")

    def test_storeUpload(self):
        """
        An upload that cannot create its temporary file raises
        L{OutOfDescriptors}.
        """
        store = CalendarStore(FilePath(self.mktemp()))
        with descriptorsExhausted():
            upload = store.openUpload(("alice.vfb",))
            self.assertRaises(OutOfDescriptors, upload.write, b"data")


class _Held:
    """
    Loopback connections to a port, opened until the server stops accepting.
    """

    def __init__(self):
        self.sockets = []

    def open(self, port: int) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", port))
        self.sockets.append(s)
        return s

    def closeAll(self):
        for s in self.sockets:
            s.close()
        self.sockets = []


def _recvAll(s: socket.socket, timeout: float = 5.0) -> bytes:
    s.settimeout(timeout)
    chunks = []
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks) and b"Content-Length" in b"".join(chunks):
                head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
                length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                if len(body) >= length:
                    break
    except socket.timeout:
        pass
    return b"".join(chunks)


class LowLimitProcessTests(unittest.TestCase):
    """
    A real twistd under a low RLIMIT_NOFILE, its descriptors used up by
    idle connections.
    """

    timeout = 90

    @inline
    async def test_outOfDescriptors(self):
        """
        With every descriptor taken (the connection budget set above the
        descriptor limit), a keep-alive chunked PUT gets 503 with
        Retry-After (not a 500 and a critical traceback), new connections
        are closed, each condition is logged once (not a line per
        connection); once connections close, the server serves again.
        """
        process = await startTwistd(
            self, "--http-max-connections", "1000", "--http-max-connections-per-address", "0",
            "--http-idle-timeout", "300", rlimitNoFile=64,
        )
        held = _Held()
        self.addCleanup(held.closeAll)
        put = socket.create_connection(("127.0.0.1", process.port))
        self.addCleanup(put.close)
        # A first request on the PUT connection, so it is accepted and kept.
        put.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(statusOf(_recvAll(put)), 200)
        for _ in range(80):
            held.open(process.port)
        await deferLater(reactor, 1.0)
        auth = b"Authorization: Basic " + __import__("base64").b64encode(b"alice:wonderland") + b"\r\n"
        statuses = []
        for _ in range(3):
            put.sendall(b"PUT /pub/calendar/alice.vfb HTTP/1.1\r\nHost: x\r\n" + auth
                        + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
            response = _recvAll(put)
            if not response:
                self.fail("no answer; the server logged:\n" + process.log()[-4000:])
            statuses.append(statusOf(response))
            if statuses[-1] == 503:
                self.assertIn(b"Retry-After: ", response)
                break
        self.assertEqual(statuses[-1], 503, statuses)
        held.closeAll()
        await deferLater(reactor, 1.0)
        fresh = socket.create_connection(("127.0.0.1", process.port))
        self.addCleanup(fresh.close)
        fresh.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        self.assertEqual(statusOf(_recvAll(fresh)), 200)
        output = process.log()
        self.assertNotIn("Traceback", output)
        self.assertNotIn("Unhandled", output)
        self.assertEqual(output.count("out of file descriptors: answering 503"), 1, output[-3000:])
        # Twisted's line per connection it could not accept is one warning.
        self.assertNotIn("EMFILE", output)
        self.assertEqual(output.count("out of file descriptors: closing new connections"), 1, output[-3000:])

    @inline
    async def test_connectionBudget(self):
        """
        By default the server answers 503 to connections beyond what its
        descriptor limit allows, before it runs out: the connections it
        keeps still publish, and nothing is closed unanswered.
        """
        process = await startTwistd(self, "--http-idle-timeout", "300", rlimitNoFile=64)
        held = _Held()
        self.addCleanup(held.closeAll)
        put = socket.create_connection(("127.0.0.1", process.port))
        self.addCleanup(put.close)
        put.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(statusOf(_recvAll(put)), 200)
        for _ in range(40):
            held.open(process.port)
        await deferLater(reactor, 0.5)
        answers = []
        for s in held.sockets:
            s.setblocking(False)
            try:
                answers.append(s.recv(4096))
            except BlockingIOError:
                answers.append(None)
        self.assertIn(None, answers)
        self.assertTrue(answers[-1].startswith(b"HTTP/1.1 503 "), answers[-1])
        self.assertIn(b"Retry-After: 5", answers[-1])
        body = _CALENDAR
        put.sendall(b"PUT /pub/calendar/alice.vfb HTTP/1.1\r\nHost: x\r\nAuthorization: Basic "
                    + __import__("base64").b64encode(b"alice:wonderland")
                    + b"\r\nContent-Type: text/calendar\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        self.assertIn(statusOf(_recvAll(put)), (201, 204))
        output = process.log()
        self.assertNotIn("EMFILE", output)
        self.assertEqual(output.count("refusing connections"), 1)


_CALENDAR = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VFREEBUSY\r\n"
    b"DTSTART:20261101T000000Z\r\nDTEND:20270101T000000Z\r\n"
    b"FREEBUSY:20261125T090000Z/20261125T103000Z\r\nEND:VFREEBUSY\r\nEND:VCALENDAR\r\n"
)
