"""
The signed-in users' forms (C{/settings}, C{/feeds}) against cross-site
request forgery.  A browser sends Basic credentials with every request to
our site, whichever page makes it, so a form posted from another site's
page would act as the user.  Each POST must therefore pass two checks:

  - B{same origin}: a browser says where a form comes from (C{Origin} on
    every POST, C{Sec-Fetch-Site} in current browsers); another site's is
    refused;
  - B{a form token}: each form carries a token our page gave, signed for
    the user and the form with a secret the tree keeps (so any server of a
    cluster accepts it) and valid for L{TOKEN_LIFETIME}; another site's
    page cannot read it.
"""

import hashlib
import hmac
from typing import Callable
from urllib.parse import urlsplit

from twisted.web import http
from twisted.web.template import Element, renderer

from fbtwist.web.responses import HTTPError

#: How long a form token is accepted, in seconds.
TOKEN_LIFETIME = 12 * 3600.0
#: The name of the form field holding the token.
TOKEN_FIELD = b"token"


def sameOrigin(request) -> bool:
    """
    Whether a form comes from our own page, as far as the browser says:
    C{Sec-Fetch-Site} (current browsers, decisive when sent), else
    C{Origin} (sent with every POST; C{null} when the browser will not say,
    as our pages' C{Referrer-Policy: no-referrer} makes it for its own
    forms, and as a sandboxed frame of another site's does: then only
    C{Sec-Fetch-Site} can vouch).  A client that sends neither (curl) is no
    browser tricked by another site.
    """
    site = request.getHeader(b"Sec-Fetch-Site")
    if site is not None:
        return site in (b"same-origin", b"none")
    origin = request.getHeader(b"Origin")
    if origin is None:
        return True
    host = request.getHeader(b"Host") or b""
    try:
        return urlsplit(origin.decode("latin-1")).netloc.lower() == host.decode("latin-1").lower()
    except ValueError:
        return False


class FormTokens:
    """
    Issues and checks form tokens (see the module).

    @param key: Gives the secret (bytes), asked when first needed.
    @param clock: What time it is (C{seconds()}).
    """

    def __init__(self, key: Callable[[], bytes], clock):
        self._key = key
        self.clock = clock

    def _mac(self, uid: str, form: str, issued: int) -> str:
        message = f"{uid.lower()}\0{form}\0{issued}".encode("utf-8")
        return hmac.new(self._key(), message, hashlib.sha256).hexdigest()[:32]

    def issue(self, uid: str, form: str) -> str:
        """
        @return: A token for C{uid}'s form C{form}.
        """
        issued = int(self.clock.seconds())
        return f"{issued}.{self._mac(uid, form, issued)}"

    def valid(self, uid: str, form: str, token: str) -> bool:
        """
        Whether C{token} was issued by L{issue} for C{uid}'s C{form} and
        has not expired.
        """
        issued, dot, mac = token.partition(".")
        if not dot or not issued.isdigit() or len(issued) > 12:
            return False
        age = self.clock.seconds() - int(issued)
        if not -60 <= age <= TOKEN_LIFETIME:
            return False
        return hmac.compare_digest(mac, self._mac(uid, form, int(issued)))


def checkForm(request, tokens: FormTokens, uid: str, form: str) -> None:
    """
    Refuse a POST that fails either check (see the module).

    @raise HTTPError: 403 with the reason.
    """
    if not sameOrigin(request):
        raise HTTPError(http.FORBIDDEN, "the form was sent from another site's page")
    values = request.args.get(TOKEN_FIELD) or [b""]
    token = values[0].decode("ascii", "replace")
    if not tokens.valid(uid, form, token):
        raise HTTPError(http.FORBIDDEN, "the form has expired or did not come from this site: "
                                        "reload the page and send it again")


def formTokensFor(portal) -> FormTokens:
    """
    The form tokens of the signed-in pages behind C{portal}: signed with
    the tree's secret (L{fbtwist.access.settings.SettingsStore.formKey}),
    or, for a realm that has none, one of this process.
    """
    visibility = portal.realm.visibility
    whoSees = getattr(visibility, "whoSees", None)
    if whoSees is not None:
        return FormTokens(whoSees.settings.formKey, visibility.clock)
    import secrets

    key = secrets.token_hex(32).encode("ascii")
    return FormTokens(lambda: key, visibility.clock)


class SignedInFormElement(Element):
    """
    What the signed-in users' pages have in common: whose page it is and
    the form token their forms carry.

    @ivar uid: The signed-in user.
    @ivar formToken: The token of the page's forms (L{FormTokens.issue}).
    """

    def __init__(self, uid: str, token: str):
        super().__init__()
        self.uid = uid
        self.formToken = token

    @renderer
    def user(self, request, tag):
        return tag(self.uid)

    @renderer
    def token(self, request, tag):
        return tag(value=self.formToken)
