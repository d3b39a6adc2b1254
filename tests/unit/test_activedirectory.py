"""
Active Directory without a directory: the reasons a bind is refused (from
AD's diagnostic messages), the default group base of a domain, ranged
member values, and the login-form options.  Against ldaptor's in-memory
server and Samba's domain controller: L{tests.integration.test_activedirectory}.
"""

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

import tests.helpers  # noqa: F401 (ldaptor's import-time warnings)
from fbtwist.directory.entries import memberValues
from fbtwist.directory.filters import defaultGroupBase
from fbtwist.directory.loginforms import bindFailureReason
from tests.unit.test_options import parse


class BindDiagnosticsTests(SynchronousTestCase):
    """
    L{bindFailureReason} reads Active Directory's diagnostic messages.
    """

    def test_reasons(self):
        """
        Each of Active Directory's codes gives its own reason.
        """
        expected = {
            "525": "no such user", "52e": "wrong password", "530": "not permitted to log on at this time",
            "531": "not permitted to log on at this workstation", "532": "password expired",
            "533": "account disabled", "701": "account expired", "773": "password must be changed",
            "775": "account locked out",
        }
        for code, reason in expected.items():
            message = f"80090308: LdapErr: DSID-0C09042A, comment: AcceptSecurityContext error, data {code}, v3839"
            self.assertEqual(bindFailureReason(message.encode()), f"{reason} (Active Directory data {code})")
        self.assertEqual(bindFailureReason(b"... data 52E, v1db1"), "wrong password (Active Directory data 52e)")

    def test_otherServers(self):
        """
        Without Active Directory's diagnostic it is a wrong password; an
        unknown code is a refusal naming the code.
        """
        for message in (None, b"", "", b"invalid credentials", b"database is 533 years old"):
            self.assertEqual(bindFailureReason(message), "wrong password")
        self.assertEqual(bindFailureReason(b"error, data 52f, v1"), "refused (Active Directory data 52f)")


class DefaultGroupBaseTests(SynchronousTestCase):
    """
    Where groups are searched when --group-base is not given.
    """

    def test_domain(self):
        """
        The dc= components of the URL's base: Active Directory's domain
        root, never above it.
        """
        for base, expected in [
            ("ou=people,dc=example,dc=com", "dc=example,dc=com"),
            ("DC=example,DC=test", "DC=example,DC=test"),
            ("CN=Users,DC=example,DC=test", "DC=example,DC=test"),
            ("OU=Staff,OU=Europe,DC=corp,DC=example,DC=com", "DC=corp,DC=example,DC=com"),
            ("ou=people,o=example", "o=example"),
            ("o=example", "o=example"),
        ]:
            self.assertEqual(defaultGroupBase(base), expected)


class MemberValuesTests(SynchronousTestCase):
    """
    L{memberValues} reads a group entry's member DNs.
    """

    def test_ranged(self):
        """
        Members sent as a range (Active Directory's large groups) are
        members, as are member and uniqueMember values; other attributes
        are not.
        """
        entry = {
            "member;range=0-1499": [b"cn=a,dc=x"], "uniqueMember": [b"cn=b,dc=x"], "MEMBER": ["cn=c,dc=x"],
            "cn": [b"team"], "memberUid": [b"d"],
        }
        self.assertEqual(sorted(memberValues(entry)), ["cn=a,dc=x", "cn=b,dc=x", "cn=c,dc=x"])


class LoginFormOptionsTests(SynchronousTestCase):
    """
    --ldap-netbios-domain and --ldap-upn-suffixes.
    """

    def test_values(self):
        """
        A NetBIOS name and a list of domain names (lower-cased) are read.
        """
        config = parse("--ldap-netbios-domain", "CORP", "--ldap-upn-suffixes", "Corp.Example.com, example.org")
        self.assertEqual(config.ldapNetBIOSDomain, "CORP")
        self.assertEqual(config.ldapUPNSuffixes, ("corp.example.com", "example.org"))

    def test_badValues(self):
        """
        Names that cannot be NetBIOS domains or DNS suffixes are refused,
        naming the option.
        """
        for args in (["--ldap-netbios-domain", "corp.example.com"], ["--ldap-netbios-domain", "A\\B"],
                     ["--ldap-netbios-domain", "X" * 16], ["--ldap-upn-suffixes", "exa mple.com"],
                     ["--ldap-upn-suffixes", "*.example.com"], ["--ldap-upn-suffixes", ","]):
            error = self.assertRaises(usage.UsageError, parse, *args)
            self.assertIn(args[0], str(error))

