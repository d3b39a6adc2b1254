"""
COPY and MOVE within the publishing tree (RFC 4918 sections 9.8 and 9.9).

The C{Destination} must be on this server (else 502) and in the tree.  An
existing destination is replaced when C{Overwrite} is C{T} (the default;
204) and refused when it is C{F} (412); a destination whose parent does not
exist is 409; a new one 201.  Dead properties travel with the resource;
locks do not (a moved resource leaves its locks behind, and they go).
"""

from twisted.logger import Logger
from twisted.web import http

from fbtwist.errors import NotFound
from fbtwist.web.dav import conditions

log = Logger()


async def transfer(avatar, path, request, keepSource: bool) -> None:
    info = await avatar.stat(path)
    if info is None:
        raise NotFound()
    destination = conditions.parseDestination(avatar, request)
    overwrite = conditions.parseOverwrite(request)
    if keepSource:
        depth = conditions.parseDepth(request, "infinity", ("0", "infinity"))
    else:
        depth = conditions.parseDepth(request, "infinity", ("infinity",))
    stated = conditions.preconditionsOf(avatar, request)
    if keepSource:
        replaced = await avatar.copy(path, destination, stated, overwrite, recursive=depth == "infinity")
    else:
        replaced = await avatar.move(path, destination, stated, overwrite)
    if not info.isCollection:
        log.info(
            "published {path} as {uid} over HTTP by {method} ({size} bytes)",
            fbEvent="publish", path="/".join(destination), uid=avatar.uid, size=info.size, protocol="http",
            method="COPY" if keepSource else "MOVE",
        )
    if replaced:
        request.setResponseCode(http.NO_CONTENT)
    else:
        request.setResponseCode(http.CREATED)
        request.setHeader(b"Content-Length", b"0")


async def copy(avatar, path, request) -> None:
    await transfer(avatar, path, request, keepSource=True)


async def move(avatar, path, request) -> None:
    await transfer(avatar, path, request, keepSource=False)
