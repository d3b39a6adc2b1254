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

from fbtwist.errors import Conflict, NotFound, PermissionDenied
from fbtwist.web.dav import conditions
from fbtwist.web.responses import HTTPError

log = Logger()


async def transfer(avatar, path, request, keepSource: bool) -> None:
    info = avatar.stat(path)
    if info is None:
        raise NotFound()
    destination = conditions.parseDestination(avatar, request)
    overwrite = conditions.parseOverwrite(request)
    if keepSource:
        depth = conditions.parseDepth(request, "infinity", ("0", "infinity"))
    else:
        depth = conditions.parseDepth(request, "infinity", ("infinity",))
    if destination == path:
        raise PermissionDenied("the source and the destination are the same")
    if not path or destination[: len(path)] == path:
        raise PermissionDenied("a collection cannot be copied or moved into itself")
    avatar.authorizeMove(path, destination, keepSource)
    existing = avatar.peek(destination)
    if existing is not None and not overwrite:
        raise HTTPError(http.PRECONDITION_FAILED, "the destination exists and Overwrite is F")
    parent = avatar.peek(destination[:-1])
    if parent is None or not parent.isCollection:
        raise Conflict("the destination's parent collection does not exist")
    changes = [(destination, True, True)]
    if not keepSource:
        changes.append((path, True, True))
    locks = conditions.checkWrite(avatar, request, path, changes)
    if existing is not None:
        avatar.delete(destination)
        locks.removeWithin(destination)
    if keepSource:
        avatar.copy(path, destination, recursive=depth == "infinity")
    else:
        avatar.move(path, destination)
        locks.removeWithin(path)
    if not info.isCollection:
        log.info(
            "published {path} as {uid} over HTTP by {method} ({size} bytes)",
            fbEvent="publish", path="/".join(destination), uid=avatar.uid, size=info.size, protocol="http",
            method="COPY" if keepSource else "MOVE",
        )
    if existing is not None:
        request.setResponseCode(http.NO_CONTENT)
    else:
        request.setResponseCode(http.CREATED)
        request.setHeader(b"Content-Length", b"0")


async def copy(avatar, path, request) -> None:
    await transfer(avatar, path, request, keepSource=True)


async def move(avatar, path, request) -> None:
    await transfer(avatar, path, request, keepSource=False)
