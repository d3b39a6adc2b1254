"""
The lookup URLs: C{/calendar/%NAME%.vfb}, what Outlook fetches when planning
a meeting.  C{%NAME%} is the local part of the invitee's mail address, which
may differ from the login the file is published under, so it is resolved in
the directory.  Served anonymously by default.
"""

import time
from collections import OrderedDict
from typing import Callable, Optional, Tuple

from twisted.logger import Logger
from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from fbtwist.errors import InvalidName, NotFound
from fbtwist.interfaces import ICalendarStore, IDirectory
from fbtwist.store import validateName
from fbtwist.webresponse import HTTPError, renderAsync, serveCalendar, writeError

LOOKUP_SUFFIX = ".vfb"


class NameCache:
    """
    Lookup names already resolved in the directory, for a while: Outlook
    asks for the same colleagues' files again and again, and without a cache
    every lookup waits for a directory search (the profile's largest part of
    a lookup).

    A name that resolved to a uid is kept for C{ttl} seconds, one that
    resolved to nobody for C{negativeTTL}; at most C{size} names are kept
    (the oldest go first).  Directory outages are not cached.
    """

    def __init__(self, ttl: float = 60.0, negativeTTL: float = 10.0, size: int = 200_000,
                 clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self.negativeTTL = negativeTTL
        self.size = size
        self.clock = clock
        self._entries: "OrderedDict[str, Tuple[float, Optional[str]]]" = OrderedDict()

    def get(self, name: str) -> Tuple[bool, Optional[str]]:
        """
        @return: C{(True, uid)} (C{uid} may be C{None}: nobody) when C{name}
            is cached and fresh, else C{(False, None)}.
        """
        key = name.lower()
        entry = self._entries.get(key)
        if entry is None:
            return False, None
        expires, uid = entry
        if expires <= self.clock():
            del self._entries[key]
            return False, None
        return True, uid

    def put(self, name: str, uid: Optional[str]) -> None:
        key = name.lower()
        self._entries.pop(key, None)
        self._entries[key] = (self.clock() + (self.ttl if uid is not None else self.negativeTTL), uid)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)


class LookupResource(Resource):
    """
    C{/calendar/}: free/busy files by lookup name.
    """

    isLeaf = True
    log = Logger()

    def __init__(self, directory: IDirectory, store: ICalendarStore, names: Optional[NameCache] = None):
        super().__init__()
        self.directory = directory
        self.store = store
        self.names = NameCache() if names is None else names

    async def resolve(self, name: str) -> Optional[str]:
        """
        The uid whose file C{name} asks for (C{None}: nobody), from the
        cache or the directory.
        """
        cached, uid = self.names.get(name)
        if not cached:
            uid = await self.directory.resolveName(name)
            self.names.put(name, uid)
        return uid

    def render(self, request):
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"Allow", b"GET, HEAD")
            writeError(request, http.NOT_ALLOWED, "lookups are read-only: use GET")
            return NOT_DONE_YET
        return renderAsync(request, self._get(request))

    def lookupName(self, request) -> str:
        """
        The name asked for, without its suffix.

        @raise HTTPError: 404 for anything that is not C{<name>.vfb}.
        """
        if len(request.postpath) != 1 or not request.postpath[0]:
            raise HTTPError(http.NOT_FOUND, "ask for /calendar/<name>.vfb")
        try:
            segment = request.postpath[0].decode("utf-8")
            validateName(segment)
        except (UnicodeDecodeError, InvalidName):
            raise HTTPError(http.NOT_FOUND, "no such name") from None
        if not segment.lower().endswith(LOOKUP_SUFFIX) or len(segment) == len(LOOKUP_SUFFIX):
            raise HTTPError(http.NOT_FOUND, "ask for /calendar/<name>.vfb")
        return segment[: -len(LOOKUP_SUFFIX)]

    async def _get(self, request) -> None:
        name = self.lookupName(request)
        uid = await self.resolve(name)
        if uid is None:
            raise NotFound(f"nobody called {name} has published free/busy times")
        path = (uid + LOOKUP_SUFFIX,)
        info = self.store.stat(path)
        if info is None or info.isCollection or info.size == 0:
            raise NotFound(f"{name} has not published free/busy times")
        serveCalendar(request, self.store.read(path), self.store.etag(path), info.modified)
