"""
Free/busy from elsewhere: fetching other organisations' free/busy and users'
own calendar feeds over HTTP(S), safely, and caching what was fetched.

  - L{fbtwist.remote.fetcher}: one bounded, validated fetch (L{Fetcher});
  - L{fbtwist.remote.connect} and L{fbtwist.remote.policy}: where a fetch may
    connect (resolved and checked by fbtwist, pinned to the checked address);
  - L{fbtwist.remote.cache}: freshness, revalidation, stale answers during
    outages, remembered 404s, coalescing (L{FetchCache});
  - L{fbtwist.remote.federation}: the operator's configuration (domain to
    URL template);
  - L{fbtwist.remote.credentials}, L{fbtwist.remote.calendars},
    L{fbtwist.remote.metrics}: credentials, body validators, counters.
"""

from fbtwist.remote.cache import FetchCache
from fbtwist.remote.fetcher import Fetcher, FetchError, FetchResult

__all__ = ["FetchCache", "Fetcher", "FetchError", "FetchResult"]
