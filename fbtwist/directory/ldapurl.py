"""
RFC 4516 LDAP URLs, as administrators know them from Apache's
C{AuthLDAPURL}: C{ldap://host:port/BASE?ATTR?SCOPE?FILTER?EXTENSIONS}.
"""

import functools
from dataclasses import dataclass, field, replace
from typing import Mapping, Optional
from urllib.parse import unquote, urlsplit

from ldaptor import ldapfilter
from ldaptor.protocols import pureldap
from ldaptor.protocols.ldap.distinguishedname import DistinguishedName, InvalidRelativeDistinguishedName

_SCOPES = {
    "base": pureldap.LDAP_SCOPE_baseObject,
    "one": pureldap.LDAP_SCOPE_singleLevel,
    "sub": pureldap.LDAP_SCOPE_wholeSubtree,
}
_DEFAULT_PORTS = {"ldap": 389, "ldaps": 636}
_STARTTLS_NAMES = {"starttls", "1.3.6.1.4.1.1466.20037"}


@functools.lru_cache(maxsize=32)
def _parsedFilter(text: str):
    # pyparsing is slow (~15 % of a lookup that misses the name cache):
    # a URL's filter is parsed once.
    return ldapfilter.parseFilter(text)


class LDAPURLError(ValueError):
    """
    The LDAP URL cannot be used; the message says why in one sentence.
    """


@dataclass(frozen=True)
class LDAPURL:
    """
    A parsed LDAP URL.

    @ivar attribute: The attribute a login is matched against (C{uid},
        C{sAMAccountName}, ...).
    @ivar scope: One of the C{pureldap.LDAP_SCOPE_*} constants.
    @ivar filter: The extra filter text every user entry must match.
    @ivar extensions: RFC 4516 extensions, lower-cased name to value (or
        C{None}); C{startTLS} is true when the StartTLS extension was given.
    """

    scheme: str
    host: str
    port: int
    base: str
    attribute: str = "uid"
    scope: int = pureldap.LDAP_SCOPE_wholeSubtree
    filter: str = "(objectClass=*)"
    extensions: Mapping[str, Optional[str]] = field(default_factory=dict)

    @property
    def tls(self) -> bool:
        """
        Whether the connection is TLS from the first byte (C{ldaps://}).
        """
        return self.scheme == "ldaps"

    @property
    def startTLS(self) -> bool:
        return any(name in _STARTTLS_NAMES for name in self.extensions)

    def filterObject(self):
        """
        @return: The extra filter as an ldaptor filter object, parsed once
            (every directory search ands it in); callers must not change it.
        """
        return _parsedFilter(self.filter)

    def withAddress(self, host: str, port: int) -> "LDAPURL":
        return replace(self, host=host, port=port)

    def __str__(self) -> str:
        scope = {v: k for k, v in _SCOPES.items()}[self.scope]
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}/{self.base}?{self.attribute}?{scope}?{self.filter}"


def parseLDAPURL(text: str) -> LDAPURL:
    """
    Parse an LDAP URL.  The attribute defaults to C{uid}, the scope to
    C{sub}, the filter to C{(objectClass=*)}.

    @raise LDAPURLError: With one sentence saying what is wrong.
    """
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as e:
        raise LDAPURLError(f"not an LDAP URL: {e}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise LDAPURLError(f"an LDAP URL starts with ldap:// or ldaps://, not {text!r}")
    if not parts.hostname:
        raise LDAPURLError("the LDAP URL names no host")
    base = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
    try:
        DistinguishedName(base)
    except (InvalidRelativeDistinguishedName, ValueError) as e:
        raise LDAPURLError(f"the LDAP URL's base DN {base!r} is not a DN: {e}") from None
    fields = [unquote(f) for f in (parts.query.split("?") if parts.query else [])]
    if len(fields) > 4:
        raise LDAPURLError("the LDAP URL has more than four '?' parts")
    fields += [""] * (4 - len(fields))
    attributeText, scopeText, filterText, extensionText = fields
    attribute = attributeText.split(",")[0].strip() or "uid"
    scopeText = scopeText.strip().lower() or "sub"
    if scopeText not in _SCOPES:
        raise LDAPURLError(f"the LDAP URL's scope must be base, one or sub, not {scopeText!r}")
    filterText = filterText.strip() or "(objectClass=*)"
    if not filterText.startswith("("):
        filterText = f"({filterText})"
    try:
        ldapfilter.parseFilter(filterText)
    except Exception as e:
        raise LDAPURLError(f"the LDAP URL's filter {filterText!r} does not parse: {e}") from None
    extensions = {}
    for item in filter(None, (e.strip() for e in extensionText.split(","))):
        name, _, value = item.partition("=")
        extensions[name.lstrip("!").lower()] = value or None
    return LDAPURL(
        scheme=scheme,
        host=parts.hostname,
        port=port or _DEFAULT_PORTS[scheme],
        base=base,
        attribute=attribute,
        scope=_SCOPES[scopeText],
        filter=filterText,
        extensions=extensions,
    )
