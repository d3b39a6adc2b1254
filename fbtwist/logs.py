"""
fbtwist's log lines, all through L{twisted.logger}.

Every request gives one I{access event} (C{fbEvent="http-request"}) carrying
its fields (peer, user, method, uri, status, size, referer, agent, seconds)
and, as its C{log_format}, the line in Apache's combined format, so twistd's
own text log shows combined lines with no set-up.  Publishes and rejected
publishes are C{fbEvent="publish"} / C{"publish-rejected"} events (see
L{publishRejectionReason}); L{fbtwist.ops.metrics} counts all these events.

For machines, L{JSONLinesObserver} writes every event as one JSON object per
line; C{--log-format json} makes twistd use it (L{useUnderTwistd}).
L{AccessLogService} writes the bare combined lines to a file of their own
(C{--access-log}) for log analysers.

No event ever carries a password or an C{Authorization} header: the access
event names the login from a Basic header and nothing else of it, and the
JSON form leaves out any field whose name looks like a secret.
"""

import json
import re
import signal
import sys
import time
from typing import Optional

from twisted.application.service import Service
from twisted.logger import (
    ILogObserver,
    Logger,
    LogLevel,
    formatEvent,
    formatEventAsClassicLogText,
    formatTime,
    globalLogPublisher,
)
from twisted.python import threadable
from twisted.python.logfile import LogFile
from zope.interface import implementer

from fbtwist import errors

#: The C{fbEvent} of the one event logged per HTTP request.
ACCESS_EVENT = "http-request"

#: C{publish-rejected} reasons of HTTP statuses, for rejections that are
#: no domain error (those carry their own C{label}): an
#: L{fbtwist.web.responses.HTTPError}, or a status answered before
#: fbtwist's PUT code ran.
_REJECTION_REASONS_BY_STATUS = {
    400: "invalid-request",
    401: "unauthorized",
    403: "forbidden",
    409: "conflict",
    412: "precondition-failed",
    413: "too-large",
    415: "unsupported-media-type",
    423: "locked",
    503: "directory-unavailable",
    507: "storage-full",
}

#: Statuses that refuse a publish before fbtwist's PUT code runs.
_REFUSED_BEFORE_PUT = frozenset({401, 413})

#: Event keys never written out in JSON, whatever logged them.
_SECRET_KEY = re.compile(r"pass|secret|authori[sz]ation|cookie|token|credential", re.IGNORECASE)

#: Printable ASCII but C{"} and C{\\}: what escapeField leaves as it is.
_PLAIN_FIELD = re.compile(r'[ !#-\[\]-~]*\Z')

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def publishRejectionReason(error: BaseException) -> str:
    """
    The C{reason} slug of a C{publish-rejected} event for the error that
    refused a publish: a domain error's C{label}, else by the HTTP status
    of an C{HTTPError} (C{"error"} for anything else).
    """
    if isinstance(error, errors.FreeBusyError) and error.label is not None:
        return error.label
    return _REJECTION_REASONS_BY_STATUS.get(getattr(error, "code", None), "error")


def rejectionReasonForStatus(status: int) -> Optional[str]:
    """
    The reason of a publish refused before fbtwist's PUT code ran
    (authentication, the upload limit), from the response status, or
    C{None}.
    """
    return _REJECTION_REASONS_BY_STATUS[status] if status in _REFUSED_BEFORE_PUT else None


def escapeField(text: Optional[str]) -> str:
    """
    One field of a combined log line, escaped as Apache escapes it: C{"}
    and C{\\} get a backslash, control and non-ASCII characters become
    C{\\xhh} (of their UTF-8 bytes), so no field can forge a line or a
    field.  Missing or empty fields are C{-}.
    """
    if not text:
        return "-"
    if _PLAIN_FIELD.match(text):
        return text  # nearly every field: nothing to escape
    out = []
    for byte in text.encode("utf-8", "surrogateescape"):
        if byte in (0x22, 0x5C):
            out.append("\\" + chr(byte))
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append("\\x%02x" % byte)
    return "".join(out)


_lastCLFSecond = [None, ""]


def clfTime(seconds: float) -> str:
    """
    A time as Apache writes it: C{24/Nov/2026:15:06:35 +0000} (UTC).
    """
    second = int(seconds)
    if _lastCLFSecond[0] != second:
        t = time.gmtime(second)
        _lastCLFSecond[:] = [second, "%02d/%s/%04d:%02d:%02d:%02d +0000" % (
            t.tm_mday, _MONTHS[t.tm_mon - 1], t.tm_year, t.tm_hour, t.tm_min, t.tm_sec,
        )]
    return _lastCLFSecond[1]


#: The text fields of a combined line, in their order.
_COMBINED_TEXTS = ("peer", "user", "method", "uri", "protocol", "referer", "agent")


def combinedLine(fields: dict) -> str:
    """
    The access event's fields as one line of Apache's combined format.
    """
    texts = [fields[key] or "-" for key in _COMBINED_TEXTS]
    # One look at all of them (a space is plain, so the whole is plain when
    # every field is): nearly every line has nothing to escape.
    if not _PLAIN_FIELD.match(" ".join(texts)):
        texts = [escapeField(fields[key]) for key in _COMBINED_TEXTS]
    peer, user, method, uri, protocol, referer, agent = texts
    return '%s - %s [%s] "%s %s %s" %d %s "%s" "%s"' % (
        peer, user, clfTime(fields["started"]), method, uri, protocol,
        fields["status"], fields["size"] if fields["size"] else "-", referer, agent,
    )


#: An event's text, already formatted: fbtwist's observers write it as it
#: is instead of formatting the event (an access line would otherwise be
#: built twice: 6 % of a lookup).  A C{log_} key, so that it is no field.
_TEXT = "log_fbtwistText"


def logInfoText(logger: Logger, text: str, format: str, **fields) -> None:
    """
    Emit an info event whose text is already made: C{text} must be what
    C{format} gives with C{fields} (L{formatEvent}), which fbtwist's
    observers then write as it is, without formatting the event (an event
    of every publish: a few per cent of one).
    """
    _emitInfo(logger, fields, text, format)


def logDebug(logger: Logger, format: str, **fields) -> None:
    """
    What C{logger.debug(format, **fields)} does, for the debug events that
    feed the metrics (a directory call, a look in the bind cache: several
    a publish), without C{Logger.emit}'s check of the level, which lists
    every level for each event (half of the event's cost).
    """
    _emit(logger, LogLevel.debug, fields, format)


def _emitInfo(logger: Logger, event: dict, text: str, format: str) -> None:
    """
    What C{Logger.emit} does for an info event, without its check of the
    level and the copies of the fields into keyword arguments and back:
    C{event} (its fields) becomes the event, C{text} its text.
    """
    event[_TEXT] = text
    _emit(logger, LogLevel.info, event, format)


def _emit(logger: Logger, level: LogLevel, event: dict, format: str) -> None:
    # Logger.emit's event, for a level known to be valid and fields that
    # carry no log_trace.
    event.update(
        log_logger=logger,
        log_level=level,
        log_namespace=logger.namespace,
        log_source=logger.source,
        log_format=format,
        log_time=time.time(),
    )
    logger.observer(event)


def logAccess(logger: Logger, fields: dict) -> None:
    """
    Emit one access event: its format is the combined line itself (braces
    doubled, so it is shown literally), its fields the parts of it.

    @param fields: The event's fields (L{fbtwist.web.accesslog}): the dict
        is made the event itself, not copied.
    """
    line = combinedLine(fields)
    # One event per request: Logger.emit's own checks and copies would be a
    # few per cent of a lookup.
    fields["fbEvent"] = ACCESS_EVENT
    _emitInfo(logger, fields, line,
              line.replace("{", "{{").replace("}", "}}") if "{" in line or "}" in line else line)


def eventText(event: dict) -> str:
    """
    The text of an event, as L{formatEvent} gives it.
    """
    text = event.get(_TEXT)
    return formatEvent(event) if text is None else text


def _classicLine(event: dict) -> Optional[str]:
    """
    An event as twistd's text log shows it
    (L{formatEventAsClassicLogText}, time stamps formatted once a second).
    """
    text = event.get(_TEXT)
    if text is None or "log_failure" in event:
        return formatEventAsClassicLogText(event, formatTime=_classicTime)
    system = event.get("log_system")
    if system is None:
        level = event.get("log_level")
        system = f"{event.get('log_namespace', '-')}#{'-' if level is None else level.name}"
    return f"{_classicTime(event.get('log_time'))} [{system}] {text}\n"


#: The last second L{_isoTime} formatted and its text: one tuple, replaced
#: whole, so that a thread reading it never sees one's second with
#: another's text.
_isoSecond = [(None, "")]


def _isoTime(seconds: float) -> str:
    # Each second formatted once (every request logs an event).
    second = int(seconds)
    known = _isoSecond[0]
    if known[0] != second:
        known = _isoSecond[0] = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return known[1] + ".%03dZ" % int((seconds % 1) * 1000)


#: The fields L{jsonRecord} makes itself, never taken from the event.
_RECORD_KEYS = frozenset(("time", "level", "namespace", "message"))

#: Whether an event key is written out by L{jsonRecord} (not Twisted's
#: C{log_} keys, the record's own, nor a secret's), by key: the same few
#: keys come with every event.
_keyShown: dict = {}

#: Values written out as they are (C{None} too); others are left out.
_PLAIN_TYPES = (str, int, float, bool)

#: L{json.dumps} with the same options, made once (C{dumps} with options
#: makes an encoder per call).  A record is flat: nothing to check for
#: cycles.
_JSON_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str, check_circular=False)


def _isShown(key: str) -> bool:
    shown = _keyShown.get(key)
    if shown is None:
        shown = not (key.startswith("log_") or key in _RECORD_KEYS or _SECRET_KEY.search(key))
        if len(_keyShown) > 10_000:
            _keyShown.clear()
        _keyShown[key] = shown
    return shown


def jsonRecord(event: dict) -> dict:
    """
    The JSON form of one log event: C{time} (UTC, ISO 8601), C{level},
    C{namespace}, C{message} (the formatted text), C{traceback} for a
    failure, and every other field whose value is a plain JSON value and
    whose name does not look like a secret.
    """
    level = event.get("log_level")
    record = {
        "time": _isoTime(event.get("log_time", time.time())),
        "level": getattr(level, "name", "info"),
        "namespace": event.get("log_namespace", "-"),
        "message": eventText(event),
    }
    for key, value in event.items():
        if (value is None or isinstance(value, _PLAIN_TYPES)) and _isShown(key):
            record[key] = value
    failure = event.get("log_failure")
    if failure is not None:
        try:
            record["traceback"] = failure.getTraceback()
        except Exception:
            record["traceback"] = repr(failure)
    return record


class _LineWriter:
    """
    Writes log lines to a file object.  Given a reactor, the lines written
    in the reactor thread while it runs are kept and written together, in
    one C{write} system call and a flush, once per reactor turn (and at
    shutdown),
    instead of once per line: twistd's log file is unbuffered, and a
    write to a file may wait for the filesystem's journal, which the
    reactor should do once per turn at most, not once per request.
    Elsewhere (other threads, no reactor) each line is written and flushed
    at once.
    """

    def __init__(self, outFile, reactor=None):
        self._out = outFile
        self._reactor = reactor
        self._scheduled = None
        #: Lines of this turn not written yet (the reactor thread's only).
        self._pending = []
        if reactor is not None:
            reactor.addSystemEventTrigger("after", "shutdown", self._stopBatching)

    def _batching(self) -> bool:
        """
        Whether a line written now can wait for the end of the turn: in the
        reactor's thread while it runs (before it runs, such as a port in
        use at start, and once it stopped, nothing would write it).
        """
        reactor = self._reactor
        return reactor is not None and getattr(reactor, "running", True) and threadable.isInIOThread()

    def _stopBatching(self) -> None:
        self._reactor = None
        self.flush()

    def write(self, line: str) -> None:
        if self._batching():
            self._pending.append(line)
            if self._scheduled is None:
                self._scheduled = self._reactor.callLater(0, self.flush)
            return
        try:
            self._out.write(line)
            self._out.flush()
        except (OSError, ValueError):
            pass  # a closed or broken output: nothing more to do

    def flush(self) -> None:
        if self._scheduled is not None:
            if self._scheduled.active():
                self._scheduled.cancel()
            self._scheduled = None
        pending, self._pending = self._pending, []
        try:
            if pending:
                self._out.write("".join(pending))
            self._out.flush()
        except (OSError, ValueError):
            pass  # a closed or broken output: nothing more to do

    def close(self) -> None:
        self.flush()
        self._out.close()


def _destination() -> _LineWriter:
    # twistd calls its observer factory after makeService, which installed
    # the reactor.
    from twisted.internet import reactor

    destination = _twistdDestination[0]
    if destination is None:
        return _LineWriter(sys.stdout, reactor)
    logFile = LogFile.fromFullPath(destination)
    if not signal.getsignal(signal.SIGUSR1):
        # What twistd's own observer does for --logfile: SIGUSR1 rotates.
        signal.signal(signal.SIGUSR1, lambda number, frame: reactor.callFromThread(logFile.rotate))
    return _LineWriter(logFile, reactor)


@implementer(ILogObserver)
class JSONLinesObserver:
    """
    Writes every event as one line of JSON (see L{jsonRecord}).

    @param outFile: A file object.
    @param reactor: Lines are flushed once per turn of this reactor (see
        L{_LineWriter}); without one, after each line.
    """

    def __init__(self, outFile, reactor=None):
        self._out = outFile if isinstance(outFile, _LineWriter) else _LineWriter(outFile, reactor)

    def __call__(self, event: dict) -> None:
        try:
            line = _JSON_ENCODER.encode(jsonRecord(event))
        except Exception as e:
            line = json.dumps({"time": _isoTime(time.time()), "level": "error",
                               "message": f"unloggable event: {e!r}"})
        self._out.write(line + "\n")

    def close(self) -> None:
        """
        Write out the lines not yet flushed and close the output.
        """
        self._out.close()


_lastSecond = [None, ""]


def _classicTime(when: Optional[float]) -> str:
    # twistd's time stamp has whole seconds: format each second once.
    if when is None:
        return formatTime(when)
    second = int(when)
    if _lastSecond[0] != second:
        _lastSecond[:] = [second, formatTime(second)]
    return _lastSecond[1]


@implementer(ILogObserver)
class TextLinesObserver:
    """
    Writes every event as twistd's own text log does
    (C{2026-11-24T15:12:44+0000 [namespace#level] message}), but more
    cheaply: the time stamp is formatted once per second and lines are
    flushed once per reactor turn (see L{_LineWriter}).

    @param outFile: A file object.
    @param reactor: As for L{JSONLinesObserver}.
    """

    def __init__(self, outFile, reactor=None):
        self._out = outFile if isinstance(outFile, _LineWriter) else _LineWriter(outFile, reactor)

    def __call__(self, event: dict) -> None:
        text = _classicLine(event)
        if text:
            self._out.write(text)


#: Where L{twistdJSONObserver} and L{twistdTextObserver} write: C{None}
#: for standard output, else a file name.  Set by L{useUnderTwistd} from
#: twistd's own options.
_twistdDestination: list = [None]


def useUnderTwistd(twistdOptions, logFormat: str = "json") -> None:
    """
    Make twistd log through L{JSONLinesObserver} (C{logFormat} C{"json"})
    or L{TextLinesObserver} (C{"text"}): sets twistd's C{--logger} (unless
    the administrator chose one, or C{--syslog}) to L{twistdJSONObserver}
    or L{twistdTextObserver}, which write where twistd's own observer would
    have (C{--logfile}, or standard output under C{-n}, or C{twistd.log}).

    Called while twistd parses its command line, before it starts logging.
    """
    if twistdOptions.get("logger") is not None or twistdOptions.get("syslog"):
        return
    logfile = twistdOptions.get("logfile") or ""
    if logfile == "-" or (not logfile and twistdOptions.get("nodaemon")):
        _twistdDestination[0] = None
    else:
        _twistdDestination[0] = logfile or "twistd.log"
    # twistd resolves this name after its sub-command's options are parsed.
    name = "twistdJSONObserver" if logFormat == "json" else "twistdTextObserver"
    twistdOptions["logger"] = __name__ + "." + name


class RareWarning:
    """
    A warning about a condition that comes with every request (or every
    connection) while it lasts, such as running out of file descriptors:
    logged at most once per C{interval} seconds, with C{count}, the number
    of times it happened since the last warning (this one included).
    """

    def __init__(self, text: str, interval: float = 60.0, clock=time.monotonic, log: Optional[Logger] = None,
                 **fields):
        """
        @param text: The warning's format; may name C{{count}} and the
            C{fields} (and those given to L{warn}).
        @param clock: What time it is (C{reactor.seconds} in tests).
        @param fields: Event keys logged with every warning.
        """
        self.text, self.interval, self.clock, self.fields = text, interval, clock, fields
        self.log = log or Logger()
        self._last = None
        self._count = 0

    def warn(self, **fields) -> None:
        """
        Note one more occurrence; log the warning if none was logged in the
        last C{interval} seconds.
        """
        self._count += 1
        now = self.clock()
        if self._last is not None and now - self._last < self.interval:
            return
        self.log.warn(self.text, count=self._count, **self.fields, **fields)
        self._last, self._count = now, 0


#: What Twisted's listening ports log for every connection they cannot
#: accept for want of descriptors (C{twisted.internet.tcp}), on every
#: reactor pass while it lasts: among them, with a traceback at the
#: critical level, a port's failure to take back the descriptor it keeps
#: for that (another part of the server took it meanwhile: expected while
#: descriptors run out, and the port goes on closing what it cannot accept).
_ACCEPT_FAILURES = frozenset([
    "EMFILE encountered; releasing reserved file descriptor.",
    "EMFILE recovery: Closed socket from {address}",
    "Re-reserving EMFILE recovery file descriptor.",
    "Could not accept new connection ({acceptError})",
    "Could not reserve EMFILE recovery file descriptor.",
    "Could not re-reserve EMFILE recovery file descriptor.",
])

#: The one warning that stands for those lines.
_acceptWarning = RareWarning(
    "out of file descriptors: closing new connections unanswered ({count} since the last warning; "
    "raise LimitNOFILE or ulimit -n)",
    fbEvent="out-of-descriptors", protocol="tcp",
)


#: The levels fbtwist's logs show.
_FROM_INFO_UP = frozenset([LogLevel.info, LogLevel.warn, LogLevel.error, LogLevel.critical])


@implementer(ILogObserver)
class InfoAndUp:
    """
    C{observer}, given events of level info and up only (and those without
    a level, as C{twisted.logger.LogLevelFilterPredicate} lets them through): debug events
    (one per directory call, ...) feed the metrics, not the log.  Twisted's
    lines for each connection a port could not accept for want of
    descriptors become one warning a minute at most.  A set
    lookup instead of Twisted's per-namespace filter, which costs more than
    writing the line (every request logs one).
    """

    def __init__(self, observer):
        self.observer = observer

    def __call__(self, event: dict) -> None:
        level = event.get("log_level")
        if level is None or level in _FROM_INFO_UP:
            if event.get("log_format") in _ACCEPT_FAILURES:
                # One line a minute instead of one per connection.
                _acceptWarning.warn()
                return
            self.observer(event)


def twistdJSONObserver() -> "InfoAndUp":
    """
    The log observer factory twistd calls under C{--log-format json}.
    """
    return InfoAndUp(JSONLinesObserver(_destination()))


def twistdTextObserver() -> "InfoAndUp":
    """
    The log observer factory twistd calls under C{--log-format text} (the
    default).
    """
    return InfoAndUp(TextLinesObserver(_destination()))


def isAccessEvent(event: dict) -> bool:
    return event.get("fbEvent") == ACCESS_EVENT


class AccessLogService(Service):
    """
    Writes the combined line of every access event to a file (rotated by
    size like twistd's log), for tools that read Apache's access logs: the
    lines of one reactor turn in one write (L{_LineWriter}).

    @param reactor: The reactor whose turns batch the lines; C{None}: each
        line is written at once.
    """

    name = "access-log"

    def __init__(self, path, reactor=None):
        self.path = path
        self.reactor = reactor
        self._writer = None
        self._observer = None

    def startService(self):
        super().startService()
        writer = self._writer = _LineWriter(LogFile.fromFullPath(self.path.path), self.reactor)

        def observer(event):
            if isAccessEvent(event):
                writer.write(eventText(event) + "\n")

        self._observer = observer
        globalLogPublisher.addObserver(observer)

    def stopService(self):
        super().stopService()
        if self._observer is not None:
            globalLogPublisher.removeObserver(self._observer)
            self._observer = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
