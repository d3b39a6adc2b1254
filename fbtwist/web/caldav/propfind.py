"""
PROPFIND on CalDAV resources, Depth 0 or 1 (a home lists its calendar, inbox
and outbox; the CalDAV root its principal collection and the user's home).
Depth infinity is refused as on the publishing tree.
"""

from twisted.web import http

from fbtwist.availability.vavailability import renderAvailability
from fbtwist.web.caldav import names
from fbtwist.web.caldav.names import Node
from fbtwist.web.caldav.properties import ALLPROP, CALENDAR_AVAILABILITY, PropertyContext, renderProperties
from fbtwist.web.dav.davxml import DAVError, davName, parseXML, readBody, response, writeMultistatus
from fbtwist.web.responses import HTTPError


def requestedProperties(data: bytes):
    """
    @return: The property keys a PROPFIND body asks for (L{ALLPROP} for an
        empty body, C{DAV:allprop} or C{DAV:propname}).
    @raise HTTPError: 400 for anything but a C{DAV:propfind}.
    """
    root = parseXML(data)
    if root is None:
        return ALLPROP
    if root.tag != davName("propfind"):
        raise HTTPError(http.BAD_REQUEST, "the body must be a DAV:propfind element")
    prop = root.find(davName("prop"))
    if prop is not None:
        return list(dict.fromkeys(child.tag for child in prop))
    return ALLPROP


def members(view, node: Node):
    """
    The members a Depth 1 PROPFIND lists.
    """
    if node.kind == names.HOME and node.principalKind == names.ROOM:
        return [Node(names.CALENDAR, names.ROOM, node.name)]
    if node.kind == names.HOME:
        return [Node(kind, names.USER, node.name) for kind in (names.CALENDAR, names.INBOX, names.OUTBOX)]
    if node.kind == names.CALDAV_ROOT:
        return [Node(names.PRINCIPAL_COLLECTION, None, ""), Node(names.HOME, names.USER, view.uid)]
    if node.kind == names.PRINCIPAL_COLLECTION and not node.name:
        return [Node(names.PRINCIPAL_COLLECTION, None, segment) for segment in names.COLLECTIONS]
    return []


def ownAvailability(view):
    """
    The signed-in user's working hours (their published
    C{<login>.avail.ics}, else the site's C{--working-hours}) as an
    iCalendar text, or C{None} when neither is set.
    """
    model, _, _ = view.service.lookup.visibility.workingHoursOf(view.uid)
    if model is None:
        return None
    return renderAvailability(model).to_ical().decode("utf-8")


async def propertiesResponse(view, node: Node, keys) -> str:
    """
    One C{DAV:response} for C{node} with the properties C{keys}.
    """
    record = None
    if node.kind in (names.PRINCIPAL, names.HOME, names.CALENDAR, names.INBOX, names.OUTBOX):
        record = await view.service.record(node)
    availability = None
    if CALENDAR_AVAILABILITY in keys and node.kind == names.INBOX and node.name == view.uid:
        availability = ownAvailability(view)
    found, missing = renderProperties(keys, PropertyContext(view.uid, node, record, availability))
    return response(node.href, [(http.OK, found), (http.NOT_FOUND, missing)])


async def propfind(view, node: Node, request) -> None:
    depth = (request.getHeader(b"Depth") or b"infinity").strip().lower()
    if depth not in (b"0", b"1", b"infinity"):
        raise HTTPError(http.BAD_REQUEST, "Depth must be 0, 1 or infinity")
    if depth == b"infinity":
        raise DAVError(http.FORBIDDEN, "propfind-finite-depth", "Depth infinity is not supported: use 0 or 1")
    keys = requestedProperties(readBody(request))
    answers = [await propertiesResponse(view, node, keys)]
    if depth == b"1":
        for member in members(view, node):
            answers.append(await propertiesResponse(view, member, keys))
    writeMultistatus(request, answers)
