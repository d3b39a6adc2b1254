"""
LOCK and UNLOCK: exclusive and shared write locks, Depth 0 and infinity,
taken, refreshed and removed by the avatar (which keeps them in the tree).

A LOCK with a body takes a new lock (on an unmapped URL it first creates
an empty resource and answers 201, as Windows expects); a LOCK without a
body refreshes the lock whose token the C{If} header submits.  Timeouts are
bounded (an hour at most).
"""

from twisted.logger import Logger
from twisted.web import http

from fbtwist.access.permissions import Action
from fbtwist.access.values import EXCLUSIVE, INFINITY, SHARED, Lock, parseTimeout
from fbtwist.errors import NotFound
from fbtwist.web.dav import conditions
from fbtwist.web.dav.davxml import (
    XML_CONTENT_TYPE,
    XML_DECLARATION,
    DAVError,
    davName,
    expectRoot,
    parseXML,
    readBody,
    serializeElement,
)
from fbtwist.web.dav.properties import activeLock
from fbtwist.web.responses import HTTPError

log = Logger()


def parseLockInfo(root):
    """
    @return: (scope, owner XML) from a C{DAV:lockinfo}.
    @raise HTTPError: 400 when the scope or the type is missing or unknown.
    """
    lockinfo = expectRoot(root, "lockinfo")
    scope, locktype, owner = None, None, ""
    for child in lockinfo:
        if child.tag == davName("lockscope"):
            for s in child:
                if s.tag == davName(EXCLUSIVE):
                    scope = EXCLUSIVE
                elif s.tag == davName(SHARED):
                    scope = SHARED
        elif child.tag == davName("locktype"):
            locktype = [t.tag for t in child]
        elif child.tag == davName("owner"):
            owner = serializeElement(child)
    if scope is None:
        raise HTTPError(http.BAD_REQUEST, "DAV:lockinfo needs a lockscope of exclusive or shared")
    if locktype != [davName("write")]:
        raise HTTPError(http.BAD_REQUEST, "only write locks exist")
    return scope, owner


def writeLockAnswer(request, lock: Lock, now: float, code: int) -> None:
    body = (
        XML_DECLARATION
        + '<D:prop xmlns:D="DAV:"><D:lockdiscovery>'
        + activeLock(lock, now)
        + "</D:lockdiscovery></D:prop>\n"
    ).encode("utf-8")
    request.setResponseCode(code)
    request.setHeader(b"Lock-Token", b"<" + lock.token.encode("ascii") + b">")
    request.setHeader(b"Content-Type", XML_CONTENT_TYPE)
    request.setHeader(b"Content-Length", b"%d" % len(body))
    request.write(body)


async def lock(avatar, path, request) -> None:
    root = parseXML(readBody(request))
    timeout = parseTimeout(request.getHeader(b"Timeout"))
    info = await avatar.stat(path)
    isCollection = info is not None and info.isCollection
    avatar.authorize(Action.WRITE, path, isCollection)
    if root is None:
        await refresh(avatar, path, request, timeout)
        return
    scope, owner = parseLockInfo(root)
    depth = conditions.parseDepth(request, INFINITY, ("0", INFINITY))
    granted = await avatar.lock(path, scope, depth, owner, timeout, conditions.preconditionsOf(avatar, request))
    taken = granted.lock
    log.info("{uid} locked {path} ({scope}, depth {depth}, {timeout} s)", uid=avatar.uid,
             path="/".join(path), scope=scope, depth=taken.depth, timeout=taken.timeout)
    writeLockAnswer(request, taken, granted.now, http.CREATED if granted.created else http.OK)


async def refresh(avatar, path, request, timeout) -> None:
    stated = conditions.preconditionsOf(avatar, request)
    if stated.ifHeader is None:
        raise HTTPError(http.BAD_REQUEST, "a LOCK without a body refreshes a lock named in the If header")
    refreshed = await avatar.refreshLock(path, timeout, stated)
    if refreshed is not None:
        writeLockAnswer(request, refreshed.lock, refreshed.now, http.OK)
        return
    raise DAVError(http.PRECONDITION_FAILED, "lock-token-matches-request-uri",
                   "no lock of yours with that token covers this resource")


def parseLockToken(request) -> str:
    header = request.getHeader(b"Lock-Token")
    if header is None:
        raise HTTPError(http.BAD_REQUEST, "UNLOCK needs a Lock-Token header")
    token = header.decode("latin-1").strip()
    if not (token.startswith("<") and token.endswith(">")):
        raise HTTPError(http.BAD_REQUEST, "the Lock-Token must be a <coded-URL>")
    return token[1:-1]


async def unlock(avatar, path, request) -> None:
    token = parseLockToken(request)
    if await avatar.stat(path) is None:
        raise NotFound()
    if not await avatar.unlock(path, token, conditions.preconditionsOf(avatar, request)):
        raise DAVError(http.CONFLICT, "lock-token-matches-request-uri", "no such lock on this resource")
    request.setResponseCode(http.NO_CONTENT)
