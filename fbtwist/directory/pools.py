"""
The pools of directory connections: persistent search connections shared by
all searches, and idle connections for user binds.
"""

from typing import List, Optional

from ldaptor.protocols.ldap.ldapclient import LDAPClient
from twisted.internet import defer

from fbtwist.directory.client import _close, _connected


class _SearchPool:
    """
    Up to C{size} persistent search connections, used in turn and opened
    when first needed (or found closed).  Concurrent callers of one slot
    wait for one connection attempt.
    """

    def __init__(self, size: int, connect):
        self._connect = connect
        self._clients: List[Optional[LDAPClient]] = [None] * size
        self._locks = [defer.DeferredLock() for _ in range(size)]
        self._next = 0

    async def client(self) -> LDAPClient:
        index = self._next
        self._next = (index + 1) % len(self._clients)
        async with self._locks[index]:
            client = self._clients[index]
            if not _connected(client):
                client = self._clients[index] = await self._connect()
            return client

    def discard(self, client: LDAPClient) -> None:
        for index, held in enumerate(self._clients):
            if held is client:
                self._clients[index] = None
        _close(client)

    def close(self) -> None:
        clients, self._clients = self._clients, [None] * len(self._clients)
        for client in clients:
            if client is not None:
                _close(client)


class _BindPool:
    """
    Idle connections for user binds, at most C{size} kept.  Each bind takes
    one for itself (concurrent binds open more), so a connection bound as
    a user is never shared, and never used for a search.
    """

    def __init__(self, size: int):
        self.size = size
        self._idle: List[LDAPClient] = []
        self._closed = False

    def take(self) -> Optional[LDAPClient]:
        """
        @return: An idle connection that is still open, or C{None}.
        """
        while self._idle:
            client = self._idle.pop()
            if _connected(client):
                return client
        return None

    def idle(self) -> List[LDAPClient]:
        """
        The idle connections kept (a copy).
        """
        return list(self._idle)

    def put(self, client: LDAPClient) -> None:
        """
        Keep C{client} for a later bind, or close it when enough are kept.
        """
        if _connected(client) and len(self._idle) < self.size and not self._closed:
            self._idle.append(client)
        else:
            _close(client)

    def close(self) -> None:
        """
        Close the idle connections, and from now on each one a bind is
        done with (binds in flight while fbtwist stops must not leave
        connections open).
        """
        self._closed = True
        idle, self._idle = self._idle, []
        for client in idle:
            _close(client)
