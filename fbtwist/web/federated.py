"""
Lookups of addresses of other organisations (L{fbtwist.remote.source}),
answered like local ones: the same query (ranges, formats, C{FBTYPE}
styles), the same clipping and the same public view, rendered by
L{fbtwist.web.lookup.LookupResource._serve}.

What differs is said in headers and statuses:

  - an answer given from the cache after its freshness ran out, because the
    other server cannot be asked, carries C{Warning: 110 - "Response is
    Stale"} and C{X-Fbtwist-Stale: 1};
  - when that server cannot be asked and nothing is left to give: 503 with
    C{Retry-After};
  - when it says the person has nothing (404, 410), or the address is of
    no configured domain: the same 404, after the same delay, as a local
    miss.

The lookup resource calls L{answer} from one place, where a name is not
one of ours.
"""

import math
from typing import List, Optional

from twisted.web import http

from fbtwist.calendar import freebusy
from fbtwist.calendar.freebusy import FreeBusy, Period, TimeRange
from fbtwist.errors import NotFound
from fbtwist.remote.source import RemoteFreeBusy, RemoteUnavailable
from fbtwist.web.responses import HTTPError

#: The headers of a stale answer.
STALE_HEADERS = ((b"Warning", b'110 - "Response is Stale"'), (b"X-Fbtwist-Stale", b"1"))


def isFederated(lookup, name: str) -> bool:
    """
    Whether C{name} may be another organisation's: federation is
    configured and C{name} is an address.
    """
    return lookup.settings.federation is not None and "@" in name


async def fetch(lookup, name: str) -> Optional[RemoteFreeBusy]:
    """
    @return: C{name}'s free/busy from elsewhere, or C{None} when there is
        none (not federated, or the other server says so).
    @raise HTTPError: 503 when the other server cannot be asked.
    """
    try:
        return await lookup.settings.federation.lookup(name)
    except NotFound:
        return None
    except RemoteUnavailable as e:
        raise HTTPError(http.SERVICE_UNAVAILABLE, e.reason,
                        [(b"Retry-After", b"%d" % max(1, math.ceil(e.retryAfter)))]) from None


def clip(fb: FreeBusy, timeRange: Optional[TimeRange]) -> FreeBusy:
    """
    C{fb} within C{timeRange}, as a local free/busy file is clipped.
    """
    if timeRange is None:
        return fb
    return FreeBusy(freebusy.clipPeriods(fb.periods, timeRange.start, timeRange.end),
                    timeRange.start, timeRange.end, fb.organizer)


async def answer(lookup, request, name: str, query) -> None:
    """
    Answer a lookup of C{name}, an address that is not ours.
    """
    remote = await fetch(lookup, name)
    if remote is None:
        return await lookup._notPublished(request, name)
    if remote.stale:
        for header, value in STALE_HEADERS:
            request.setHeader(header, value)
    lookup._serve(request, query, clip(remote.freeBusy, query.range), name.lower(), remote.etag, remote.modified)


async def busyTimes(lookup, name: str, timeRange: TimeRange) -> Optional[List[Period]]:
    """
    The busy periods of C{name}, an address that is not ours, within
    C{timeRange} (for the page and group merges); C{None} when there are
    none to show.
    """
    try:
        remote = await fetch(lookup, name)
    except HTTPError:
        return None
    if remote is None:
        return None
    return freebusy.mergePeriods(clip(remote.freeBusy, timeRange).busy())
