"""
Directory entries as CalDAV principals: the attributes asked for, the
records made of them, and the filters of principal searches.
"""

from typing import List, Optional, Sequence

from ldaptor.protocols import pureldap

from fbtwist.directory.entries import allValues, firstValue
from fbtwist.directory.filters import _groupClassFilter, anyOf, equalityFilter, prefixFilter
from fbtwist.interfaces import PrincipalRecord

#: The most principals one search returns, whatever a caller asks.
MAX_SEARCH_RESULTS = 50

#: Search text shorter than this finds nobody (a search for "a" in a large
#: directory is of no use to a person choosing attendees).
MIN_SEARCH_TEXT = 2


def principalAttributes(nameAttribute: str, mailAttributes: Sequence[str]) -> List[str]:
    """
    The attributes a principal record is made of.
    """
    return list(dict.fromkeys([nameAttribute, "displayName", "cn", *mailAttributes]))


def principalRecord(entry, kind: str, nameAttribute: str, mailAttributes: Sequence[str]) -> Optional[PrincipalRecord]:
    """
    The L{PrincipalRecord} of a user or group entry, or C{None} for an
    entry without a name.
    """
    name = firstValue(entry, nameAttribute)
    if not name:
        return None
    addresses = []
    for attribute in mailAttributes:
        for value in allValues(entry, attribute):
            value = value.strip()
            if value and value.lower() not in (a.lower() for a in addresses):
                addresses.append(value)
    display = firstValue(entry, "displayName") or firstValue(entry, "cn") or name
    return PrincipalRecord(kind, name, display, tuple(addresses))


def searchFilter(text: str, attributes: Sequence[str]):
    """
    Entries where one of C{attributes} starts with C{text} (literally).
    """
    return anyOf([prefixFilter(attribute, text) for attribute in dict.fromkeys(attributes)])


def addressFilter(address: str, mailAttributes: Sequence[str]):
    """
    Entries holding the mail address C{address}.
    """
    return anyOf([equalityFilter(attribute, address) for attribute in mailAttributes])


def groupFilter(inner):
    """
    Group entries matching C{inner}.
    """
    return pureldap.LDAPFilter_and([inner, _groupClassFilter()])

