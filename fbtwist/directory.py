"""
The LDAP directory, asked through ldaptor: search-then-bind authentication,
lookup-name resolution and group membership, for OpenLDAP and Active
Directory alike.

Filters are always built from ldaptor filter objects, never by pasting text,
so a login such as C{*)(uid=*} is only ever compared literally (RFC 4515).

Connections:
  - searches share a small pool of persistent connections (LDAP multiplexes
    requests on each), bound as the search account or anonymous;
  - each user bind gets a connection of its own that is closed right after,
    so a user's identity never leaks into later searches;
  - TLS (C{ldaps://} or StartTLS) is always verified against the host name
    with service-identity; a certificate that does not verify is an outage,
    never a reason to fall back to plain text;
  - every call has a timeout; after a failure new connections are attempted
    only after a delay that doubles up to a maximum (backoff), and calls in
    between fail at once with L{DirectoryUnavailable}, so clients get their
    503 quickly and a struggling server is not hammered.  The first call
    after the delay reconnects: service resumes without a restart.
"""

import functools
import ipaddress
from typing import List, Optional, Sequence

from ldaptor.protocols import pureldap
from ldaptor.protocols.ldap import ldaperrors
from ldaptor.protocols.ldap.ldapclient import LDAPClient, LDAPClientConnectionLostException
from ldaptor.protocols.ldap.distinguishedname import DistinguishedName
from ldaptor.protocols.ldap.ldapsyntax import LDAPEntry
from OpenSSL import SSL
from service_identity import VerificationError
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer, error as netError
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Factory
from twisted.internet.ssl import optionsForClientTLS
from twisted.logger import Logger
from zope.interface import implementer

from fbtwist.errors import DirectoryUnavailable
from fbtwist.interfaces import IDirectory
from fbtwist.ldapurl import LDAPURL

# Result codes that mean "the directory cannot answer now", not "no".
_UNAVAILABLE_CODES = {
    ldaperrors.LDAPBusy.resultCode,
    ldaperrors.LDAPUnavailable.resultCode,
    ldaperrors.LDAPUnwillingToPerform.resultCode,
    ldaperrors.LDAPOther.resultCode,
    ldaperrors.LDAPTimeLimitExceeded.resultCode,
    ldaperrors.LDAPAdminLimitExceeded.resultCode,
}
_REFERRAL_CODE = ldaperrors.LDAPReferral.resultCode
_CONNECTION_ERRORS = (
    netError.ConnectError,
    netError.ConnectionLost,
    netError.ConnectionDone,
    LDAPClientConnectionLostException,
    defer.TimeoutError,
    defer.CancelledError,
)
_TLS_ERRORS = (SSL.Error, VerificationError)

#: The first delay before reconnecting after a failure (seconds); it doubles
#: with each further failure up to the directory's C{retryMax}.
RETRY_INITIAL = 0.25


def equalityFilter(attribute: str, value: str):
    """
    An C{(attribute=value)} filter object; C{value} is matched literally.
    """
    return pureldap.LDAPFilter_equalityMatch(
        attributeDesc=pureldap.LDAPAttributeDescription(attribute),
        assertionValue=pureldap.LDAPAssertionValue(value),
    )


def prefixFilter(attribute: str, prefix: str):
    """
    An C{(attribute=prefix*)} filter object; C{prefix} is matched literally.
    """
    return pureldap.LDAPFilter_substrings(
        type=attribute,
        substrings=[pureldap.LDAPFilter_substrings_initial(prefix)],
    )


def anyOf(filters: list):
    """
    C{filters} or-ed together (a single filter stays as it is).
    """
    return filters[0] if len(filters) == 1 else pureldap.LDAPFilter_or(filters)


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def allValues(entry, attribute: str) -> List[str]:
    """
    The values of an entry's attribute as text (attribute names compared
    case-insensitively).
    """
    for key in entry.keys():
        if _text(key).lower() == attribute.lower():
            return [_text(v) for v in entry[key]]
    return []


def firstValue(entry, attribute: str) -> Optional[str]:
    """
    One value of an entry's attribute as text, or C{None}.
    """
    values = allValues(entry, attribute)
    return values[0] if values else None


def _describeTLSFailure(e: Exception) -> str:
    if isinstance(e, VerificationError):
        return f"its certificate does not match the host name ({e})"
    reasons = [part for err in (e.args[0] if e.args and isinstance(e.args[0], list) else []) for part in err[-1:]]
    return f"its certificate does not verify ({', '.join(reasons) or e})"


@implementer(IHandshakeListener)
class DirectoryClient(LDAPClient):
    """
    An L{LDAPClient} that

      - lets its TLS handshake be awaited (L{waitForHandshake}), so that a
        certificate that does not verify is reported as such, at connect
        time;
      - ignores referrals: continuation references in search results are
        skipped (ldaptor's own client does that), and a result that carries
        a referral (Active Directory answers so for a base outside its
        naming contexts) is read as "nothing here" instead of tripping
        ldaptor's C{assert msg.referral is None}.
    """

    def __init__(self):
        super().__init__()
        self._handshakeWaiters: List[defer.Deferred] = []
        self._handshakeDone = False
        self._closeWaiters: List[defer.Deferred] = []
        self.closed = False

    def waitForHandshake(self) -> defer.Deferred:
        if self._handshakeDone:
            return defer.succeed(self)
        d = defer.Deferred()
        self._handshakeWaiters.append(d)
        return d

    def handshakeCompleted(self) -> None:
        self._handshakeDone = True
        waiters, self._handshakeWaiters = self._handshakeWaiters, []
        for d in waiters:
            d.callback(self)

    def whenClosed(self) -> defer.Deferred:
        """
        @return: A Deferred that fires once the connection is closed.
        """
        d = defer.Deferred()
        if self.closed:
            d.callback(None)
        else:
            self._closeWaiters.append(d)
        return d

    def connectionLost(self, reason=None):
        self.closed = True
        waiters, self._handshakeWaiters = self._handshakeWaiters, []
        for d in waiters:
            d.errback(reason)
        super().connectionLost(reason)
        waiters, self._closeWaiters = self._closeWaiters, []
        for d in waiters:
            d.callback(None)

    def handle(self, msg):
        response = msg.value
        if isinstance(response, pureldap.LDAPResult):
            response.referral = None
            if isinstance(response, pureldap.LDAPSearchResultDone) and response.resultCode == _REFERRAL_CODE:
                response.resultCode = ldaperrors.Success.resultCode
                response.matchedDN = b""
                response.errorMessage = b""
        super().handle(msg)


class _QuietClientFactory(Factory):
    """
    Builds one LDAP client without a log line per connection.
    """

    noisy = False
    protocol = DirectoryClient


def _close(client: LDAPClient) -> None:
    if client.connected:
        try:
            client.unbind()
        except Exception:
            client.transport.abortConnection()


class _SearchPool:
    """
    Up to C{size} persistent search connections, used in turn and opened
    when first needed (or found closed).  Concurrent callers of one slot
    wait for one connection attempt.
    """

    def __init__(self, size: int, connect):
        self._connect = connect
        self._clients: List[Optional[LDAPClient]] = [None] * size
        self._locks = [defer.DeferredLock() for _ in range(size)]
        self._next = 0

    async def client(self) -> LDAPClient:
        index = self._next
        self._next = (index + 1) % len(self._clients)
        async with self._locks[index]:
            client = self._clients[index]
            if not _connected(client):
                client = self._clients[index] = await self._connect()
            return client

    def discard(self, client: LDAPClient) -> None:
        for index, held in enumerate(self._clients):
            if held is client:
                self._clients[index] = None
        _close(client)

    def close(self) -> None:
        clients, self._clients = self._clients, [None] * len(self._clients)
        for client in clients:
            if client is not None:
                _close(client)


@functools.lru_cache(maxsize=256)
def _distinguishedName(text: str) -> DistinguishedName:
    # Parsed once: ldaptor's DN parser was ~7 % of a lookup that searches.
    # LDAPEntry copies the parsed parts from a DistinguishedName it is given.
    return DistinguishedName(text)


def _connected(client) -> bool:
    return client is not None and bool(client.connected)


@implementer(IDirectory)
class LDAPDirectory:
    """
    An LDAP server (OpenLDAP, Active Directory, ...) as fbtwist's user
    directory.

    @ivar url: The L{LDAPURL} (server, base, uid attribute, scope, filter).
    @ivar loginAttributes: The attributes a login is matched against (any
        of them); Active Directory: C{sAMAccountName, userPrincipalName}.
        The uid of a user is always the value of the URL's attribute.
    @ivar mailAttributes: The attributes holding mail addresses, for
        lookup names.

    @param reactor: Connects, and times calls out.
    @param clock: Times the backoff delays (the reactor by default).
    @param retryMax: The longest backoff delay, in seconds.
    @param poolSize: How many persistent search connections to keep.
    """

    log = Logger()

    def __init__(
        self,
        url: LDAPURL,
        reactor,
        bindDN: Optional[str] = None,
        bindPassword: Optional[str] = None,
        timeout: float = 1.5,
        mailAttributes: Sequence[str] = ("mail",),
        trustRoot=None,
        loginAttributes: Sequence[str] = (),
        startTLS: bool = False,
        poolSize: int = 2,
        retryMax: float = 30.0,
        clock=None,
    ):
        self.url = url
        self._reactor = reactor
        self._clock = clock if clock is not None else reactor
        self._bindDN = bindDN
        self._bindPassword = bindPassword
        self.timeout = timeout
        self.mailAttributes = tuple(mailAttributes)
        self.loginAttributes = tuple(loginAttributes) or (url.attribute,)
        self._trustRoot = trustRoot
        self._startTLS = startTLS
        self.retryMax = retryMax
        self._retryDelay = 0.0
        self._retryAt = 0.0
        self._pool = _SearchPool(poolSize, self._connectForSearch)
        self._open = set()

    @property
    def server(self) -> str:
        """
        The server's address, for log lines and error messages.
        """
        host = f"[{self.url.host}]" if ":" in self.url.host else self.url.host
        return f"{self.url.scheme}://{host}:{self.url.port}"

    @property
    def startTLS(self) -> bool:
        """
        Whether connections switch to TLS with StartTLS (option or URL
        extension).
        """
        return self._startTLS or self.url.startTLS

    # --- calls, timed and logged ---

    def _timed(self, d: defer.Deferred) -> defer.Deferred:
        return d.addTimeout(self.timeout, self._reactor)

    async def _call(self, operation: str, awaitable):
        """
        Await C{awaitable} (a Deferred, which gets the timeout, or a
        coroutine whose steps have theirs) and log one C{directory-call}
        event for it.
        """
        started = self._reactor.seconds()
        ok = False
        try:
            result = await (self._timed(awaitable) if isinstance(awaitable, defer.Deferred) else awaitable)
            ok = True
            return result
        except ldaperrors.LDAPException as e:
            # An answer, even a "no", means the server works.
            ok = getattr(e, "resultCode", None) not in _UNAVAILABLE_CODES
            raise
        finally:
            self.log.debug(
                "directory {operation} on {server}: {ok} in {seconds:.3f}s",
                fbEvent="directory-call",
                operation=operation,
                seconds=self._reactor.seconds() - started,
                ok=ok,
                server=self.server,
            )

    def _unavailable(self, reason: str) -> DirectoryUnavailable:
        self.log.warn("directory {server} unavailable: {reason}", server=self.server, reason=reason)
        return DirectoryUnavailable(f"the directory {self.server} is unavailable")

    def _failed(self, reason: str) -> DirectoryUnavailable:
        """
        Note a failure of the server: connections wait for the backoff
        delay, which doubles with each failure in a row.
        """
        self._retryDelay = min(self.retryMax, self._retryDelay * 2 or RETRY_INITIAL)
        self._retryAt = self._clock.seconds() + self._retryDelay
        return self._unavailable(f"{reason}; next attempt in {self._retryDelay:g}s")

    def _checkBackoff(self) -> None:
        """
        @raise DirectoryUnavailable: At once (and without a log line) while
            the backoff delay after a failure runs.
        """
        if self._clock.seconds() < self._retryAt:
            raise DirectoryUnavailable(f"the directory {self.server} is unavailable")

    # --- connections ---

    def _tlsOptions(self):
        return optionsForClientTLS(self.url.host, trustRoot=self._trustRoot)

    def _tcpEndpoint(self):
        """
        A TCP endpoint for the server: straight to an IP address, or through
        name resolution (trying every address) for a host name.
        """
        host, port, timeout = self.url.host, self.url.port, self.timeout
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return HostnameEndpoint(self._reactor, host, port, timeout=timeout)
        endpointClass = TCP4ClientEndpoint if address.version == 4 else TCP6ClientEndpoint
        return endpointClass(self._reactor, host, port, timeout=timeout)

    async def _connect(self) -> DirectoryClient:
        """
        Open a new connection (TLS as configured, verified).

        @raise DirectoryUnavailable: When the server cannot be reached, its
            certificate does not verify, or the backoff delay is running.
        """
        self._checkBackoff()
        endpoint = self._tcpEndpoint()
        if self.url.tls:
            endpoint = wrapClientTLS(self._tlsOptions(), endpoint)
        opened = []
        try:
            client = await self._call("connect", self._establish(endpoint, opened))
        except _TLS_ERRORS as e:
            self.log.error(
                "refusing the directory {server}: {reason}; not falling back to plain text",
                server=self.server,
                reason=_describeTLSFailure(e),
            )
            self._abort(opened)
            raise self._failed("TLS verification failed") from None
        except _CONNECTION_ERRORS as e:
            self._abort(opened)
            raise self._failed(f"cannot connect: {e!r}") from None
        except ldaperrors.LDAPException as e:
            self._abort(opened)
            raise self._failed(f"StartTLS refused: {e}") from None
        self._retryDelay = 0.0
        return client

    async def _establish(self, endpoint, opened: list) -> DirectoryClient:
        """
        Connect, and complete TLS if asked; the client is appended to
        C{opened} as soon as it exists.
        """
        client = await self._timed(endpoint.connect(_QuietClientFactory()))
        opened.append(client)
        self._open.add(client)
        client.whenClosed().addCallback(lambda _: self._open.discard(client))
        if self.url.tls:
            await self._timed(client.waitForHandshake())
        elif self.startTLS:
            handshake = client.waitForHandshake()
            try:
                await self._timed(client.startTLS(self._tlsOptions()))
            except BaseException:
                handshake.addErrback(lambda f: None)
                raise
            await self._timed(handshake)
        return client

    @staticmethod
    def _abort(opened: list) -> None:
        for client in opened:
            if client.transport is not None:
                client.transport.abortConnection()

    async def _bind(self, client: LDAPClient, dn: str, password: str) -> None:
        """
        A simple bind; C{dn} may also be a name Active Directory binds with
        (C{user@domain}).

        @raise ldaperrors.LDAPException: When the server says no.
        """
        response = await self._call(
            "bind", client.send(pureldap.LDAPBindRequest(dn=dn.encode("utf-8"), auth=password.encode("utf-8")))
        )
        if response.resultCode != ldaperrors.Success.resultCode:
            raise ldaperrors.get(response.resultCode, response.errorMessage)

    async def _connectForSearch(self) -> LDAPClient:
        client = await self._connect()
        if self._bindDN:
            try:
                await self._bind(client, self._bindDN, self._bindPassword or "")
            except ldaperrors.LDAPException as e:
                _close(client)
                raise self._failed(f"the search account {self._bindDN} cannot bind: {e}") from None
            except _CONNECTION_ERRORS as e:
                self._abort([client])
                raise self._failed(f"connection lost: {e!r}") from None
        return client

    def close(self) -> defer.Deferred:
        """
        Close the search connections.

        @return: A Deferred that fires once every connection is closed.
        """
        self._pool.close()
        return defer.DeferredList([client.whenClosed() for client in list(self._open)])

    # --- the IDirectory calls ---

    async def search(self, filterObject, attributes: Sequence[str], base: Optional[str] = None, scope=None,
                     withURLFilter: bool = True) -> list:
        """
        Search below the URL's base (or C{base}) for entries that match
        C{filterObject} and, unless told otherwise, the URL's filter.
        Continuation references (referrals) are ignored.

        @raise DirectoryUnavailable: When the directory cannot answer.
        """
        self._checkBackoff()
        client = await self._pool.client()
        if withURLFilter:
            filterObject = pureldap.LDAPFilter_and([self.url.filterObject(), filterObject])
        try:
            return await self._call(
                "search",
                LDAPEntry(client, _distinguishedName(base if base is not None else self.url.base)).search(
                    filterObject=filterObject,
                    attributes=list(attributes),
                    scope=self.url.scope if scope is None else scope,
                    sizeLimit=0,
                ),
            )
        except ldaperrors.LDAPNoSuchObject:
            return []
        except ldaperrors.LDAPException as e:
            if getattr(e, "resultCode", None) in _UNAVAILABLE_CODES:
                raise self._unavailable(f"search failed: {e}") from None
            raise
        except _CONNECTION_ERRORS as e:
            # The connection is in an unknown state (a server that stopped
            # answering, most likely): drop it and back off.
            self._pool.discard(client)
            raise self._failed(f"search failed: {e!r}") from None

    async def findUser(self, login: str):
        """
        @return: The one entry whose login attributes hold C{login}, or
            C{None} when there is none or more than one.
        """
        entries = await self.search(
            anyOf([equalityFilter(a, login) for a in self.loginAttributes]),
            list(dict.fromkeys((self.url.attribute,) + self.loginAttributes + self.mailAttributes)),
        )
        if len(entries) != 1:
            if len(entries) > 1:
                self.log.warn("login {login!r} matches {count} entries", login=login, count=len(entries))
            return None
        return entries[0]

    def authenticate(self, login: str, password: str) -> defer.Deferred:
        return defer.Deferred.fromCoroutine(self._authenticate(login, password))

    async def _authenticate(self, login: str, password: str) -> str:
        if not login or not password:
            # An empty password would be an unauthenticated bind, which
            # many servers let succeed.
            raise UnauthorizedLogin("empty login or password")
        entry = await self.findUser(login)
        if entry is None:
            raise UnauthorizedLogin("no such user")
        uid = firstValue(entry, self.url.attribute)
        if not uid:
            raise UnauthorizedLogin(f"the entry has no {self.url.attribute}")
        client = await self._connect()
        try:
            await self._bind(client, entry.dn.getText(), password)
        except ldaperrors.LDAPInvalidCredentials:
            raise UnauthorizedLogin("wrong password") from None
        except ldaperrors.LDAPException as e:
            if getattr(e, "resultCode", None) in _UNAVAILABLE_CODES - {ldaperrors.LDAPUnwillingToPerform.resultCode}:
                raise self._unavailable(f"bind failed: {e}") from None
            raise UnauthorizedLogin(f"bind refused: {e}") from None
        except _CONNECTION_ERRORS as e:
            self._abort([client])
            raise self._failed(f"bind failed: {e!r}") from None
        finally:
            _close(client)
        return uid

    def resolveName(self, name: str) -> defer.Deferred:
        return defer.Deferred.fromCoroutine(self._resolveName(name))

    async def _resolveName(self, name: str) -> Optional[str]:
        """
        A uid first; then a mail address's local part (or, for a name with
        C{@}, the whole address), over every mail attribute.  An ambiguous
        local part resolves to nobody: the full address must be used.
        """
        if not name:
            return None
        attribute = self.url.attribute
        if "@" in name:
            alternatives = [equalityFilter(a, name) for a in self.mailAttributes]
        else:
            alternatives = [equalityFilter(attribute, name)] + [
                prefixFilter(a, name + "@") for a in self.mailAttributes
            ]
        entries = await self.search(anyOf(alternatives), [attribute] + list(self.mailAttributes))
        lowered = name.lower()
        byUid = [e for e in entries if (firstValue(e, attribute) or "").lower() == lowered]
        if len(byUid) == 1:
            return firstValue(byUid[0], attribute)
        byMail = []
        for e in entries:
            addresses = [v.lower() for a in self.mailAttributes for v in allValues(e, a)]
            if "@" in name:
                matched = lowered in addresses
            else:
                matched = any(a.split("@", 1)[0] == lowered for a in addresses)
            if matched:
                byMail.append(e)
        if len(byMail) == 1:
            return firstValue(byMail[0], attribute)
        if len(byMail) > 1:
            self.log.info("lookup name {name!r} is ambiguous ({count} entries)", name=name, count=len(byMail))
        return None

    def isMember(self, uid: str, groupDN: str) -> defer.Deferred:
        return defer.Deferred.fromCoroutine(self._isMember(uid, groupDN))

    async def _isMember(self, uid: str, groupDN: str) -> bool:
        """
        Whether the group entry C{groupDN} lists the user: C{member}
        (groupOfNames, Active Directory), C{uniqueMember}
        (groupOfUniqueNames) or C{memberUid} (posixGroup).
        """
        entries = await self.search(
            equalityFilter(self.url.attribute, uid), [self.url.attribute]
        )
        if len(entries) != 1:
            return False
        dn = entries[0].dn.getText()
        memberFilter = pureldap.LDAPFilter_or(
            [
                equalityFilter("member", dn),
                equalityFilter("uniqueMember", dn),
                equalityFilter("memberUid", firstValue(entries[0], self.url.attribute) or uid),
            ]
        )
        found = await self.search(
            memberFilter, ["1.1"], base=groupDN, scope=pureldap.LDAP_SCOPE_baseObject, withURLFilter=False
        )
        if not found:
            self.log.debug("{uid} is not in {group} (or the group does not exist)", uid=uid, group=groupDN)
        return bool(found)

    def groupMembers(self, cn: str, base: str, limit: int) -> defer.Deferred:
        return defer.Deferred.fromCoroutine(self._groupMembers(cn, base, limit))

    async def _groupMembers(self, cn: str, base: str, limit: int) -> Optional[List[str]]:
        """
        The uids of the members of the group C{cn} below C{base}
        (C{groupOfNames}, C{groupOfUniqueNames} or C{posixGroup}), sorted;
        C{None} when there is no such group.  At most C{limit + 1} are
        resolved: a longer answer means the group is larger than C{limit}.
        """
        groupClasses = pureldap.LDAPFilter_or(
            [equalityFilter("objectClass", c) for c in ("groupOfNames", "groupOfUniqueNames", "posixGroup")]
        )
        groups = await self.search(
            pureldap.LDAPFilter_and([equalityFilter("cn", cn), groupClasses]),
            ["member", "uniqueMember", "memberUid"],
            base=base,
            scope=pureldap.LDAP_SCOPE_wholeSubtree,
            withURLFilter=False,
        )
        if len(groups) != 1:
            return None
        group = groups[0]
        references = sorted(set(allValues(group, "member") + allValues(group, "uniqueMember")))
        uids = set(allValues(group, "memberUid"))
        attribute = self.url.attribute.lower()
        for dn in references:
            if len(uids) > limit:
                break
            first = dn.split(",", 1)[0]
            name, _, value = first.partition("=")
            if name.strip().lower() == attribute and value and "\\" not in value:
                uids.add(value.strip())
                continue
            entries = await self.search(
                pureldap.LDAPFilter_present("objectClass"),
                [self.url.attribute], base=dn, scope=pureldap.LDAP_SCOPE_baseObject,
            )
            for entry in entries:
                uid = firstValue(entry, self.url.attribute)
                if uid:
                    uids.add(uid)
        return sorted(uids)[: limit + 1]
