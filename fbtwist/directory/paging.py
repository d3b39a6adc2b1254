"""
Loading every user's names for the name index, page by page (the Simple
Paged Results control, RFC 2696).
"""

from typing import Sequence

from ldaptor.protocols import pureber, pureldap
from ldaptor.protocols.ldap import ldaperrors
from ldaptor.protocols.ldap.ldapclient import LDAPClient, LDAPClientConnectionLostException
from twisted.internet import defer

from fbtwist.directory.ldapurl import LDAPURL

#: The Simple Paged Results control (RFC 2696).
PAGED_RESULTS_OID = b"1.2.840.113556.1.4.319"
#: Entries per page when loading the name index: within OpenLDAP's default
#: size limit (500) and Active Directory's MaxPageSize (1000), and small
#: enough that decoding a page's worth of data that has arrived keeps the
#: reactor busy for ~15 ms at most (100,000 users load in ~1.4 s of CPU).
NAME_INDEX_PAGE_SIZE = 250


def _bytes(value) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass")


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


def _searchNames(client: LDAPClient, url: LDAPURL, mailAttributes: Sequence[str], addEntry,
                 control) -> defer.Deferred:
    """
    Search below the URL's base for the entries that match its filter
    (asking for the uid and mail attributes only), and hand each entry's
    DN and attributes to C{addEntry} as it arrives, all as bytes
    (L{fbtwist.directory.mappedindex.CompactIndexBuilder.addEntry}).  Unlike
    ldaptor's C{LDAPEntry.search}, no entry object is built: parsing every
    DN was most of the work of a large search, and building ldaptor's
    message objects most of the rest (the connection's entries come as
    bytes, L{fbtwist.directory.client.DirectoryClient.rawEntries}).

    @return: A Deferred firing with the controls of the search's result,
        or failing with the LDAP error it carries.
    """
    done = defer.Deferred()
    # The connection is this search's alone: its entries come raw.
    client.rawEntries = addEntry

    def handle(response, controls) -> bool:
        if isinstance(response, pureldap.LDAPSearchResultDone):
            client.rawEntries = None
        if isinstance(response, pureldap.LDAPSearchResultEntry):
            # One the fast decoder left to ldaptor (with controls, say).
            addEntry(_bytes(response.objectName),
                     [(_bytes(name), [_bytes(v) for v in values]) for name, values in response.attributes])
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
