"""
DELETE: a file, or a collection with everything in it (Depth infinity),
with its dead properties and the locks rooted in it.
"""

from twisted.web import http

from fbtwist.access.permissions import Action
from fbtwist.errors import NotFound
from fbtwist.web.dav import conditions


async def delete(avatar, path, request) -> None:
    info = await avatar.stat(path)
    if info is None:
        raise NotFound()
    avatar.authorize(Action.MANAGE if info.isCollection else Action.WRITE, path, info.isCollection)
    if info.isCollection:
        conditions.parseDepth(request, "infinity", ("infinity",))
    await avatar.delete(path, conditions.preconditionsOf(avatar, request))
    request.setResponseCode(http.NO_CONTENT)
