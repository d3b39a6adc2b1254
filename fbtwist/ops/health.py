"""
C{GET /healthz}: whether this fbtwist can do its job, for load balancers,
systemd watchdogs and monitoring.

Two parts are checked on every request: the calendar tree (a small file is
created and removed in its root) and the directory (a cheap search for a
login nobody has, through the directory's own C{search} with its timeout).
The answer is 200 when both work and 503 otherwise, with a short JSON body
naming each part's state, e.g.
C{{"status": "fail", "tree": "ok", "directory": "unavailable"}}.  Details
(paths, server addresses) go to the log, not to the public answer.
"""

import json
import os
import secrets

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.filepath import FilePath
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from fbtwist.directory.filters import equalityFilter
from fbtwist.errors import DirectoryUnavailable
from fbtwist.web.responses import isGone

#: The login searched for; the search only has to be answered.
PROBE_LOGIN = "fbtwist-health-probe"

log = Logger()


def checkTreeWritable(root: FilePath) -> str:
    """
    Create, write and remove a hidden temporary file in C{root} (named like
    the store's temporary files, so a crash leaves nothing the store would
    not clean up).

    @return: C{"ok"} or C{"not writable"}.
    """
    probe = os.path.join(root.path, ".healthz." + secrets.token_hex(6) + ".tmp")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, b"ok")
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as e:
        log.warn("health: the calendar tree {root} is not writable: {reason}", root=root.path, reason=e.strerror)
        return "not writable"
    return "ok"


async def checkDirectory(directory) -> str:
    """
    @return: C{"ok"} when the directory answers a search, C{"unavailable"}
        when it cannot be reached, C{"error"} when it answers with an error.
    """
    try:
        await directory.search(equalityFilter(directory.url.attribute, PROBE_LOGIN), ["1.1"])
    except DirectoryUnavailable:
        # The directory has logged why, naming its server.
        return "unavailable"
    except Exception as e:
        log.warn("health: the directory {server} answered with an error: {error}",
                 server=getattr(directory, "server", "?"), error=repr(e))
        return "error"
    return "ok"


async def checkHealth(root: FilePath, directory) -> dict:
    """
    @return: C{status} (C{"ok"} or C{"fail"}) and each part's state.
    """
    parts = {"tree": checkTreeWritable(root), "directory": await checkDirectory(directory)}
    status = "ok" if all(v == "ok" for v in parts.values()) else "fail"
    return {"status": status, **parts}


class HealthResource(Resource):
    """
    C{/healthz}.

    Checks run at most once per C{maxAge} seconds: requests arriving while
    a check runs, or soon after, share its answer, so that a flood of
    probes cannot become a flood of directory searches.
    """

    isLeaf = True

    def __init__(self, root: FilePath, directory, clock=None, maxAge: float = 1.0):
        super().__init__()
        if clock is None:
            from twisted.internet import reactor as clock
        self.root = root
        self.directory = directory
        self.clock = clock
        self.maxAge = maxAge
        self._last = None
        self._lastAt = 0.0
        self._waiting = None

    def check(self) -> defer.Deferred:
        """
        @return: A Deferred firing with the result of L{checkHealth}, fresh
            or at most C{maxAge} seconds old.
        """
        if self._last is not None and self.clock.seconds() - self._lastAt < self.maxAge:
            return defer.succeed(self._last)
        d = defer.Deferred()
        if self._waiting is not None:
            self._waiting.append(d)
            return d
        self._waiting = [d]

        def failed(failure):
            log.failure("health check failed", failure)
            return {"status": "fail", "tree": "unknown", "directory": "unknown"}

        def done(result):
            self._last, self._lastAt = result, self.clock.seconds()
            waiting, self._waiting = self._waiting, None
            for w in waiting:
                w.callback(result)

        defer.Deferred.fromCoroutine(checkHealth(self.root, self.directory)).addErrback(failed).addCallback(done)
        return d

    def render_GET(self, request):
        def answer(result):
            if isGone(request):
                return
            body = json.dumps(result).encode("ascii") + b"\n"
            request.setResponseCode(200 if result["status"] == "ok" else 503)
            request.setHeader(b"Content-Type", b"application/json")
            request.setHeader(b"Cache-Control", b"no-store")
            request.setHeader(b"Content-Length", b"%d" % len(body))
            request.write(body)
            request.finish()

        self.check().addCallback(answer)
        return NOT_DONE_YET
