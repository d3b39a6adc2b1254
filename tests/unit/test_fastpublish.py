"""
Publishes answered before Twisted's request machinery
(L{fbtwist.web.fastpublish}) answer exactly as the whole machinery does:
every request below is sent to a server with the quick publishes on and to
one with them off, each in the same state, and the answers (bytes, but for
the C{Date}), the events logged and the file published must be equal.  In
memory (L{tests.memory}), against the demo directory.
"""

import base64
import re

from twisted.internet import defer
from twisted.trial import unittest

from fbtwist.access.avatar import CalendarAvatar
from fbtwist.web.fastpublish import QuickPublishes
from tests.helpers import basicAuth, logEvents, outlookVFB
from tests.unit.test_fastlookup import ACCESS_FIELDS, _Client, _responses
from tests.unit.test_store import noRoomPast

_DATE = re.compile(rb"\r\nDate: [^\r]*")
#: A file's time: the two servers' trees are written a moment apart.
_MODIFIED = re.compile(rb"\r\nLast-Modified: [^\r]*")

AUTH = basicAuth("alice")[b"Authorization"][0]
BODY = outlookVFB(busy="20210105T070000Z/20210105T073000Z")
OLD = outlookVFB(busy="20200105T070000Z/20200105T073000Z")
#: The server's --max-upload.
MAX_UPLOAD = 4096


def publish(path=b"alice.vfb", body=BODY, headers=b"", auth=AUTH, line=None, length=None,
            contentType=b"text/calendar") -> bytes:
    """
    A PUT as a calendar client sends it: C{headers} (whole lines) after the
    usual ones.
    """
    line = line or b"PUT /pub/calendar/" + path + b" HTTP/1.1"
    authorization = b"Authorization: " + auth + b"\r\n" if auth is not None else b""
    return (line + b"\r\nHost: 127.0.0.1\r\nContent-Type: " + contentType + b"\r\n" + authorization
            + b"Content-Length: " + (b"%d" % len(body) if length is None else length) + b"\r\n" + headers + b"\r\n"
            + body)


#: Each request (bytes, or a list of writes), and the tree it finds: a
#: C{new} file, an C{existing} one, one C{locked} by its owner (no token
#: sent), or an existing one on a C{full} disk.
REQUESTS = {
    "new": (publish(), "new"),
    "firstLogin": (publish(), "cold"),
    "firstLoginWrong": (publish(auth=basicAuth("alice", "nope")[b"Authorization"][0]), "cold"),
    "throttled": (publish(), "throttled"),
    "replace": (publish(), "existing"),
    "outlook": (publish(headers=b"Accept: */*\r\nUser-Agent: Microsoft Office/16.0\r\nTranslate: f\r\n"
                        b"Connection: Keep-Alive\r\nCache-Control: no-cache\r\nReferer: http://x/\r\n"
                        b"User-Agent: again\r\n"), "existing"),
    "ownName": (publish(b"Alice.VFB"), "existing"),
    "ics": (publish(b"alice.ics", headers=b"Accept-Language: de\r\n"), "new"),
    "anonymous": (publish(auth=None), "existing"),
    "wrongPassword": (publish(auth=basicAuth("alice", "nope")[b"Authorization"][0]), "existing"),
    "malformedAuth": (publish(auth=b"Basic !!!"), "existing"),
    "digest": (publish(auth=b"Digest x"), "existing"),
    "anotherUsers": (publish(b"bsmith.vfb"), "existing"),
    "deeper": (publish(b"x/alice.vfb"), "existing"),
    "dotName": (publish(b".."), "existing"),
    "encoded": (publish(b"%61lice.vfb"), "existing"),
    "badBody": (publish(body=b"BEGIN:VCALENDAR\r\nnot a calendar\r\n"), "existing"),
    "mediaType": (publish(contentType=b"image/png"), "existing"),
    "twoTypes": (publish(headers=b"Content-Type: image/png\r\n"), "existing"),
    "locked": (publish(), "locked"),
    "tooLarge": (publish(body=b"x" * (MAX_UPLOAD + 1)), "existing"),
    "diskFull": (publish(), "full"),
    "empty": (publish(body=b""), "existing"),
    "ifMatch": (publish(headers=b'If-Match: "nope"\r\n'), "existing"),
    "ifHeader": (publish(headers=b"If: (<opaquelocktoken:x>)\r\n"), "locked"),
    "expect": (publish(headers=b"Expect: 100-continue\r\n"), "existing"),
    "close": (publish(headers=b"Connection: close\r\n"), "existing"),
    "http10": (publish(line=b"PUT /pub/calendar/alice.vfb HTTP/1.0"), "existing"),
    "query": (publish(b"alice.vfb?x=1"), "existing"),
    "other": (publish(headers=b"X-Other: 1\r\n"), "existing"),
    "bareLF": (publish(headers=b"Accept: x\nUser-Agent: y\r\n"), "existing"),
    "twoLengths": (publish(headers=b"Content-Length: %d\r\n" % len(BODY)), "existing"),
    "paddedLength": (publish(length=b"0%d" % len(BODY)), "existing"),
    "split": ([publish()[:-10], publish()[-10:]], "existing"),
    "pipelined": (publish() + publish(), "existing"),
    "chunked": (b"PUT /pub/calendar/alice.vfb HTTP/1.1\r\nHost: x\r\nAuthorization: " + AUTH
                + b"\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" % len(BODY) + BODY + b"\r\n0\r\n\r\n", "existing"),
    "get": (b"GET /pub/calendar/alice.vfb HTTP/1.1\r\nHost: x\r\nAuthorization: " + AUTH + b"\r\n\r\n",
            "existing"),
}

#: The requests published quickly.
QUICK = {"new", "firstLogin", "replace", "outlook", "ownName"}
#: Those started quickly and refused: a login (answered quickly), or
#: anything else (answered the whole way).
TRIED = {"firstLoginWrong", "wrongPassword", "throttled", "ics", "anotherUsers", "badBody", "mediaType", "locked",
         "diskFull"}

#: What a publish's events tell.
EVENT_FIELDS = ("fbEvent", "path", "uid", "reason", "size", "protocol", "log_namespace", "log_level")


class SameAnswerTests(unittest.TestCase):
    """
    With or without quick publishes, a server answers alike.
    """

    def exchange(self, data, state: str, quick: bool):
        """
        Send C{data} (bytes, or several writes) on a new connection to a new
        server (quick publishes on or off) that already knows alice's login,
        its tree in C{state}, and wait until all is answered.

        @return: The responses, the events logged (access and publishing),
            whether the server closed the connection, the files' bytes, and
            whether the quick publishes answered or tried.
        """
        from tests.memory import startMemoryServer

        server = startMemoryServer(self, "--max-upload", str(MAX_UPLOAD))
        site = server.service.getServiceNamed("http").factory
        publishes = site.quickPublishes
        self.assertIsInstance(publishes, QuickPublishes)
        tried = []
        original = publishes.start

        def start(*args):
            pending = original(*args)
            if pending is not None:
                tried.append(True)
            return pending

        publishes.start = start
        if not quick:
            site.quickPublishes = None
        if state not in ("new", "cold"):
            server.store.write(("alice.vfb",), OLD)
        if state != "cold":
            # The login known (the bind cache, the realm's roles), as after
            # any request of alice's.
            self.assertEqual(self.ask(server, b"GET /pub/calendar/ HTTP/1.1\r\nHost: x\r\nAuthorization: " + AUTH
                                      + b"\r\n\r\n")[:12], b"HTTP/1.1 200")
        if state == "throttled":
            wrong = basicAuth("alice", "guess")[b"Authorization"][0]
            for _ in range(5):
                self.ask(server, b"GET /pub/calendar/ HTTP/1.1\r\nHost: x\r\nAuthorization: " + wrong + b"\r\n\r\n")
        if state == "locked":
            alice = CalendarAvatar("alice", False, server.store)
            self.successResultOf(alice.lock(("alice.vfb",), "exclusive", "0", "", 3600))
        events = logEvents(self)
        client = _Client()
        server.connect(client)
        if state == "full":
            # The store's blocking work (only it: not the test's log) finds
            # the disk full.
            run = server.store.runBlocking

            def runOnFullDisk(f, *args):
                with noRoomPast(len(BODY) // 2):
                    return run(f, *args)

            server.store.runBlocking = runOnFullDisk
        for chunk in data if isinstance(data, list) else [data]:
            client.transport.write(chunk)
            server.network.settle()
        # Long enough for the floor under a failed login.
        for _ in range(30):
            server.network.advance(0.1)
            server.network.settle()
        closed = client.closed
        client.transport.loseConnection()
        server.network.settle()
        logged = [{k: e.get(k) for k in ACCESS_FIELDS + EVENT_FIELDS} for e in events
                  if e.get("fbEvent") not in (None, "bind-cache")]
        files = {name: server.store.read((name,)) for name in ("alice.vfb", "alice.ics", "bsmith.vfb")
                 if server.store.stat((name,)) is not None}
        # Every Date blanked (a 204 has no Content-Length to find the next
        # response by), and the files' times.
        answers = _responses(_MODIFIED.sub(b"\r\nLast-Modified: -", _DATE.sub(b"\r\nDate: -", client.received)))
        return (answers, logged, closed, files), (publishes.answered, len(tried))

    def ask(self, server, data: bytes) -> bytes:
        """
        Send C{data} on a new connection and wait for the answer.
        """
        client = _Client()
        server.connect(client)
        client.transport.write(data)
        for _ in range(30):
            server.network.advance(0.1)
            server.network.settle()
        client.transport.loseConnection()
        server.network.settle()
        return client.received

    def test_sameAnswers(self):
        """Every request gets the same bytes (but the times), events, connection state and tree both ways."""
        answered, tried = set(), set()
        for label, (data, state) in REQUESTS.items():
            withQuick, (count, attempts) = self.exchange(data, state, quick=True)
            withoutQuick, _ = self.exchange(data, state, quick=False)
            self.assertEqual(withQuick, withoutQuick, label)
            self.assertTrue(withQuick[0], label)
            if count:
                answered.add(label)
            if attempts > count:
                tried.add(label)
        self.assertEqual((answered, tried), (QUICK, TRIED))

    def test_statuses(self):
        """The refusals the quick publishes leave to the whole way are answered as they must be."""
        statuses = {}
        for label in ("new", "replace", "anotherUsers", "badBody", "mediaType", "locked", "tooLarge", "diskFull",
                      "deeper", "anonymous"):
            (responses, _, _, _), _ = self.exchange(*REQUESTS[label], quick=True)
            statuses[label] = responses[0].split(b" ", 2)[1]
        self.assertEqual(statuses, {
            "new": b"201", "replace": b"204", "anotherUsers": b"403", "badBody": b"400", "mediaType": b"415",
            "locked": b"423", "tooLarge": b"413", "diskFull": b"507", "deeper": b"403", "anonymous": b"401",
        })


class SlowDisk:
    """
    Runs the store's blocking work (its thread pool's) only when the test
    says so, as a disk that takes its time.
    """

    def __init__(self, store):
        self.pending = []
        self._run = store.runBlocking
        store.runBlocking = self.runBlocking

    def runBlocking(self, f, *args):
        d = defer.Deferred()
        self.pending.append((d, f, args))
        return d

    def finish(self) -> None:
        while self.pending:
            d, f, args = self.pending.pop(0)
            self._run(f, *args).chainDeferred(d)


def _statusLines(data: bytes) -> list:
    return [line for line in data.split(b"\r\n") if line.startswith(b"HTTP/1.1 ")]


class InFlightTests(unittest.TestCase):
    """
    A connection whose publish is being written waits for it.
    """

    def setUp(self):
        from tests.memory import startMemoryServer

        self.server = startMemoryServer(self)
        self.site = self.server.service.getServiceNamed("http").factory
        self.quick = self.site.quickPublishes
        self.events = logEvents(self)
        # alice published once (the file is there).
        self.client = self.server.connect(_Client())
        self.send(publish())
        self.assertTrue(self.client.received.startswith(b"HTTP/1.1 201"))
        self.client.received = b""
        self.quick.answered = 0
        self.disk = SlowDisk(self.server.store)

    def send(self, data: bytes) -> None:
        self.client.transport.write(data)
        self.server.network.settle()

    def test_nextRequestWaits(self):
        """What the client sends while its publish is written is read once it is answered, in order."""
        self.send(publish())
        self.send(b"GET /calendar/alice.vfb HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(self.client.received, b"")
        self.assertTrue(self.disk.pending)
        self.disk.finish()
        self.server.network.settle()
        self.assertEqual(_statusLines(self.client.received), [b"HTTP/1.1 204 No Content", b"HTTP/1.1 200 OK"])
        self.assertEqual(self.quick.answered, 1)

    def test_noDeadlineWhilePublishing(self):
        """A publish that takes longer than the idle timeout keeps its connection; the timeout starts after it."""
        self.send(publish())
        self.server.network.advance(120)
        self.server.network.settle()
        self.assertFalse(self.client.closed)
        self.disk.finish()
        self.server.network.settle()
        self.assertTrue(self.client.received.startswith(b"HTTP/1.1 204"))
        self.server.network.advance(61)
        self.server.network.settle()
        self.assertTrue(self.client.closed)

    def test_clientGone(self):
        """A client gone while its publish is written gets nothing, and nothing is logged for it but the publish."""
        del self.events[:]
        self.send(publish(body=BODY + b"\r\n"))
        self.client.transport.loseConnection()
        self.server.network.settle()
        self.assertEqual(len(self.site.inFlight), 1)
        self.disk.finish()
        self.server.network.settle()
        self.assertEqual([e["fbEvent"] for e in self.events if e.get("fbEvent") not in (None, "bind-cache")],
                         ["publish"])
        self.assertEqual(self.site.inFlight, set())
        self.assertEqual(self.server.store.read(("alice.vfb",)), BODY + b"\r\n")

    def test_drainWaits(self):
        """A shutdown waits for a publish in flight, answers it, then closes its connection."""
        self.send(publish())
        drained = self.site.drain()
        self.server.network.settle()
        self.assertNoResult(drained)
        self.assertFalse(self.client.closed)
        self.disk.finish()
        self.server.network.settle()
        self.assertTrue(self.client.received.startswith(b"HTTP/1.1 204"))
        self.assertTrue(self.client.closed)
        self.assertIsNone(self.successResultOf(drained))

    def test_drainCancelled(self):
        """A shutdown that stops waiting names the publish it drops and aborts its connection; it publishes on."""
        self.send(publish())
        drained = self.site.drain()
        drained.cancel()
        self.failureResultOf(drained, defer.CancelledError)
        self.server.network.settle()
        self.assertTrue(self.client.closed)
        dropped = [e for e in self.events if "dropping" in e.get("log_format", "")]
        self.assertEqual([(e["method"], e["uri"]) for e in dropped], [("PUT", "/pub/calendar/alice.vfb")])
        self.disk.finish()
        self.server.network.settle()
        self.assertEqual(self.site.inFlight, set())
        self.assertEqual(self.client.received, b"")

    def test_notWhileDraining(self):
        """Once the server drains, no connection publishes quickly."""
        self.send(publish())
        self.site.drain()
        self.assertEqual([connection.quickPublishes for connection in self.site.connections.values()], [None])
        self.assertIsNone(self.site.buildProtocol(None).quickPublishes)

    def test_credentialsChecked(self):
        """A password other than the cached one is never published quickly: it goes to the directory and is refused."""
        self.disk.finish()
        self.send(publish(auth=b"Basic " + base64.b64encode(b"alice:wrong")))
        for _ in range(30):
            self.server.network.advance(0.1)
            self.server.network.settle()
        self.assertTrue(self.client.received.startswith(b"HTTP/1.1 401"), self.client.received[:80])
        self.assertEqual((self.quick.answered, self.disk.pending), (0, []))
