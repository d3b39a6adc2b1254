"""
The C{DAV:response}s of the members of a collection, for a PROPFIND Depth 1.

A folder may hold 100,000 files, and what the response of each says differs
from the next one's only in a few values: its name, size, times, entity
tag.  So the response of a member is laid out once per request, for a file
and for a collection (which properties are found, which are missing, the
XML around them), and each member only fills in its values: one string
formatting per member instead of an element per property.  The values are
computed by the same functions as those of any other resource
(L{properties.LIVE}); a member with dead properties, or whose value cannot
be had (a file gone meanwhile), is answered by the general
L{propfind.resourceResponse}, so the answer is the same either way.
"""

import re
from typing import Callable, Dict, List, Optional, Tuple
from urllib.parse import quote

from twisted.web.http import NOT_FOUND, OK

from fbtwist.access.values import ResourceInfo
from fbtwist.web.dav import urls
from fbtwist.web.dav.davxml import davName, element, emptyElement, response, text
from fbtwist.web.dav.properties import LIVE, PropertyContext

ALLPROP, PROPNAME, PROP = "allprop", "propname", "prop"

ETAG = davName("getetag")

#: Names C{quote} leaves as they are (its always-safe characters).
_plainName = re.compile(r"[A-Za-z0-9_.~-]+\Z").match

#: Stands for a member's value while its response is laid out.
_HOLE = "\x00"


def quotedName(name: str) -> str:
    """
    One path segment of an href, percent-encoded as L{urls.href} does.
    """
    return name if _plainName(name) else quote(name, safe="")


def needsETags(kind: str, keys: Optional[List[str]]) -> bool:
    """
    Whether the responses show (or, for C{DAV:propname}, name) the members'
    entity tags.
    """
    return kind != PROP or ETAG in keys


def needsDeadProperties(kind: str, keys: Optional[List[str]]) -> bool:
    """
    Whether a member's dead properties may change its response: not when
    only protected live properties are asked for (Office's resourcetype).
    """
    if kind != PROP:
        return True
    return not all(key in LIVE and LIVE[key].protected for key in keys)


def locksOfMembers(locks, collection) -> list:
    """
    Those of C{locks} that may cover a member of C{collection}: locks of
    infinite depth on it or above it, and locks of its members.
    """
    depth = len(collection)
    return [
        lock for lock in locks
        if lock.covers(collection + (_HOLE,)) or (len(lock.path) == depth + 1 and lock.path[:depth] == collection)
    ]


def _memberName(context: PropertyContext, info: ResourceInfo) -> str:
    return quotedName(info.path[-1])


class _Layout:
    """
    The response of one kind of member (files or collections), laid out.

    @ivar template: The response with C{%s} where the values go.
    @ivar renders: What gives each value (as XML) of a member, in order, but
        its entity tag; C{None} where one cannot be had.
    @ivar etagAt: Where the member's entity tag goes among the values, if it
        is shown.
    @ivar needsETag: Whether the response shows or names the entity tag
        (which a file gone meanwhile has not).
    """

    def __init__(self, context: PropertyContext, collection, isCollection: bool, kind: str,
                 keys: Optional[List[str]]):
        props: List[str] = []
        missing: List[str] = []
        self.renders = [_memberName]
        self.etagAt: Optional[int] = None
        self.needsETag = False
        if kind == PROP:
            present = []
            for key in keys:
                prop = LIVE.get(key)
                if prop is None or (prop.filesOnly and isCollection):
                    missing.append(emptyElement(key))
                else:
                    present.append((key, prop))
        else:
            present = [(key, prop) for key, prop in LIVE.items() if not (prop.filesOnly and isCollection)]
        for key, prop in present:
            if key == ETAG:
                self.needsETag = True
            if kind == PROPNAME:
                props.append(emptyElement(key))
                continue
            props.append(element(key, _HOLE))
            if key == ETAG:
                self.etagAt = len(self.renders)
            else:
                self.renders.append(prop.render)
        # The whole response with a hole for each value, by the code that
        # writes any response: the same XML around the values.
        whole = response(urls.href(collection + (_HOLE,), isCollection).replace(quote(_HOLE, safe=""), _HOLE),
                         [(OK, props), (NOT_FOUND, missing)])
        pieces = whole.split(_HOLE)
        holes = len(self.renders) + (self.etagAt is not None)
        assert len(pieces) == holes + 1, "a name or a property held the placeholder"
        self.template = "%s".join(piece.replace("%", "%%") for piece in pieces)


class MemberResponses:
    """
    The responses of the members of one collection to one PROPFIND.
    """

    def __init__(self, context: PropertyContext, collection, kind: str, keys: Optional[List[str]],
                 general: Callable[[PropertyContext, ResourceInfo, Dict[str, str]], str]):
        """
        @param context: The request's.
        @param collection: The store path of the collection listed.
        @param kind: L{ALLPROP}, L{PROPNAME} or L{PROP}.
        @param keys: The properties asked for (with L{PROP}).
        @param general: Writes the response of any resource, given its dead
            properties (for the members laid out differently).
        """
        collection = tuple(collection)
        # Only the locks that may show on a member are looked at for each.
        self.context = context._replace(locks=locksOfMembers(context.locks, collection))
        self.general = general
        # Indexed by whether the member is a collection.
        self.layouts = tuple(_Layout(self.context, collection, isCollection, kind, keys)
                             for isCollection in (False, True))

    def __call__(self, member: Tuple[ResourceInfo, Optional[str], Dict[str, str]]) -> str:
        """
        The response of one member, given as L{ICalendarAvatar.listDetailed}
        gives it.
        """
        info, etag, dead = member
        context = self.context
        if not dead:
            layout = self.layouts[info.isCollection]
            if etag is None and layout.needsETag:
                return self.general(context, info, dead)
            values = [render(context, info) for render in layout.renders]
            if layout.etagAt is not None:
                values.insert(layout.etagAt, text(etag))
            if None not in values:
                return layout.template % tuple(values)
        return self.general(context, info, dead)
