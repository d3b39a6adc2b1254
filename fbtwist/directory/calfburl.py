"""
A person's own free/busy URL from the directory: RFC 2739's C{calFBURL}
attribute on an entry (a contact of another organisation, say) whose mail
address is the one looked up.
"""

from typing import Optional

from ldaptor.protocols import pureldap

from fbtwist.directory.entries import firstValue
from fbtwist.directory.filters import anyOf, equalityFilter

#: RFC 2739's attribute of a free/busy URL.
CALFBURL = "calFBURL"


async def findFreeBusyURL(directory, address: str) -> Optional[str]:
    """
    The C{calFBURL} of the one entry with C{address} in one of the
    directory's mail attributes, anywhere below its base (contacts need not
    match the users' filter).

    @return: The URL as written, or C{None} (no entry, several, or none
        with the attribute).
    """
    alternatives = [equalityFilter(a, address) for a in directory.mailAttributes]
    entries = await directory.search(anyOf(alternatives), [CALFBURL], scope=pureldap.LDAP_SCOPE_wholeSubtree,
                                      withURLFilter=False)
    urls = {firstValue(e, CALFBURL) for e in entries} - {None, ""}
    return urls.pop() if len(urls) == 1 else None
