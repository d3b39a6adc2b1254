"""
Client addresses as fbtwist compares them: IPv4-mapped IPv6 addresses
(C{::ffff:10.0.0.7}, what a dual-stack listener reports) are plain IPv4, and
an IPv6 scope (C{%eth0}) is dropped.
"""

import ipaddress
from typing import Optional, Union

Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


def clientAddress(host: str) -> Optional[Address]:
    """
    @return: The address C{host} names, or C{None} when it is not an IP
        address.
    """
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def normalisedHost(host: str) -> str:
    """
    C{host} as text in the form L{clientAddress} gives (unchanged when it is
    not an IP address).
    """
    address = clientAddress(host)
    return host if address is None else str(address)
