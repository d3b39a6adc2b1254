"""
Log lines: one access line per request (Apache combined, or JSON), one
event per publish or rejected publish, directory errors naming the server,
and never a password or an Authorization header; the server's in memory
(L{tests.memory}); under a real twistd in L{tests.integration.test_logs}.
"""

import base64
import io
import json
import re
import time

from twisted.internet.task import Clock
from twisted.logger import (
    Logger,
    LogLevel,
    LogPublisher,
    formatEvent,
    formatEventAsClassicLogText,
    formatTime,
    globalLogPublisher,
    textFileLogObserver,
)
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath
from twisted.trial import unittest

from fbtwist import errors
from fbtwist.logs import (
    AccessLogService,
    InfoAndUp,
    JSONLinesObserver,
    RareWarning,
    TextLinesObserver,
    combinedLine,
    escapeField,
    eventText,
    isAccessEvent,
    jsonRecord,
    logAccess,
    logDebug,
    publishRejectionReason,
    useUnderTwistd,
)
from fbtwist.web.responses import HTTPError
from tests.helpers import basicAuth, inline, outlookVFB, publicAnswer, statusOf
from tests.memory import startMemoryServer

#: Apache's combined format, as log analysers parse it.
COMBINED = re.compile(
    r'^(?P<peer>\S+) - (?P<user>\S+) \[(?P<time>\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000)\] '
    r'"(?P<method>\S+) (?P<uri>\S+) (?P<protocol>[^"\s]+)" (?P<status>\d{3}) (?P<size>\d+|-) '
    r'"(?P<referer>(?:[^"\\]|\\.)*)" "(?P<agent>(?:[^"\\]|\\.)*)"$'
)

WRONG_PASSWORD = "not-the-Password-7Qx"


class CapturedLog:
    """
    Every log event while a test runs.
    """

    def __init__(self, testCase):
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        testCase.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def of(self, kind: str):
        return [e for e in self.events if e.get("fbEvent") == kind]


class EscapingTests(unittest.SynchronousTestCase):
    """
    Fields of a combined line cannot forge fields or lines.
    """

    def test_escapes(self):
        """
        Quotes and backslashes get a backslash; control and non-ASCII
        characters are hex-escaped; nothing becomes -.
        """
        self.assertEqual(escapeField('a"b\\c'), 'a\\"b\\\\c')
        self.assertEqual(escapeField("x\r\ny"), "x\\x0d\\x0ay")
        self.assertEqual(escapeField("é"), "\\xc3\\xa9")
        self.assertEqual(escapeField(None), "-")
        self.assertEqual(escapeField(""), "-")

    def test_combinedLineEscapesEachField(self):
        """
        Each field of the line is what escapeField makes of it, whether all
        are plain or any one needs escaping.
        """
        values = [None, "", "-", "plain", 'a"b', "back\\slash", "x\r\ny", "é", "sp ace", "\x7f"]
        for index, value in enumerate(values):
            for key in ("peer", "user", "method", "uri", "protocol", "referer", "agent"):
                fields = dict(peer="10.0.0.1", user="alice", started=0.0, method="GET", uri="/calendar/a.vfb",
                              protocol="HTTP/1.1", status=200, size=index, referer=None, agent="Outlook")
                fields[key] = value
                expected = '%s - %s [01/Jan/1970:00:00:00 +0000] "%s %s %s" 200 %s "%s" "%s"' % (
                    escapeField(fields["peer"]), escapeField(fields["user"]), escapeField(fields["method"]),
                    escapeField(fields["uri"]), escapeField(fields["protocol"]), index or "-",
                    escapeField(fields["referer"]), escapeField(fields["agent"]),
                )
                self.assertEqual(combinedLine(fields), expected, (key, value))

    def test_forgedAgent(self):
        """
        A User-Agent holding a quote and a newline stays inside its field.
        """
        line = combinedLine(dict(
            peer="10.0.0.1", user=None, started=0.0, method="GET", uri="/x", protocol="HTTP/1.1",
            status=200, size=5, referer=None, agent='evil" 200 1\n10.0.0.2 - - "GET',
        ))
        self.assertNotIn("\n", line)
        match = COMBINED.match(line)
        self.assertIsNotNone(match)
        self.assertEqual(match.group("time"), "01/Jan/1970:00:00:00 +0000")
        self.assertEqual(match.group("status"), "200")


class JSONRecordTests(unittest.SynchronousTestCase):
    """
    The JSON form of an event.
    """

    def test_fields(self):
        """
        Time, level, namespace and message come first; plain fields follow;
        fields named like secrets and non-JSON values are left out.
        """
        event = dict(
            log_format="hello {name}", log_level=LogLevel.warn, log_namespace="fbtwist.x", log_time=0.5,
            name="alice", count=3, password="hunter2", authorization="Basic x", obj=object(),
        )
        record = jsonRecord(event)
        self.assertEqual(record["message"], "hello alice")
        self.assertEqual(record["level"], "warn")
        self.assertEqual(record["namespace"], "fbtwist.x")
        self.assertEqual(record["time"], "1970-01-01T00:00:00.500Z")
        self.assertEqual((record["name"], record["count"]), ("alice", 3))
        for left in ("password", "authorization", "obj"):
            self.assertNotIn(left, record)

    def test_fieldsEveryTime(self):
        """
        The choice of fields holds for every event, not only the first to
        bring a key (it is remembered by key): a secret's key seen again
        is left out again, a field named like one of the record's own never
        replaces it, a key whose value was not plain once is written when
        it is.
        """
        for count in range(3):
            record = jsonRecord(dict(
                log_format="x", log_time=1.0, token="t", message="not this", time="nor this",
                later=object() if count == 0 else count, plain=count,
            ))
            self.assertNotIn("token", record)
            self.assertEqual((record["message"], record["time"]), ("x", "1970-01-01T00:00:01.000Z"))
            self.assertEqual(record["plain"], count)
            if count:
                self.assertEqual(record["later"], count)
            else:
                self.assertNotIn("later", record)

    def test_timeOfEachEvent(self):
        """
        Each event's own time, to the millisecond, whatever time the event
        before it had (the second's text is made once): going on within a
        second, to the next, and back.
        """
        for seconds, text in [
            (1796616301.25, "2026-12-07T04:05:01.250Z"), (1796616301.999, "2026-12-07T04:05:01.999Z"),
            (1796616302.0, "2026-12-07T04:05:02.000Z"), (1796616301.5, "2026-12-07T04:05:01.500Z"),
            (0.001, "1970-01-01T00:00:00.001Z"), (1796616302.75, "2026-12-07T04:05:02.750Z"),
        ]:
            self.assertEqual(jsonRecord(dict(log_format="x", log_time=seconds))["time"], text)

    def test_observer(self):
        """
        The observer writes one JSON object per line.
        """
        out = io.StringIO()
        observer = JSONLinesObserver(out)
        observer(dict(log_format="one", log_level=LogLevel.info, log_time=0))
        observer(dict(log_format="two\nlines", log_level=LogLevel.info, log_time=0))
        lines = out.getvalue().splitlines()
        self.assertEqual([json.loads(line)["message"] for line in lines], ["one", "two\nlines"])

    def test_underTwistd(self):
        """
        --log-format sets twistd's --logger (JSON or text lines), unless
        one was chosen or twistd logs to syslog.
        """
        twistdOptions = {"logger": None, "logfile": None, "nodaemon": True}
        useUnderTwistd(twistdOptions)
        self.assertEqual(twistdOptions["logger"], "fbtwist.logs.twistdJSONObserver")
        twistdOptions = {"logger": None, "logfile": None, "nodaemon": True}
        useUnderTwistd(twistdOptions, "combined")
        self.assertEqual(twistdOptions["logger"], "fbtwist.logs.twistdTextObserver")
        syslog = {"logger": None, "logfile": None, "nodaemon": True, "syslog": True}
        useUnderTwistd(syslog, "combined")
        self.assertIsNone(syslog["logger"])
        chosen = {"logger": "my.observer", "logfile": None, "nodaemon": True}
        useUnderTwistd(chosen)
        self.assertEqual(chosen["logger"], "my.observer")


class LineWriterTests(unittest.SynchronousTestCase):
    """
    twistd's log (text or JSON) is flushed once per reactor turn in the
    reactor thread, at once elsewhere.
    """

    def setUp(self):
        from twisted.python import threadable

        self.out = FlushCounter()
        self.clock = ShutdownClock()
        self.patch(threadable, "isInIOThread", lambda: True)

    def test_oncePerTurn(self):
        """
        Lines written in one reactor turn reach the file with one flush at
        its end; none is lost.
        """
        observer = TextLinesObserver(self.out, self.clock)
        for n in range(3):
            observer(dict(log_format="line {n}", n=n, log_level=LogLevel.info, log_time=0,
                          log_namespace="fbtwist.access"))
        self.assertEqual(self.out.flushed, "")
        self.clock.advance(0)
        self.assertEqual([line.split("] ", 1)[1] for line in self.out.flushed.splitlines()],
                         ["line 0", "line 1", "line 2"])
        self.assertEqual(self.out.flushes, 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_oneWritePerTurn(self):
        """
        Lines of one turn reach the file in one write (twistd's log file is
        unbuffered: each write is a system call).
        """
        writes = []

        class CountingFile(FlushCounter):
            def write(self, text):
                writes.append(text)
                return super().write(text)

        out = CountingFile()
        observer = TextLinesObserver(out, self.clock)
        for n in range(5):
            observer(dict(log_format="line {n}", n=n, log_level=LogLevel.info, log_time=0,
                          log_namespace="fbtwist.access"))
        self.assertEqual(writes, [])
        self.clock.advance(0)
        self.assertEqual(len(writes), 1)
        self.assertEqual([line.split("] ", 1)[1] for line in out.flushed.splitlines()],
                         [f"line {n}" for n in range(5)])

    def test_notRunningWritesAtOnce(self):
        """
        Before the reactor runs (an error at start, such as a port in use)
        and after it stopped, each line is written at once: no turn would
        write it.
        """
        self.clock.running = False
        observer = TextLinesObserver(self.out, self.clock)
        observer(dict(log_format="port in use", log_level=LogLevel.error, log_time=0))
        self.assertIn("port in use", self.out.flushed)
        self.clock.running = True
        self.clock.fireShutdown()
        observer(dict(log_format="Server Shut Down.", log_level=LogLevel.info, log_time=0))
        self.assertIn("Server Shut Down.", self.out.flushed)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_sameAsTwistd(self):
        """
        The text lines are exactly what twistd's own observer writes, time
        stamp included (formatted once per second).
        """
        observer = TextLinesObserver(self.out, self.clock)
        expected = io.StringIO()
        twistds = textFileLogObserver(expected)
        for when, text in [(1700000000.2, "a"), (1700000000.9, "b\nc"), (1700000001.0, "d")]:
            event = dict(log_format=text, log_level=LogLevel.warn, log_time=when, log_namespace="x")
            observer(event)
            twistds(event)
        self.clock.advance(0)
        self.assertEqual(self.out.flushed, expected.getvalue())

    def test_shutdownFlushes(self):
        """
        A line written as the reactor stops is flushed by the shutdown
        trigger.
        """
        observer = JSONLinesObserver(self.out, self.clock)
        observer(dict(log_format="last", log_level=LogLevel.info, log_time=0))
        self.clock.fireShutdown()
        self.assertEqual(json.loads(self.out.flushed)["message"], "last")

    def test_otherThreadFlushesAtOnce(self):
        """
        Outside the reactor thread (and without a reactor) each line is
        flushed at once.
        """
        from twisted.python import threadable

        self.patch(threadable, "isInIOThread", lambda: False)
        observer = TextLinesObserver(self.out, self.clock)
        observer(dict(log_format="from a thread", log_level=LogLevel.info, log_time=0))
        self.assertIn("from a thread", self.out.flushed)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        TextLinesObserver(self.out)(dict(log_format="no reactor", log_level=LogLevel.info, log_time=0))
        self.assertIn("no reactor", self.out.flushed)


class FlushCounter(io.StringIO):
    """
    A file that shows what was flushed (C{flushed}) and how often.
    """

    flushes = 0
    flushed = ""

    def flush(self):
        self.flushes += 1
        self.flushed = self.getvalue()


class ShutdownClock(Clock):
    """
    A L{Clock} with the one system event trigger L{_LineWriter} uses.
    """

    def __init__(self):
        super().__init__()
        self.triggers = []

    def addSystemEventTrigger(self, phase, event, f, *args):
        self.triggers.append((phase, event, f, args))

    def fireShutdown(self):
        for phase, event, f, args in self.triggers:
            if event == "shutdown":
                f(*args)


class RejectionReasonTests(unittest.SynchronousTestCase):
    """
    Errors map to the publish-rejected reasons of COMMON.md.
    """

    def test_reasons(self):
        """
        Each domain error has its slug.
        """
        self.assertEqual(publishRejectionReason(errors.InvalidCalendar()), "invalid-calendar")
        self.assertEqual(publishRejectionReason(errors.TooLarge()), "too-large")
        self.assertEqual(publishRejectionReason(errors.PermissionDenied()), "forbidden")
        self.assertEqual(publishRejectionReason(errors.UnsupportedMediaType()), "unsupported-media-type")
        self.assertEqual(publishRejectionReason(errors.InsufficientStorage()), "storage-full")
        self.assertEqual(publishRejectionReason(HTTPError(415, "x")), "unsupported-media-type")
        self.assertEqual(publishRejectionReason(HTTPError(423, "x")), "locked")
        self.assertEqual(publishRejectionReason(HTTPError(412, "x")), "precondition-failed")
        self.assertEqual(publishRejectionReason(ValueError()), "error")


class ServerLogTests(unittest.TestCase):
    """
    The log of a whole server (in memory).
    """

    async def requests(self, server):
        """
        Wrong and right passwords, and each kind of rejected publish.
        """
        http = server.client()
        body = outlookVFB("alice@example.com")
        url = server.url("/pub/calendar/alice.vfb")
        calendar = {b"Content-Type": [b"text/calendar"]}
        statuses = []
        for headers, data, target in [
            (basicAuth("alice", WRONG_PASSWORD), body, url),
            (basicAuth("alice"), body, url),
            (basicAuth("alice"), b"not a calendar", url),
            ({**basicAuth("alice"), b"Content-Type": [b"multipart/form-data; boundary=x"]}, body, url),
            (basicAuth("alice"), body, server.url("/pub/calendar/carol.vfb")),
            ({}, body, url),
        ]:
            response = await http.put(target, data=data, headers={**calendar, **headers})
            await response.content()
            statuses.append(response.code)
        response = await http.get(server.url("/calendar/alice.vfb"), headers={b"Referer": [b"http://x/"]})
        await response.content()
        statuses.append(response.code)
        raw = await server.rawRequest((
            b"PUT /pub/calendar/alice.vfb HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n"
        ))
        statuses.append(statusOf(raw))
        return statuses

    @inline
    async def test_accessAndPublishEvents(self):
        """
        One access event per request, parseable as combined and as JSON,
        and one publish or publish-rejected event per publish attempt with
        its uid, protocol and reason.
        """
        log = CapturedLog(self)
        server = startMemoryServer(self)
        statuses = await self.requests(server)
        self.assertEqual(statuses, [401, 201, 400, 415, 403, 401, 200, 413])
        access = log.of("http-request")
        self.assertEqual([e["status"] for e in access], statuses)
        lines = [COMBINED.match(formatEvent(e)) for e in access]
        self.assertNotIn(None, lines)
        self.assertEqual([m.group("method") for m in lines], ["PUT"] * 6 + ["GET", "PUT"])
        self.assertEqual([m.group("user") for m in lines], ["alice"] * 5 + ["-", "-", "-"])
        self.assertEqual(lines[6].group("referer"), "http://x/")
        self.assertEqual(lines[6].group("size"), str(len(publicAnswer(server.store, "alice"))))
        records = [json.loads(json.dumps(jsonRecord(e))) for e in access]
        self.assertEqual([r["status"] for r in records], statuses)
        self.assertEqual(records[1]["uri"], "/pub/calendar/alice.vfb")
        self.assertEqual(records[1]["namespace"], "fbtwist.access")

        (published,) = log.of("publish")
        self.assertEqual((published["uid"], published["protocol"], published["path"]), ("alice", "http", "alice.vfb"))
        rejected = [(e["uid"], e["protocol"], e["reason"]) for e in log.of("publish-rejected")]
        self.assertEqual(rejected, [
            (None, "http", "unauthorized"),
            ("alice", "http", "invalid-calendar"),
            ("alice", "http", "unsupported-media-type"),
            ("alice", "http", "forbidden"),
            (None, "http", "unauthorized"),
            (None, "http", "too-large"),
        ])

    @inline
    async def test_noSecrets(self):
        """
        Neither password, nor the Basic header's token, appears in any event
        of the run, whether formatted as text, as JSON, or dumped whole.
        """
        log = CapturedLog(self)
        server = startMemoryServer(self)
        await self.requests(server)
        secrets = [WRONG_PASSWORD, "wonderland"]
        for password in list(secrets):
            secrets.append(base64.b64encode(f"alice:{password}".encode()).decode())
        secrets.append("Authorization")
        self.assertGreater(len(log.events), 10)
        for event in log.events:
            for text in (formatEvent(event), json.dumps(jsonRecord(event)), repr(event)):
                for secret in secrets:
                    self.assertNotIn(secret, text)

    @inline
    async def test_directoryErrorNamesServer(self):
        """
        A directory that cannot be reached is logged with its address.
        """
        log = CapturedLog(self)
        # Nothing listens there on the in-memory network: refused.
        port = 9
        server = startMemoryServer(self, "--ldap", f"ldap://127.0.0.1:{port}/dc=example,dc=com",
                                   "--ldap-timeout", "2")
        response = await server.client().put(
            server.url("/pub/calendar/alice.vfb"), data=outlookVFB(), headers=basicAuth("alice"),
        )
        await response.content()
        self.assertEqual(response.code, 503)
        warnings = [formatEvent(e) for e in log.events if e.get("log_level") == LogLevel.warn]
        self.assertTrue(any(f"ldap://127.0.0.1:{port}" in w for w in warnings), warnings)

    @inline
    async def test_accessLogFile(self):
        """
        --access-log writes the bare combined lines to a file of their own.
        """
        path = FilePath(self.mktemp())
        server = startMemoryServer(self, "--access-log", path.path)
        http = server.client()
        for target in ("/calendar/nobody.vfb", "/healthz"):
            response = await http.get(server.url(target))
            await response.content()
        await server.stop()
        lines = path.getContent().decode("ascii").splitlines()
        self.assertEqual([COMBINED.match(line).group("uri") for line in lines], ["/calendar/nobody.vfb", "/healthz"])


class AccessLogBatchTests(unittest.SynchronousTestCase):
    """
    The --access-log file gets the lines of one reactor turn in one write.
    """

    def test_linesOfATurn(self):
        """
        Lines logged in one turn reach the file at its end, all of them, and
        those of the last turn when the service stops.
        """
        from twisted.python import threadable

        path = FilePath(self.mktemp())
        clock = ShutdownClock()
        self.patch(threadable, "isInIOThread", lambda: True)
        service = AccessLogService(path, clock)
        service.startService()
        logger = Logger(namespace="fbtwist.web.site")

        def access(uri):
            logAccess(logger, dict(peer="127.0.0.1", user=None, started=1700000000.0, method="GET", uri=uri,
                                   protocol="HTTP/1.1", status=200, size=12, referer=None, agent=None,
                                   seconds=0.001))

        for n in range(3):
            access(f"/calendar/u{n}.vfb")
        self.assertEqual(path.getContent(), b"")
        clock.advance(0)
        self.assertEqual(len(path.getContent().splitlines()), 3)
        access("/calendar/last.vfb")
        service.stopService()
        lines = path.getContent().decode("ascii").splitlines()
        self.assertEqual([COMBINED.match(line).group("uri") for line in lines],
                         ["/calendar/u0.vfb", "/calendar/u1.vfb", "/calendar/u2.vfb", "/calendar/last.vfb"])


class PreformattedTextTests(unittest.SynchronousTestCase):
    """
    Access events carry their line already formatted; every observer shows
    exactly what formatting the event would give.
    """

    def accessEvent(self) -> dict:
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        fields = dict(peer="127.0.0.1", user=None, started=1700000000.0, method="GET",
                      uri="/calendar/{odd}%7B.vfb", protocol="HTTP/1.1", status=200, size=12,
                      referer=None, agent='curl "x" {y}', seconds=0.001)
        logAccess(Logger(namespace="fbtwist.web.site"), fields)
        return [e for e in events if isAccessEvent(e)][0]

    def test_sameText(self):
        """
        The event's text is the event formatted.
        """
        event = self.accessEvent()
        self.assertEqual(eventText(event), formatEvent(event))
        self.assertIn("/calendar/{odd}%7B.vfb", eventText(event))

    def test_sameClassicLine(self):
        """
        The text log's line is twistd's line for the event.
        """
        event = self.accessEvent()
        out = io.StringIO()
        TextLinesObserver(out)(event)
        self.assertEqual(out.getvalue(), formatEventAsClassicLogText(event, formatTime=formatTime))

    def test_jsonMessage(self):
        """
        The JSON record's message is the formatted event, and the
        preformatted text is no field of its own.
        """
        event = self.accessEvent()
        record = jsonRecord(event)
        self.assertEqual(record["message"], formatEvent(event))
        self.assertNotIn("log_fbtwistText", record)


class PublishEventTests(unittest.SynchronousTestCase):
    """
    A publish's event carries its text already made (L{fbtwist.logs.logInfoText}):
    the same as formatting it, whatever its fields hold.
    """

    def publishEvent(self, uid: str) -> dict:
        from fbtwist.web.dav import put

        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)

        class Avatar:
            pass

        avatar = Avatar()
        avatar.uid = uid
        put.published(avatar, ("{odd}", f"{uid}.vfb"), 2385)
        return [e for e in events if e.get("fbEvent") == "publish"][0]

    def test_sameText(self):
        """Its text is the event formatted, braces in the fields shown as they are; its fields are kept."""
        event = self.publishEvent("b{s}m}th")
        self.assertIn("log_fbtwistText", event)
        self.assertEqual(eventText(event), formatEvent(event))
        self.assertEqual(eventText(event), "published {odd}/b{s}m}th.vfb as b{s}m}th over HTTP (2385 bytes)")
        self.assertEqual((event["path"], event["uid"], event["size"], event["protocol"], event["log_level"]),
                         ("{odd}/b{s}m}th.vfb", "b{s}m}th", 2385, "http", LogLevel.info))

    def test_sameClassicLine(self):
        """The text log's line is twistd's line for the event."""
        event = self.publishEvent("alice")
        out = io.StringIO()
        TextLinesObserver(out)(event)
        self.assertEqual(out.getvalue(), formatEventAsClassicLogText(event, formatTime=formatTime))


class DebugEventTests(unittest.SynchronousTestCase):
    """
    A debug event emitted by L{logDebug} is the event C{Logger.debug} emits
    (but for its time), counted by the metrics and left out of the logs.
    """

    def emitted(self, emit) -> dict:
        events = []
        logger = Logger(namespace="fbtwist.test", observer=events.append)
        before = time.time()
        emit(logger)
        self.assertEqual(len(events), 1)
        event = events[0]
        self.assertTrue(before <= event.pop("log_time") <= time.time())
        return event

    def test_sameEvent(self):
        """The same fields, level, format, namespace, source and logger as Logger.debug's."""
        fields = dict(fbEvent="directory-call", operation="bind", seconds=0.25, ok=True, server="ldap://x")
        ours = self.emitted(lambda logger: logDebug(logger, "directory {operation} on {server}", **fields))
        twisted = self.emitted(lambda logger: logger.debug("directory {operation} on {server}", **fields))
        # Each from its own logger of the same namespace.
        self.assertEqual(ours.pop("log_logger").namespace, twisted.pop("log_logger").namespace)
        self.assertEqual(ours, twisted)
        self.assertEqual(ours["log_level"], LogLevel.debug)

    def test_countedNotLogged(self):
        """The metrics count it; the log (info and up) shows nothing."""
        from fbtwist.ops.metrics import MetricsObserver

        metrics, out = MetricsObserver(), io.StringIO()
        logger = Logger(namespace="fbtwist.test", observer=LogPublisher(metrics, InfoAndUp(TextLinesObserver(out))))
        logDebug(logger, "bind cache {hit}", fbEvent="bind-cache", hit=True)
        self.assertEqual(out.getvalue(), "")
        self.assertIn(b'fbtwist_bind_cache_lookups_total{result="hit"} 1.0', metrics.exposition()[0])


class InfoAndUpTests(unittest.SynchronousTestCase):
    """
    fbtwist's logs show events from info up.
    """

    def test_levels(self):
        """
        Debug events are dropped; info, warn, error, critical and events
        without a level pass.
        """
        seen = []
        observer = InfoAndUp(seen.append)
        for level in (LogLevel.debug, LogLevel.info, LogLevel.warn, LogLevel.error, LogLevel.critical, None):
            observer({"log_level": level} if level is not None else {"message": "legacy"})
        self.assertEqual([e.get("log_level") for e in seen],
                         [LogLevel.info, LogLevel.warn, LogLevel.error, LogLevel.critical, None])

    def test_acceptFailuresQuieted(self):
        """
        Twisted's line for each connection a port cannot accept for want of
        descriptors is dropped; one warning a minute stands for them.
        """
        import fbtwist.logs

        clock = Clock()
        self.patch(fbtwist.logs, "_acceptWarning", RareWarning("out {count}", 60.0, clock=clock.seconds,
                                                               fbEvent="out-of-descriptors"))
        warnings = []
        globalLogPublisher.addObserver(warnings.append)
        self.addCleanup(globalLogPublisher.removeObserver, warnings.append)
        seen = []
        observer = InfoAndUp(seen.append)
        for _ in range(3):
            observer({"log_level": LogLevel.info, "log_format": "EMFILE recovery: Closed socket from {address}"})
            observer({"log_level": LogLevel.info, "log_format": "Could not accept new connection ({acceptError})"})
            clock.advance(30)
            observer({"log_level": LogLevel.critical,
                      "log_format": "Could not reserve EMFILE recovery file descriptor.",
                      "log_failure": Failure(OSError(24, "Too many open files"))})
            clock.advance(30)
        self.assertEqual(seen, [])
        # Every 60 s: the first line, then the three since.
        self.assertEqual([e["count"] for e in warnings if e.get("fbEvent") == "out-of-descriptors"], [1, 3, 3])

    def test_acceptFailuresAreTwisted(self):
        """
        Each line quieted is one Twisted's ports log (the test fails when
        Twisted changes one: then it would be logged again).
        """
        import inspect
        import re

        import twisted.internet.tcp

        from fbtwist.logs import _ACCEPT_FAILURES

        # Adjacent string literals joined, as Python joins them.
        source = re.sub(r'"\s*"', "", inspect.getsource(twisted.internet.tcp))
        for text in _ACCEPT_FAILURES:
            self.assertIn(f'"{text}"', source)
