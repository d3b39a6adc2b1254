"""
What the remote fetching layer reports for metrics: a small callback
interface, so that the layer needs no metrics library, and tests and the
service can each plug in their own counter.

Every call names the I{domain} the fetch was for (the federation domain, or
the URL's host when there is none); failures also carry the L{FetchError}'s
short reason (C{timeout}, C{http-404}, ...).
"""

from collections import Counter
from typing import Optional

from zope.interface import Interface, implementer

from fbtwist.logs import logDebug


class IRemoteMetrics(Interface):
    """
    Receives counts of remote fetches and cache answers.
    """

    def fetch(domain: str) -> None:
        """
        A fetch went to the network (one per fetch, redirects included).
        """

    def hit(domain: str, count: int = 1) -> None:
        """
        The cache answered (C{count} times) without asking the origin (a
        fresh answer, a remembered 404, or a failure remembered for a short
        while).
        """

    def miss(domain: str) -> None:
        """
        The cache had no fresh answer and asked the origin (or joined a
        request already asking it).
        """

    def failure(domain: str, reason: str) -> None:
        """
        A fetch failed, for C{reason}.
        """

    def stale(domain: str) -> None:
        """
        The origin could not be asked, and an expired answer was given,
        marked stale.
        """


@implementer(IRemoteMetrics)
class NoMetrics:
    """
    Counts nothing.
    """

    def fetch(self, domain: str) -> None:
        pass

    def hit(self, domain: str, count: int = 1) -> None:
        pass

    def miss(self, domain: str) -> None:
        pass

    def failure(self, domain: str, reason: str) -> None:
        pass

    def stale(self, domain: str) -> None:
        pass


@implementer(IRemoteMetrics)
class CountingMetrics:
    """
    Counts each event in L{counts}, keyed C{(event, domain)} or, for
    failures, C{("failure", domain, reason)}.
    """

    def __init__(self):
        self.counts: Counter = Counter()

    def count(self, event: str, domain: str, reason: Optional[str] = None) -> int:
        """
        @return: How many times C{event} was counted for C{domain}.
        """
        return self.counts[(event, domain) if reason is None else (event, domain, reason)]

    def fetch(self, domain: str) -> None:
        self.counts["fetch", domain] += 1

    def hit(self, domain: str, count: int = 1) -> None:
        self.counts["hit", domain] += count

    def miss(self, domain: str) -> None:
        self.counts["miss", domain] += 1

    def failure(self, domain: str, reason: str) -> None:
        self.counts["failure", domain, reason] += 1

    def stale(self, domain: str) -> None:
        self.counts["stale", domain] += 1


#: The C{fbEvent} of L{EventMetrics}' log events.
REMOTE_EVENT = "remote-fetch"


@implementer(IRemoteMetrics)
class EventMetrics:
    """
    Logs each count as an C{fbEvent} event (C{remote-fetch}, with C{event}:
    fetch, hit, miss, failure or stale, the C{domain}, and for a failure
    its C{reason}), which L{fbtwist.ops.metrics} turns into Prometheus
    counters, as it does every other event.
    """

    def __init__(self, logger=None):
        if logger is None:
            from twisted.logger import Logger

            logger = Logger(namespace="fbtwist.remote")
        self.logger = logger

    def _emit(self, event: str, domain: str, reason: Optional[str] = None, count: int = 1) -> None:
        # Hits come by the thousand a second: the cheap way
        # (fbtwist.logs.logDebug).
        logDebug(self.logger, "remote {event} for {domain}", fbEvent=REMOTE_EVENT, event=event, domain=domain,
                 reason=reason, count=count)

    def fetch(self, domain: str) -> None:
        self._emit("fetch", domain)

    def hit(self, domain: str, count: int = 1) -> None:
        self._emit("hit", domain, count=count)

    def miss(self, domain: str) -> None:
        self._emit("miss", domain)

    def failure(self, domain: str, reason: str) -> None:
        self._emit("failure", domain, reason)

    def stale(self, domain: str) -> None:
        self._emit("stale", domain)
