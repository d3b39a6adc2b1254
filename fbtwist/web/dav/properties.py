"""
WebDAV properties: the table of live properties, computed from what the
store knows, and the dead properties clients store (kept by the store as
serialized XML, keyed by C{"{namespace}name"}).
"""

from email.utils import formatdate
from time import gmtime, strftime
from typing import Callable, Dict, List, NamedTuple, Optional

from fbtwist.access.values import INFINITY, Lock, ResourceInfo
from fbtwist.errors import NotFound, PermissionDenied
from fbtwist.web.dav import urls
from fbtwist.web.dav.davxml import davName, element, text

#: Media types by file suffix; anything else is application/octet-stream.
_MEDIA_TYPES = {".vfb": "text/calendar", ".ifb": "text/calendar", ".ics": "text/calendar"}


class PropertyContext(NamedTuple):
    """
    What live properties are computed from, once per request.

    @ivar locks: The locks in force.
    @ivar now: The lock clock's time.
    """

    avatar: object
    locks: List[Lock]
    now: float


class LiveProperty(NamedTuple):
    """
    @ivar render: Given the context and a resource, the property's value as
        XML, or C{None} when the resource has no such property.
    @ivar protected: Whether clients may not set it (RFC 4918 calls it
        protected); a writable live property is stored as a dead one,
        which then wins.
    """

    render: Callable[[PropertyContext, ResourceInfo], Optional[str]]
    protected: bool = True


def _resourcetype(context, info):
    return "<D:collection/>" if info.isCollection else ""


def _contentlength(context, info):
    return None if info.isCollection else str(info.size)


def _contenttype(context, info):
    if info.isCollection:
        return None
    name = info.name.lower()
    for suffix, mediaType in _MEDIA_TYPES.items():
        if name.endswith(suffix):
            return mediaType
    return "application/octet-stream"


def _etag(context, info):
    if info.isCollection:
        return None
    try:
        return text(context.avatar.listedETag(info))
    except (NotFound, PermissionDenied):
        return None


def _lastmodified(context, info):
    return formatdate(info.modified, usegmt=True)


def _creationdate(context, info):
    return strftime("%Y-%m-%dT%H:%M:%SZ", gmtime(info.created))


def _displayname(context, info):
    return text(info.name or urls.MOUNT[-1])


def _supportedlock(context, info):
    return "".join(
        f"<D:lockentry><D:lockscope><D:{scope}/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>"
        for scope in ("exclusive", "shared")
    )


def activeLock(lock: Lock, now: float) -> str:
    """
    The C{DAV:activelock} element of C{lock}.
    """
    return (
        f"<D:activelock><D:locktype><D:write/></D:locktype><D:lockscope><D:{lock.scope}/></D:lockscope>"
        f"<D:depth>{'infinity' if lock.depth == INFINITY else '0'}</D:depth>"
        + lock.owner
        + f"<D:timeout>Second-{lock.remaining(now)}</D:timeout>"
        f"<D:locktoken><D:href>{text(lock.token)}</D:href></D:locktoken>"
        f"<D:lockroot><D:href>{text(urls.href(lock.path, False))}</D:href></D:lockroot>"
        "</D:activelock>"
    )


def _lockdiscovery(context, info):
    return "".join(activeLock(lock, context.now) for lock in context.locks if lock.covers(info.path))


#: The live properties, by key.
LIVE: Dict[str, LiveProperty] = {
    davName("resourcetype"): LiveProperty(_resourcetype),
    davName("getcontentlength"): LiveProperty(_contentlength),
    davName("getcontenttype"): LiveProperty(_contenttype),
    davName("getetag"): LiveProperty(_etag),
    davName("getlastmodified"): LiveProperty(_lastmodified),
    davName("creationdate"): LiveProperty(_creationdate),
    davName("displayname"): LiveProperty(_displayname, protected=False),
    davName("supportedlock"): LiveProperty(_supportedlock),
    davName("lockdiscovery"): LiveProperty(_lockdiscovery),
}


def isProtected(key: str) -> bool:
    live = LIVE.get(key)
    return live is not None and live.protected


def renderProperty(context: PropertyContext, info: ResourceInfo, key: str, dead: Dict[str, str]) -> Optional[str]:
    """
    The property C{key} of a resource as a whole XML element, or C{None}
    when the resource has no such property.
    """
    if key in dead:
        return dead[key]
    live = LIVE.get(key)
    if live is None:
        return None
    value = live.render(context, info)
    return None if value is None else element(key, value)


def allProperties(context: PropertyContext, info: ResourceInfo, dead: Dict[str, str]) -> List[str]:
    """
    Every property the resource has, as XML elements, live ones first
    (each computed once: a listing of 100,000 files asks this per file).
    """
    found = []
    for key, live in LIVE.items():
        if key in dead:
            continue
        value = live.render(context, info)
        if value is not None:
            found.append(element(key, value))
    return found + list(dead.values())


def allNames(context: PropertyContext, info: ResourceInfo, dead: Dict[str, str]) -> List[str]:
    """
    The keys of every property the resource has, live ones first.
    """
    names = [key for key, live in LIVE.items() if key not in dead and live.render(context, info) is not None]
    return names + list(dead)
