"""
Where other organisations publish free/busy, as an operator configures it,
and the URL of one person's free/busy there.

An operator maps a domain to a URL template, in a C{[federation]} section
of the config file or with a repeatable option, one C{DOMAIN = TEMPLATE}
each::

    [federation]
    partner.example = https://fb.partner.example/freebusy/%NAME%@%SERVER%.vfb

For C{alice@partner.example}, C{%NAME%} becomes C{alice} and C{%SERVER%}
becomes C{partner.example}.  The name comes from whoever looks someone up,
so it is percent-encoded entirely when it is put in (a C{/}, C{?}, C{#} or
C{@} in it stays data and cannot change which resource is asked for), and
C{%NAME%} may only stand in a template's path or query, never in its host.
A person's own URL may also come from the directory (RFC 2739's
C{calFBURL}); L{parseFreeBusyURL} checks one.

These are parsers in the shape L{fbtwist.config} expects: each takes text
and returns a value, or raises L{ValueError} with one sentence.
"""

import re
from dataclasses import dataclass
from typing import Dict, Iterable, Optional, Tuple
from urllib.parse import quote

from fbtwist.config import caCertificates, parseCACertificates, parseDomainList, parseNetworks
from fbtwist.remote.credentials import Credentials, readCredentials
from fbtwist.remote.fetcher import FetchError, parseURL
from fbtwist.remote.policy import AddressPolicy

NAME = "%NAME%"
SERVER = "%SERVER%"
_PLACEHOLDER = re.compile(r"%[A-Za-z_]+%")


def parseDomain(text: str) -> str:
    """
    One domain name (C{partner.example}), in lower case; an international
    one is given in its ASCII form.
    """
    name = text.strip().rstrip(".").lower()
    try:
        ascii = name.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError(f"{name!r} is not a domain name") from None
    if "," in ascii:
        raise ValueError(f"{name!r} is not a domain name")
    return parseDomainList(ascii)[0]


@dataclass(frozen=True)
class FreeBusyTemplate:
    """
    Where one domain's people publish free/busy: a URL with C{%NAME%} and
    optionally C{%SERVER%} in it.
    """

    domain: str
    template: str

    def expand(self, name: str) -> str:
        """
        @param name: The part of an address before the C{@}.
        @return: The URL of C{name}'s free/busy.
        @raise ValueError: When C{name} cannot stand in a URL (empty,
            C{.} or C{..}, too long, or holding a control character).
        """
        return expandTemplate(self.template, name, self.domain)


def expandTemplate(template: str, name: str, server: str) -> str:
    """
    Put C{name} and C{server} into C{template}, each percent-encoded
    entirely (only letters, digits and C{-._~} stay as they are).

    @raise ValueError: When C{name} cannot stand in a URL.
    """
    if not name or name in (".", "..") or len(name) > 256 or any(not c.isprintable() for c in name):
        raise ValueError("not a name whose free/busy can be looked up")
    return template.replace(NAME, quote(name, safe="")).replace(SERVER, quote(server, safe=""))


def parseTemplate(text: str, domain: str = "partner.example") -> str:
    """
    A free/busy URL template: an C{http} or C{https} URL holding C{%NAME%}
    in its path or query, optionally C{%SERVER%}, and no other placeholder.
    """
    template = text.strip()
    unknown = sorted({p for p in _PLACEHOLDER.findall(template) if p not in (NAME, SERVER)})
    if unknown:
        raise ValueError(f"{unknown[0]} is not a placeholder: a template may hold {NAME} and {SERVER}")
    if NAME not in template:
        raise ValueError(f"the template has no {NAME}: without it everyone would have the same free/busy")
    scheme, sep, rest = template.partition("://")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if sep and NAME in authority:
        raise ValueError(f"{NAME} may only stand in the URL's path or query, not in its host")
    if "#" in template:
        raise ValueError("the template may not have a fragment (#...)")
    try:
        parseURL(expandTemplate(template, "name", domain))
    except FetchError as e:
        raise ValueError(f"the template is not a usable URL: {e.message}") from None
    return template


def _split(text: str, what: str) -> Tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise ValueError(f"expected DOMAIN = {what}")
    return key, value


def parseFederationOption(text: str) -> FreeBusyTemplate:
    """
    One C{DOMAIN = URL-TEMPLATE} (the repeatable option's value, or one
    line of the C{[federation]} section).
    """
    key, value = _split(text, "URL-TEMPLATE, e.g. partner.example = https://fb.partner.example/%NAME%.vfb")
    domain = parseDomain(key)
    return FreeBusyTemplate(domain, parseTemplate(value, domain))


def parseFederationSection(items: Iterable[Tuple[str, str]]) -> Dict[str, FreeBusyTemplate]:
    """
    The C{[federation]} section, as C{(key, value)} pairs (what
    C{configparser}'s C{section.items()} gives).

    @return: The templates by domain.
    @raise ValueError: Naming the domain at fault.
    """
    templates: Dict[str, FreeBusyTemplate] = {}
    for key, value in items:
        try:
            template = parseFederationOption(f"{key} = {value}")
        except ValueError as e:
            raise ValueError(f"[federation] {key.strip()}: {e}") from None
        if template.domain in templates:
            raise ValueError(f"[federation] {template.domain} is given twice")
        templates[template.domain] = template
    return templates


def freeBusyURL(address: str, templates: Dict[str, FreeBusyTemplate]) -> Optional[str]:
    """
    @param address: A calendar user's address (C{alice@partner.example},
        C{mailto:} allowed in front).
    @return: The URL of the address's free/busy, or C{None} when its domain
        is not configured.
    @raise ValueError: When the address's name cannot stand in a URL.
    """
    address = address.strip()
    if address[:7].lower() == "mailto:":
        address = address[7:]
    name, at, domain = address.rpartition("@")
    if not at:
        return None
    try:
        domain = parseDomain(domain)
    except ValueError:
        return None
    template = templates.get(domain)
    return template.expand(name) if template is not None else None


def parseFreeBusyURL(text: str) -> str:
    """
    A person's own free/busy URL (an RFC 2739 C{calFBURL} value): an
    absolute C{http} or C{https} URL.
    """
    try:
        return parseURL(text.strip()).to_text()
    except FetchError as e:
        raise ValueError(f"not a free/busy URL: {e.message}") from None


def parseCredentialsOption(text: str) -> Tuple[str, Credentials]:
    """
    One C{DOMAIN = FILE}: the credentials for fetches of C{DOMAIN}'s
    free/busy, read from C{FILE}'s first line (C{username:password}).
    """
    key, value = _split(text, "FILE, e.g. partner.example = /etc/fbtwist/partner.credentials")
    return parseDomain(key), readCredentials(value.strip())


def parseAllowedNetworks(text: str) -> AddressPolicy:
    """
    Networks that fetches may reach although they are not public
    (C{10.20.0.0/16,fd00:1::/64}): an allow-list for partners on the
    internal network.
    """
    return AddressPolicy(parseNetworks(text))


def parseTrustRoot(text: str):
    """
    A PEM file of the CAs that remote servers' certificates must chain to,
    instead of the platform's (for partners with a private CA).

    @return: An C{IOpenSSLTrustRoot} for L{fbtwist.remote.fetcher.Fetcher}'s
        C{trustRoot}.
    """
    from twisted.internet.ssl import trustRootFromCertificates

    return trustRootFromCertificates(caCertificates(parseCACertificates(text)))
