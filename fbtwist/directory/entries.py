"""
Reading the attributes of directory entries: values as text, group members,
lookup names.
"""

import functools
from typing import List, Optional, Sequence, Tuple

from ldaptor.protocols.ldap.distinguishedname import DistinguishedName

#: The object classes of group entries: C{groupOfNames} and
#: C{groupOfUniqueNames} (C{member}/C{uniqueMember} hold DNs),
#: C{posixGroup} (C{memberUid} holds uids) and Active Directory's C{group}
#: (C{member} holds the DNs of users and of nested groups).
GROUP_CLASSES = ("groupOfNames", "groupOfUniqueNames", "posixGroup", "group")


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


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


@functools.lru_cache(maxsize=256)
def _distinguishedName(text: str) -> DistinguishedName:
    # Parsed once: ldaptor's DN parser was ~7 % of a lookup that searches.
    # LDAPEntry copies the parsed parts from a DistinguishedName it is given.
    return DistinguishedName(text)
