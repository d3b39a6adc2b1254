"""
Tests for L{fbtwist.ldapurl}: RFC 4516 URLs as Apache's AuthLDAPURL takes
them.
"""

from ldaptor.protocols import pureldap
from twisted.trial import unittest

from fbtwist.ldapurl import LDAPURLError, parseLDAPURL


class ParseLDAPURLTests(unittest.SynchronousTestCase):
    """
    L{parseLDAPURL}.
    """

    def test_apacheExample(self):
        """
        Base, attribute, scope and filter are read.
        """
        url = parseLDAPURL("ldap://ldap.example.com:1389/ou=people,dc=example,dc=com?uid?one?(objectClass=inetOrgPerson)")
        self.assertEqual((url.scheme, url.host, url.port), ("ldap", "ldap.example.com", 1389))
        self.assertEqual(url.base, "ou=people,dc=example,dc=com")
        self.assertEqual((url.attribute, url.scope), ("uid", pureldap.LDAP_SCOPE_singleLevel))
        self.assertEqual(url.filterObject().asText(), "(objectClass=inetOrgPerson)")
        self.assertFalse(url.tls)

    def test_defaults(self):
        """
        ATTR defaults to uid, SCOPE to sub, the filter to everything, the
        port to 389 (636 for ldaps).
        """
        url = parseLDAPURL("ldap://h/dc=example,dc=com")
        self.assertEqual((url.port, url.attribute, url.scope, url.filter),
                         (389, "uid", pureldap.LDAP_SCOPE_wholeSubtree, "(objectClass=*)"))
        url = parseLDAPURL("ldaps://h/dc=example,dc=com?sAMAccountName")
        self.assertEqual((url.port, url.attribute, url.tls), (636, "sAMAccountName", True))

    def test_percentEncodingAndBareFilter(self):
        """
        Percent-encoded parts are decoded; a filter without parentheses is
        accepted.
        """
        url = parseLDAPURL("ldap://h/ou=P%C3%B6ople,dc=x??sub?objectClass=person")
        self.assertEqual(url.base, "ou=Pöople,dc=x")
        self.assertEqual(url.filter, "(objectClass=person)")

    def test_startTLSExtension(self):
        """
        The StartTLS extension (critical or not, by name or OID) is seen.
        """
        self.assertTrue(parseLDAPURL("ldap://h/dc=x????!StartTLS").startTLS)
        self.assertTrue(parseLDAPURL("ldap://h/dc=x????1.3.6.1.4.1.1466.20037").startTLS)
        self.assertFalse(parseLDAPURL("ldap://h/dc=x").startTLS)

    def test_ipv6(self):
        """
        A bracketed IPv6 host is understood.
        """
        url = parseLDAPURL("ldap://[::1]:3389/dc=x")
        self.assertEqual((url.host, url.port), ("::1", 3389))
        self.assertEqual(str(url), "ldap://[::1]:3389/dc=x?uid?sub?(objectClass=*)")

    def test_errors(self):
        """
        Unusable URLs are refused with one sentence.
        """
        for text, fragment in [
            ("http://h/dc=x", "ldap://"),
            ("ldap:///dc=x", "no host"),
            ("ldap://h/dc=x?uid?deep", "scope"),
            ("ldap://h/dc=x?uid?sub?(((", "filter"),
            ("ldap://h:99999/dc=x", "Port"),
            ("ldap://h/dc=x?a?b?c?d?e", "four"),
        ]:
            error = self.assertRaises(LDAPURLError, parseLDAPURL, text)
            self.assertIn(fragment, str(error))
