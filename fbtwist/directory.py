"""
The LDAP directory, asked through ldaptor: search-then-bind authentication,
lookup-name resolution and group membership.

Filters are always built from ldaptor filter objects, never by pasting text,
so a login such as C{*)(uid=*} is only ever compared literally (RFC 4515).
Every call has a timeout.  Searches share one persistent connection (LDAP
multiplexes requests on it); each user bind gets a connection of its own that
is closed right after, so a user's identity never leaks into later searches.
"""

from typing import List, Optional, Sequence

from ldaptor.protocols import pureldap
from ldaptor.protocols.ldap import ldaperrors
from ldaptor.protocols.ldap.ldapclient import LDAPClient, LDAPClientConnectionLostException
from ldaptor.protocols.ldap.ldapsyntax import LDAPEntry
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer, error as netError
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
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
_CONNECTION_ERRORS = (
    netError.ConnectError,
    netError.ConnectionLost,
    netError.ConnectionDone,
    LDAPClientConnectionLostException,
    defer.TimeoutError,
    defer.CancelledError,
)


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


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def firstValue(entry, attribute: str) -> Optional[str]:
    """
    One value of an entry's attribute as text (attribute names compared
    case-insensitively), or C{None}.
    """
    for key in entry.keys():
        if _text(key).lower() == attribute.lower():
            for value in entry[key]:
                return _text(value)
    return None


def allValues(entry, attribute: str) -> List[str]:
    for key in entry.keys():
        if _text(key).lower() == attribute.lower():
            return [_text(v) for v in entry[key]]
    return []


@implementer(IDirectory)
class LDAPDirectory:
    """
    An LDAP server as fbtwist's user directory.

    @ivar url: The L{LDAPURL} (base, login attribute, scope, filter).
    """

    log = Logger()

    def __init__(
        self,
        url: LDAPURL,
        reactor,
        bindDN: Optional[str] = None,
        bindPassword: Optional[str] = None,
        timeout: float = 5.0,
        mailAttributes: Sequence[str] = ("mail",),
        trustRoot=None,
    ):
        self.url = url
        self._reactor = reactor
        self._bindDN = bindDN
        self._bindPassword = bindPassword
        self.timeout = timeout
        self.mailAttributes = tuple(mailAttributes)
        self._trustRoot = trustRoot
        self._searchClient: Optional[LDAPClient] = None
        self._connectLock = defer.DeferredLock()

    @property
    def server(self) -> str:
        """
        The server's address, for log lines and error messages.
        """
        return f"{self.url.scheme}://{self.url.host}:{self.url.port}"

    def _timed(self, d: defer.Deferred) -> defer.Deferred:
        return d.addTimeout(self.timeout, self._reactor)

    def _unavailable(self, reason: str) -> DirectoryUnavailable:
        self.log.warn("directory {server} unavailable: {reason}", server=self.server, reason=reason)
        return DirectoryUnavailable(f"the directory {self.server} is unavailable")

    def _tlsOptions(self):
        return optionsForClientTLS(self.url.host, trustRoot=self._trustRoot)

    async def _connect(self) -> LDAPClient:
        """
        Open a new connection (TLS as the URL says).

        @raise DirectoryUnavailable: When the server cannot be reached.
        """
        endpoint = HostnameEndpoint(
            self._reactor, self.url.host, self.url.port, timeout=self.timeout
        )
        if self.url.tls:
            endpoint = wrapClientTLS(self._tlsOptions(), endpoint)
        try:
            client = await self._timed(endpoint.connect(_QuietClientFactory()))
            if self.url.startTLS:
                await self._timed(client.startTLS(self._tlsOptions()))
        except _CONNECTION_ERRORS as e:
            raise self._unavailable(f"cannot connect: {e}") from None
        except ldaperrors.LDAPException as e:
            raise self._unavailable(f"StartTLS refused: {e}") from None
        return client

    async def _connectForSearch(self) -> LDAPClient:
        client = await self._connect()
        if self._bindDN:
            try:
                await self._timed(LDAPEntry(client, self._bindDN).bind(self._bindPassword or ""))
            except ldaperrors.LDAPException as e:
                _close(client)
                raise self._unavailable(f"the search account {self._bindDN} cannot bind: {e}") from None
            except _CONNECTION_ERRORS as e:
                _close(client)
                raise self._unavailable(f"connection lost: {e}") from None
        return client

    async def _searchConnection(self) -> LDAPClient:
        """
        The shared search connection, (re)opened when needed; concurrent
        callers wait for one connection attempt.
        """
        async with self._connectLock:
            client = self._searchClient
            if client is None or not client.connected:
                client = self._searchClient = await self._connectForSearch()
            return client

    def close(self) -> None:
        """
        Close the shared search connection.
        """
        if self._searchClient is not None:
            _close(self._searchClient)
            self._searchClient = None

    async def search(self, filterObject, attributes: Sequence[str], base: Optional[str] = None, scope=None) -> list:
        """
        Search below the URL's base (or C{base}) for entries that match both
        the URL's filter and C{filterObject}.

        @raise DirectoryUnavailable: When the directory cannot answer.
        """
        client = await self._searchConnection()
        combined = pureldap.LDAPFilter_and([self.url.filterObject(), filterObject])
        try:
            return await self._timed(
                LDAPEntry(client, base if base is not None else self.url.base).search(
                    filterObject=combined,
                    attributes=list(attributes),
                    scope=self.url.scope if scope is None else scope,
                    sizeLimit=0,
                )
            )
        except ldaperrors.LDAPNoSuchObject:
            return []
        except ldaperrors.LDAPException as e:
            if getattr(e, "resultCode", None) in _UNAVAILABLE_CODES:
                raise self._unavailable(f"search failed: {e}") from None
            raise
        except _CONNECTION_ERRORS as e:
            # The connection is in an unknown state: start afresh next time.
            if self._searchClient is client:
                self.close()
            raise self._unavailable(f"search failed: {e!r}") from None

    async def findUser(self, login: str):
        """
        @return: The one entry whose login attribute equals C{login}, or
            C{None} when there is none or more than one.
        """
        entries = await self.search(
            equalityFilter(self.url.attribute, login),
            [self.url.attribute] + list(self.mailAttributes),
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
        client = await self._connect()
        try:
            await self._timed(LDAPEntry(client, entry.dn.getText()).bind(password))
        except ldaperrors.LDAPInvalidCredentials:
            raise UnauthorizedLogin("wrong password") from None
        except ldaperrors.LDAPException as e:
            if getattr(e, "resultCode", None) in _UNAVAILABLE_CODES - {ldaperrors.LDAPUnwillingToPerform.resultCode}:
                raise self._unavailable(f"bind failed: {e}") from None
            raise UnauthorizedLogin(f"bind refused: {e}") from None
        except _CONNECTION_ERRORS as e:
            raise self._unavailable(f"bind failed: {e!r}") from None
        finally:
            _close(client)
        return firstValue(entry, self.url.attribute) or login

    def resolveName(self, name: str) -> defer.Deferred:
        return defer.Deferred.fromCoroutine(self._resolveName(name))

    async def _resolveName(self, name: str) -> Optional[str]:
        """
        A uid first; then a mail address's local part (or, for a name with
        C{@}, the whole address).  An ambiguous local part resolves to
        nobody: the full address must be used.
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
        entries = await self.search(
            pureldap.LDAPFilter_or(alternatives), [attribute] + list(self.mailAttributes)
        )
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
        entry = await self.findUser(uid)
        if entry is None:
            return False
        dn = entry.dn.getText()
        memberFilter = pureldap.LDAPFilter_or(
            [
                equalityFilter("member", dn),
                equalityFilter("uniqueMember", dn),
                equalityFilter("memberUid", firstValue(entry, self.url.attribute) or uid),
            ]
        )
        client = await self._searchConnection()
        try:
            found = await self._timed(
                LDAPEntry(client, groupDN).search(
                    filterObject=memberFilter, attributes=["1.1"], scope=pureldap.LDAP_SCOPE_baseObject
                )
            )
        except ldaperrors.LDAPNoSuchObject:
            self.log.warn("admin group {group} does not exist", group=groupDN)
            return False
        except _CONNECTION_ERRORS as e:
            self.close()
            raise self._unavailable(f"group search failed: {e!r}") from None
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


class _QuietClientFactory(Factory):
    """
    Builds one LDAP client without a log line per connection.
    """

    noisy = False
    protocol = LDAPClient


def _close(client: LDAPClient) -> None:
    if client.connected:
        try:
            client.unbind()
        except Exception:
            client.transport.loseConnection()
