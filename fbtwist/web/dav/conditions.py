"""
What every changing method checks before it touches the tree: the C{If}
header, the locks held by others, C{If-Match} / C{If-None-Match}, and the
C{Depth}, C{Overwrite} and C{Destination} headers.
"""

from typing import Dict, Iterable, List, NamedTuple, Optional, Tuple

from twisted.web import http

from fbtwist.access.values import LockStore
from fbtwist.errors import NotFound, PermissionDenied
from fbtwist.web.dav import ifheader, urls
from fbtwist.web.dav.davxml import DAVError
from fbtwist.web.responses import HTTPError, etagMatches


class Preconditions(NamedTuple):
    """
    The preconditions a request states, read from it in the reactor's
    thread, so that they can be checked anywhere (in the thread pool, right
    before a commit) without the request.

    @ivar ifMatch: The C{If-Match} header, or C{None}.
    @ivar ifNoneMatch: The C{If-None-Match} header, or C{None}.
    @ivar ifLists: The parsed C{If} header, or C{None}.
    @ivar tagged: The store path each of its resource tags names (C{None}:
        outside the publishing tree).
    """

    ifMatch: Optional[bytes]
    ifNoneMatch: Optional[bytes]
    ifLists: Optional[List[ifheader.ConditionList]]
    tagged: Dict[str, Optional[tuple]]


def preconditionsOf(avatar, request, lists=None) -> Preconditions:
    """
    Read the preconditions of C{request} (its C{If} header C{lists}, when
    parsed already).

    @raise HTTPError: 400 for a malformed C{If} header.
    """
    lists = parseIfHeader(request) if lists is None else lists
    tagged = {}
    for conditionList in lists or ():
        tag = conditionList.tag
        if tag is not None and tag not in tagged:
            try:
                tagged[tag] = urls.storePathOfURL(avatar, tag, request)
            except HTTPError:
                tagged[tag] = None
    return Preconditions(request.getHeader(b"If-Match"), request.getHeader(b"If-None-Match"), lists, tagged)


def _stated(avatar, request, lists=None) -> Preconditions:
    """
    C{request}'s preconditions (C{request} may be them already), with the
    C{If} header C{lists} when already parsed.
    """
    if isinstance(request, Preconditions):
        return request
    return preconditionsOf(avatar, request, lists)


def currentETag(avatar, path) -> Optional[str]:
    """
    The entity tag of the file at C{path}, or C{None} (no file, a
    collection, or one this user may not read).
    """
    info = avatar.peek(path)
    if info is None or info.isCollection:
        return None
    try:
        return avatar.etag(path)
    except (PermissionDenied, NotFound):
        return None


def checkIfMatch(avatar, request, path) -> None:
    """
    C{If-Match} and C{If-None-Match} (C{*} included) for PUT and DELETE.

    @raise HTTPError: 412 when they do not hold.
    """
    stated = _stated(avatar, request)
    ifMatch, ifNoneMatch = stated.ifMatch, stated.ifNoneMatch
    if ifMatch is None and ifNoneMatch is None:
        return
    info = avatar.peek(path)
    exists = info is not None
    etag = currentETag(avatar, path) if exists else None
    if ifMatch is not None:
        if not exists or not (ifMatch.strip() == b"*" or etagMatches(ifMatch, etag)):
            raise HTTPError(http.PRECONDITION_FAILED, "If-Match does not match the current version")
    if ifNoneMatch is not None and exists:
        if ifNoneMatch.strip() == b"*" or etagMatches(ifNoneMatch, etag):
            raise HTTPError(http.PRECONDITION_FAILED, "If-None-Match matches the current version")


def parseIfHeader(request):
    if isinstance(request, Preconditions):
        return request.ifLists
    header = request.getHeader(b"If")
    if header is None:
        return None
    return ifheader.parseIf(header.decode("latin-1"))


def checkIfHeader(avatar, request, path, locks: LockStore, lists=None) -> None:
    """
    Evaluate the C{If} header (when there is one) against the resources it
    names.

    @raise HTTPError: 412 when it is false.
    """
    stated = _stated(avatar, request, lists)
    lists = stated.ifLists
    if lists is None:
        return
    inForce = locks.all()

    def stateOf(tag):
        target = path if tag is None else stated.tagged.get(tag)
        if target is None:
            return ifheader.ResourceState(None, frozenset())
        tokens = frozenset(lock.token for lock in inForce if lock.covers(target))
        return ifheader.ResourceState(currentETag(avatar, target), tokens)

    if not ifheader.evaluate(lists, stateOf):
        raise HTTPError(http.PRECONDITION_FAILED, "the If header does not hold")


def heldTokens(avatar, request, lists=None) -> set:
    """
    The lock tokens this request submits.
    """
    lists = parseIfHeader(request) if lists is None else lists
    return set() if lists is None else ifheader.submittedTokens(lists)


def checkLocks(avatar, request, locks: LockStore, changes: Iterable[Tuple[tuple, bool, bool]], lists=None) -> None:
    """
    Refuse a change that a lock held by someone else protects.

    @param changes: (store path, recursive, membership) for each resource
        the request changes (see L{LockStore.affecting}).
    @raise DAVError: 423 with C{DAV:lock-token-submitted} naming the
        locked resource.
    """
    held = heldTokens(avatar, request, lists)
    for path, recursive, membership in changes:
        for lock in locks.affecting(path, recursive, membership):
            if lock.token in held and lock.principal == avatar.uid:
                continue
            root = avatar.peek(lock.path)
            raise DAVError(
                423, "lock-token-submitted", "the resource is locked",
                hrefs=[urls.href(lock.path, root is not None and root.isCollection)],
            )


def checkWrite(avatar, request, path, changes: Iterable[Tuple[tuple, bool, bool]],
               locks: Optional[LockStore] = None) -> LockStore:
    """
    The C{If} header, then the locks, for a change of C{changes}.

    @return: The lock store used.
    """
    locks = avatar.lockStore() if locks is None else locks
    stated = _stated(avatar, request)
    checkIfHeader(avatar, stated, path, locks)
    checkLocks(avatar, stated, locks, changes, stated.ifLists)
    return locks


def parseDepth(request, default: str, allowed: Tuple[str, ...]) -> str:
    """
    @return: C{"0"}, C{"1"} or C{"infinity"}.
    @raise HTTPError: 400 for any other value or one not in C{allowed}.
    """
    header = request.getHeader(b"Depth")
    if header is None:
        return default
    value = header.decode("latin-1").strip().lower()
    if value not in allowed:
        raise HTTPError(http.BAD_REQUEST, f"Depth must be one of {', '.join(allowed)}")
    return value


def memberDepth(depth: str, isCollection: bool) -> str:
    """
    The depth a request really has on its target: a file has no members,
    so on a file every depth is C{"0"} (RFC 4918 9.1: Depth applies to a
    collection's members; clients such as webdav4 send PROPFIND without a
    Depth header, which means infinity, to learn about one file).
    """
    return depth if isCollection else "0"


def parseOverwrite(request) -> bool:
    header = request.getHeader(b"Overwrite")
    if header is None:
        return True
    value = header.strip().upper()
    if value not in (b"T", b"F"):
        raise HTTPError(http.BAD_REQUEST, "Overwrite must be T or F")
    return value == b"T"


def parseDestination(avatar, request):
    """
    The store path of the C{Destination} header.

    @raise HTTPError: 400 when missing or invalid, 502 when on another
        server, 403 when outside the publishing tree.
    """
    header = request.getHeader(b"Destination")
    if header is None:
        raise HTTPError(http.BAD_REQUEST, "a Destination header is required")
    try:
        text = header.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPError(http.BAD_REQUEST, "the Destination is not UTF-8") from None
    path = urls.storePathOfURL(avatar, text, request)
    if path is None:
        raise HTTPError(http.FORBIDDEN, "the Destination is outside the publishing tree")
    return path
