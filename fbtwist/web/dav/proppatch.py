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
from fbtwist.errors import InsufficientStorage, NotFound
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
#: The most dead-property text one resource may carry (a user could
#: otherwise fill the disk one PROPPATCH at a time).
MAX_DEAD_PROPERTIES = 256 * 1024


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
    info = avatar.stat(path)
    if info is None:
        raise NotFound()
    avatar.authorize(Action.WRITE, path, info.isCollection)
    conditions.checkWrite(avatar, request, path, [(path, False, False)])
    instructions = parseUpdate(readBody(request))
    refused = [key for _, key, _ in instructions if isProtected(key)]
    names = []
    for _, key, _ in instructions:
        if key not in names:
            names.append(key)
    href = urls.href(path, info.isCollection)
    if refused:
        writeMultistatus(request, [response(href, [
            (http.FORBIDDEN, [emptyElement(k) for k in names if k in refused], "cannot-modify-protected-property"),
            (_FAILED_DEPENDENCY, [emptyElement(k) for k in names if k not in refused]),
        ])])
        return
    properties = avatar.deadProperties(path)
    for operation, key, element in instructions:
        if operation == "set":
            properties[key] = serializeElement(element)
        else:
            properties.pop(key, None)
    if sum(len(k) + len(v) for k, v in properties.items()) > MAX_DEAD_PROPERTIES:
        raise InsufficientStorage("the resource's properties would be too large")
    avatar.setDeadProperties(path, properties)
    writeMultistatus(request, [response(href, [(http.OK, [emptyElement(k) for k in names])])])
