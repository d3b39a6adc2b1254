"""
The lookup URLs: C{/calendar/%NAME%.vfb}, what Outlook fetches when planning
a meeting.  C{%NAME%} is the local part of the invitee's mail address, which
may differ from the login the file is published under, so it is resolved in
the directory.  Served anonymously by default.
"""

from twisted.logger import Logger
from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from fbtwist.errors import InvalidName, NotFound
from fbtwist.interfaces import ICalendarStore, IDirectory
from fbtwist.store import validateName
from fbtwist.webresponse import HTTPError, renderAsync, serveCalendar, writeError

LOOKUP_SUFFIX = ".vfb"


class LookupResource(Resource):
    """
    C{/calendar/}: free/busy files by lookup name.
    """

    isLeaf = True
    log = Logger()

    def __init__(self, directory: IDirectory, store: ICalendarStore):
        super().__init__()
        self.directory = directory
        self.store = store

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
        uid = await self.directory.resolveName(name)
        if uid is None:
            raise NotFound(f"nobody called {name} has published free/busy times")
        path = (uid + LOOKUP_SUFFIX,)
        info = self.store.stat(path)
        if info is None or info.isCollection or info.size == 0:
            raise NotFound(f"{name} has not published free/busy times")
        serveCalendar(request, self.store.read(path), self.store.etag(path), info.modified)
