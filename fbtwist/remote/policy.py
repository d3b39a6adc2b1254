"""
Which addresses fbtwist may fetch from: the defence against server-side
request forgery (SSRF).

A remote URL comes from configuration, from a directory attribute
(C{calFBURL}) or from a user (a calendar feed), and a redirect can send a
fetch anywhere.  Without a check, a user could make fbtwist read its own
admin pages, a cloud metadata service (169.254.169.254) or any host on the
internal network, and learn from the answer or its timing.  So every address
a fetch would connect to is classified here, after fbtwist resolved the name
itself, and anything that is not ordinary public unicast is refused: loopback,
link-local, private (RFC 1918, IPv6 ULA), carrier-grade NAT, multicast,
unspecified, documentation, benchmarking and reserved ranges.  IPv6 forms
that carry an IPv4 address (IPv4-mapped, NAT64, 6to4) are judged by that
IPv4 address too.

The ranges are written out here rather than taken from C{ipaddress}'s
C{is_global}/C{is_private}, whose answers have changed between Python
releases; IPv6 fails closed: only global unicast (2000::/3) is public.

An operator may permit chosen networks (C{AddressPolicy(allowed=...)}), for
a partner on the internal network, or loopback in tests.
"""

import ipaddress
from typing import Iterable, Optional, Sequence, Tuple, Union

Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


def _networks(*pairs: Tuple[str, str]) -> Tuple[Tuple[Network, str], ...]:
    return tuple((ipaddress.ip_network(cidr), kind) for cidr, kind in pairs)


#: IPv4 ranges that are not public unicast, with what they are.
_IPV4_SPECIAL = _networks(
    ("0.0.0.0/8", "unspecified"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "carrier-grade NAT"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "reserved"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
)

#: IPv6 ranges inside global unicast (2000::/3) that are not public, and
#: the named ranges outside it (everything else there is "reserved").
_IPV6_SPECIAL = _networks(
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("64:ff9b:1::/48", "private"),
    ("100::/64", "reserved"),
    ("2001::/23", "reserved"),
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
    ("fc00::/7", "private"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "private"),
    ("ff00::/8", "multicast"),
)
_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")


class ForbiddenAddress(Exception):
    """
    A fetch would connect to an address the policy refuses; the message
    says which and why ("10.1.2.3 is a private address").
    """


def parseAddress(text: str) -> Optional[Address]:
    """
    @return: The IP address C{text} is (an IPv6 scope such as C{%eth0} is
        dropped, brackets too), or C{None} when it is a name.
    """
    text = text.strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def embeddedIPv4(address: Address) -> Optional[ipaddress.IPv4Address]:
    """
    @return: The IPv4 address an IPv6 address stands for (IPv4-mapped,
        NAT64 well-known prefix, 6to4), or C{None}.
    """
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _SIX_TO_FOUR:
        return address.sixtofour
    return None


def classify(address: Address) -> Optional[str]:
    """
    @return: What kind of non-public address C{address} is ("loopback",
        "private", "link-local", "carrier-grade NAT", "multicast",
        "unspecified", "documentation", "benchmarking", "reserved"), or
        C{None} for a public unicast address.
    """
    if isinstance(address, ipaddress.IPv4Address):
        for network, kind in _IPV4_SPECIAL:
            if address in network:
                return kind
        return None
    inner = embeddedIPv4(address)
    if inner is not None:
        return classify(inner)
    for network, kind in _IPV6_SPECIAL:
        if address in network:
            return kind
    if address not in _GLOBAL_UNICAST:
        return "reserved"
    return None


class AddressPolicy:
    """
    Decides whether a fetch may connect to an address.

    @param allowed: Networks permitted although not public (an operator's
        allow-list); an IPv6 address carrying an IPv4 one is permitted when
        either is in them.
    """

    def __init__(self, allowed: Iterable[Network] = ()):
        self.allowed: Sequence[Network] = tuple(allowed)

    def _isAllowed(self, address: Address) -> bool:
        candidates = [address]
        inner = embeddedIPv4(address)
        if inner is not None:
            candidates.append(inner)
        return any(a.version == n.version and a in n for a in candidates for n in self.allowed)

    def check(self, address: Address) -> None:
        """
        @raise ForbiddenAddress: When a fetch may not connect to C{address}.
        """
        kind = classify(address)
        if kind is not None and not self._isAllowed(address):
            article = "an" if kind[0] in "aeiou" else "a"
            raise ForbiddenAddress(f"{address} is {article} {kind} address")

    def checkAll(self, host: str, addresses: Sequence[Address]) -> None:
        """
        Check every address a name resolved to: if any is refused, the name
        is (a name that resolves to a public and a private address is the
        shape of a DNS rebinding attack).

        @raise ForbiddenAddress: When one is refused, or there is none.
        """
        if not addresses:
            raise ForbiddenAddress(f"{host} resolved to no address")
        for address in addresses:
            try:
                self.check(address)
            except ForbiddenAddress as e:
                if parseAddress(host) is None:
                    raise ForbiddenAddress(f"{host} resolves to {e}") from None
                raise
