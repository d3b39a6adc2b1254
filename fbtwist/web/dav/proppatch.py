"""
PROPPATCH: set and remove dead properties, all or nothing.

Instructions are applied in document order to a copy of the resource's
dead properties, which is stored in one atomic write only when every one
of them may be applied; otherwise nothing changes, the offending properties
answer 403 (C{DAV:cannot-modify-protected-property}) and the others 424.
Windows' C{Win32*} properties (namespace C{urn:schemas-microsoft-com:}) are
ordinary dead properties here.
"""

from twisted.web import http

from fbtwist.access.permissions import Action
from fbtwist.errors import NotFound
from fbtwist.web.dav import conditions, urls
from fbtwist.web.dav.davxml import (
    davName,
    emptyElement,
    expectRoot,
    parseXML,
    readBody,
    response,
    serializeElement,
    writeMultistatus,
)
from fbtwist.web.dav.properties import isProtected
from fbtwist.web.responses import HTTPError

_FAILED_DEPENDENCY = 424


def parseUpdate(data: bytes):
    """
    @return: A list of (C{"set"} or C{"remove"}, key, element) in document
        order.
    @raise HTTPError: 400 for anything but a C{DAV:propertyupdate}.
    """
    root = expectRoot(parseXML(data), "propertyupdate")
    instructions = []
    for child in root:
        if child.tag not in (davName("set"), davName("remove")):
            continue
        operation = "set" if child.tag == davName("set") else "remove"
        for prop in child:
            if prop.tag != davName("prop"):
                continue
            for propElement in prop:
                instructions.append((operation, propElement.tag, propElement))
    if not instructions:
        raise HTTPError(http.BAD_REQUEST, "DAV:propertyupdate names no property")
    return instructions


async def proppatch(avatar, path, request) -> None:
    info = await avatar.stat(path)
    if info is None:
        raise NotFound()
    avatar.authorize(Action.WRITE, path, info.isCollection)
    stated = conditions.preconditionsOf(avatar, request)
    instructions = parseUpdate(readBody(request))
    refused = [key for _, key, _ in instructions if isProtected(key)]
    names = []
    for _, key, _ in instructions:
        if key not in names:
            names.append(key)
    href = urls.href(path, info.isCollection)
    if refused:
        # Nothing changes; a precondition that fails is still answered first.
        await avatar.patchProperties(path, [], stated)
        writeMultistatus(request, [response(href, [
            (http.FORBIDDEN, [emptyElement(k) for k in names if k in refused], "cannot-modify-protected-property"),
            (_FAILED_DEPENDENCY, [emptyElement(k) for k in names if k not in refused]),
        ])])
        return
    updates = [(key, serializeElement(element) if operation == "set" else None)
               for operation, key, element in instructions]
    await avatar.patchProperties(path, updates, stated)
    writeMultistatus(request, [response(href, [(http.OK, [emptyElement(k) for k in names])])])
