"""
The connections the process may hold open at once, over every listener
(HTTP and FTP): L{ConnectionBudget}.

Each open connection costs a file descriptor, and so do the files, the
directory's connections and the logs.  A server that accepts connections
until C{accept} fails with C{EMFILE} can then neither answer them nor open a
file; with a budget below the descriptor limit it refuses new connections
politely (HTTP 503, FTP 421) while it still has descriptors to work with.
"""

import resource

from twisted.logger import Logger

from fbtwist.logs import RareWarning


def descriptorBudget(maxConnections: int = 0) -> int:
    """
    How many connections may be open at once: C{maxConnections}, or when
    that is 0 what the process's descriptor limit leaves after a reserve
    for files, the directory and the logs.
    """
    if maxConnections:
        return maxConnections
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1 << 20
    return max(8, soft - max(40, soft // 8))


class ConnectionBudget:
    """
    A count of the open connections of every listener that shares it,
    against one limit.

    @ivar limit: The most connections open at once.
    @ivar open: The connections open now.
    """

    log = Logger()

    def __init__(self, limit: int = 0, clock=None):
        """
        @param limit: The most connections open at once; 0 for what the
            descriptor limit allows (L{descriptorBudget}).
        @param clock: What time it is, for the warning (a reactor's
            C{seconds}).
        """
        self.limit = descriptorBudget(limit)
        self.open = 0
        self._warning = RareWarning(
            "refusing connections: {open} are open, as many as the descriptor limit allows "
            "(raise LimitNOFILE, or set http-max-connections); {count} refused since the last warning",
            **({"clock": clock} if clock is not None else {}), log=self.log, fbEvent="connections-refused",
        )

    def full(self) -> bool:
        """
        Whether a new connection is to be refused; if so, warn (once a
        minute at most).
        """
        if self.open < self.limit:
            return False
        self._warning.warn(open=self.open)
        return True

    def opened(self) -> None:
        """
        A connection was opened (refused ones too, while they answer).
        """
        self.open += 1

    def closed(self) -> None:
        """
        A connection counted by L{opened} was closed.
        """
        self.open -= 1
