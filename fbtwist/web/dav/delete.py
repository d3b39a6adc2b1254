"""
DELETE: a file, or a collection with everything in it (Depth infinity),
with its dead properties and the locks rooted in it.
"""

from twisted.web import http

from fbtwist.access.permissions import Action
from fbtwist.errors import NotFound
from fbtwist.web.dav import conditions


async def delete(avatar, path, request) -> None:
    info = avatar.stat(path)
    if info is None:
        raise NotFound()
    avatar.authorize(Action.MANAGE if info.isCollection else Action.WRITE, path, info.isCollection)
    if info.isCollection:
        conditions.parseDepth(request, "infinity", ("infinity",))
    conditions.checkIfMatch(avatar, request, path)
    locks = conditions.checkWrite(avatar, request, path, [(path, info.isCollection, True)])
    avatar.delete(path)
    locks.removeWithin(path)
    request.setResponseCode(http.NO_CONTENT)
