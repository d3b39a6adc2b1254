"""
Active Directory's login forms (C{DOMAIN\\user}, C{user@suffix}) and the
reasons it gives for refusing a bind.
"""

import re
from typing import Optional, Sequence

from fbtwist.directory.entries import _text

#: A C{supportedCapabilities} value of the root DSE of Active Directory's
#: (and Samba's) domain controllers: LDAP_CAP_ACTIVE_DIRECTORY_OID.
AD_CAPABILITY = "1.2.840.113556.1.4.800"
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
