"""
The CalDAV URL space and its namespaces.

  - C{/caldav/}: the root (what C{/.well-known/caldav} redirects to);
  - C{/caldav/principals/} (and its C{users/}, C{groups/} and C{rooms/}):
    the principal collections, where principal searches go;
  - C{/caldav/principals/users/<uid>/}, C{/caldav/principals/groups/<cn>/},
    C{/caldav/principals/rooms/<uid>/}: the principals of directory users,
    groups and rooms;
  - C{/caldav/calendars/<uid>/}: a user's calendar home, holding one
    read-only calendar (C{calendar/}, the published busy time), the
    schedule outbox (C{outbox/}) and an empty inbox (C{inbox/}); a room's
    home (rooms and users share one name space, that of the published
    files) holds its calendar only.
"""

from typing import NamedTuple, Optional
from urllib.parse import quote, unquote, urlsplit

from fbtwist.interfaces import GROUP, ROOM, USER

CALDAV = "urn:ietf:params:xml:ns:caldav"
CALENDARSERVER = "http://calendarserver.org/ns/"

ROOT = "/caldav/"
PRINCIPALS = ROOT + "principals/"
USERS = PRINCIPALS + "users/"
GROUPS = PRINCIPALS + "groups/"
ROOMS = PRINCIPALS + "rooms/"
CALENDARS = ROOT + "calendars/"

#: Kinds of node.
SITE_ROOT, CALDAV_ROOT, PRINCIPAL_COLLECTION, PRINCIPAL, HOME, CALENDAR, INBOX, OUTBOX = (
    "site-root", "caldav-root", "principal-collection", "principal", "home", "calendar", "inbox", "outbox",
)

#: The members of a calendar home, by segment.
HOME_MEMBERS = {"calendar": CALENDAR, "inbox": INBOX, "outbox": OUTBOX}


def caldavName(name: str) -> str:
    return "{%s}%s" % (CALDAV, name)


def csName(name: str) -> str:
    return "{%s}%s" % (CALENDARSERVER, name)


class Node(NamedTuple):
    """
    What a CalDAV URL names.

    @ivar kind: One of the kinds above.
    @ivar principalKind: L{USER}, L{GROUP} or L{ROOM} for a principal; for
        a home and its members, L{USER} as the path names it, L{ROOM} once
        the directory said it is a room's; else C{None}.
    @ivar name: The uid or group C{cn}, else C{None}; for a principal
        collection, C{"users"}, C{"groups"}, C{"rooms"} or C{""}.
    """

    kind: str
    principalKind: Optional[str] = None
    name: Optional[str] = None

    @property
    def href(self) -> str:
        if self.kind == SITE_ROOT:
            return "/"
        if self.kind == CALDAV_ROOT:
            return ROOT
        if self.kind == PRINCIPAL_COLLECTION:
            return PRINCIPALS + (self.name + "/" if self.name else "")
        if self.kind == PRINCIPAL:
            return principalHref(self.principalKind, self.name)
        home = homeHref(self.name)
        if self.kind == HOME:
            return home
        member = {CALENDAR: "calendar", INBOX: "inbox", OUTBOX: "outbox"}[self.kind]
        return home + member + "/"


def _segment(name: str) -> str:
    return quote(name, safe="")


#: The principal collection of each kind, by segment.
COLLECTIONS = {"users": USER, "groups": GROUP, "rooms": ROOM}
_COLLECTION_OF = {USER: USERS, GROUP: GROUPS, ROOM: ROOMS}


def principalHref(kind: str, name: str) -> str:
    return _COLLECTION_OF[kind] + _segment(name) + "/"


def homeHref(uid: str) -> str:
    return CALENDARS + _segment(uid) + "/"


def nodeOfPath(path: str) -> Optional[Node]:
    """
    The node a request path (percent-encoded, without query) names, or
    C{None} for a path outside the CalDAV space.
    """
    if path in ("", "/"):
        return Node(SITE_ROOT)
    if not path.startswith(ROOT.rstrip("/")):
        return None
    segments = [unquote(s, errors="strict") for s in path[len(ROOT):].split("/")]
    if segments and segments[-1] == "":
        segments.pop()
    if not segments:
        return Node(CALDAV_ROOT)
    if "" in segments or any(s in (".", "..") for s in segments):
        return None
    top, rest = segments[0], segments[1:]
    if top == "principals":
        if not rest:
            return Node(PRINCIPAL_COLLECTION, None, "")
        if rest[0] not in COLLECTIONS:
            return None
        kind = COLLECTIONS[rest[0]]
        if len(rest) == 1:
            return Node(PRINCIPAL_COLLECTION, None, rest[0])
        if len(rest) == 2:
            return Node(PRINCIPAL, kind, rest[1])
        return None
    if top == "calendars" and rest:
        if len(rest) == 1:
            return Node(HOME, USER, rest[0])
        if len(rest) == 2 and rest[1] in HOME_MEMBERS:
            return Node(HOME_MEMBERS[rest[1]], USER, rest[0])
    return None


def nodeOfHref(href: str) -> Optional[Node]:
    """
    The node an href names (an absolute URL or an absolute path), or C{None}.
    """
    try:
        parts = urlsplit(href.strip())
    except ValueError:
        return None
    if not parts.path.startswith("/"):
        return None
    try:
        return nodeOfPath(parts.path)
    except UnicodeDecodeError:
        return None


def mailAddress(address: str) -> Optional[str]:
    """
    The mail address in a calendar user address: C{mailto:} in any case, or
    a bare address; C{None} for other schemes.
    """
    address = address.strip()
    if address[:7].lower() == "mailto:":
        address = address[7:]
    elif ":" in address.split("@", 1)[0]:
        return None
    address = unquote(address).strip()
    return address if "@" in address and " " not in address else None
