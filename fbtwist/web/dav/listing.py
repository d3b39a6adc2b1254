"""
The C{DAV:response}s of the members of a collection, for a PROPFIND Depth 1.

A folder may hold a million files, and what the response of each says
differs from the next one's only in a few values: its name, size, times,
entity tag.  So the response of a member is laid out once per request, for
a file and for a collection (which properties are found, which are
missing, the XML around them, and the values the same for every member of
the kind, such as its resource type), and each member only fills in its
values: one string formatting per member instead of an element per
property.  The common values (name, size, times, entity tag) are filled in
with as few Python calls as may be, by the functions the live properties
(L{properties.LIVE}) use, the others by the properties' own C{render}; a
member with dead properties, or whose value cannot be had (a file gone
meanwhile), is answered by the general L{propfind.resourceResponse}, so the
answer is the same either way.
"""

import re
from typing import Callable, Dict, List, Optional, Tuple
from urllib.parse import quote

from twisted.web.http import NOT_FOUND, OK

from fbtwist.access.values import ResourceInfo
from fbtwist.web.dav import urls
from fbtwist.web.dav.davxml import davName, element, emptyElement, response, text
from fbtwist.web.dav.properties import LIVE, PropertyContext, httpDate, isoDate

ALLPROP, PROPNAME, PROP = "allprop", "propname", "prop"

ETAG = davName("getetag")

#: Names C{quote} leaves as they are (its always-safe characters), which
#: XML also leaves as they are.
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


#: The live properties whose value in a member's response is filled in by
#: L{MemberResponses} itself from the member's name, size, times and entity
#: tag (as their C{render} computes it, without the call), by key: the name
#: of the value in the layout's template.
_FIELDS = {
    davName("displayname"): "displayname",
    davName("getcontentlength"): "size",
    davName("getlastmodified"): "modified",
    davName("creationdate"): "created",
    ETAG: "etag",
}


class _Layout:
    """
    The response of one kind of member (files or collections), laid out.

    @ivar template: The response with a C{%(name)s} where each value of a
        member goes: C{href} (its quoted name), L{_FIELDS}' names, and
        those of L{renders}.  The values that are the same for every
        member of the kind are written in.
    @ivar renders: The name of the value and what gives it (as XML) for
        each other value of a member, in order; C{None} where one cannot
        be had.
    @ivar displayname: Whether the response shows the name as text.
    @ivar modified: Whether it shows the modification time.
    @ivar created: Whether it shows the creation time.
    @ivar showsETag: Whether it shows the entity tag.
    @ivar needsETag: Whether the response shows or names the entity tag
        (which a file gone meanwhile has not).
    """

    def __init__(self, context: PropertyContext, collection, isCollection: bool, kind: str,
                 keys: Optional[List[str]]):
        props: List[str] = []
        missing: List[str] = []
        holes = ["href"]
        self.renders: List[Tuple[str, Callable[[PropertyContext, ResourceInfo], Optional[str]]]] = []
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
        # What a value the same for every member of the kind is had from.
        sample = ResourceInfo(collection + (_HOLE,), isCollection, 0, 0.0, 0.0, 0)
        for key, prop in present:
            if key == ETAG:
                self.needsETag = True
            if kind == PROPNAME:
                props.append(emptyElement(key))
            elif prop.sameForKind or (prop.sameWithoutLocks and not context.locks):
                value = prop.render(context, sample)
                assert _HOLE not in value, "a value the same for every member named one"
                props.append(element(key, value))
            else:
                props.append(element(key, _HOLE))
                field = _FIELDS.get(key)
                if field is None:
                    field = f"value{len(self.renders)}"
                    self.renders.append((field, prop.render))
                holes.append(field)
        self.displayname = "displayname" in holes
        self.modified = "modified" in holes
        self.created = "created" in holes
        self.showsETag = "etag" in holes
        # The whole response with a hole for each value, by the code that
        # writes any response: the same XML around the values.
        whole = response(urls.href(collection + (_HOLE,), isCollection).replace(quote(_HOLE, safe=""), _HOLE),
                         [(OK, props), (NOT_FOUND, missing)])
        pieces = [piece.replace("%", "%%") for piece in whole.split(_HOLE)]
        assert len(pieces) == len(holes) + 1, "a name or a property held the placeholder"
        self.template = pieces[0] + "".join(f"%({hole})s{piece}" for hole, piece in zip(holes, pieces[1:]))


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
        # Asked once per member of a folder of up to a million: the values
        # are computed here, with as few calls as may be.
        info, etag, dead = member
        if dead:
            return self.general(self.context, info, dead)
        layout = self.layouts[info.isCollection]
        if etag is None and layout.needsETag:
            return self.general(self.context, info, dead)
        name = info.path[-1]
        plain = _plainName(name)
        # quotedName(name), inline (a call less per member).
        values = {"href": name if plain else quote(name, safe=""), "size": info.size}
        if layout.displayname:
            # As _displayname: a plain name holds nothing XML escapes.
            values["displayname"] = name if plain else text(name)
        if layout.modified:
            values["modified"] = httpDate(info.modified)
        if layout.created:
            values["created"] = isoDate(info.created)
        if layout.showsETag:
            values["etag"] = text(etag)
        for field, render in layout.renders:
            value = render(self.context, info)
            if value is None:
                return self.general(self.context, info, dead)
            values[field] = value
        return layout.template % values
