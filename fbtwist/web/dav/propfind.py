"""
PROPFIND: properties of a resource (Depth 0) and of its members (Depth 1).

Depth infinity (also the default) is refused on a collection (403
C{DAV:propfind-finite-depth}); a file has no members, so on a file every
depth means Depth 0 (L{conditions.memberDepth}).  The members
of a collection come lazily from the store and their responses are written
in batches by a cooperative task registered as the request's producer, so a
folder of 100,000 files is streamed with bounded memory: when the client
reads slowly the transport pauses the task, and between batches the
reactor serves other requests.  What each member's response needs (its
entity tag, its dead properties) comes with it in the same pass over the
folder, and the responses are filled in from a layout made once
(L{listing}).
"""

import weakref
from itertools import islice
from typing import Dict, Iterable, List, Optional

from twisted.internet import task
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.web import http

# Bound once: twisted.web.http is a deprecation proxy (~1.4 us per
# attribute), and these are read for every member of a folder.
from twisted.web.http import NOT_FOUND, OK
from zope.interface import implementer

from fbtwist.access.values import ResourceInfo
from fbtwist.errors import NotFound
from fbtwist.web.dav import conditions, urls
from fbtwist.web.dav.davxml import (
    MULTISTATUS_END,
    MULTISTATUS_START,
    XML_CONTENT_TYPE,
    DAVError,
    davName,
    emptyElement,
    parseXML,
    readBody,
    response,
    setStatus,
)
from fbtwist.web.dav.listing import ALLPROP, PROP, PROPNAME, MemberResponses, needsDeadProperties, needsETags
from fbtwist.web.dav.properties import PropertyContext, allNames, allProperties, renderProperty
from fbtwist.web.responses import HTTPError, isGone

log = Logger()

#: How many members' responses are written at once.
BATCH_SIZE = 100

def parseRequest(data: bytes):
    """
    @return: (kind, property keys or None) for a PROPFIND body.
    @raise HTTPError: 400 for anything but a C{DAV:propfind}.
    """
    root = parseXML(data)
    if root is None:
        return ALLPROP, None
    if root.tag != davName("propfind"):
        raise HTTPError(http.BAD_REQUEST, "the body must be a DAV:propfind element")
    for child in root:
        if child.tag == davName("allprop"):
            return ALLPROP, None
        if child.tag == davName("propname"):
            return PROPNAME, None
        if child.tag == davName("prop"):
            return PROP, [prop.tag for prop in child]
    raise HTTPError(http.BAD_REQUEST, "DAV:propfind needs allprop, propname or prop")


def resourceResponse(context: PropertyContext, info: ResourceInfo, kind: str, keys: Optional[List[str]],
                     dead: Optional[Dict[str, str]] = None) -> str:
    """
    The C{DAV:response} of one resource.

    @param dead: Its dead properties, when they were read with it.
    """
    if dead is None and not needsDeadProperties(kind, keys):
        # Only live properties asked for (Office's resourcetype): no dead
        # property can answer, so do not look for any.
        dead = {}
    elif dead is None:
        try:
            dead = context.avatar.listedDeadProperties(info)
        except NotFound:
            dead = {}
    found, missing = [], []
    if kind == PROPNAME:
        found = [emptyElement(key) for key in allNames(context, info, dead)]
    elif kind == ALLPROP:
        found = allProperties(context, info, dead)
    else:
        for key in keys:
            value = renderProperty(context, info, key, dead)
            if value is None:
                missing.append(emptyElement(key))
            else:
                found.append(value)
    return response(
        urls.href(info.path, info.isCollection),
        [(OK, found), (NOT_FOUND, missing)],
    )


def memberResponses(context: PropertyContext, collection, kind: str, keys: Optional[List[str]]) -> MemberResponses:
    """
    What writes the response of each member of C{collection} (given as
    C{avatar.listDetailed} gives them): filled into a layout, or by
    L{resourceResponse} when the layout does not fit the member.
    """
    return MemberResponses(context, collection, kind, keys,
                           lambda context, member, dead: resourceResponse(context, member, kind, keys, dead))


@implementer(IPushProducer)
class _TaskProducer:
    """
    Lets the transport pause and resume a cooperative task.
    """

    def __init__(self, cooperativeTask):
        self.task = cooperativeTask

    def pauseProducing(self):
        try:
            self.task.pause()
        except task.SchedulerError:
            pass

    def resumeProducing(self):
        try:
            self.task.resume()
        except task.SchedulerError:
            pass

    def stopProducing(self):
        try:
            self.task.stop()
        except task.SchedulerError:
            pass


_cooperators: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def cooperatorOf(reactor) -> task.Cooperator:
    """
    One cooperator per reactor, running its tasks on that reactor: the
    site's own (a test's memory reactor serves a site too), not always the
    global one as L{task.cooperate} does.
    """
    cooperator = _cooperators.get(reactor)
    if cooperator is None:
        cooperator = _cooperators[reactor] = task.Cooperator(scheduler=lambda work: reactor.callLater(0, work))
    return cooperator


async def streamMembers(request, members: Iterable[ResourceInfo], render, cooperate=task.cooperate) -> bool:
    """
    Write C{render(member)} for every member, L{BATCH_SIZE} at a time,
    pausing while the transport asks.

    @return: Whether every member was written (C{False} when the client
        went away).
    """

    remaining = iter(members)

    def batches():
        while True:
            batch = list(map(render, islice(remaining, BATCH_SIZE)))
            if not batch:
                return
            request.write("".join(batch).encode("utf-8"))
            yield None

    cooperativeTask = cooperate(batches())
    request.registerProducer(_TaskProducer(cooperativeTask), True)
    try:
        await cooperativeTask.whenDone()
    except task.TaskStopped:
        return False
    finally:
        request.unregisterProducer()
    return True


async def propfind(avatar, path, request) -> None:
    depth = conditions.parseDepth(request, "infinity", ("0", "1", "infinity"))
    kind, keys = parseRequest(readBody(request))
    info = await avatar.stat(path)
    if info is None:
        raise NotFound()
    depth = conditions.memberDepth(depth, info.isCollection)
    if depth == "infinity":
        raise DAVError(http.FORBIDDEN, "propfind-finite-depth", "PROPFIND with Depth infinity is not supported")
    active = await avatar.activeLocks()
    context = PropertyContext(avatar, active.locks, active.now)
    first = resourceResponse(context, info, kind, keys)
    setStatus(request, 207)
    request.setHeader(b"Content-Type", XML_CONTENT_TYPE)
    request.write((MULTISTATUS_START + first).encode("utf-8"))
    if depth == "1" and info.isCollection:
        members = await avatar.listDetailed(path, needsETags(kind, keys), needsDeadProperties(kind, keys))
        try:
            complete = await streamMembers(request, members, memberResponses(context, info.path, kind, keys),
                                           cooperate=cooperatorOf(request.site.reactor).cooperate)
        except Exception:
            # The status line is out: the client can only be told by a cut.
            log.failure("PROPFIND of {path} failed while streaming", path="/".join(path))
            request.loseConnection()
            return
        if not complete or isGone(request):
            return
    request.write(MULTISTATUS_END.encode("utf-8"))
