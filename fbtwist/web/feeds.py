"""
Users' calendar feeds on the web (L{fbtwist.access.feeds}):

  - C{/feeds}: a signed-in user's page (HTTP Basic, as C{/pub/}) listing
    their feeds with each one's last fetch in words, a form to add one (up
    to C{--feeds-per-user}) and a button to remove each; rendered with
    C{twisted.web.template} (C{fbtwist/data/feeds.xhtml}) under the pages'
    Content-Security-Policy (no inline script or style).  A form posted
    from another site's page is refused (its C{Origin} is not ours).

Their busy time is merged into each person's by the visibility decision
(L{fbtwist.access.visibility}), for every lookup, group, page and CalDAV
request.
"""

from datetime import datetime, timezone
from urllib.parse import urlsplit

from twisted.cred.portal import IRealm, Portal
from twisted.logger import Logger
from twisted.web import http
from twisted.web.resource import IResource, Resource
from twisted.web.template import Element, XMLFile, flattenString, renderer
from zope.interface import implementer

from fbtwist.errors import PermissionDenied
from fbtwist.web.page import DATA, securityHeaders
from fbtwist.web.responses import HTTPError, renderAsync

FEEDS_PATH = b"/feeds"
#: The largest form accepted, in bytes.
MAX_FORM = 8192


# --- the page ---


class FeedsElement(Element):
    loader = XMLFile(DATA.child("feeds.xhtml"))

    def __init__(self, uid: str, feeds, interval: float, notice: str = ""):
        super().__init__()
        self.uid = uid
        self.feedStore = feeds
        self.seconds = interval
        self.message = notice

    @renderer
    def user(self, request, tag):
        return tag(self.uid)

    @renderer
    def interval(self, request, tag):
        minutes = self.seconds / 60
        return tag(f"{minutes:g} minutes" if minutes >= 1 else f"{self.seconds:g} seconds")

    @renderer
    def notice(self, request, tag):
        return tag(self.message) if self.message else ""

    @renderer
    def feeds(self, request, tag):
        for feed in self.feedStore.feeds(self.uid):
            if feed.checkedAt is None:
                status = "not fetched yet"
            else:
                when = datetime.fromtimestamp(feed.checkedAt, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
                status = f"{'fine' if feed.ok else 'failed'} at {when}: {feed.message}"
            yield tag.clone().fillSlots(url=feed.url, status=status, id=feed.id)

    @renderer
    def addForm(self, request, tag):
        return tag if len(self.feedStore.feeds(self.uid)) < self.feedStore.maxPerUser else ""


class FeedsPage(Resource):
    """
    C{/feeds} for the user C{uid}.
    """

    isLeaf = True
    log = Logger()

    def __init__(self, feeds, refresher, uid: str, interval: float):
        super().__init__()
        self.feedStore = feeds
        self.refresher = refresher
        self.uid = uid
        self.interval = interval

    def render_GET(self, request):
        return renderAsync(request, self._page(request))

    def render_HEAD(self, request):
        return self.render_GET(request)

    async def _page(self, request, notice: str = "", code: int = http.OK) -> None:
        body = b"<!DOCTYPE html>\n" + await flattenString(
            None, FeedsElement(self.uid, self.feedStore, self.interval, notice))
        securityHeaders(request)
        request.setResponseCode(code)
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-store")
        request.setHeader(b"Content-Length", b"%d" % len(body))
        if request.method != b"HEAD":
            request.write(body)

    def render_POST(self, request):
        return renderAsync(request, self._post(request))

    async def _post(self, request) -> None:
        if not _sameOrigin(request):
            raise HTTPError(http.FORBIDDEN, "the form was sent from another site's page")
        content = request.content.read(MAX_FORM + 1)
        if len(content) > MAX_FORM:
            raise HTTPError(http.REQUEST_ENTITY_TOO_LARGE, "the form is too large")
        args = request.args
        action = _field(args, b"action")
        if action == "add":
            try:
                self.feedStore.add(self.uid, _field(args, b"url"))
            except (ValueError, PermissionDenied) as e:
                return await self._page(request, f"Not added: {getattr(e, 'reason', None) or e}", http.BAD_REQUEST)
            self.log.info("{uid} registered a calendar feed", uid=self.uid)
            if self.refresher is not None:
                self.refresher.refresh(self.uid).addErrback(
                    lambda f: self.log.failure("fetching new feeds of {uid}", f, uid=self.uid))
        elif action == "remove":
            if not self.feedStore.remove(self.uid, _field(args, b"id")):
                return await self._page(request, "No such feed.", http.NOT_FOUND)
        else:
            raise HTTPError(http.BAD_REQUEST, "action must be add or remove")
        request.setResponseCode(http.SEE_OTHER)
        request.setHeader(b"Location", FEEDS_PATH)
        request.setHeader(b"Content-Length", b"0")


def _field(args, name: bytes) -> str:
    values = args.get(name) or [b""]
    try:
        return values[0].decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPError(http.BAD_REQUEST, f"the {name.decode()} field is not UTF-8") from None


def _sameOrigin(request) -> bool:
    """
    Whether a form comes from our own page: a browser says where from in
    C{Origin} (sent with every POST); a client that sends none (curl) is no
    browser tricked by another site.
    """
    origin = request.getHeader(b"Origin")
    if origin is None:
        return request.getHeader(b"Sec-Fetch-Site") in (None, b"same-origin", b"none")
    host = request.getHeader(b"Host") or b""
    try:
        return urlsplit(origin.decode("latin-1")).netloc.lower() == host.decode("latin-1").lower()
    except ValueError:
        return False


@implementer(IRealm)
class _FeedsRealm:
    def __init__(self, feeds, refresher, interval: float):
        self.feeds = feeds
        self.refresher = refresher
        self.interval = interval

    def requestAvatar(self, avatarId, mind, *interfaces):
        if IResource not in interfaces:
            raise NotImplementedError("feeds are managed over HTTP only")
        return IResource, FeedsPage(self.feeds, self.refresher, avatarId, self.interval), lambda: None


def feedsResource(portal: Portal, realmName: str, feeds, refresher, interval: float) -> Resource:
    """
    C{/feeds} behind HTTP Basic authentication with the checkers of
    C{portal} (the directory's; never anonymous).
    """
    from twisted.cred.credentials import IAnonymous

    from fbtwist.web.auth import BasicAuthGuard

    checkers = []
    for checker in portal.checkers.values():
        if checker not in checkers and IAnonymous not in getattr(checker, "credentialInterfaces", ()):
            checkers.append(checker)
    return BasicAuthGuard(Portal(_FeedsRealm(feeds, refresher, interval), checkers), realmName)
