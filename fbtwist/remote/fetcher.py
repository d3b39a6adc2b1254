"""
Fetching a calendar from another server, safely.

A lookup waits for this fetch, and the URL may come from a partner's
configuration, a directory attribute or a user, so the fetch is bounded and
suspicious by design:

  - B{Where}: only C{http} and C{https}; the name is resolved by fbtwist and
    the connection pinned to a checked address (L{fbtwist.remote.connect},
    L{fbtwist.remote.policy}), for the first request and each redirect;
    redirects are followed here, at most C{maxRedirects}, never to another
    scheme nor from HTTPS down to HTTP, and a loop is recognised as one.
  - B{Trust}: HTTPS certificates are verified (chain and subjectAltName,
    failing closed); credentials go only to the origin of the URL they were
    given for, never to a redirect's other origin; cookies are never kept.
  - B{Cost}: one deadline for the whole fetch (waiting for a slot,
    connecting, headers and body), a size limit enforced while the body
    streams in, and at most C{maxConcurrent} fetches at once, at most
    C{maxPerOrigin} to one origin.
  - B{Content}: only a 2xx answer whose body passes the caller's
    C{validate} is a result.

Each failure is a L{FetchError} whose C{reason} is one short phrase
(C{timeout}, C{too-large}, C{forbidden-address}, C{tls}, C{http-404}, ...)
for logs and metrics, and whose message is one sentence.  Neither names more
of the URL than its origin: a calendar feed's path often is its password.
"""

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Tuple

from hyperlink import URL
from OpenSSL import SSL
from twisted.internet import defer
from twisted.internet import error as netError
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.web import client as webClient
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH

from fbtwist import __version__
from fbtwist.compat.twisted import httpClientParseError
from fbtwist.remote.connect import FailClosedTLSPolicy, NameNotResolved, PinnedEndpointFactory, TooMuchData
from fbtwist.remote.credentials import Credentials
from fbtwist.remote.metrics import IRemoteMetrics, NoMetrics
from fbtwist.remote.policy import AddressPolicy, ForbiddenAddress, parseAddress
from fbtwist.tlsclient import ServerCertificateRefused

#: Statuses whose Location is followed.
REDIRECTS = frozenset({301, 302, 303, 307, 308})

Origin = Tuple[str, str, int]

#: What a connection may receive besides the body (status line, headers,
#: chunk framing), in bytes.
HEADER_ALLOWANCE = 64 << 10


class FetchError(Exception):
    """
    A fetch failed.

    @ivar reason: One short phrase, the same for every failure of a kind
        (for logs and metrics): C{bad-url}, C{dns}, C{forbidden-address},
        C{connect}, C{tls}, C{timeout}, C{bad-response},
        C{connection-lost}, C{redirect-loop}, C{too-many-redirects},
        C{bad-redirect}, C{http-NNN}, C{too-large}, C{not-calendar},
        C{internal-error}.
    @ivar message: One sentence saying what happened.
    """

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class FetchResult:
    """
    What a fetch brought back.

    @ivar url: The URL the body came from (after redirects).
    @ivar status: 200 (or another 2xx), or 304 when a conditional fetch
        found the cached copy still current (then C{body} is empty).
    @ivar value: What C{validate} returned for the body (a parsed calendar,
        say), or C{None}.
    @ivar fetchedAt: When the answer arrived, in the reactor's seconds.
    @ivar stale: Whether a cache gave this answer after its freshness ran
        out, because the origin could not be asked.
    """

    url: str
    status: int
    body: bytes
    fetchedAt: float
    etag: Optional[str] = None
    lastModified: Optional[str] = None
    cacheControl: Optional[str] = None
    age: Optional[str] = None
    value: Any = field(default=None, compare=False)
    stale: bool = False

    @property
    def notModified(self) -> bool:
        return self.status == 304


def parseURL(text: str) -> URL:
    """
    A URL fbtwist may fetch: absolute, C{http} or C{https}, with a host and
    no user name or password in it.

    @return: It as a URI (an international host in its ASCII form), without
        its fragment.
    @raise FetchError: With reason C{bad-url} otherwise.
    """
    try:
        url = URL.from_text(text)
        address = parseAddress(url.host)
        if address is None:
            url = url.to_uri()
        else:
            # hyperlink's to_uri would IDNA-encode an IPv6 address, and fail.
            url = url.replace(host="address.invalid").to_uri().replace(host=str(address))
    except Exception:
        raise FetchError("bad-url", "the URL does not parse") from None
    if url.scheme not in ("http", "https"):
        raise FetchError("bad-url", "only http and https URLs are fetched")
    if not url.host:
        raise FetchError("bad-url", "the URL has no host")
    if url.userinfo:
        raise FetchError("bad-url", "the URL holds a user name or password: give credentials in a file instead")
    try:
        url.to_text().encode("ascii")
    except UnicodeEncodeError:
        raise FetchError("bad-url", "the URL does not parse") from None
    return url.replace(fragment="")


def originOf(url: URL) -> Origin:
    """
    @return: C{(scheme, host, port)}: where a request for C{url} goes.
    """
    return (url.scheme, url.host.lower(), url.port)


def describeOrigin(url: URL) -> str:
    """
    @return: The origin of C{url} as text (C{https://fb.example}), for a
        message: the rest of a URL may be secret.
    """
    return url.replace(path=(), query=(), fragment="", rooted=False).to_text().rstrip("/")


def oneLine(text: str, limit: int = 200) -> str:
    return " ".join(str(text).split())[:limit]


def _firstHeader(headers, name: bytes) -> Optional[str]:
    values = headers.getRawHeaders(name)
    return values[0].decode("latin-1") if values else None


class _BodyReader(Protocol):
    """
    Collects a response's body into L{finished}, stopping the connection
    as soon as it passes C{limit} bytes.
    """

    def __init__(self, limit: int, origin: str):
        self.limit = limit
        self.origin = origin
        self.parts = []
        self.size = 0
        self.finished = defer.Deferred(self._cancel)

    def dataReceived(self, data: bytes):
        if self.finished.called:
            return
        self.size += len(data)
        if self.size > self.limit:
            self.parts = []
            self.transport.stopProducing()
            self.finished.errback(_tooLarge(self.origin, self.limit))
        else:
            self.parts.append(data)

    def _cancel(self, _):
        self.parts = []
        if self.transport is not None:
            self.transport.stopProducing()

    def connectionLost(self, reason):
        if self.finished.called:
            return
        if reason.check(webClient.ResponseDone, PotentialDataLoss):
            self.finished.callback(b"".join(self.parts))
        else:
            self.finished.errback(reason)


def _tooLarge(origin: str, limit: Optional[int]) -> FetchError:
    if limit is None:
        return FetchError("too-large", f"the answer from {origin} is too large (its headers alone)")
    return FetchError("too-large", f"the answer from {origin} is larger than the limit of {limit} bytes")


class _Discard(Protocol):
    """
    Drops a body that is not wanted (a redirect's, an error's, one too
    large) by closing the connection, as soon as the response has handed
    it over: fetches never reuse connections.
    """

    lost = False

    def stop(self):
        if not self.lost and self.transport is not None:
            self.transport.stopProducing()

    def connectionLost(self, reason):
        self.lost = True


def _discard(response, reactor) -> None:
    protocol = _Discard()
    response.deliverBody(protocol)
    reactor.callLater(0, protocol.stop)


def _reasons(failure) -> list:
    """
    @return: The failures a Twisted web client error wraps (or C{[]}).
    """
    return list(getattr(failure.value, "reasons", None) or [])


def explain(failure, origin: str) -> Optional[FetchError]:
    """
    @return: The L{FetchError} a fetch's failure means, or C{None} when it
        is not one this module expects (a bug, to be logged in full).
    """
    if failure.check(FetchError):
        return failure.value
    if failure.check(ForbiddenAddress):
        return FetchError("forbidden-address", f"refused to connect to {origin}: {failure.getErrorMessage()}")
    if failure.check(NameNotResolved, netError.DNSLookupError):
        return FetchError("dns", f"the host of {origin} does not resolve")
    if failure.check(netError.TimeoutError):
        return FetchError("timeout", f"connecting to {origin} took too long")
    if failure.check(netError.ConnectError):
        return FetchError("connect", f"cannot connect to {origin} ({oneLine(failure.getErrorMessage())})")
    inner = [failure] + _reasons(failure)
    for each in inner:
        if each.check(TooMuchData):
            return _tooLarge(origin, None)
        if each.check(ServerCertificateRefused):
            # VerifyingClientTLS's hint names the directory's CA option.
            why = each.getErrorMessage().replace(" (see --ldap-ca)", "")
            return FetchError("tls", f"{origin} was refused: {why}")
        if each.check(SSL.Error):
            return FetchError("tls", f"the TLS handshake with {origin} failed")
    if failure.check(webClient.ResponseNeverReceived, webClient.ResponseFailed,
                     webClient.RequestTransmissionFailed):
        if any(each.check(httpClientParseError()) for each in inner):
            return FetchError("bad-response", f"{origin} did not answer in HTTP")
        return FetchError("connection-lost", f"the connection to {origin} was lost before the answer was complete")
    if failure.check(netError.ConnectionLost, netError.ConnectionDone):
        return FetchError("connection-lost", f"the connection to {origin} was lost before the answer was complete")
    return None


class Fetcher:
    """
    Fetches calendars from other servers (see the module's docstring for
    the rules).

    @param reactor: Provides C{IReactorTCP} and C{IReactorTime}, and
        C{IReactorPluggableNameResolver} unless C{resolver} is given.
    @param resolver: The L{twisted.internet.interfaces.IHostnameResolver}
        names are resolved with (the reactor's by default).
    @param policy: Which addresses may be connected to (public ones only,
        by default).
    @param trustRoot: The CAs HTTPS certificates must chain to (the
        platform's by default).
    @param timeout: Seconds the whole fetch may take.
    @param maxSize: The largest body accepted, in bytes.
    @param maxRedirects: How many redirects are followed.
    @param maxConcurrent: How many fetches may run at once; more wait.
    @param maxPerOrigin: How many of them may go to one origin.
    @param validate: Called with a body; returns what the L{FetchResult}
        keeps as C{value}, or raises L{ValueError} (or an fbtwist error)
        when the body is not what was wanted.  C{None} accepts any body.
        It runs in the reactor's thread; one that may be slow can return a
        L{twisted.internet.defer.Deferred} (from C{deferToThreadPool}) and
        fail it the same way; the deadline covers it too.
    @param metrics: Told of every fetch and failure.
    """

    log = Logger()

    def __init__(self, reactor, *, resolver=None, policy: AddressPolicy = None, trustRoot=None,
                 timeout: float = 2.0, maxSize: int = 1 << 20, maxRedirects: int = 5, maxConcurrent: int = 16,
                 maxPerOrigin: int = 4, validate: Optional[Callable[[bytes], Any]] = None,
                 metrics: IRemoteMetrics = None):
        self.reactor = reactor
        self.timeout = timeout
        self.maxSize = maxSize
        self.maxRedirects = maxRedirects
        self.maxPerOrigin = maxPerOrigin
        self.validate = validate
        self.metrics = metrics if metrics is not None else NoMetrics()
        self._slots = defer.DeferredSemaphore(maxConcurrent)
        self._originSlots: Dict[Origin, defer.DeferredSemaphore] = {}
        endpoints = PinnedEndpointFactory(
            reactor, resolver if resolver is not None else reactor.nameResolver,
            policy if policy is not None else AddressPolicy(), FailClosedTLSPolicy(trustRoot), timeout,
            maxSize + HEADER_ALLOWANCE)
        # No connection is reused: each was checked for one fetch, and an
        # idle pool would outlive the deadline.
        pool = webClient.HTTPConnectionPool(reactor, persistent=False)
        # Twisted's agent itself, not treq's client over it: treq turns
        # every URL into a URI with hyperlink, which fails on an IPv6
        # address; and the agent keeps no cookies.
        self._agent = webClient.Agent.usingEndpointFactory(reactor, endpoints, pool=pool)

    def fetch(self, url: str, credentials: Optional[Credentials] = None, *, validate=None,
              etag: Optional[str] = None, lastModified: Optional[str] = None,
              domain: Optional[str] = None) -> defer.Deferred:
        """
        Fetch C{url}.

        @param credentials: Sent (HTTP Basic) to C{url}'s origin only.
        @param validate: Overrides the fetcher's C{validate} for this fetch.
        @param etag: With C{lastModified}: the cached copy's validators; when
            given, the fetch is conditional and may answer 304.
        @param domain: Names the fetch in metrics (C{url}'s host when
            C{None}).
        @return: A L{twisted.internet.defer.Deferred} firing with a L{FetchResult}, or
            failing with a L{FetchError}.
        """
        try:
            target = parseURL(url)
        except FetchError as e:
            self.metrics.failure(domain or "", e.reason)
            return defer.fail(e)
        domain = domain or target.host
        origin = describeOrigin(target)
        self.metrics.fetch(domain)

        async def run():
            return await self._fetch(target, credentials, validate or self.validate, etag, lastModified)

        def timedOut(result, timeout):
            raise FetchError("timeout", f"{origin} did not answer completely within {timeout:g} seconds")

        def failed(failure):
            if failure.check(defer.CancelledError):
                return failure
            problem = explain(failure, origin)
            if problem is None:
                self.log.failure("Unexpected failure fetching from {origin}", failure, origin=origin)
                problem = FetchError("internal-error", f"fetching from {origin} failed unexpectedly")
            self.metrics.failure(domain, problem.reason)
            self.log.info("Fetching from {origin} failed: {reason} ({message})", origin=origin,
                          reason=problem.reason, message=problem.message)
            raise problem

        d = defer.Deferred.fromCoroutine(run())
        d.addTimeout(self.timeout, self.reactor, onTimeoutCancel=timedOut)
        d.addErrback(failed)
        return d

    async def _fetch(self, url: URL, credentials, validate, etag, lastModified) -> FetchResult:
        # The origin's slot first: a fetch waiting for a busy origin must not
        # hold one of the overall slots that fetches elsewhere could use.
        origin = originOf(url)
        originSlots = self._originSlots.get(origin)
        if originSlots is None:
            originSlots = self._originSlots[origin] = defer.DeferredSemaphore(self.maxPerOrigin)
        try:
            await originSlots.acquire()
            try:
                await self._slots.acquire()
                try:
                    return await self._follow(url, credentials, validate, etag, lastModified)
                finally:
                    self._slots.release()
            finally:
                originSlots.release()
        finally:
            if originSlots.tokens == originSlots.limit and not originSlots.waiting:
                self._originSlots.pop(origin, None)

    async def _follow(self, url: URL, credentials, validate, etag, lastModified) -> FetchResult:
        first = originOf(url)
        seen = {url.to_text()}
        for hop in range(self.maxRedirects + 1):
            origin = describeOrigin(url)
            headers = {b"User-Agent": [f"fbtwist/{__version__}".encode("ascii")],
                       b"Accept": [b"text/calendar, */*;q=0.1"]}
            if credentials is not None and originOf(url) == first:
                headers[b"Authorization"] = [credentials.authorization()]
            if etag is not None:
                headers[b"If-None-Match"] = [etag.encode("latin-1")]
            if lastModified is not None:
                headers[b"If-Modified-Since"] = [lastModified.encode("latin-1")]
            response = await self._agent.request(b"GET", url.to_text().encode("ascii"), Headers(headers))
            status = response.code
            if status in REDIRECTS:
                location = _firstHeader(response.headers, b"location")
                _discard(response, self.reactor)
                url = self._redirect(url, location, origin)
                if url.to_text() in seen:
                    raise FetchError("redirect-loop", f"{origin} redirects in a loop")
                seen.add(url.to_text())
                continue
            if status == 304 and (etag is not None or lastModified is not None):
                _discard(response, self.reactor)
                return self._result(url, response, b"", None)
            if not 200 <= status < 300:
                _discard(response, self.reactor)
                raise FetchError(f"http-{status}", f"{origin} answered {status}")
            if response.length is not UNKNOWN_LENGTH and response.length > self.maxSize:
                _discard(response, self.reactor)
                raise _tooLarge(origin, self.maxSize)
            reader = _BodyReader(self.maxSize, origin)
            response.deliverBody(reader)
            body = await reader.finished
            value = None
            if validate is not None:
                try:
                    value = validate(body)
                    if isinstance(value, defer.Deferred):
                        value = await value
                except Exception as e:
                    if not isinstance(e, ValueError) and getattr(e, "reason", None) is None:
                        raise
                    why = oneLine(getattr(e, "reason", None) or e)
                    raise FetchError("not-calendar", f"what {origin} answered is not a usable calendar: {why}") \
                        from None
            return self._result(url, response, body, value)
        raise FetchError("too-many-redirects", f"more than {self.maxRedirects} redirects, the last from {origin}")

    def _redirect(self, url: URL, location: Optional[str], origin: str) -> URL:
        if not location:
            raise FetchError("bad-redirect", f"{origin} redirects without saying where to")
        try:
            target = parseURL(url.click(location.strip()).to_text())
        except FetchError as e:
            raise FetchError("bad-redirect", f"{origin} redirects to a URL that is refused: {e.message}") from None
        except Exception:
            raise FetchError("bad-redirect", f"{origin} redirects to a URL that does not parse") from None
        if url.scheme == "https" and target.scheme != "https":
            raise FetchError("bad-redirect", f"{origin} redirects from HTTPS to plain HTTP")
        return target

    def _result(self, url: URL, response, body: bytes, value) -> FetchResult:
        headers = response.headers
        return FetchResult(
            url=url.to_text(), status=response.code, body=body, fetchedAt=self.reactor.seconds(),
            etag=_firstHeader(headers, b"etag"), lastModified=_firstHeader(headers, b"last-modified"),
            cacheControl=", ".join(v.decode("latin-1") for v in headers.getRawHeaders(b"cache-control", [])) or None,
            age=_firstHeader(headers, b"age"), value=value,
        )
