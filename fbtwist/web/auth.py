"""
HTTP Basic authentication in front of a resource tree, through the one
portal that FTP uses too.

Twisted's C{HTTPAuthSessionWrapper} answers every checker error other than
bad credentials with 500; here a directory outage is 503 with C{Retry-After}
and throttling is 429, from the error table in L{fbtwist.web.responses}.
"""

import binascii
from typing import Callable

from twisted.cred.credentials import Anonymous, UsernamePassword
from twisted.cred.error import LoginFailed, Unauthorized
from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import http
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET
from twisted.web.util import DeferredResource

from fbtwist.access.realm import loginNow, noLogout
from fbtwist.web.responses import HTTPError, httpErrorFor, writeError


def basicCredentials(request):
    """
    @return: L{UsernamePassword} from the request's C{Authorization: Basic}
        header (login and password as bytes), L{Anonymous} when there is no
        header, or C{None} when the header is malformed or not Basic.
    """
    header = request.getHeader(b"Authorization")
    if header is None:
        return Anonymous()
    return credentialsOf(header)


def credentialsOf(header: bytes):
    """
    @return: L{UsernamePassword} from an C{Authorization: Basic} header's
        value, or C{None} when it is malformed or not Basic.
    """
    scheme, _, encoded = header.strip().partition(b" ")
    if scheme.lower() != b"basic":
        return None
    try:
        decoded = binascii.a2b_base64(encoded.strip())
    except binascii.Error:
        return None
    login, colon, password = decoded.partition(b":")
    if not colon:
        return None
    return UsernamePassword(login, password)


class _AnswerResource(Resource):
    """
    Answers every request with one error.
    """

    isLeaf = True

    def __init__(self, code, reason, headers=()):
        super().__init__()
        self.code, self.reason, self.headers = code, reason, headers

    def render(self, request):
        writeError(request, self.code, self.reason, self.headers)
        return NOT_DONE_YET

    def error(self) -> HTTPError:
        return HTTPError(self.code, self.reason, self.headers)


class BasicAuthGuard(Resource):
    """
    Logs the request in through C{portal} and hands it to the avatar's
    L{IResource}.

    @param anonymousAllowed: Given the request, whether it may go on without
        credentials (as the anonymous avatar); otherwise it is challenged.
    @param interface: The avatar interface asked of the portal.
    @param resourceFor: Makes the resource that answers from the avatar
        (default: the avatar is an L{IResource}).
    """

    log = Logger()

    def __init__(self, portal, realmName: str, anonymousAllowed: Callable[[object], bool] = lambda request: False,
                 interface=IResource, resourceFor: Callable[[object], Resource] = lambda avatar: avatar):
        super().__init__()
        self.portal = portal
        self.realmName = realmName
        self.anonymousAllowed = anonymousAllowed
        self.interface = interface
        self.resourceFor = resourceFor

    def render(self, request):
        return self._avatarResource(request).render(request)

    def getChildWithDefault(self, path, request):
        # The avatar's resource does its own traversal from here.
        request.postpath.insert(0, request.prepath.pop())
        return self._avatarResource(request)

    def _challenge(self, reason: str) -> Resource:
        realm = self.realmName.replace("\\", "\\\\").replace('"', '\\"')
        return _AnswerResource(
            http.UNAUTHORIZED,
            reason,
            [(b"WWW-Authenticate", f'Basic realm="{realm}", charset="UTF-8"'.encode("utf-8"))],
        )

    def _refusal(self, request, credentials):
        """
        @param credentials: The request's L{basicCredentials}.
        @return: The answer to a request whose credentials are missing or
            malformed, or C{None} when they are to be checked.
        """
        if credentials is None:
            return self._challenge("malformed Authorization header")
        if isinstance(credentials, Anonymous) and not self.anonymousAllowed(request):
            return self._challenge("log in with your directory login and password")
        return None

    def _avatarResource(self, request) -> Resource:
        known = getattr(request, "avatarResource", None)
        if known is not None:
            # Logged in before the body was read (fbtwist.web.site.BoundedRequest).
            return known
        credentials = basicCredentials(request)
        refusal = self._refusal(request, credentials)
        if refusal is not None:
            return refusal
        return DeferredResource(self._login(request, credentials))

    def authenticate(self, request) -> defer.Deferred:
        """
        Log C{request} in from its headers alone (before its body is read).

        @return: A Deferred firing with the avatar's resource, or failing
            with L{HTTPError} (401, 429, 503, ...) when the request is
            refused.
        """
        credentials = basicCredentials(request)
        refusal = self._refusal(request, credentials)
        if refusal is not None:
            return defer.fail(refusal.error())

        def refuse(resource):
            if isinstance(resource, _AnswerResource):
                raise resource.error()
            return resource

        return self._login(request, credentials).addCallback(refuse)

    def logIn(self, credentials, peer) -> defer.Deferred:
        """
        Log C{credentials} (L{UsernamePassword}) of a client at C{peer} in
        through the portal.

        @return: A Deferred firing with the avatar's resource and its
            logout, or failing with L{HTTPError} (401, 429, 503, ...) when
            the login is refused.
        """
        # For brute-force throttling per client address (see DirectoryChecker).
        credentials.peer = peer
        # A login the bind cache and the realm answer at once (nearly every
        # publish) skips the portal's Deferreds; the same checks are made.
        known = loginNow(self.portal, credentials, self.interface)
        d = defer.succeed(known) if known is not None else self.portal.login(credentials, None, self.interface)

        def loggedIn(result):
            interface, avatar, logout = result
            return self.resourceFor(avatar), logout

        def failed(failure):
            if failure.check(Unauthorized, LoginFailed):
                raise self._challenge("wrong login or password").error()
            answer = httpErrorFor(failure.value)
            if answer is None:
                self.log.failure("login failed unexpectedly", failure)
                answer = HTTPError(http.INTERNAL_SERVER_ERROR, "internal server error")
            raise answer

        return d.addCallbacks(loggedIn, failed)

    def _login(self, request, credentials) -> defer.Deferred:
        def loggedIn(result):
            resource, logout = result
            if logout is not noLogout:
                request.notifyFinish().addBoth(lambda _: logout())
            return resource

        def failed(failure):
            failure.trap(HTTPError)
            return _AnswerResource(failure.value.code, failure.value.reason, failure.value.headers)

        peer = getattr(request.getClientAddress(), "host", None)
        return self.logIn(credentials, peer).addCallbacks(loggedIn, failed)
