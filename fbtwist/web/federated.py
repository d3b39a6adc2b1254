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

The lookup resource calls L{answer} where a name is not one of ours, and
for a group named C{cn@domain} (another organisation's group, fetched from
the domain's C{--federate-group} template).
"""

import math
from typing import List, Optional

from twisted.web import http

from fbtwist.calendar import freebusy
from fbtwist.calendar.freebusy import FreeBusy, Period, TimeRange
from fbtwist.errors import NotFound
from fbtwist.remote.source import RemoteFreeBusy, RemoteUnavailable, domainOf
from fbtwist.web.responses import HTTPError

#: The headers of a stale answer.
STALE_HEADERS = ((b"Warning", b'110 - "Response is Stale"'), (b"X-Fbtwist-Stale", b"1"))


def isFederated(lookup, name: str) -> bool:
    """
    Whether C{name} may be another organisation's: federation is
    configured and C{name} is an address.
    """
    return lookup.settings.federation is not None and "@" in name


def isFederatedGroup(lookup, cn: str) -> bool:
    """
    Whether C{cn} names another organisation's group: C{cn@domain}, the
    domain having a group template.
    """
    federation = lookup.settings.federation
    return federation is not None and domainOf(cn) in federation.groupTemplates


async def fetch(lookup, name: str, group: bool = False, timeRange=None) -> Optional[RemoteFreeBusy]:
    """
    @param group: Whether C{name} is a group's (C{cn@domain}), whose
        free/busy is asked for C{timeRange}.
    @return: C{name}'s free/busy from elsewhere, or C{None} when there is
        none (not federated, or the other server says so).
    @raise HTTPError: 503 when the other server cannot be asked.
    """
    federation = lookup.settings.federation
    try:
        return await (federation.lookupGroup(name, timeRange) if group else federation.lookup(name))
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


async def answer(lookup, request, name: str, query, group: bool = False) -> None:
    """
    Answer a lookup of C{name}, an address that is not ours (with
    C{group}, a group's: C{/calendar/group/cn@domain.vfb}).
    """
    remote = await fetch(lookup, name, group, query.range)
    if remote is None:
        return await lookup._notPublished(request, f"the group {name}" if group else name)
    if remote.stale:
        for header, value in STALE_HEADERS:
            request.setHeader(header, value)
    owner = f"group-{name.lower()}" if group else name.lower()
    lookup._serve(request, query, clip(remote.freeBusy, query.range), owner, remote.etag, remote.modified)


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
