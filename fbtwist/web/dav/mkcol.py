"""
MKCOL: make a collection (administrators only; see L{fbtwist.access.permissions}).
"""

from twisted.web import http

from fbtwist.access.permissions import Action
from fbtwist.web.dav import conditions
from fbtwist.web.dav.davxml import readBody
from fbtwist.web.responses import HTTPError


async def mkcol(avatar, path, request) -> None:
    avatar.authorize(Action.MANAGE, path, isCollection=True)
    if readBody(request):
        raise HTTPError(http.UNSUPPORTED_MEDIA_TYPE, "MKCOL with a body is not supported")
    await avatar.makeCollection(path, conditions.preconditionsOf(avatar, request))
    request.setResponseCode(http.CREATED)
    request.setHeader(b"Content-Length", b"0")
