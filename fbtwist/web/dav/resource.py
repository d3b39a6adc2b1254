"""
The publishing tree as one leaf resource: each C{render_*} method hands the
request to the coroutine of one module in this package.
"""

from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from fbtwist.access.avatar import CalendarAvatar
from fbtwist.errors import InvalidName, LockedBy
from fbtwist.web.dav import conditions, copymove, delete, get, lock, mkcol, options, propfind, proppatch, put
from fbtwist.web.dav.davxml import DAVError, writeDAVError
from fbtwist.web.dav.urls import normalSegments
from fbtwist.web.responses import HTTPError, renderAsync, writeNotAllowed


def requestPath(avatar: CalendarAvatar, request):
    """
    The store path a request addresses (its percent-decoded segments below
    the publishing root, C{.} and doubled slashes ignored).

    @raise HTTPError: 400 when a segment is not UTF-8.
    @raise InvalidName: When a segment is not a valid name (answered 400).
    """
    try:
        segments = [s.decode("utf-8") for s in request.postpath]
    except UnicodeDecodeError:
        raise HTTPError(http.BAD_REQUEST, "the path is not UTF-8") from None
    return avatar.path(normalSegments(segments))


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
            try:
                path = requestPath(self.avatar, request)
            except InvalidName as e:
                if method is put.put:
                    # Counted as the same rejection over FTP is.
                    put.rejected(self.avatar, b"/".join(request.postpath).decode("utf-8", "replace"), e)
                raise
            try:
                await method(self.avatar, path, request)
            except LockedBy as e:
                writeDAVError(request, conditions.lockedAnswer(e))
            except DAVError as e:
                writeDAVError(request, e)

        return renderAsync(request, run())

    def allowedMethods(self):
        return sorted(name[len("render_"):] for name in dir(self) if name.startswith("render_"))

    def render(self, request):
        handler = getattr(self, "render_" + request.method.decode("ascii", "replace"), None)
        if handler is None:
            writeNotAllowed(request, self.allowedMethods(),
                            f"{request.method.decode('ascii', 'replace')} is not allowed here")
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

    def render_PROPFIND(self, request):
        return self._run(request, propfind.propfind)

    def render_PROPPATCH(self, request):
        return self._run(request, proppatch.proppatch)

    def render_MKCOL(self, request):
        return self._run(request, mkcol.mkcol)

    def render_DELETE(self, request):
        return self._run(request, delete.delete)

    def render_COPY(self, request):
        return self._run(request, copymove.copy)

    def render_MOVE(self, request):
        return self._run(request, copymove.move)

    def render_LOCK(self, request):
        return self._run(request, lock.lock)

    def render_UNLOCK(self, request):
        return self._run(request, lock.unlock)
