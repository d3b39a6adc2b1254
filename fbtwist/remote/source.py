"""
Free/busy of people elsewhere: the answer to a lookup of an address that is
not ours, fetched from the other organisation's server.

Where a person's free/busy lives comes first from the operator's template
for the address's domain (L{fbtwist.remote.federation}), else from the
person's own URL in a directory entry (RFC 2739's C{calFBURL}, asked for
through C{findURL}, so that this layer needs no directory).  The fetch goes
through a L{FetchCache}: fresh answers come from memory, an outage is
bridged by the last good answer (marked stale), a 404 is remembered.

What a caller gets is a L{RemoteFreeBusy}: the periods and window, as a
published free/busy file gives them, ready for the same public view as a
local answer.
"""

from dataclasses import dataclass
from typing import Awaitable, Callable, Dict, Optional
from urllib.parse import urlencode

from twisted.logger import Logger

from fbtwist.calendar import ical
from fbtwist.calendar.freebusy import FreeBusy, TimeRange, formatUTC
from fbtwist.errors import FreeBusyError, NotFound
from fbtwist.remote.cache import ABSENT, FetchCache
from fbtwist.remote.calendars import freeBusyCalendar
from fbtwist.remote.credentials import Credentials
from fbtwist.remote.federation import FreeBusyTemplate, freeBusyURL, parseDomain, parseFreeBusyURL
from fbtwist.remote.fetcher import FetchError


def readRemoteFreeBusy(body: bytes) -> FreeBusy:
    """
    The validator of federated fetches: a calendar with a C{VFREEBUSY},
    reduced at once to what readers may learn (nothing else is kept).
    """
    return ical.freeBusyOf(freeBusyCalendar(body))[0]


class RemoteUnavailable(FreeBusyError):
    """
    The other organisation's server cannot be asked and no answer of its
    is left to give: try again after C{retryAfter} seconds (HTTP answers
    503 with C{Retry-After}).
    """

    httpStatus = 503
    ftpReply = "421"
    label = "remote-unavailable"
    retryAfter = 60.0

    def __init__(self, reason: str = "", retryAfter: Optional[float] = None):
        super().__init__(reason)
        if retryAfter is not None:
            self.retryAfter = retryAfter


@dataclass(frozen=True)
class RemoteFreeBusy:
    """
    One person's free/busy as fetched from elsewhere.

    @ivar etag: Names this version of the answer (the origin's C{ETag}, or
        the time it arrived).
    @ivar modified: When it was fetched (seconds since the epoch).
    @ivar stale: Whether it is an expired answer given while the origin
        cannot be asked.
    """

    freeBusy: FreeBusy
    etag: str
    modified: float
    stale: bool


def domainOf(address: str) -> Optional[str]:
    """
    @return: The domain of C{name@domain}, in lower case, or C{None} when
        C{address} is not an address.
    """
    name, at, domain = address.rpartition("@")
    if not at or not name:
        return None
    try:
        return parseDomain(domain)
    except ValueError:
        return None


class FederatedFreeBusy:
    """
    Looks up the free/busy of addresses of other organisations.

    @param cache: The L{FetchCache} fetches go through (its validator is
        L{readRemoteFreeBusy}).
    @param templates: The operator's templates, by domain.
    @param credentials: Per-domain credentials for template URLs.
    @param findURL: Given an address, a Deferred or coroutine with the
        person's own free/busy URL from the directory (C{calFBURL}), or
        C{None}; C{None} instead of a callable: none is asked for.
    """

    log = Logger()

    def __init__(self, cache: FetchCache, templates: Dict[str, FreeBusyTemplate],
                 credentials: Optional[Dict[str, Credentials]] = None,
                 findURL: Optional[Callable[[str], Awaitable[Optional[str]]]] = None,
                 groupTemplates: Optional[Dict[str, FreeBusyTemplate]] = None):
        self.cache = cache
        self.templates = dict(templates)
        self.credentials = dict(credentials or {})
        self.findURL = findURL
        #: Where each domain serves its groups' free/busy (%NAME% the
        #: group's name), by domain.
        self.groupTemplates = dict(groupTemplates or {})
        #: L{_templateURL}'s answers by address (the templates and
        #: credentials never change while fbtwist runs), at most
        #: L{_LOCATED_HELD} (then all forgotten).
        self._located: Dict[str, tuple] = {}

    async def lookupGroup(self, address: str, timeRange: Optional[TimeRange] = None) -> Optional[RemoteFreeBusy]:
        """
        The merged free/busy of the group C{cn@domain} of another
        organisation, from the domain's group template; for C{timeRange}
        when given (its C{start} and C{end} are added to the URL: a group's
        answer covers only the range it is asked for, the other server's
        default window otherwise).

        @return: It, or C{None} when the domain has no group template.
        @raise NotFound: See L{lookup}.
        @raise RemoteUnavailable: See L{lookup}.
        """
        domain = domainOf(address)
        if domain is None:
            return None
        try:
            url = freeBusyURL(address, self.groupTemplates)
        except ValueError:
            return None
        if url is None:
            return None
        if timeRange is not None:
            url += ("&" if "?" in url else "?") + urlencode(
                {"start": formatUTC(timeRange.start), "end": formatUTC(timeRange.end)})
        return await self._fetch(url, self.credentials.get(domain), domain, address)

    def _templateURL(self, address: str):
        """
        @return: C{(url, credentials, domain)} for C{address} from its
            domain's template; C{(None, None, domain)} when the domain has
            none; C{None} when C{address} is no address or cannot stand in
            a URL.
        """
        domain = domainOf(address)
        if domain is None:
            return None
        try:
            url = freeBusyURL(address, self.templates)
        except ValueError:
            return None
        if url is None:
            return None, None, domain
        return url, self.credentials.get(domain), domain

    async def locate(self, address: str):
        """
        @return: C{(url, credentials, domain)} for C{address}, or C{None}
            when its domain is not federated and the directory names no URL.
        """
        found = self._templateURL(address)
        if found is None:
            return None
        url, credentials, domain = found
        if url is not None:
            return found
        if self.findURL is None:
            return None
        found = await self.findURL(address)
        if not found:
            return None
        try:
            url = parseFreeBusyURL(found)
        except ValueError as e:
            self.log.warn("the directory's free/busy URL for an address at {domain} is refused: {why}",
                          domain=domain, why=str(e))
            return None
        # Credentials belong to the configured template's server only.
        return url, None, domain

    async def lookup(self, address: str) -> Optional[RemoteFreeBusy]:
        """
        The free/busy of C{address}.

        @return: It, or C{None} when C{address} is not federated.
        @raise NotFound: When the other server says there is none (404/410).
        @raise RemoteUnavailable: When it cannot be asked and no stale
            answer is left (or it answers with something unusable).
        """
        where = await self.locate(address)
        if where is None:
            return None
        url, credentials, domain = where
        return await self._fetch(url, credentials, domain, address)

    def lookupNow(self, address: str) -> Optional[RemoteFreeBusy]:
        """
        L{lookup}'s answer when it can be given without waiting: a fresh
        answer in memory for an address of a domain with a template (most
        lookups of other organisations' addresses); else C{None}, then ask
        L{lookup}.
        """
        found = self._freshNow(address)
        return None if found is None else _remoteFreeBusy(*found)

    def freshNow(self, address: str):
        """
        A token of the fresh answer L{lookupNow} gives for C{address} (the
        fetch cache's entry it is made of: L{FetchCache.freshEntry}), or
        C{None} when L{lookupNow} has none; not counted as a hit of the
        cache.  While L{stillFresh} says so of it, the answer made of it
        is the one L{lookupNow} would make again.
        """
        located = self._locatedURL(address)
        if located is None:
            return None
        url, credentials, _ = located
        return self.cache.freshEntry(url, credentials)

    def stillFresh(self, token) -> bool:
        """
        Whether the answer of C{token} (from L{freshNow}) is still the
        fresh one in the cache: then it is used again, a hit of the cache
        (L{FetchCache.stillFresh}).
        """
        return self.cache.stillFresh(token)

    def _locatedURL(self, address: str):
        # (url, credentials, domain) of a templated address, or None.
        found = self._located.get(address)
        if found is None:
            if len(self._located) >= _LOCATED_HELD:
                self._located.clear()
            found = self._located[address] = (self._templateURL(address),)
        found = found[0]
        if found is None or found[0] is None:
            return None
        return found

    def _freshNow(self, address: str):
        # (url, fresh result in the cache: a hit, counted) of a templated address, or None.
        located = self._locatedURL(address)
        if located is None:
            return None
        url, credentials, domain = located
        result = self.cache.fresh(url, credentials, domain)
        return None if result is None else (url, result)

    async def _fetch(self, url: str, credentials, domain: str, address: str) -> RemoteFreeBusy:
        try:
            result = await self.cache.get(url, credentials, domain=domain)
        except FetchError as e:
            if e.reason in ABSENT:
                raise NotFound(f"No free/busy times published for {address}") from None
            raise RemoteUnavailable(
                f"the free/busy server of {domain} cannot be asked ({e.reason})", self.cache.retryAfter
            ) from None
        return _remoteFreeBusy(url, result)


#: How many addresses' URLs L{FederatedFreeBusy} holds.
_LOCATED_HELD = 4096


def _remoteFreeBusy(url: str, result) -> RemoteFreeBusy:
    etag = result.etag or f"{result.fetchedAt:.6f}"
    return RemoteFreeBusy(result.value, f"{url}\0{etag}", result.fetchedAt, result.stale)
