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
    @ivar filesOnly: Whether only files have it (C{render} is not asked
        for collections); else C{render} gives C{None} only when the
        resource is gone meanwhile.
    @ivar sameForKind: Whether its value is the same for every file and
        for every collection (a listing writes it once per kind).
    @ivar sameWithoutLocks: Whether its value is the same for every file
        and for every collection that no lock covers.
    """

    render: Callable[[PropertyContext, ResourceInfo], Optional[str]]
    protected: bool = True
    filesOnly: bool = False
    sameForKind: bool = False
    sameWithoutLocks: bool = False


def liveValue(context: PropertyContext, info: ResourceInfo, live: LiveProperty) -> Optional[str]:
    """
    The value of the live property C{live} of a resource, as XML, or
    C{None} when the resource has no such property.
    """
    if live.filesOnly and info.isCollection:
        return None
    return live.render(context, info)


def _resourcetype(context, info):
    return "<D:collection/>" if info.isCollection else ""


def _contentlength(context, info):
    return str(info.size)


def _contenttype(context, info):
    name = info.name.lower()
    for suffix, mediaType in _MEDIA_TYPES.items():
        if name.endswith(suffix):
            return mediaType
    return "application/octet-stream"


def _etag(context, info):
    try:
        return text(context.avatar.listedETag(info))
    except (NotFound, PermissionDenied):
        return None


#: How many formatted seconds L{httpDate} and L{isoDate} each remember
#: (then they start again): far more than the seconds of a folder listed.
DATES_HELD = 4096

_httpDates: Dict[float, str] = {}
_isoDates: Dict[float, str] = {}


def httpDate(modified: float) -> str:
    """
    The HTTP-date of a time, as C{formatdate(modified, usegmt=True)}
    writes it, remembered per whole second: the files of a folder listed
    (or listed again) share seconds, and formatting a date was most of the
    cost of its property.  A listing asks this once per member, so it
    costs one Python call when the second is known.
    """
    seconds = modified // 1  # floor, as a float: no call
    if modified - seconds < 0.999999:
        text = _httpDates.get(seconds)
        if text is None:
            if len(_httpDates) >= DATES_HELD:
                _httpDates.clear()
            text = _httpDates[seconds] = formatdate(int(seconds), usegmt=True)
        return text
    # formatdate rounds to microseconds, which may make the next second.
    return formatdate(modified, usegmt=True)


def isoDate(created: float) -> str:
    """
    The ISO 8601 date (RFC 3339, UTC, whole seconds) of a time, floored as
    C{gmtime} floors, remembered per whole second as L{httpDate}'s.
    """
    seconds = created // 1
    text = _isoDates.get(seconds)
    if text is None:
        if len(_isoDates) >= DATES_HELD:
            _isoDates.clear()
        text = _isoDates[seconds] = strftime("%Y-%m-%dT%H:%M:%SZ", gmtime(int(seconds)))
    return text


def _lastmodified(context, info):
    return httpDate(info.modified)


def _creationdate(context, info):
    return isoDate(info.created)


def _displayname(context, info):
    return text(info.name or urls.MOUNT[-1])


_SUPPORTED_LOCKS = "".join(
    f"<D:lockentry><D:lockscope><D:{scope}/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>"
    for scope in ("exclusive", "shared")
)


def _supportedlock(context, info):
    return _SUPPORTED_LOCKS


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
    davName("resourcetype"): LiveProperty(_resourcetype, sameForKind=True),
    davName("getcontentlength"): LiveProperty(_contentlength, filesOnly=True),
    davName("getcontenttype"): LiveProperty(_contenttype, filesOnly=True),
    davName("getetag"): LiveProperty(_etag, filesOnly=True),
    davName("getlastmodified"): LiveProperty(_lastmodified),
    davName("creationdate"): LiveProperty(_creationdate),
    davName("displayname"): LiveProperty(_displayname, protected=False),
    davName("supportedlock"): LiveProperty(_supportedlock, sameForKind=True),
    davName("lockdiscovery"): LiveProperty(_lockdiscovery, sameWithoutLocks=True),
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
    value = liveValue(context, info, live)
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
        value = liveValue(context, info, live)
        if value is not None:
            found.append(element(key, value))
    return found + list(dead.values())


def allNames(context: PropertyContext, info: ResourceInfo, dead: Dict[str, str]) -> List[str]:
    """
    The keys of every property the resource has, live ones first.
    """
    names = [key for key, live in LIVE.items() if key not in dead and liveValue(context, info, live) is not None]
    return names + list(dead)
