"""
GET and HEAD in the publishing tree: a user reads back their own file.
"""

from twisted.web import http

from fbtwist.errors import NotFound
from fbtwist.web.responses import serveCalendar


async def get(avatar, path, request) -> None:
    info = await avatar.stat(path)
    if info is None:
        raise NotFound()
    if info.isCollection:
        body = b"fbtwist publishing folder: PUT your <login>.vfb here.\n"
        request.setResponseCode(http.OK)
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        request.setHeader(b"Content-Length", b"%d" % len(body))
        request.write(body)
        return
    # Bytes, ETag and time of one version, even if a publish lands meanwhile.
    snapshot = await avatar.snapshot(path)
    if snapshot is None:
        raise NotFound()
    serveCalendar(request, snapshot.data, snapshot.etag, snapshot.info.modified)
