"""
Lookups of addresses of other organisations, on the web.

The visibility decision (L{fbtwist.access.visibility}) fetches them
(L{fbtwist.remote.source}) where a name is nobody's here and is an address
of a federated domain, or a group is named C{cn@domain}; they are answered
like local ones: the same query (ranges, formats, C{FBTYPE} styles), the
same clipping and the same public view.  What differs is said in headers
and statuses:

  - an answer given from the cache after its freshness ran out, because the
    other server cannot be asked, carries C{Warning: 110 - "Response is
    Stale"} and C{X-Fbtwist-Stale: 1} (L{markStale});
  - when that server cannot be asked and nothing is left to give: 503 with
    C{Retry-After} (L{fbtwist.remote.source.RemoteUnavailable} is a domain
    error saying so);
  - when it says the person has nothing (404, 410), or the address is of
    no configured domain: the same 404, after the same delay, as a local
    miss.
"""

from typing import Awaitable

from fbtwist.access.visibility import HIDDEN
from fbtwist.remote.source import RemoteUnavailable

#: The headers of a stale answer.
STALE_HEADERS = ((b"Warning", b'110 - "Response is Stale"'), (b"X-Fbtwist-Stale", b"1"))


def markStale(request) -> None:
    """
    Say in C{request}'s answer that it is an expired answer of another
    organisation's.
    """
    for header, value in STALE_HEADERS:
        request.setHeader(header, value)


async def unlessUnavailable(answer: Awaitable):
    """
    C{answer}, or L{HIDDEN} when another organisation's server cannot be
    asked (where one person's times are part of a larger answer: the
    page).
    """
    try:
        return await answer
    except RemoteUnavailable:
        return HIDDEN
