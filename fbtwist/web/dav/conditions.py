"""
What a changing method reads from the wire before it asks the avatar: the
preconditions (the C{If} header, C{If-Match} / C{If-None-Match}, the lock
tokens submitted) as a L{Preconditions} value the avatar evaluates, and the
C{Depth}, C{Overwrite} and C{Destination} headers; and the answer to a
lock in the way.
"""

from typing import List, Optional, Tuple

from twisted.web import http

from fbtwist.access.preconditions import submittedTokens
from fbtwist.access.values import ConditionList, Preconditions
from fbtwist.errors import LockedBy
from fbtwist.web.dav import ifheader, urls
from fbtwist.web.dav.davxml import DAVError
from fbtwist.web.responses import HTTPError


def preconditionsOf(avatar, request) -> Preconditions:
    """
    Read the preconditions of C{request} as values the avatar evaluates
    (without the request, in whichever thread it changes the tree): its
    C{If-Match} and C{If-None-Match}, its C{If} header with the store path
    each resource tag names, and the lock tokens that header submits.

    @raise HTTPError: 400 for a malformed C{If} header.
    """
    lists = parseIfHeader(request)
    tagged = {}
    for conditionList in lists or ():
        tag = conditionList.tag
        if tag is not None and tag not in tagged:
            try:
                tagged[tag] = urls.storePathOfURL(avatar, tag, request)
            except HTTPError:
                tagged[tag] = None
    return Preconditions(
        ifMatch=request.getHeader(b"If-Match"),
        ifNoneMatch=request.getHeader(b"If-None-Match"),
        ifHeader=None if lists is None else tuple(lists),
        tagged=tagged,
        tokens=submittedTokens(lists),
    )


def parseIfHeader(request) -> Optional[List[ConditionList]]:
    """
    The lists of the C{If} header of C{request}, or C{None}.

    @raise HTTPError: 400 when it is malformed.
    """
    header = request.getHeader(b"If")
    if header is None:
        return None
    return ifheader.parseIf(header.decode("latin-1"))


def lockedAnswer(error: LockedBy) -> DAVError:
    """
    The WebDAV answer to a change a lock stands in the way of: 423 naming
    the lock's root, with C{DAV:no-conflicting-lock} for a LOCK, else
    C{DAV:lock-token-submitted}.
    """
    hrefs = [] if error.lock is None else [urls.href(error.lock.path, error.rootIsCollection)]
    condition = "no-conflicting-lock" if error.conflicting else "lock-token-submitted"
    return DAVError(423, condition, "the resource is locked", hrefs=hrefs)


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
