"""
Finding attendees: the principal searches scheduling clients send while a
user types a name.

  - C{DAV:principal-property-search} (RFC 3744 section 9.4): Thunderbird,
    Evolution and Apple Calendar;
  - C{CS:calendarserver-principal-search}: Apple Calendar;
  - C{DAV:principal-search-property-set}: which properties may be searched.

Answered from the directory (display name, C{cn}, uid and mail addresses;
users, groups and rooms), for signed-in users only, bounded in results (L{CalDAVSettings.searchLimit
<fbtwist.web.caldav.resource.CalDAVSettings>} principals at most) and in
time (the directory's timeout).
"""

from typing import List, Optional

from twisted.web import http

from fbtwist.interfaces import GROUP, ROOM, USER, PrincipalRecord
from fbtwist.web.caldav import names
from fbtwist.web.caldav.names import Node, caldavName, csName, mailAddress, nodeOfHref
from fbtwist.web.caldav.properties import (
    CALENDAR_USER_TYPES,
    PropertyContext,
    calendarUserAddresses,
    renderProperties,
)
from fbtwist.web.dav.davxml import DAVError, davName, emptyElement, response, text, writeMultistatus

#: Properties whose values a search compares with its text, and how.
NAME_PROPERTIES = {davName("displayname"), csName("first-name"), csName("last-name")}
ADDRESS_PROPERTIES = {caldavName("calendar-user-address-set"), csName("email-address-set")}
HOME_PROPERTIES = {caldavName("calendar-home-set")}
#: Compared with the principal's type (RFC 6638's C{INDIVIDUAL}, C{GROUP},
#: C{ROOM}): how clients ask for rooms only.
TYPE_PROPERTY = caldavName("calendar-user-type")

#: The kinds of principal each C{context} of Apple's principal search asks
#: for, as Apple's own server maps them: Apple Calendar's location field
#: asks for C{location}, its attendee field for C{attendee} (which leaves
#: rooms out); no resources other than rooms are kept apart here.
SEARCH_CONTEXTS = {"location": (ROOM,), "resource": (), "user": (USER,), "group": (GROUP,),
                   "attendee": (USER, GROUP)}

#: The longest search text (longer is no name anyone types).
MAX_TEXT = 256

DEFAULT_PROPERTIES = [davName("displayname"), caldavName("calendar-user-address-set"),
                      caldavName("calendar-user-type"), davName("principal-URL")]


async def principalSearchPropertySet(view, node, root, request) -> None:
    body = ["<D:principal-search-property-set xmlns:D=\"DAV:\">"]
    for key, description in ((davName("displayname"), "Display name"),
                             (caldavName("calendar-user-address-set"), "Calendar user address"),
                             (TYPE_PROPERTY, "Calendar user type"),
                             (csName("email-address-set"), "E-mail address")):
        body.append(f"<D:principal-search-property><D:prop>{emptyElement(key)}</D:prop>"
                    f"<D:description xml:lang=\"en\">{text(description)}</D:description>"
                    "</D:principal-search-property>")
    body.append("</D:principal-search-property-set>")
    data = ('<?xml version="1.0" encoding="utf-8"?>\n' + "".join(body) + "\n").encode("utf-8")
    request.setResponseCode(http.OK)
    request.setHeader(b"Content-Type", b'application/xml; charset="utf-8"')
    request.setHeader(b"Content-Length", b"%d" % len(data))
    request.write(data)


def _searchText(value: Optional[str]) -> str:
    value = (value or "").strip()
    if len(value) > MAX_TEXT:
        raise DAVError(http.FORBIDDEN, "number-of-matches-within-limits", "the search text is too long")
    return value


def _matches(record: PrincipalRecord, key: str, value: str, matchType: str) -> bool:
    """
    Whether C{record}'s property C{key} matches C{value} (without case).
    """
    value = value.lower()
    if key in NAME_PROPERTIES:
        candidates = [record.displayName, record.name] + record.displayName.split()
    elif key in ADDRESS_PROPERTIES:
        candidates = list(record.addresses) + calendarUserAddresses(record)
    elif key == TYPE_PROPERTY:
        candidates = [CALENDAR_USER_TYPES[record.kind]]
    elif key in HOME_PROPERTIES:
        if record.kind != USER:
            return False
        home = names.homeHref(record.name)
        candidates = [home, home.rstrip("/")]
    else:
        return False
    candidates = [c.lower() for c in candidates]
    if matchType == "starts-with":
        return any(c.startswith(value) for c in candidates)
    if matchType == "equals":
        return value in candidates
    if matchType == "ends-with":
        return any(c.endswith(value) for c in candidates)
    return any(value in c for c in candidates)


async def _candidates(view, key: str, value: str) -> List[PrincipalRecord]:
    """
    The directory's principals that may match C{value} for C{key}.
    """
    service = view.service
    if key == TYPE_PROPERTY:
        # Every room, for a search by type alone (the rooms are a short
        # list the directory keeps); users and groups are too many to list.
        if not _matches(PrincipalRecord(ROOM, "", ""), key, value, "contains"):
            return []
        rooms = await service.directory.findRooms()
        records = [await service.directory.principal(ROOM, room.uid, None)
                   for room in rooms[:service.settings.searchLimit]]
        return [r for r in records if r is not None]
    if key in HOME_PROPERTIES:
        node = nodeOfHref(value if value.endswith("/") else value + "/")
        if node is None or node.kind != names.HOME:
            return []
        record = await service.directory.principal(USER, node.name, None)
        return [record] if record is not None else []
    if key in ADDRESS_PROPERTIES:
        node = nodeOfHref(value) if value.startswith(("/", "http:", "https:")) else None
        if node is not None and node.kind == names.PRINCIPAL:
            record = await service.record(node)
            return [record] if record is not None else []
        address = mailAddress(value)
        if address is not None:
            value = address
        elif value.lower().startswith("mailto:"):
            value = value[7:]
    if key not in NAME_PROPERTIES | ADDRESS_PROPERTIES:
        return []
    return await service.directory.searchPrincipals(value, service.groupBase, service.settings.searchLimit)


async def _answer(view, request, tests, anyOf: bool, keys, limit: int) -> None:
    """
    Search for each C{(key, value, matchType)} of C{tests} and answer the
    principals matching any (C{anyOf}) or all of them.
    """
    found = {}
    for key, value, matchType in tests:
        for record in await _candidates(view, key, value):
            found[(record.kind, record.name)] = record
    matching = [r for r in found.values()
                if (any if anyOf else all)(_matches(r, k, v, m) for k, v, m in tests)]
    matching.sort(key=lambda r: (r.displayName.lower(), r.name))
    answers = []
    for record in matching[:limit]:
        node = Node(names.PRINCIPAL, record.kind, record.name)
        present, missing = renderProperties(keys, PropertyContext(view.uid, node, record))
        answers.append(response(node.href, [(http.OK, present), (http.NOT_FOUND, missing)]))
    writeMultistatus(request, answers)


#: The elements of a search that are not properties asked for.
_SEARCH_ELEMENTS = {davName("prop"), davName("property-search"), davName("apply-to-principal-collection-set"),
                    csName("search-token"), csName("limit")}


def _requestedKeys(root) -> List[str]:
    prop = root.find(davName("prop"))
    keys = [child.tag for child in prop] if prop is not None else []
    if not keys:
        # The python caldav library (3.x) puts the properties it wants
        # beside an empty DAV:prop instead of inside it.
        keys = [child.tag for child in root if child.tag not in _SEARCH_ELEMENTS]
    return list(dict.fromkeys(keys)) or DEFAULT_PROPERTIES


async def principalPropertySearch(view, node, root, request) -> None:
    tests = []
    for search in root.findall(davName("property-search")):
        prop, match = search.find(davName("prop")), search.find(davName("match"))
        if prop is None or match is None:
            raise DAVError(http.BAD_REQUEST, "property-search", "each property-search needs a prop and a match")
        value = _searchText(match.text)
        matchType = match.get("match-type", "contains")
        for child in prop:
            tests.append((child.tag, value, matchType))
    if not tests:
        raise DAVError(http.BAD_REQUEST, "property-search", "a principal-property-search needs a property-search")
    if len(tests) > 16:
        raise DAVError(http.FORBIDDEN, "number-of-matches-within-limits", "too many property-search elements")
    await _answer(view, request, tests, root.get("test") == "anyof", _requestedKeys(root),
                  view.service.settings.searchLimit)


async def calendarServerPrincipalSearch(view, node, root, request) -> None:
    tokens = [_searchText(t.text) for t in root.findall(csName("search-token")) if (t.text or "").strip()]
    if not tokens or len(tokens) > 8:
        raise DAVError(http.BAD_REQUEST, "search-token", "give between one and eight search tokens")
    limit = view.service.settings.searchLimit
    limitElement = root.find(csName("limit"))
    if limitElement is not None:
        nresults = limitElement.find(csName("nresults"))
        if nresults is not None and (nresults.text or "").strip().isdigit():
            limit = max(1, min(limit, int(nresults.text.strip())))
    kinds = SEARCH_CONTEXTS.get(root.get("context", ""), (USER, GROUP, ROOM))
    found = {}
    for token in tokens if kinds else ():
        records = await view.service.directory.searchPrincipals(
            token, view.service.groupBase, view.service.settings.searchLimit, kinds)
        for record in records:
            if record.kind in kinds:
                found[(record.kind, record.name)] = record
    keys = list(NAME_PROPERTIES) + list(ADDRESS_PROPERTIES)
    # Every token must match some property.
    tests = [[(k, token, "starts-with") for k in keys] for token in tokens]
    matching = [r for r in found.values() if all(any(_matches(r, k, v, m) for k, v, m in t) for t in tests)]
    matching.sort(key=lambda r: (r.displayName.lower(), r.name))
    answers = []
    for record in matching[:limit]:
        principal = Node(names.PRINCIPAL, record.kind, record.name)
        present, missing = renderProperties(_requestedKeys(root), PropertyContext(view.uid, principal, record))
        answers.append(response(principal.href, [(http.OK, present), (http.NOT_FOUND, missing)]))
    writeMultistatus(request, answers)
