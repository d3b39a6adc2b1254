"""
Users' calendar feeds on the web (L{fbtwist.access.feeds}):

  - C{/feeds}: a signed-in user's page (HTTP Basic, as C{/pub/}) listing
    their feeds with each one's last fetch in words, a form to add one (up
    to C{--feeds-per-user}) and a button to remove each; rendered with
    C{twisted.web.template} (C{fbtwist/data/feeds.xhtml}) under the pages'
    Content-Security-Policy (no inline script or style).  Behind the one
    portal and realm (the realm's avatar factory for L{IFeedsPage}); its
    forms are checked as every signed-in form is (L{fbtwist.web.forms}).

Their busy time is merged into each person's by the visibility decision
(L{fbtwist.access.visibility}), for every lookup, group, page and CalDAV
request.
"""

from datetime import datetime, timezone

from twisted.cred.portal import Portal
from twisted.logger import Logger
from twisted.web import http
from twisted.web.resource import IResource, Resource
from twisted.web.template import XMLFile, flattenString, renderer

from fbtwist.errors import PermissionDenied
from fbtwist.web.auth import BasicAuthGuard
from fbtwist.web.forms import FormTokens, SignedInFormElement, checkForm, formTokensFor
from fbtwist.web.page import DATA, securityHeaders
from fbtwist.web.responses import HTTPError, renderAsync

FEEDS_PATH = b"/feeds"
#: The feeds page's form, for its tokens.
FORM = "feeds"
#: The largest form accepted, in bytes.
MAX_FORM = 8192


# --- the page ---


class FeedsElement(SignedInFormElement):
    loader = XMLFile(DATA.child("feeds.xhtml"))

    def __init__(self, uid: str, feeds, interval: float, notice: str = "", token: str = ""):
        super().__init__(uid, token)
        self.feedStore = feeds
        self.seconds = interval
        self.message = notice

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

    def __init__(self, feeds, refresher, uid: str, interval: float, tokens: FormTokens):
        super().__init__()
        self.feedStore = feeds
        self.refresher = refresher
        self.uid = uid
        self.interval = interval
        self.tokens = tokens

    def render_GET(self, request):
        return renderAsync(request, self._page(request))

    def render_HEAD(self, request):
        return self.render_GET(request)

    async def _page(self, request, notice: str = "", code: int = http.OK) -> None:
        body = b"<!DOCTYPE html>\n" + await flattenString(
            None, FeedsElement(self.uid, self.feedStore, self.interval, notice, self.tokens.issue(self.uid, FORM)))
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
        content = request.content.read(MAX_FORM + 1)
        if len(content) > MAX_FORM:
            raise HTTPError(http.REQUEST_ENTITY_TOO_LARGE, "the form is too large")
        checkForm(request, self.tokens, self.uid, FORM)
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


class IFeedsPage(IResource):
    """
    What the realm is asked for to show a signed-in user their feeds' page.
    """


def feedsResource(portal: Portal, realmName: str, feeds, refresher, interval: float) -> Resource:
    """
    C{/feeds} behind HTTP Basic authentication through C{portal} (the one
    portal; never anonymous): its realm is given the avatar factory of
    L{IFeedsPage}.
    """
    tokens = formTokensFor(portal)
    portal.realm.registerAvatarFactory(
        IFeedsPage, lambda avatar: FeedsPage(feeds, refresher, avatar.uid, interval, tokens))
    return BasicAuthGuard(portal, realmName, interface=IFeedsPage)
