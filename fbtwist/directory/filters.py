"""
LDAP search filters, always built from ldaptor filter objects, never by pasting
text, so that a login such as C{*)(uid=*} is only ever compared literally
(RFC 4515); and the filters and bases of group searches.
"""

from ldaptor.protocols import pureldap
from ldaptor.protocols.ldap.distinguishedname import DistinguishedName

from fbtwist.directory.entries import GROUP_CLASSES, _text

#: Active Directory's LDAP_MATCHING_RULE_IN_CHAIN: C{memberOf} compared
#: with it holds every group a user is in, through nested groups too.
IN_CHAIN_RULE = "1.2.840.113556.1.4.1941"


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


def _groupClassFilter():
    return anyOf([equalityFilter("objectClass", c) for c in GROUP_CLASSES])


def inChainFilter(groupDN: str):
    """
    A C{(memberOf:1.2.840.113556.1.4.1941:=groupDN)} filter object: on
    Active Directory, the entries in the group directly or through nested
    groups.
    """
    return pureldap.LDAPFilter_extensibleMatch(matchingRule=IN_CHAIN_RULE, type="memberOf", matchValue=groupDN)
