"""
The CalDAV resources: C{/.well-known/caldav} (a redirect), and everything
under C{/caldav/} (and a PROPFIND of C{/}) behind HTTP Basic authentication
with the site's checkers, answered for the signed-in user by
L{CalDAVView}, which hands each method or report to its module.
"""

from dataclasses import dataclass
from typing import Optional

from twisted.cred.checkers import ANONYMOUS
from twisted.cred.portal import IRealm, Portal
from twisted.logger import Logger
from twisted.web import http
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from fbtwist.interfaces import ROOM, USER
from fbtwist.web.auth import BasicAuthGuard
from fbtwist.web.caldav import names, options, outbox, propfind, report
from fbtwist.web.caldav.names import Node, nodeOfPath
from fbtwist.web.dav.davxml import DAVError, writeDAVError
from fbtwist.web.responses import HTTPError, isGone, renderAsync, writeError

#: The methods each kind of node allows.
READ_METHODS = ("OPTIONS", "PROPFIND", "REPORT")


@dataclass(frozen=True)
class CalDAVSettings:
    """
    @ivar maxAttendees: The most attendees one free/busy request may name.
    @ivar searchLimit: The most principals a search answers.
    """

    maxAttendees: int = 100
    searchLimit: int = 20

    @classmethod
    def fromConfig(cls, config) -> "CalDAVSettings":
        return cls(maxAttendees=config.caldavMaxAttendees)


class CalDAVService:
    """
    What every CalDAV request is answered from.

    @ivar lookup: The site's L{fbtwist.web.lookup.LookupResource}: names,
        published times, group rules (see L{fbtwist.web.caldav.freebusy}).
    @ivar directory: The L{fbtwist.interfaces.IPrincipalDirectory}.
    """

    def __init__(self, lookup, directory, settings: CalDAVSettings = CalDAVSettings()):
        self.lookup = lookup
        self.directory = directory
        self.settings = settings

    @property
    def groupBase(self) -> Optional[str]:
        return self.lookup.settings.groupBase

    def now(self):
        return self.lookup.now()

    async def record(self, node: Node):
        """
        The directory's record of the principal a node belongs to, or
        C{None}.
        """
        kind = node.principalKind or USER
        return await self.directory.principal(kind, node.name, self.groupBase)

    async def resolve(self, node: Node, viewer: str) -> Optional[Node]:
        """
        C{node} as it exists, or C{None}: a home (or a member of it) is a
        user's, else a room's (then its kind is L{ROOM}, and it holds its
        calendar only); the signed-in user's own nodes exist without
        asking the directory.
        """
        if node.kind in (names.SITE_ROOT, names.CALDAV_ROOT, names.PRINCIPAL_COLLECTION):
            return node
        if node.name == viewer and (node.principalKind or USER) == USER:
            return node
        if await self.record(node) is not None:
            return node
        if node.kind in (names.HOME, names.CALENDAR):
            room = node._replace(principalKind=ROOM)
            if await self.record(room) is not None:
                return room
        return None


class CalDAVView(Resource):
    """
    The CalDAV space as the user C{uid} sees it; C{uid} is C{None} only
    for an OPTIONS request, the one answered without a login.
    """

    isLeaf = True
    log = Logger()

    def __init__(self, service: CalDAVService, uid: Optional[str]):
        super().__init__()
        self.service = service
        self.uid = uid

    @property
    def principal(self) -> Optional[Node]:
        return None if self.uid is None else Node(names.PRINCIPAL, USER, self.uid)

    def render(self, request):
        method = request.method.decode("ascii", "replace")
        try:
            node = nodeOfPath(request.path.decode("ascii", "replace").split("?", 1)[0])
        except UnicodeDecodeError:
            node = None
        if node is None:
            writeError(request, http.NOT_FOUND, "no such CalDAV resource")
            return NOT_DONE_YET
        allowed = READ_METHODS + (("POST",) if node.kind == names.OUTBOX else ())
        if method == "OPTIONS":
            options.options(node, allowed, request)
            request.finish()
            return NOT_DONE_YET
        if self.uid is None:
            writeError(request, http.UNAUTHORIZED, "log in with your directory login and password")
            return NOT_DONE_YET
        if method not in allowed:
            request.setHeader(b"Allow", ", ".join(allowed).encode("ascii"))
            writeError(request, http.NOT_ALLOWED, "CalDAV here is read-only: " + ", ".join(allowed))
            return NOT_DONE_YET
        handler = {"PROPFIND": propfind.propfind, "REPORT": report.report, "POST": outbox.post}[method]
        return renderAsync(request, self._answer(handler, node, request))

    async def _answer(self, handler, node: Node, request) -> None:
        try:
            found = await self.service.resolve(node, self.uid)
            if found is None:
                raise HTTPError(http.NOT_FOUND, "no such CalDAV resource")
            await handler(self, found, request)
        except DAVError as e:
            if not isGone(request):
                writeDAVError(request, e)


@implementer(IRealm)
class _CalDAVRealm:
    def __init__(self, service: CalDAVService):
        self.service = service

    def requestAvatar(self, avatarId, mind, *interfaces):
        if IResource not in interfaces:
            raise TypeError("CalDAV is served over HTTP only")
        uid = None if avatarId is ANONYMOUS else avatarId
        return IResource, CalDAVView(self.service, uid), lambda: None


def guardedCalDAV(portal: Portal, realmName: str, service: CalDAVService) -> BasicAuthGuard:
    """
    The CalDAV space behind HTTP Basic authentication with the checkers of
    C{portal} (those of the publishing tree); only OPTIONS goes without.
    """
    checkers = []
    for checker in portal.checkers.values():
        if checker not in checkers:
            checkers.append(checker)
    return BasicAuthGuard(Portal(_CalDAVRealm(service), checkers), realmName,
                          anonymousAllowed=lambda request: request.method == b"OPTIONS")


class WellKnownCalDAV(Resource):
    """
    C{/.well-known/caldav} (RFC 6764): a redirect to the CalDAV root, for
    every method, without authentication.
    """

    isLeaf = True

    def render(self, request):
        request.setResponseCode(http.MOVED_PERMANENTLY)
        request.setHeader(b"Location", names.ROOT.encode("ascii"))
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        body = b"CalDAV is at " + names.ROOT.encode("ascii") + b"\n"
        request.setHeader(b"Content-Length", b"%d" % len(body))
        return body if request.method != b"HEAD" else b""


def wellKnown() -> Resource:
    """
    C{/.well-known/}, holding C{caldav}.
    """
    folder = Resource()
    folder.putChild(b"caldav", WellKnownCalDAV())
    return folder
