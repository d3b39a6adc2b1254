"""
How fbtwist answers over HTTP: domain errors as status codes (each
error's C{httpStatus}), short plain-text error bodies, running a
request's coroutine, and serving a calendar file with validators.
"""

import math
from typing import Callable, Coroutine, Iterable, Optional, Tuple

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.server import NOT_DONE_YET

from fbtwist import errors
from fbtwist.access.preconditions import etagMatches
from fbtwist.logs import RareWarning

log = Logger()

#: At most one warning per this many seconds about running out of file
#: descriptors (it comes with every request while it lasts).
DESCRIPTOR_WARNING_INTERVAL = 60.0


class HTTPError(Exception):
    """
    A protocol-level answer other than success, raised inside a request's
    coroutine.
    """

    def __init__(self, code: int, reason: str, headers: Iterable[Tuple[bytes, bytes]] = ()):
        super().__init__(code, reason)
        self.code = code
        self.reason = reason
        self.headers = list(headers)


def httpErrorFor(error: BaseException) -> Optional[HTTPError]:
    """
    @return: The HTTP answer for a domain error (its C{httpStatus}, and
        C{Retry-After} from its C{retryAfter}), or C{None} for an error
        fbtwist does not know (a bug: answered 500 and logged).
    """
    if isinstance(error, HTTPError):
        return error
    if errors.descriptorError(error) is not None:
        error = errors.descriptorError(error)
        _descriptorWarning.warn()
    if not isinstance(error, errors.FreeBusyError) or error.httpStatus is None:
        return None
    headers = []
    if error.retryAfter is not None:
        headers.append((b"Retry-After", b"%d" % max(1, math.ceil(error.retryAfter))))
    return HTTPError(error.httpStatus, error.reason, headers)


_descriptorWarning = RareWarning(
    "out of file descriptors: answering 503 ({count} since the last warning; raise LimitNOFILE or ulimit -n)",
    DESCRIPTOR_WARNING_INTERVAL, log=log, fbEvent="out-of-descriptors", protocol="http",
)


def writeError(request, code: int, reason: str, headers: Iterable[Tuple[bytes, bytes]] = ()) -> None:
    """
    Finish C{request} with C{code} and C{reason} as a one-line text body
    (nothing when the client has gone away meanwhile).
    """
    if isGone(request):
        return
    request.setResponseCode(code)
    for name, value in headers:
        request.setHeader(name, value)
    body = (reason.rstrip(".") + ".\n").encode("utf-8")
    request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
    request.setHeader(b"Content-Length", b"%d" % len(body))
    request.write(body)
    request.finish()


def writeNotAllowed(request, allowed: Iterable[str], reason: str) -> None:
    """
    Finish C{request} with 405, the C{allowed} methods in C{Allow} and
    C{reason} as the body: the one answer to a method a resource does not
    take (rather than Twisted's 501 for methods it does not know).
    """
    request.setHeader(b"Allow", ", ".join(allowed).encode("ascii"))
    writeError(request, http.NOT_ALLOWED, reason)


def isGone(request) -> bool:
    """
    Whether C{request} was finished or its client went away (which
    L{fbtwist.web.site.BoundedRequest} notes in C{clientGone}).
    """
    return request.finished or getattr(request, "clientGone", False)


def _answerFailure(request, failure) -> None:
    """
    Answer a request whose work failed: from the error table, or 500 (and
    a log entry) for anything unexpected.
    """
    if isGone(request):
        # An answer nobody reads: only a bug is worth a log entry.
        if not failure.check(defer.CancelledError) and httpErrorFor(failure.value) is None:
            log.failure("request failed after its client went away", failure)
        return
    answer = httpErrorFor(failure.value)
    if answer is None:
        log.failure("internal error answering {method} {uri}", failure, method=request.method, uri=request.uri)
        answer = HTTPError(http.INTERNAL_SERVER_ERROR, "internal server error")
    writeError(request, answer.code, answer.reason, answer.headers)


def _finish(request) -> None:
    if not isGone(request):
        request.finish()


def renderAsync(request, coroutine):
    """
    Run a request's coroutine: errors become answers from the error table,
    anything unexpected is logged and answered 500, and the request is
    finished once the coroutine returns.

    @return: C{NOT_DONE_YET}, for a C{render} method to return.
    """
    defer.Deferred.fromCoroutine(coroutine).addCallbacks(
        lambda _: _finish(request), lambda failure: _answerFailure(request, failure)
    ).addErrback(lambda f: log.failure("could not answer", f))
    return NOT_DONE_YET


def renderSoon(request, answer: Callable[[object], Optional[Coroutine]]):
    """
    Answer C{request} with C{answer(request)}, which either answers at once
    (and returns C{None}) or returns a coroutine that finishes the answer,
    run by L{renderAsync}.  Errors are answered as L{renderAsync} answers
    them.  What can be answered at once (a lookup whose name and file are
    known) is spared the cost of a coroutine and its Deferred.

    @return: C{NOT_DONE_YET}, for a C{render} method to return.
    """
    try:
        pending = answer(request)
    except Exception:
        _answerFailure(request, Failure())
        return NOT_DONE_YET
    if pending is not None:
        return renderAsync(request, pending)
    _finish(request)
    return NOT_DONE_YET


CALENDAR_TYPE = b"text/calendar; charset=utf-8"


def _setLastModified(request, when: int):
    """
    C{request.setLastModified(when)}, ignoring an C{If-Modified-Since}
    that is not a date, as RFC 9110 (13.1.3) says: Twisted's does for what
    its date parser refuses with C{ValueError}, but the parser fails with
    C{IndexError} on an empty date (C{If-Modified-Since: ;}, whose part
    before the C{;} it parses), which would answer 500.  C{Last-Modified}
    is set before the parse.
    """
    try:
        return request.setLastModified(when)
    except IndexError:
        return None


def serveCalendar(request, data: bytes, etag: str, modified: float, contentType: bytes = CALENDAR_TYPE) -> None:
    """
    Answer a GET or HEAD with a calendar file and its validators, or 304
    when the client's copy is current (C{If-None-Match} wins over
    C{If-Modified-Since}).

    @param contentType: The media type (jCal is C{application/calendar+json}).
    """
    request.setHeader(b"Content-Type", contentType)
    request.setHeader(b"ETag", etag.encode("ascii"))
    request.setHeader(b"Cache-Control", b"no-cache")
    ifNoneMatch = request.getHeader(b"If-None-Match")
    if ifNoneMatch is not None:
        request.lastModified = int(modified)  # sent as Last-Modified
        if etagMatches(ifNoneMatch, etag, weak=True):
            request.setResponseCode(http.NOT_MODIFIED)
            return
    elif _setLastModified(request, int(modified)) == http.CACHED:
        return
    request.setHeader(b"Content-Length", b"%d" % len(data))
    request.write(data)
