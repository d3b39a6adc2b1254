"""
L{fbtwist.directory.ldapurl} (RFC 4516) and the directory settings: the StartTLS
extension and flag, scopes, filters, the example configurations in etc/.
"""

import re

from ldaptor.protocols import pureldap
from twisted.trial.unittest import SynchronousTestCase

import tests.helpers  # noqa: F401 (ldaptor's import-time warnings)
from fbtwist.config import ConfigError, buildConfig, caCertificates
from fbtwist.directory.ldapurl import LDAPURLError, parseLDAPURL
from fbtwist.tap import Options
from tests.helpers import ETC


class LDAPURLTests(SynchronousTestCase):
    """
    LDAP URLs as administrators write them.
    """

    def test_defaults(self):
        """
        ldaps:// defaults to port 636, the attribute to uid, the scope to
        sub, no StartTLS.
        """
        url = parseLDAPURL("ldaps://ldap.example.com/dc=example,dc=com")
        self.assertEqual((url.port, url.attribute, url.scope, url.tls, url.startTLS),
                         (636, "uid", pureldap.LDAP_SCOPE_wholeSubtree, True, False))

    def test_scopes(self):
        """
        one and sub scopes are understood; others are refused.
        """
        self.assertEqual(parseLDAPURL("ldap://h/dc=x?uid?one").scope, pureldap.LDAP_SCOPE_singleLevel)
        self.assertEqual(parseLDAPURL("ldap://h/dc=x?uid?SUB").scope, pureldap.LDAP_SCOPE_wholeSubtree)
        self.assertRaises(LDAPURLError, parseLDAPURL, "ldap://h/dc=x?uid?children")

    def test_startTLSExtension(self):
        """
        The StartTLS extension, critical or not, by name or OID.
        """
        for ext in ("!starttls", "StartTLS", "1.3.6.1.4.1.1466.20037"):
            self.assertTrue(parseLDAPURL(f"ldap://h:389/dc=x?uid?sub??{ext}").startTLS, ext)

    def test_filter(self):
        """
        The URL's filter, with or without parentheses, percent-encoded or
        not; a broken one is refused.
        """
        url = parseLDAPURL("ldap://h/dc=x?uid?sub?objectClass=person")
        self.assertEqual(url.filter, "(objectClass=person)")
        url = parseLDAPURL("ldap://h/dc=x?uid?sub?(%26(a=1)(b=2))")
        self.assertIsInstance(url.filterObject(), pureldap.LDAPFilter_and)
        self.assertRaises(LDAPURLError, parseLDAPURL, "ldap://h/dc=x?uid?sub?(a=1")

    def test_notLDAP(self):
        """
        Other schemes and URLs without a host are refused.
        """
        self.assertRaises(LDAPURLError, parseLDAPURL, "http://h/dc=x")
        self.assertRaises(LDAPURLError, parseLDAPURL, "ldap:///dc=x")


class DirectorySettingsTests(SynchronousTestCase):
    """
    The directory options on the command line and in the config file.
    """

    def test_defaults(self):
        """
        Without options: no StartTLS, the system CAs, mail only, a pool of
        2, a 5-minute cache, a timeout below the 2-second promise.
        """
        config = buildConfig({})
        self.assertEqual(
            (config.ldapStartTLS, config.ldapCA, config.mailAttributes, config.ldapPoolSize, config.authCacheTTL),
            (False, None, ("mail",), 2, 300.0),
        )
        self.assertLess(config.ldapTimeout, 2)

    def test_flagAndLists(self):
        """
        --ldap-starttls is a flag; attribute lists are comma-separated.
        """
        options = Options()
        options.parseOptions(["--ldap-starttls", "--mail-attributes", "mail, mailAlternateAddress",
                              "--ldap-login-attributes", "sAMAccountName,userPrincipalName",
                              "--auth-cache-ttl", "0"])
        config = options.config
        self.assertTrue(config.ldapStartTLS)
        self.assertEqual(config.mailAttributes, ("mail", "mailAlternateAddress"))
        self.assertEqual(config.ldapLoginAttributes, ("sAMAccountName", "userPrincipalName"))
        self.assertEqual(config.authCacheTTL, 0)

    def test_flagInFile(self):
        """
        In the config file the flag takes yes or no.
        """
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("[freebusy]\nldap-starttls = yes\n")
        self.assertTrue(buildConfig({"ldap-starttls": 0}, path).ldapStartTLS)
        with open(path, "w") as f:
            f.write("[freebusy]\nldap-starttls = maybe\n")
        self.assertRaises(ConfigError, buildConfig, {}, path)

    def test_badValues(self):
        """
        A CA file that is no certificate, a bad attribute name, a pool of 0
        are refused with the setting named.
        """
        notPEM = self.mktemp()
        with open(notPEM, "w") as f:
            f.write("hello\n")
        for option, value in (("ldap-ca", notPEM), ("mail-attributes", "mail;x"), ("ldap-pool-size", "0"),
                              ("auth-cache-ttl", "-1")):
            with self.assertRaises(ConfigError) as caught:
                buildConfig({option: value})
            self.assertIn(option, str(caught.exception))

    def test_contradictions(self):
        """
        A search account without its password (or the reverse), StartTLS on
        ldaps://, a CA for a plain connection are refused.
        """
        secret = self.mktemp()
        with open(secret, "w") as f:
            f.write("pw\n")
        ca = self.mktemp()
        from tests.slapd import _pem, _TestPKI

        pki = _TestPKI()
        with open(ca, "wb") as f:
            f.write(_pem(pki.caCert))
        for given in (
            {"bind-dn": "cn=x,dc=example,dc=com"},
            {"bind-password-file": secret},
            {"ldap": "ldaps://h/dc=x", "ldap-starttls": 1},
            {"ldap": "ldap://h/dc=x", "ldap-ca": ca},
            {"ldap-ca": ca},
        ):
            self.assertRaises(ConfigError, buildConfig, given)
        self.assertEqual(len(caCertificates(buildConfig({"ldap": "ldaps://h/dc=x", "ldap-ca": ca}).ldapCA)), 1)
        self.assertTrue(buildConfig({"ldap": "ldap://h/dc=x??sub??!starttls", "ldap-ca": ca}).ldapCA)

    def test_examples(self):
        """
        The OpenLDAP and Active Directory examples in etc/ load as they are
        (with their files present): TLS URLs, a search account, the AD
        login attributes and filter.
        """
        from tests.slapd import _pem, _TestPKI

        ca, secret = self.mktemp(), self.mktemp()
        with open(ca, "wb") as f:
            f.write(_pem(_TestPKI().caCert))
        with open(secret, "w") as f:
            f.write("pw\n")
        configs = {}
        for name in ("openldap.ini", "activedirectory.ini"):
            text = ETC.child(name).getContent().decode("utf-8")
            text = re.sub(r"(?m)^ldap-ca = .*$", f"ldap-ca = {ca}", text)
            text = re.sub(r"(?m)^bind-password-file = .*$", f"bind-password-file = {secret}", text)
            path = self.mktemp()
            with open(path, "w") as f:
                f.write(text)
            configs[name] = config = buildConfig({}, path)
            self.assertTrue(config.ldap.tls, name)
            self.assertEqual(config.bindPassword, "pw")
        ad = configs["activedirectory.ini"]
        self.assertEqual(ad.ldap.attribute, "sAMAccountName")
        self.assertEqual(ad.ldapLoginAttributes, ("sAMAccountName", "userPrincipalName"))
        self.assertEqual(ad.bindDN, "svc-fbtwist@corp.example.com")
        self.assertIsInstance(ad.ldap.filterObject(), pureldap.LDAPFilter_and)
        self.assertEqual(configs["openldap.ini"].mailAttributes, ("mail", "mailAlternateAddress"))


class LDAPURLFormsTests(SynchronousTestCase):
    """
    URLs as administrators write them for Apache.
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

    def test_percentEncodingAndBareFilter(self):
        """
        Percent-encoded parts are decoded; a filter without parentheses is
        accepted.
        """
        url = parseLDAPURL("ldap://h/ou=P%C3%B6ople,dc=x??sub?objectClass=person")
        self.assertEqual(url.base, "ou=Pöople,dc=x")
        self.assertEqual(url.filter, "(objectClass=person)")

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


class FilterObjectTests(SynchronousTestCase):
    """
    L{LDAPURL.filterObject} parses a URL's filter once.
    """

    def test_parsedOnce(self):
        """
        Asking twice (or another URL with the same filter) gives the same
        object, which still says what the text says.
        """
        url = parseLDAPURL("ldap://h/dc=x?uid?sub?(&(objectClass=person)(!(disabled=TRUE)))")
        again = parseLDAPURL("ldap://other/dc=y?uid?sub?(&(objectClass=person)(!(disabled=TRUE)))")
        self.assertIs(url.filterObject(), url.filterObject())
        self.assertIs(url.filterObject(), again.filterObject())
        self.assertEqual(url.filterObject().asText(), "(&(objectClass=person)(!(disabled=TRUE)))")
        self.assertEqual(parseLDAPURL("ldap://h/dc=x??sub?(cn=a)").filterObject().asText(), "(cn=a)")
