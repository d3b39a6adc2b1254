"""
The LDAP directory, asked through ldaptor: search-then-bind authentication,
lookup-name resolution and group membership, for OpenLDAP and Active
Directory alike.

Filters are always built from ldaptor filter objects, never by pasting text,
so a login such as C{*)(uid=*} is only ever compared literally (RFC 4515).

Connections:
  - searches share a small pool of persistent connections (LDAP multiplexes
    requests on each), bound as the search account or anonymous;
  - user binds take connections of a pool of their own, one bind at a time
    each, kept open between binds: a connection bound as a user is never
    used for a search, so a user's identity never leaks into later
    searches;
  - the name index is loaded on a connection of its own, closed after;
  - TLS (C{ldaps://} or StartTLS) is always verified against the host name
    in the certificate's subjectAltName (L{fbtwist.tlsclient}); a
    certificate that does not verify is an outage, never a reason to fall
    back to plain text;
  - every call has a timeout; after a failure new connections are attempted
    only after a delay that doubles up to a maximum (backoff), and calls in
    between fail at once with L{DirectoryUnavailable}, so clients get their
    503 quickly and a struggling server is not hammered.  The first call
    after the delay reconnects: service resumes without a restart.
"""

import errno
import ipaddress
import os
from typing import Dict, List, Optional, Sequence, Tuple

from ldaptor.protocols import pureldap
from ldaptor.protocols.ldap import ldaperrors
from ldaptor.protocols.ldap.ldapclient import LDAPClient
from ldaptor.protocols.ldap.ldapsyntax import LDAPEntry
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer, threads
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import IReactorThreads
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from fbtwist.directory.ber import MalformedMessage
from fbtwist.directory.client import (
    _CONNECTION_ERRORS,
    _STALE_CONNECTION_ERRORS,
    _TLS_ERRORS,
    _UNAVAILABLE_CODES,
    DirectoryClient,
    _close,
    _describeTLSFailure,
    _QuietClientFactory,
)
from fbtwist.directory.entries import (
    _distinguishedName,
    _dnKey,
    _isGroup,
    allValues,
    firstValue,
    memberValues,
    nameRecord,
)
from fbtwist.directory.filters import _groupClassFilter, anyOf, equalityFilter, inChainFilter, prefixFilter
from fbtwist.directory.gate import DirectoryGate
from fbtwist.directory.heap import releaseFreeMemory
from fbtwist.directory.ldapurl import LDAPURL
from fbtwist.directory.loginforms import AD_CAPABILITY, SAM_ACCOUNT_NAME, LoginForms, bindFailureReason
from fbtwist.directory.mappedindex import (
    CompactIndexBuilder,
    CompactNameIndex,
    IndexFileError,
    MappedNameIndex,
    writeIndexFile,
)
from fbtwist.directory.nameindex import indexOf
from fbtwist.directory.paging import NAME_INDEX_PAGE_SIZE, _searchNames, pagedResultsControl, pagedResultsCookie
from fbtwist.directory.pools import _BindPool, _SearchPool
from fbtwist.directory.principals import (
    MAX_SEARCH_RESULTS,
    MIN_SEARCH_TEXT,
    addressFilter,
    groupFilter,
    principalAttributes,
    principalRecord,
    searchFilter,
)
from fbtwist.directory.rooms import DirectoryRooms, RoomSearch
from fbtwist.errors import DirectoryUnavailable, OutOfDescriptors, WrongPassword
from fbtwist.interfaces import GROUP, ROOM, USER, IDirectory, IPrincipalDirectory, PrincipalRecord
from fbtwist.logs import logDebug
from fbtwist.tlsclient import VerifyingClientTLS

#: The first delay before reconnecting after a failure (seconds); it doubles
#: with each further failure up to the directory's C{retryMax}.
RETRY_INITIAL = 0.25
#: The longest delay (seconds) after the search account's password was
#: refused: it stays wrong until an operator changes it, and directories
#: that lock accounts out (Active Directory) count each attempt.  The first
#: delay is then the directory's C{retryMax}.
ACCOUNT_RETRY_MAX = 600.0
#: Searches each persistent search connection carries at once (LDAP
#: multiplexes them); more wait in fbtwist (L{DirectoryGate}).
SEARCHES_PER_CONNECTION = 4
#: How deep groups nested in a group are followed (a group's members are
#: depth 1); deeper ones are left out, with a log line.
GROUP_NESTING_DEPTH = 8
#: How long a group's members, once read, answer whether a user is in it
#: (L{LDAPDirectory.isMember}: an administrators' group asked at every
#: first login), in seconds; a change to the group counts after that.
GROUP_READ_SECONDS = 10.0
#: The most values (members) of a group kept so; a larger group is asked
#: about each user instead.
GROUP_READ_MAX = 10_000


@implementer(IDirectory, IPrincipalDirectory)
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
    @ivar loginForms: The L{LoginForms} (Active Directory's
        C{DOMAIN\\user} and C{user@suffix}) accepted besides the login
        attributes.

    @param reactor: Connects, and times calls out.
    @param clock: Times the backoff delays (the reactor by default).
    @param retryMax: The longest backoff delay, in seconds.
    @param poolSize: How many persistent search connections to keep.
    @param bindPoolSize: How many idle connections for user binds to keep,
        and how many binds run at once.
    @param queueSize: How many searches and binds may wait for their turn
        (L{DirectoryGate}) before more are refused as busy.
    @param queueTimeout: How long (seconds) one may wait for its turn.
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
        bindPoolSize: int = 4,
        loginForms: Optional[LoginForms] = None,
        queueSize: int = 1000,
        queueTimeout: float = 10.0,
    ):
        self.url = url
        self._reactor = reactor
        self._clock = clock if clock is not None else reactor
        self._bindDN = bindDN
        self._bindPassword = bindPassword
        self.timeout = timeout
        self.mailAttributes = tuple(mailAttributes)
        self.loginAttributes = tuple(loginAttributes) or (url.attribute,)
        self.loginForms = loginForms if loginForms is not None else LoginForms()
        self._activeDirectory: Optional[bool] = None
        self._trustRoot = trustRoot
        self._startTLS = startTLS
        self.retryMax = retryMax
        self._retryDelay = 0.0
        self._retryAt = 0.0
        #: Why the directory is failing (as last logged), or C{None}.
        self._outage: Optional[str] = None
        #: Until when (C{clock} seconds) the one connection attempt allowed
        #: during an outage is under way.
        self._probeUntil = 0.0
        self._pool = _SearchPool(poolSize, self._connectForSearch)
        #: Groups' members read recently (L{_groupMembersNow}): group DN ->
        #: (read at, a Deferred firing with their DN keys and memberUid
        #: values, or C{None} for a group too large to keep).
        self._groupsRead: Dict[str, tuple] = {}
        self._bindPool = _BindPool(bindPoolSize)
        self._gate = DirectoryGate(
            {"search": poolSize * SEARCHES_PER_CONNECTION, "bind": bindPoolSize}, queueSize, queueTimeout,
            self._clock,
        )
        self._open = set()
        #: Every user's lookup names (a L{CompactNameIndex}, the
        #: L{MappedNameIndex} of L{indexFile}) once L{loadNameIndex} has
        #: completed, else C{None}.
        self.nameIndex = None
        #: Where L{loadNameIndex} writes the index for processes to map
        #: (this one included), or C{None}: kept in this process's memory.
        self.indexFile: Optional[str] = None
        self._wroteIndex = False
        #: The rooms (L{configureRooms}), or C{None}: no rooms.
        self.roomDirectory: Optional[DirectoryRooms] = None

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
            logDebug(
                self.log,
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

    def _failed(self, reason: str, accountRefused: bool = False, tls: bool = False) -> DirectoryUnavailable:
        """
        Note a failure of the server: connections wait for the backoff
        delay, which doubles with each failure in a row.  Logged once per
        change of C{reason} (an outage is one warning, not one per
        attempt), the repeats at debug level.

        @param accountRefused: The search account's password was refused:
            the delay starts at C{retryMax} and grows to
            L{ACCOUNT_RETRY_MAX}.
        @param tls: The server's certificate was refused (an error).
        """
        first, longest = RETRY_INITIAL, self.retryMax
        if accountRefused:
            first, longest = self.retryMax, max(self.retryMax, ACCOUNT_RETRY_MAX)
        self._retryDelay = min(longest, max(first, self._retryDelay * 2))
        self._retryAt = self._clock.seconds() + self._retryDelay
        self._probeUntil = 0.0
        log = self.log.debug if reason == self._outage else self.log.error if tls else self.log.warn
        self._outage = reason
        if tls:
            log("refusing the directory {server}: {reason}; not falling back to plain text; next attempt in {delay:g}s",
                server=self.server, reason=reason, delay=self._retryDelay)
        else:
            log("directory {server} unavailable: {reason}; next attempt in {delay:g}s",
                server=self.server, reason=reason, delay=self._retryDelay)
        return DirectoryUnavailable(f"the directory {self.server} is unavailable")

    def _recovered(self) -> None:
        """
        Note that a connection is ready for use: the backoff delay starts
        over, and the end of an outage is logged.
        """
        self._retryDelay = 0.0
        self._probeUntil = 0.0
        if self._outage is not None:
            self._outage = None
            self.log.info("directory {server} is available again", server=self.server)

    def _checkBackoff(self) -> None:
        """
        @raise DirectoryUnavailable: At once (and without a log line) while
            the backoff delay after a failure runs.
        """
        if self._clock.seconds() < self._retryAt:
            raise DirectoryUnavailable(f"the directory {self.server} is unavailable")

    def _startConnecting(self) -> None:
        """
        @raise DirectoryUnavailable: At once while the backoff delay runs,
            and after it, during an outage, while another new connection
            finds out whether the directory is back: one attempt per delay,
            not one per pool slot (each a bind of a search account whose
            password may be refused, counted by directories that lock
            accounts out).
        """
        self._checkBackoff()
        if self._outage is not None:
            now = self._clock.seconds()
            if now < self._probeUntil:
                raise DirectoryUnavailable(f"the directory {self.server} is unavailable")
            # Ended by _failed or _recovered; the bound (connect, TLS and a
            # bind, each timed) covers an attempt that ends otherwise.
            self._probeUntil = now + 4 * self.timeout

    # --- connections ---

    def _tlsOptions(self):
        # Not Twisted's optionsForClientTLS alone: it accepts a certificate
        # without a subjectAltName whatever its CN says.
        return VerifyingClientTLS(self.url.host, trustRoot=self._trustRoot)

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
        self._startConnecting()
        endpoint = self._tcpEndpoint()
        if self.url.tls:
            endpoint = wrapClientTLS(self._tlsOptions(), endpoint)
        opened = []
        try:
            client = await self._call("connect", self._establish(endpoint, opened))
        except _TLS_ERRORS as e:
            self._abort(opened)
            raise self._failed(_describeTLSFailure(e), tls=True) from None
        except _CONNECTION_ERRORS as e:
            self._abort(opened)
            if getattr(e, "osError", None) in (errno.EMFILE, errno.ENFILE):
                # This process has no descriptor left: not the directory's
                # fault, so no outage and no backoff.
                raise OutOfDescriptors() from None
            raise self._failed(f"cannot connect: {e!r}") from None
        except ldaperrors.LDAPException as e:
            self._abort(opened)
            raise self._failed(f"StartTLS refused: {e}") from None
        except Exception as e:
            # Whatever else keeps the server out of reach is an outage
            # too (clients get their 503); its traceback shows the cause.
            self.log.failure("connecting to the directory {server} failed unexpectedly", server=self.server)
            self._abort(opened)
            raise self._failed(f"cannot connect: {e!r}") from None
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
        response = await self._call("bind", client.simpleBind(dn.encode("utf-8"), password.encode("utf-8")))
        if response.resultCode != ldaperrors.Success.resultCode:
            raise ldaperrors.get(response.resultCode, response.errorMessage)

    async def _connectForSearch(self) -> LDAPClient:
        client = await self._connect()
        if self._bindDN:
            try:
                await self._bind(client, self._bindDN, self._bindPassword or "")
            except ldaperrors.LDAPException as e:
                _close(client)
                raise self._failed(
                    f"the search account {self._bindDN} cannot bind: {e}",
                    accountRefused=isinstance(e, ldaperrors.LDAPInvalidCredentials),
                ) from None
            except (MalformedMessage, *_CONNECTION_ERRORS) as e:
                self._abort([client])
                raise self._failed(f"connection lost: {e!r}") from None
        # Only now: a search account that cannot bind must keep backing off.
        self._recovered()
        return client

    def close(self) -> defer.Deferred:
        """
        Close the connections.

        @return: A Deferred that fires once every connection is closed.
        """
        self._pool.close()
        self._bindPool.close()
        if self._wroteIndex:
            # Nobody maps it once this process (the master of --workers)
            # stops; an index left behind would be stale at the next start.
            self._wroteIndex = False
            try:
                os.unlink(self.indexFile)
            except OSError:
                pass
        return defer.DeferredList([client.whenClosed() for client in list(self._open)])

    def openConnections(self) -> int:
        """
        How many connections to the directory are open now: searching,
        binding, kept idle or loading the name index.
        """
        return len(self._open)

    def idleBindConnections(self) -> list:
        """
        The connections kept idle for the next user binds (a copy).
        """
        return self._bindPool.idle()

    # --- the IDirectory calls ---

    async def search(self, filterObject, attributes: Sequence[str], base: Optional[str] = None, scope=None,
                     withURLFilter: bool = True, sizeLimit: int = 0) -> list:
        """
        Search below the URL's base (or C{base}) for entries that match
        C{filterObject} and, unless told otherwise, the URL's filter.
        Continuation references (referrals) are ignored.  With C{sizeLimit},
        at most that many entries are asked for, and a server stopping
        there is no error.

        @raise DirectoryUnavailable: When the directory cannot answer.
        @raise DirectoryBusy: When the search waited too long for its turn.
        """
        self._checkBackoff()
        async with self._gate.slot("search"):
            # The directory may have failed while this search waited.
            self._checkBackoff()
            return await self._search(filterObject, attributes, base, scope, withURLFilter, sizeLimit)

    async def _search(self, filterObject, attributes: Sequence[str], base: Optional[str], scope,
                      withURLFilter: bool, sizeLimit: int = 0) -> list:
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
                    sizeLimit=sizeLimit,
                    sizeLimitIsNonFatal=bool(sizeLimit),
                    timeLimit=int(max(1, self.timeout)) if sizeLimit else 0,
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
        @return: The one entry whose login attributes hold C{login} (or, for
            a C{DOMAIN\\user} or C{user@suffix} login of L{loginForms},
            whose C{sAMAccountName} is C{user}), or C{None} when there is
            none or more than one.
        """
        attributes = list(dict.fromkeys((self.url.attribute,) + self.loginAttributes + self.mailAttributes))
        account = self.loginForms.downLevel(login)
        if account is not None:
            entries = await self.search(equalityFilter(SAM_ACCOUNT_NAME, account), attributes)
        else:
            entries = await self.search(anyOf([equalityFilter(a, login) for a in self.loginAttributes]), attributes)
            account = self.loginForms.principal(login)
            if not entries and account is not None:
                # No userPrincipalName is this name: Active Directory then
                # binds the account of that name in the domain.
                entries = await self.search(equalityFilter(SAM_ACCOUNT_NAME, account), attributes)
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
        tried = None
        known = self.indexedLogin(login)
        if known is not None:
            uid, dn = known
            try:
                await self._bindUser(dn, password)
                return uid
            except UnauthorizedLogin as e:
                # The index is a snapshot: the entry may have moved since.
                # The directory decides, without a second bind to the
                # same entry (directories that lock accounts out count
                # each one).
                tried = (_dnKey(dn), e)
        entry = await self.findUser(login)
        if entry is None:
            raise UnauthorizedLogin("no such user")
        uid = firstValue(entry, self.url.attribute)
        if not uid:
            raise UnauthorizedLogin(f"the entry has no {self.url.attribute}")
        dn = entry.dn.getText()
        try:
            if tried is not None and tried[0] == _dnKey(dn):
                raise tried[1]
            await self._bindUser(dn, password)
        except UnauthorizedLogin as e:
            # Which entry it was lets the checker count failures per entry.
            raise WrongPassword(str(e), uid) from None
        return uid

    def indexedLogin(self, login: str):
        """
        The uid and DN of the entry C{login} names, from the name index,
        when the index alone answers as the directory's search would: the
        login is matched against the uid attribute only (no other login
        attributes, not a C{DOMAIN\\user} login) and the index has exactly
        one entry with that uid.

        @return: C{(uid, dn)} or C{None} (search the directory).
        """
        index = self.nameIndex
        if index is None or len(self.loginAttributes) != 1:
            return None
        if self.loginAttributes[0].lower() != self.url.attribute.lower():
            return None
        if self.loginForms.downLevel(login) is not None:
            return None
        return index.login(login)

    async def _bindUser(self, dn: str, password: str) -> None:
        """
        Bind as C{dn} on a connection of the bind pool (a new one when none
        is idle).  A pooled connection the server has closed meanwhile is
        replaced by a new one, once.

        @raise UnauthorizedLogin: For a wrong password (or a bind the
            server refuses), saying why (L{bindFailureReason}).
        @raise DirectoryUnavailable: When the directory cannot answer.
        @raise DirectoryBusy: When the bind waited too long for its turn.
        """
        async with self._gate.slot("bind"):
            await self._bindPooled(dn, password)

    async def _bindPooled(self, dn: str, password: str) -> None:
        client = self._bindPool.take()
        while True:
            pooled = client is not None
            if client is None:
                client = await self._connect()
                self._recovered()
            try:
                await self._bind(client, dn, password)
            except ldaperrors.LDAPInvalidCredentials as e:
                # A failed bind leaves the connection anonymous (RFC 4513).
                self._bindPool.put(client)
                raise UnauthorizedLogin(bindFailureReason(e.message)) from None
            except ldaperrors.LDAPException as e:
                _close(client)
                if getattr(e, "resultCode", None) in (
                        _UNAVAILABLE_CODES - {ldaperrors.LDAPUnwillingToPerform.resultCode}):
                    raise self._unavailable(f"bind failed: {e}") from None
                raise UnauthorizedLogin(f"bind refused: {e}") from None
            except MalformedMessage as e:
                # The server's answer could not be read: not a "no".
                self._abort([client])
                raise self._failed(f"bind failed: {e}") from None
            except _STALE_CONNECTION_ERRORS:
                self._abort([client])
                if pooled:
                    client = None
                    continue
                raise self._failed("bind failed: the connection was closed") from None
            except _CONNECTION_ERRORS as e:
                self._abort([client])
                raise self._failed(f"bind failed: {e!r}") from None
            self._bindPool.put(client)
            return

    def resolveName(self, name: str) -> defer.Deferred:
        return defer.Deferred.fromCoroutine(self._resolveName(name))

    async def _resolveName(self, name: str) -> Optional[str]:
        """
        A uid first; then a mail address's local part (or, for a name with
        C{@}, the whole address), over every mail attribute.  An ambiguous
        local part resolves to nobody: the full address must be used.  The
        rule is L{fbtwist.directory.nameindex}'s, applied to the entries found.
        """
        if not name:
            return None
        attribute = self.url.attribute
        alternatives = [equalityFilter(attribute, name)]
        if "@" in name:
            alternatives += [equalityFilter(a, name) for a in self.mailAttributes]
        else:
            alternatives += [prefixFilter(a, name + "@") for a in self.mailAttributes]
        entries = await self.search(anyOf(alternatives), [attribute] + list(self.mailAttributes))
        found, uid = indexOf(nameRecord(e.items(), attribute, self.mailAttributes) for e in entries).get(name)
        if found and uid is None:
            self.log.info("lookup name {name!r} matches no single user", name=name)
        if not found and self.roomDirectory is not None:
            # Rooms are often kept outside the people's base: a room is
            # looked up by its name like a person.
            uid = await self.roomDirectory.resolveRoom(name)
        return uid

    # --- rooms ---

    def configureRooms(self, search: RoomSearch) -> None:
        """
        Find rooms as C{search} says (none until this is called).
        """
        self.roomDirectory = DirectoryRooms(self, search, self._clock)

    def findRooms(self) -> defer.Deferred:
        return defer.Deferred.fromCoroutine(self._findRooms())

    async def _findRooms(self) -> list:
        return [] if self.roomDirectory is None else await self.roomDirectory.rooms()

    def delegatedRooms(self, uid: str) -> defer.Deferred:
        return defer.Deferred.fromCoroutine(self._delegatedRooms(uid))

    async def _delegatedRooms(self, uid: str) -> List[str]:
        return [] if self.roomDirectory is None else await self.roomDirectory.delegatedRooms(uid)

    def retryDelay(self) -> float:
        """
        @return: The seconds until the directory may be tried again after a
            failure (0 when it may now).
        """
        return max(0.0, self._retryAt - self._clock.seconds())

    def loadNameIndex(self, pageSize: int = NAME_INDEX_PAGE_SIZE) -> defer.Deferred:
        """
        Load every user's lookup names (one paged search) and make them
        L{nameIndex} once complete.

        The search runs on a connection of its own, closed after: pages
        keep arriving for seconds, and on a pooled connection they would
        hold a pool slot and queue lookups and logins behind them on the
        same stream; a connection lost mid-load disturbs nobody else; and
        a paging cookie is only good on the connection it came from.

        @return: A Deferred firing with the new L{CompactNameIndex}, or failing
            (the old index stays) with L{DirectoryUnavailable} or an LDAP
            error, such as a size limit that also caps paged searches.
        """
        return defer.Deferred.fromCoroutine(self._loadNameIndex(pageSize))

    async def _loadNameIndex(self, pageSize: int) -> CompactNameIndex:
        started = self._reactor.seconds()
        builder = CompactIndexBuilder(self.url.attribute.lower().encode("utf-8"),
                                      {a.lower().encode("utf-8") for a in self.mailAttributes})
        client = await self._connectForSearch()
        try:
            cookie, pages = b"", 0
            while True:
                controls = await self._call(
                    "search",
                    _searchNames(client, self.url, self.mailAttributes, builder.addEntry,
                                 pagedResultsControl(pageSize, cookie)),
                )
                pages += 1
                cookie = pagedResultsCookie(controls)
                # No control: the server does not page, and sent everything.
                if not cookie:
                    break
        except ldaperrors.LDAPNoSuchObject:
            pass
        except ldaperrors.LDAPSizeLimitExceeded:
            raise ldaperrors.LDAPSizeLimitExceeded(
                f"the directory sent {builder.entries} entries and refused the rest (a size limit: allow "
                "the search account paged searches of all users, e.g. OpenLDAP's size.prtotal=unlimited)"
            ) from None
        except ldaperrors.LDAPException as e:
            if getattr(e, "resultCode", None) in _UNAVAILABLE_CODES:
                raise self._failed(f"loading the name index failed: {e}") from None
            raise
        except defer.CancelledError:
            # Stopped (fbtwist is shutting down): not a failure of the server.
            self._abort([client])
            raise
        except _CONNECTION_ERRORS as e:
            self._abort([client])
            raise self._failed(f"loading the name index failed: {e!r}") from None
        except MalformedMessage as e:
            # Backoff and the warning as for an outage; the sentence says
            # why (the child that builds the index reports it as is).
            reason = f"loading the name index failed: what the directory sent cannot be read ({e})"
            self._failed(reason)
            raise DirectoryUnavailable(f"the directory {self.server} is unavailable: {reason}") from None
        finally:
            _close(client)
        index = await self._inThread(self._compact, builder)
        del builder
        self.nameIndex = index
        # Again in this thread: the tables were filled here.
        releaseFreeMemory()
        self.log.info(
            "name index loaded from {server}: {entries} entries, {names} names in {seconds:.2f}s ({pages} pages)",
            server=self.server, entries=index.entries, names=len(index), pages=pages,
            seconds=self._reactor.seconds() - started,
        )
        return index

    def _inThread(self, f, *args) -> defer.Deferred:
        """
        C{f(*args)} in a thread of the reactor's pool (in this thread for a
        reactor without threads: a test's).
        """
        if IReactorThreads.providedBy(self._reactor):
            return threads.deferToThreadPool(self._reactor, self._reactor.getThreadPool(), f, *args)
        return defer.maybeDeferred(f, *args)

    def _compact(self, builder: CompactIndexBuilder) -> CompactNameIndex:
        """
        The index of C{builder}'s entries (laying it out takes seconds for a
        million users: called in a thread), written to L{indexFile} and
        mapped when there is one, else held in memory.
        """
        parts = builder.parts()
        try:
            if self.indexFile is not None:
                try:
                    writeIndexFile(parts, self.indexFile)
                    self._wroteIndex = True
                    return MappedNameIndex(self.indexFile)
                except (OSError, IndexFileError) as e:
                    self.log.warn("cannot write the name index to {path} ({error}); keeping it in memory",
                                  path=self.indexFile, error=str(e))
            return CompactNameIndex(b"".join(parts))
        finally:
            del parts
            releaseFreeMemory()

    def isMember(self, uid: str, groupDN: str) -> defer.Deferred:
        return defer.Deferred.fromCoroutine(self._isMember(uid, groupDN))

    async def isActiveDirectory(self) -> bool:
        """
        Whether the server is an Active Directory domain controller (its
        root DSE lists L{AD_CAPABILITY}); asked once, remembered.  A server
        that does not answer the question is not one.

        @raise DirectoryUnavailable: When the directory cannot answer.
        """
        if self._activeDirectory is None:
            try:
                entries = await self.search(
                    pureldap.LDAPFilter_present("objectClass"), ["supportedCapabilities"], base="",
                    scope=pureldap.LDAP_SCOPE_baseObject, withURLFilter=False,
                )
            except ldaperrors.LDAPException:
                entries = []
            self._activeDirectory = any(AD_CAPABILITY in allValues(e, "supportedCapabilities") for e in entries)
        return self._activeDirectory

    async def _isMember(self, uid: str, groupDN: str) -> bool:
        """
        Whether the group entry C{groupDN} lists the user: C{member}
        (groupOfNames, Active Directory), C{uniqueMember}
        (groupOfUniqueNames) or C{memberUid} (posixGroup).  On Active
        Directory, membership through nested groups counts too (one search
        with its in-chain matching rule); elsewhere only direct membership.
        """
        if await self.isActiveDirectory():
            found = await self.search(
                pureldap.LDAPFilter_and([equalityFilter(self.url.attribute, uid), inChainFilter(groupDN)]), ["1.1"]
            )
            return len(found) == 1
        indexed = self.indexedLogin(uid)
        if indexed is not None:
            # The name index holds the entry the search below would find.
            memberUid, dn = indexed
        else:
            entries = await self.search(
                equalityFilter(self.url.attribute, uid), [self.url.attribute]
            )
            if len(entries) != 1:
                return False
            dn = entries[0].dn.getText()
            memberUid = firstValue(entries[0], self.url.attribute) or uid
        members = await self._groupMembersNow(groupDN)
        if members is not None:
            found = _dnKey(dn) in members[0] or memberUid in members[1]
        else:
            memberFilter = pureldap.LDAPFilter_or(
                [
                    equalityFilter("member", dn),
                    equalityFilter("uniqueMember", dn),
                    equalityFilter("memberUid", memberUid),
                ]
            )
            found = bool(await self.search(
                memberFilter, ["1.1"], base=groupDN, scope=pureldap.LDAP_SCOPE_baseObject, withURLFilter=False
            ))
        if not found:
            self.log.debug("{uid} is not in {group} (or the group does not exist)", uid=uid, group=groupDN)
        return found

    async def _groupMembersNow(self, groupDN: str) -> Optional[Tuple[frozenset, frozenset]]:
        """
        The members of the group entry C{groupDN} as read at most
        L{GROUP_READ_SECONDS} ago: the DN keys of its C{member} and
        C{uniqueMember} values and its C{memberUid} values (both empty when
        there is no such group); C{None} when it has more than
        L{GROUP_READ_MAX} values (then each membership is asked of the
        directory).  Callers asking while it is read wait for that one
        search: a burst of first logins checking the administrators' group
        costs the directory one search, not two per login.
        """
        now = self._clock.seconds()
        kept = self._groupsRead.get(groupDN)
        if kept is not None and kept[0] is not None and now - kept[0] < GROUP_READ_SECONDS:
            return kept[1]
        waiter = defer.Deferred()
        if kept is not None and kept[0] is None:
            kept[2].append(waiter)
        else:
            if len(self._groupsRead) >= 64:
                self._groupsRead.clear()
            waiting = [waiter]
            self._groupsRead[groupDN] = (None, None, waiting)

            def read(outcome):
                # The search runs on its own, not as the first caller's: a
                # caller that gives up stops no one else's wait.
                if isinstance(outcome, Failure):
                    self._groupsRead.pop(groupDN, None)
                else:
                    self._groupsRead[groupDN] = (now, outcome, None)
                for each in waiting:
                    each.errback(outcome) if isinstance(outcome, Failure) else each.callback(outcome)

            defer.Deferred.fromCoroutine(self._readGroupMembers(groupDN)).addBoth(read)
        return await waiter

    async def _readGroupMembers(self, groupDN: str) -> Optional[Tuple[frozenset, frozenset]]:
        entries = await self.search(
            pureldap.LDAPFilter_present("objectClass"), ["member", "uniqueMember", "memberUid"],
            base=groupDN, scope=pureldap.LDAP_SCOPE_baseObject, withURLFilter=False,
        )
        if not entries:
            return frozenset(), frozenset()
        dns = allValues(entries[0], "member") + allValues(entries[0], "uniqueMember")
        uids = allValues(entries[0], "memberUid")
        if len(dns) + len(uids) > GROUP_READ_MAX:
            return None
        return frozenset(_dnKey(dn) for dn in dns), frozenset(uids)

    def groupMembers(self, cn: str, base: str, limit: int) -> defer.Deferred:
        return defer.Deferred.fromCoroutine(self._groupMembers(cn, base, limit))

    async def _groupMembers(self, cn: str, base: str, limit: int) -> Optional[List[str]]:
        """
        The uids of the members of the group C{cn} below C{base} (an entry
        of one of the L{GROUP_CLASSES}), sorted; C{None} when there is no
        such group.  Groups among the members (C{member}/C{uniqueMember}
        DNs of group entries, as Active Directory nests them) are followed
        to L{GROUP_NESTING_DEPTH}, each once (a cycle ends there); their
        members count as the group's.  Member entries that are not groups
        count when they match the directory URL's filter.  At most
        C{limit + 1} are resolved: a longer answer means the group is
        larger than C{limit}.
        """
        groups = await self.search(
            pureldap.LDAPFilter_and([equalityFilter("cn", cn), _groupClassFilter()]),
            ["member", "uniqueMember", "memberUid"],
            base=base,
            scope=pureldap.LDAP_SCOPE_wholeSubtree,
            withURLFilter=False,
        )
        if len(groups) != 1:
            return None
        uids = set()
        seen = {_dnKey(groups[0].dn.getText())}
        pending = [(groups[0], 1)]
        attribute = self.url.attribute.lower()
        memberFilter = pureldap.LDAPFilter_or([self.url.filterObject(), _groupClassFilter()])
        while pending and len(uids) <= limit:
            group, depth = pending.pop(0)
            uids.update(allValues(group, "memberUid"))
            for dn in sorted(set(memberValues(group))):
                if len(uids) > limit:
                    break
                key = _dnKey(dn)
                if key in seen:
                    continue
                seen.add(key)
                first = dn.split(",", 1)[0]
                name, _, value = first.partition("=")
                if name.strip().lower() == attribute and value and "\\" not in value:
                    uids.add(value.strip())
                    continue
                entries = await self.search(
                    memberFilter, [self.url.attribute, "objectClass", "member", "uniqueMember", "memberUid"],
                    base=dn, scope=pureldap.LDAP_SCOPE_baseObject, withURLFilter=False,
                )
                for entry in entries:
                    if not _isGroup(entry):
                        uid = firstValue(entry, self.url.attribute)
                        if uid:
                            uids.add(uid)
                    elif depth < GROUP_NESTING_DEPTH:
                        pending.append((entry, depth + 1))
                    else:
                        self.log.warn(
                            "group {group}: not following {nested}, nested deeper than {depth} groups",
                            group=cn, nested=dn, depth=GROUP_NESTING_DEPTH,
                        )
        return sorted(uids)[: limit + 1]

    # --- principals (CalDAV) ---

    def principal(self, kind: str, name: str, groupBase: Optional[str]) -> defer.Deferred:
        return defer.Deferred.fromCoroutine(self._principal(kind, name, groupBase))

    async def _principal(self, kind: str, name: str, groupBase: Optional[str]) -> Optional[PrincipalRecord]:
        if not name:
            return None
        if kind == USER:
            found = await self._principals(USER, equalityFilter(self.url.attribute, name), None, 2)
        elif kind == GROUP and groupBase:
            found = await self._principals(GROUP, groupFilter(equalityFilter("cn", name)), groupBase, 2)
        elif kind == ROOM and self.roomDirectory is not None:
            return await self.roomDirectory.principal(name)
        else:
            return None
        return found[0] if len(found) == 1 else None

    def principalByAddress(self, address: str, groupBase: Optional[str]) -> defer.Deferred:
        return defer.Deferred.fromCoroutine(self._principalByAddress(address, groupBase))

    async def _principalByAddress(self, address: str, groupBase: Optional[str]) -> Optional[PrincipalRecord]:
        address = address.strip()
        if "@" not in address or not self.mailAttributes:
            return None
        users = await self._principals(USER, addressFilter(address, self.mailAttributes), None, 2)
        if len(users) == 1:
            return users[0]
        if users:
            return None
        if self.roomDirectory is not None:
            room = await self.roomDirectory.principalByAddress(address)
            if room is not None:
                return room
        if not groupBase:
            return None
        groups = await self._principals(GROUP, groupFilter(addressFilter(address, self.mailAttributes)),
                                        groupBase, 2)
        return groups[0] if len(groups) == 1 else None

    def searchPrincipals(self, text: str, groupBase: Optional[str], limit: int, kinds=None) -> defer.Deferred:
        return defer.Deferred.fromCoroutine(self._searchPrincipals(text, groupBase, limit, kinds))

    async def _searchPrincipals(self, text: str, groupBase: Optional[str], limit: int,
                                kinds=None) -> List[PrincipalRecord]:
        """
        Bounded in results (C{limit}, at most L{MAX_SEARCH_RESULTS}, asked
        of the server as its size limit) and in time (the directory's
        timeout, also given to the server as its time limit).  Rooms come
        from the rooms' kept list, after the users.
        """
        text = text.strip()
        limit = max(0, min(limit, MAX_SEARCH_RESULTS))
        kinds = (USER, GROUP, ROOM) if kinds is None else tuple(kinds)
        if len(text) < MIN_SEARCH_TEXT or not limit:
            return []
        found: List[PrincipalRecord] = []
        if USER in kinds:
            attributes = [self.url.attribute, "displayName", "cn", *self.mailAttributes]
            found = await self._principals(USER, searchFilter(text, attributes), None, limit)
        if ROOM in kinds and self.roomDirectory is not None and len(found) < limit:
            found += await self.roomDirectory.searchPrincipals(text, limit - len(found))
        if GROUP in kinds and groupBase and len(found) < limit:
            groups = await self._principals(
                GROUP, groupFilter(searchFilter(text, ["cn", "displayName", *self.mailAttributes])),
                groupBase, limit - len(found))
            found += groups
        return found[:limit]

    async def _principals(self, kind: str, filterObject, groupBase: Optional[str], limit: int
                          ) -> List[PrincipalRecord]:
        nameAttribute = self.url.attribute if kind == USER else "cn"
        if kind == USER:
            entries = await self.search(filterObject, principalAttributes(nameAttribute, self.mailAttributes),
                                        sizeLimit=limit)
        else:
            entries = await self.search(filterObject, principalAttributes(nameAttribute, self.mailAttributes),
                                        base=groupBase, scope=pureldap.LDAP_SCOPE_wholeSubtree,
                                        withURLFilter=False, sizeLimit=limit)
        records = [principalRecord(e, kind, nameAttribute, self.mailAttributes) for e in entries[:limit]]
        return sorted((r for r in records if r is not None), key=lambda r: (r.displayName.lower(), r.name))
