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
    in the certificate's subjectAltName (L{fbtwist.directory.tlsclient}); a
    certificate that does not verify is an outage, never a reason to fall
    back to plain text;
  - every call has a timeout; after a failure new connections are attempted
    only after a delay that doubles up to a maximum (backoff), and calls in
    between fail at once with L{DirectoryUnavailable}, so clients get their
    503 quickly and a struggling server is not hammered.  The first call
    after the delay reconnects: service resumes without a restart.
"""

import functools
import ipaddress
import re
from typing import List, Optional, Sequence, Tuple

from ldaptor.protocols import pureber, pureldap
from ldaptor.protocols.ldap import ldaperrors
from ldaptor.protocols.ldap.ldapclient import LDAPClient, LDAPClientConnectionLostException
from ldaptor.protocols.ldap.distinguishedname import DistinguishedName
from ldaptor.protocols.ldap.ldapsyntax import LDAPEntry
from OpenSSL import SSL
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer, error as netError
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from zope.interface import implementer

from fbtwist.errors import DirectoryUnavailable, WrongPassword
from fbtwist.interfaces import IDirectory
from fbtwist.directory.ldapurl import LDAPURL
from fbtwist.directory.nameindex import NameIndex, NameIndexBuilder, indexOf
from fbtwist.directory.tlsclient import ServerCertificateRefused, VerifyingClientTLS

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
    # HostnameEndpoint's: the name does not resolve, or its connection
    # attempt was cancelled (timed out); neither is a ConnectError.
    netError.DNSLookupError,
    netError.ConnectingCancelledError,
    netError.ConnectionLost,
    netError.ConnectionDone,
    LDAPClientConnectionLostException,
    defer.TimeoutError,
    defer.CancelledError,
)
#: How a connection the server closed while it was idle fails.
_STALE_CONNECTION_ERRORS = (netError.ConnectionLost, netError.ConnectionDone, LDAPClientConnectionLostException)
_TLS_ERRORS = (SSL.Error, ServerCertificateRefused)

#: The first delay before reconnecting after a failure (seconds); it doubles
#: with each further failure up to the directory's C{retryMax}.
RETRY_INITIAL = 0.25
#: The longest delay (seconds) after the search account's password was
#: refused: it stays wrong until an operator changes it, and directories
#: that lock accounts out (Active Directory) count each attempt.  The first
#: delay is then the directory's C{retryMax}.
ACCOUNT_RETRY_MAX = 600.0

#: The Simple Paged Results control (RFC 2696).
PAGED_RESULTS_OID = b"1.2.840.113556.1.4.319"
#: Entries per page when loading the name index: within OpenLDAP's default
#: size limit (500) and Active Directory's MaxPageSize (1000), and small
#: enough that decoding a page's worth of data that has arrived keeps the
#: reactor busy for ~15 ms at most (100,000 users load in ~1.4 s of CPU).
NAME_INDEX_PAGE_SIZE = 250

#: The object classes of group entries: C{groupOfNames} and
#: C{groupOfUniqueNames} (C{member}/C{uniqueMember} hold DNs),
#: C{posixGroup} (C{memberUid} holds uids) and Active Directory's C{group}
#: (C{member} holds the DNs of users and of nested groups).
GROUP_CLASSES = ("groupOfNames", "groupOfUniqueNames", "posixGroup", "group")
#: How deep groups nested in a group are followed (a group's members are
#: depth 1); deeper ones are left out, with a log line.
GROUP_NESTING_DEPTH = 8

#: A C{supportedCapabilities} value of the root DSE of Active Directory's
#: (and Samba's) domain controllers: LDAP_CAP_ACTIVE_DIRECTORY_OID.
AD_CAPABILITY = "1.2.840.113556.1.4.800"
#: Active Directory's LDAP_MATCHING_RULE_IN_CHAIN: C{memberOf} compared
#: with it holds every group a user is in, through nested groups too.
IN_CHAIN_RULE = "1.2.840.113556.1.4.1941"

#: Why Active Directory refused a simple bind: the code after "data" in the
#: diagnostic message of its invalidCredentials answer
#: ("80090308: LdapErr: DSID-0C09042A, comment: AcceptSecurityContext
#: error, data 533, v3839").  Samba's domain controller answers alike.
AD_BIND_REASONS = {
    "525": "no such user",
    "52e": "wrong password",
    "530": "not permitted to log on at this time",
    "531": "not permitted to log on at this workstation",
    "532": "password expired",
    "533": "account disabled",
    "701": "account expired",
    "773": "password must be changed",
    "775": "account locked out",
}
_AD_BIND_DATA = re.compile(r"\bdata ([0-9a-f]{3,8})\b", re.IGNORECASE)

#: The attribute holding Active Directory's down-level logon name (the
#: C{user} of C{DOMAIN\user}).
SAM_ACCOUNT_NAME = "sAMAccountName"


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


def bindFailureReason(message) -> str:
    """
    Why a directory refused a simple bind with invalidCredentials, for the
    log: Active Directory's reason when its diagnostic message names one
    (L{AD_BIND_REASONS}), else "wrong password".

    @param message: The result's diagnostic message (bytes or text, or
        C{None}).
    """
    match = _AD_BIND_DATA.search(_text(message or b""))
    if match is None:
        return "wrong password"
    code = match.group(1).lower()
    reason = AD_BIND_REASONS.get(code, "refused")
    return f"{reason} (Active Directory data {code})"


def defaultGroupBase(base: str) -> str:
    """
    Where groups are searched when no group base is configured: the domain
    of the directory URL's base, i.e. its C{dc=} components
    (C{ou=people,dc=example,dc=com} -> C{dc=example,dc=com}), which is
    also the root of an Active Directory domain's tree.  A base without
    C{dc=} components gives its parent (C{ou=people,o=example} ->
    C{o=example}), a one-component base itself.
    """
    dn = DistinguishedName(base)
    rdns = dn.split()
    for index, rdn in enumerate(rdns):
        if all(_text(ava.attributeType).lower() == "dc" for ava in rdn.split()):
            return DistinguishedName(listOfRDNs=rdns[index:]).getText()
    return (dn.up() if len(rdns) > 1 else dn).getText()


def _dnKey(dn: str) -> str:
    """
    C{dn} in a form that compares equal for equal DNs (case and spacing).
    """
    try:
        return DistinguishedName(dn).getText().lower()
    except Exception:
        return dn.lower()


def memberValues(entry) -> List[str]:
    """
    The member DNs of a group entry (C{member}, C{uniqueMember}), also
    from an attribute holding only a range of them (C{member;range=0-1499}:
    Active Directory's answer for a group with more members than it sends
    at once, so a group that large is never taken for an empty one).
    """
    values = []
    for key in entry.keys():
        name = _text(key).lower().split(";", 1)[0]
        if name in ("member", "uniquemember"):
            values += [_text(v) for v in entry[key]]
    return values


def _isGroup(entry) -> bool:
    classes = {c.lower() for c in allValues(entry, "objectClass")}
    return any(c.lower() in classes for c in GROUP_CLASSES)


def _groupClassFilter():
    return anyOf([equalityFilter("objectClass", c) for c in GROUP_CLASSES])


def inChainFilter(groupDN: str):
    """
    A C{(memberOf:1.2.840.113556.1.4.1941:=groupDN)} filter object: on
    Active Directory, the entries in the group directly or through nested
    groups.
    """
    return pureldap.LDAPFilter_extensibleMatch(matchingRule=IN_CHAIN_RULE, type="memberOf", matchValue=groupDN)


class LoginForms:
    """
    The other names Active Directory accepts for an account, mapped to the
    account's down-level logon name (its C{sAMAccountName}):

      - C{DOMAIN\\user} where C{DOMAIN} is the configured NetBIOS domain
        name (any case);
      - C{user@suffix} where C{suffix} is one of the configured UPN
        suffixes, for an account whose C{userPrincipalName} is not that
        name (one whose it is, or any other login attribute, is found as
        usual and wins, as Active Directory does).

    The mapped name is then matched literally, like any login, and the
    account found is the one bound as and whose uid is used: a login form
    never reaches another account's file.  Any other form is left as it is.

    @param netbiosDomain: The NetBIOS domain name, or C{None}.
    @param upnSuffixes: The UPN suffixes (DNS domain names).
    """

    def __init__(self, netbiosDomain: Optional[str] = None, upnSuffixes: Sequence[str] = ()):
        self.netbiosDomain = netbiosDomain.lower() if netbiosDomain else None
        self.upnSuffixes = frozenset(s.lower() for s in upnSuffixes)

    @staticmethod
    def _account(name: str) -> Optional[str]:
        # No sAMAccountName holds a backslash or "@": such a "user" part is no
        # account name.
        return name if name and "\\" not in name and "@" not in name else None

    def downLevel(self, login: str) -> Optional[str]:
        """
        @return: The account name of a C{DOMAIN\\user} login of the
            configured domain, else C{None}.
        """
        domain, backslash, name = login.partition("\\")
        if backslash and self.netbiosDomain and domain.lower() == self.netbiosDomain:
            return self._account(name)
        return None

    def principal(self, login: str) -> Optional[str]:
        """
        @return: The account name of a C{user@suffix} login with a
            configured suffix, else C{None}.
        """
        name, at, suffix = login.rpartition("@")
        if at and suffix.lower() in self.upnSuffixes:
            return self._account(name)
        return None

    def canonical(self, login: str) -> str:
        """
        One name for every form of a login, to count failed logins by (a
        login tried as C{alice}, C{DOMAIN\\alice} and C{alice@suffix} is
        one login); other logins are returned as they are.
        """
        return self.downLevel(login) or self.principal(login) or login


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


def pagedResultsControl(size: int, cookie: bytes = b"") -> tuple:
    """
    A Simple Paged Results request control asking for C{size} entries after
    C{cookie} (empty for the first page), as ldaptor sends controls.  Not
    critical: a server that does not page sends everything at once.
    """
    value = pureber.BERSequence([pureber.BERInteger(size), pureber.BEROctetString(cookie)]).toWire()
    return (PAGED_RESULTS_OID, False, value)


def pagedResultsCookie(controls) -> bytes:
    """
    The cookie of the Simple Paged Results control among a search result's
    C{controls} (as ldaptor returns them): where the next page starts; empty
    after the last page, or when the server did not page.
    """
    for controlType, _, value in controls or ():
        if controlType == PAGED_RESULTS_OID and value:
            sequence, _ = pureber.berDecodeObject(pureber.BERDecoderContext(), value)
            return bytes(sequence[1].value)
    return b""


def nameRecord(attributes, uidAttribute: str, mailAttributes: Sequence[str]) -> Tuple[Optional[str], List[str]]:
    """
    What the lookup-name rule (L{fbtwist.directory.nameindex}) needs of an entry.

    @param attributes: The entry's C{(name, values)} pairs.
    @return: The first value of C{uidAttribute} (C{None} when absent) and
        every value of the C{mailAttributes}.
    """
    uidName = uidAttribute.lower()
    mailNames = {a.lower() for a in mailAttributes}
    uid, addresses = None, []
    for name, values in attributes:
        name = _text(name).lower()
        if name == uidName:
            uid = next((_text(v) for v in values), None)
        if name in mailNames:
            addresses += [_text(v) for v in values]
    return uid, addresses


def _searchNames(client: LDAPClient, url: LDAPURL, mailAttributes: Sequence[str], add, control) -> defer.Deferred:
    """
    Search below the URL's base for the entries that match its filter, and
    hand each entry's L{nameRecord} to C{add} as it arrives.  Unlike
    ldaptor's C{LDAPEntry.search}, no entry object is built: parsing every
    DN was most of the work of a large search.

    @return: A Deferred firing with the controls of the search's result,
        or failing with the LDAP error it carries.
    """
    done = defer.Deferred()

    def handle(response, controls) -> bool:
        if isinstance(response, pureldap.LDAPSearchResultEntry):
            add(*nameRecord(response.attributes, url.attribute, mailAttributes))
            return False
        if isinstance(response, pureldap.LDAPSearchResultDone):
            if done.called:
                # Timed out (cancelled) already.
                pass
            elif response.resultCode == ldaperrors.Success.resultCode:
                done.callback(controls)
            else:
                done.errback(ldaperrors.get(response.resultCode, response.errorMessage))
            return True
        # A continuation reference (referral): ignored.
        return False

    request = pureldap.LDAPSearchRequest(
        baseObject=url.base, scope=url.scope, derefAliases=pureldap.LDAP_DEREF_neverDerefAliases,
        sizeLimit=0, timeLimit=0, typesOnly=0, filter=url.filterObject(),
        attributes=[url.attribute, *mailAttributes],
    )
    try:
        client.send_multiResponse_ex(request, [control], handle).addErrback(done.errback)
    except LDAPClientConnectionLostException:
        return defer.fail()
    return done


def _describeTLSFailure(e: Exception) -> str:
    if isinstance(e, ServerCertificateRefused):
        return str(e)
    # OpenSSL's own error: a certificate that was sent has been judged (and
    # a refusal explained) by VerifyingClientTLS, so this is about the
    # handshake, or a server that sent no certificate.
    reasons = [part for err in (e.args[0] if e.args and isinstance(e.args[0], list) else []) for part in err[-1:]]
    return f"the TLS handshake failed ({', '.join(reasons) or e})"


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

    def dataReceived(self, data):
        # ldaptor's own loop tests each decoded message for truth, which
        # BER objects answer by encoding themselves again (len), and copies
        # the rest of the buffer after each message: most of the CPU of a
        # large search.  Search entries take a direct path.
        buffer = self.buffer + data
        offset = 0
        try:
            while True:
                end = _messageEnd(buffer, offset)
                if end is None:
                    break
                message = _searchEntryMessage(buffer, offset, end)
                if message is None:
                    message, _ = pureber.berDecodeObject(self.berdecoder, buffer[offset:end])
                offset = end
                if message is not None:
                    self.handle(message)
        finally:
            self.buffer = buffer[offset:]

    def handle(self, msg):
        response = msg.value
        if isinstance(response, pureldap.LDAPResult):
            response.referral = None
            if isinstance(response, pureldap.LDAPSearchResultDone) and response.resultCode == _REFERRAL_CODE:
                response.resultCode = ldaperrors.Success.resultCode
                response.matchedDN = b""
                response.errorMessage = b""
        super().handle(msg)


def _length(buffer: bytes, offset: int, end: int) -> Tuple[int, int]:
    """
    The BER length at C{offset}: C{(length, where the content starts)}.

    @raise ValueError: When it does not fit before C{end}.
    """
    if offset >= end:
        raise ValueError("truncated")
    first = buffer[offset]
    if first < 0x80:
        return first, offset + 1
    size = first & 0x7F
    if not 0 < size <= 4 or offset + 1 + size > end:
        raise ValueError("bad length")
    return int.from_bytes(buffer[offset + 1:offset + 1 + size], "big"), offset + 1 + size


def _messageEnd(buffer: bytes, offset: int) -> Optional[int]:
    """
    Where the BER element starting at C{offset} ends, or C{None} when it
    has not all arrived yet.
    """
    try:
        length, start = _length(buffer, offset + 1, len(buffer))
    except ValueError:
        # Not all of the length has arrived (a bad one: ldaptor decides).
        if len(buffer) - offset < 6:
            return None
        return len(buffer)
    end = start + length
    return end if end <= len(buffer) else None


def _element(buffer: bytes, offset: int, end: int, tag: int) -> Tuple[int, int]:
    """
    The content bounds of the element with C{tag} at C{offset}.

    @raise ValueError: For another tag, or one that overruns C{end}.
    """
    if offset >= end or buffer[offset] != tag:
        raise ValueError("unexpected tag")
    length, start = _length(buffer, offset + 1, end)
    if start + length > end:
        raise ValueError("overrun")
    return start, start + length


def _searchEntryMessage(buffer: bytes, offset: int, end: int):
    """
    The LDAPMessage between C{offset} and C{end} when it is a search
    result entry without controls (decoded directly, as ldaptor would),
    else C{None} (left to ldaptor's decoder).
    """
    try:
        start, stop = _element(buffer, offset, end, 0x30)
        idStart, idEnd = _element(buffer, start, stop, 0x02)
        entryStart, entryEnd = _element(buffer, idEnd, stop, 0x64)
        if entryEnd != stop:
            return None
        nameStart, nameEnd = _element(buffer, entryStart, entryEnd, 0x04)
        attributesStart, attributesEnd = _element(buffer, nameEnd, entryEnd, 0x30)
        attributes = []
        position = attributesStart
        while position < attributesEnd:
            pairStart, pairEnd = _element(buffer, position, attributesEnd, 0x30)
            typeStart, typeEnd = _element(buffer, pairStart, pairEnd, 0x04)
            valuesStart, valuesEnd = _element(buffer, typeEnd, pairEnd, 0x31)
            values = []
            while valuesStart < valuesEnd:
                valueStart, valueEnd = _element(buffer, valuesStart, valuesEnd, 0x04)
                values.append(buffer[valueStart:valueEnd])
                valuesStart = valueEnd
            attributes.append((buffer[typeStart:typeEnd], values))
            position = pairEnd
    except ValueError:
        return None
    entry = pureldap.LDAPSearchResultEntry(objectName=buffer[nameStart:nameEnd], attributes=attributes)
    return pureldap.LDAPMessage(entry, id=int.from_bytes(buffer[idStart:idEnd], "big", signed=True))


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


class _BindPool:
    """
    Idle connections for user binds, at most C{size} kept.  Each bind takes
    one for itself (concurrent binds open more), so a connection bound as
    a user is never shared, and never used for a search.
    """

    def __init__(self, size: int):
        self.size = size
        self._idle: List[LDAPClient] = []
        self._closed = False

    def take(self) -> Optional[LDAPClient]:
        """
        @return: An idle connection that is still open, or C{None}.
        """
        while self._idle:
            client = self._idle.pop()
            if _connected(client):
                return client
        return None

    def put(self, client: LDAPClient) -> None:
        """
        Keep C{client} for a later bind, or close it when enough are kept.
        """
        if _connected(client) and len(self._idle) < self.size and not self._closed:
            self._idle.append(client)
        else:
            _close(client)

    def close(self) -> None:
        """
        Close the idle connections, and from now on each one a bind is
        done with (binds in flight while fbtwist stops must not leave
        connections open).
        """
        self._closed = True
        idle, self._idle = self._idle, []
        for client in idle:
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
    @ivar loginForms: The L{LoginForms} (Active Directory's
        C{DOMAIN\\user} and C{user@suffix}) accepted besides the login
        attributes.

    @param reactor: Connects, and times calls out.
    @param clock: Times the backoff delays (the reactor by default).
    @param retryMax: The longest backoff delay, in seconds.
    @param poolSize: How many persistent search connections to keep.
    @param bindPoolSize: How many idle connections for user binds to keep.
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
        self._bindPool = _BindPool(bindPoolSize)
        self._open = set()
        #: Every user's lookup names (a L{NameIndex}) once
        #: L{loadNameIndex} has completed, else C{None}.
        self.nameIndex: Optional[NameIndex] = None

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
                raise self._failed(
                    f"the search account {self._bindDN} cannot bind: {e}",
                    accountRefused=isinstance(e, ldaperrors.LDAPInvalidCredentials),
                ) from None
            except _CONNECTION_ERRORS as e:
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
        entry = await self.findUser(login)
        if entry is None:
            raise UnauthorizedLogin("no such user")
        uid = firstValue(entry, self.url.attribute)
        if not uid:
            raise UnauthorizedLogin(f"the entry has no {self.url.attribute}")
        try:
            await self._bindUser(entry.dn.getText(), password)
        except UnauthorizedLogin as e:
            # Which entry it was lets the checker count failures per entry.
            raise WrongPassword(str(e), uid) from None
        return uid

    async def _bindUser(self, dn: str, password: str) -> None:
        """
        Bind as C{dn} on a connection of the bind pool (a new one when none
        is idle).  A pooled connection the server has closed meanwhile is
        replaced by a new one, once.

        @raise UnauthorizedLogin: For a wrong password (or a bind the
            server refuses), saying why (L{bindFailureReason}).
        @raise DirectoryUnavailable: When the directory cannot answer.
        """
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
        return uid

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

        @return: A Deferred firing with the new L{NameIndex}, or failing
            (the old index stays) with L{DirectoryUnavailable} or an LDAP
            error, such as a size limit that also caps paged searches.
        """
        return defer.Deferred.fromCoroutine(self._loadNameIndex(pageSize))

    async def _loadNameIndex(self, pageSize: int) -> NameIndex:
        started = self._reactor.seconds()
        builder = NameIndexBuilder()
        client = await self._connectForSearch()
        try:
            cookie, pages = b"", 0
            while True:
                controls = await self._call(
                    "search",
                    _searchNames(client, self.url, self.mailAttributes, builder.add,
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
        finally:
            _close(client)
        index = self.nameIndex = builder.build()
        self.log.info(
            "name index loaded from {server}: {entries} entries, {names} names in {seconds:.2f}s ({pages} pages)",
            server=self.server, entries=index.entries, names=len(index), pages=pages,
            seconds=self._reactor.seconds() - started,
        )
        return index

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
