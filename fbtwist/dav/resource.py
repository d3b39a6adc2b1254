"""
The publishing tree as one leaf resource: each C{render_*} method hands the
request to the coroutine of one module in this package.
"""

from twisted.web import http
from twisted.web.resource import Resource

from fbtwist.avatar import CalendarAvatar
from fbtwist.dav import get, options, put
from fbtwist.errors import InvalidName
from fbtwist.webresponse import HTTPError, renderAsync, writeError
from twisted.web.server import NOT_DONE_YET


def requestPath(avatar: CalendarAvatar, request):
    """
    The store path a request addresses (its percent-decoded segments below
    the publishing root).

    @raise HTTPError: 400 when a segment is not UTF-8 or not a valid name.
    """
    try:
        segments = [s.decode("utf-8") for s in request.postpath]
    except UnicodeDecodeError:
        raise HTTPError(http.BAD_REQUEST, "the path is not UTF-8") from None
    try:
        return avatar.path(segments)
    except InvalidName as e:
        raise HTTPError(http.BAD_REQUEST, e.reason) from None


class CalendarTreeResource(Resource):
    """
    The publishing tree as seen by one avatar.
    """

    isLeaf = True

    def __init__(self, avatar: CalendarAvatar):
        super().__init__()
        self.avatar = avatar

    def _run(self, request, method):
        async def run():
            path = requestPath(self.avatar, request)
            await method(self.avatar, path, request)

        return renderAsync(request, run())

    def allowedMethods(self):
        return sorted(name[len("render_"):] for name in dir(self) if name.startswith("render_"))

    def render(self, request):
        handler = getattr(self, "render_" + request.method.decode("ascii", "replace"), None)
        if handler is None:
            request.setHeader(b"Allow", ", ".join(self.allowedMethods()).encode("ascii"))
            writeError(request, http.NOT_ALLOWED, f"{request.method.decode('ascii', 'replace')} is not allowed here")
            return NOT_DONE_YET
        return handler(request)

    def render_OPTIONS(self, request):
        options.options(self.allowedMethods(), request)
        return b""

    def render_GET(self, request):
        return self._run(request, get.get)

    render_HEAD = render_GET

    def render_PUT(self, request):
        return self._run(request, put.put)
