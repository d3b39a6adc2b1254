"""
The configuration of remote free/busy (L{fbtwist.remote.federation}),
credentials files (L{fbtwist.remote.credentials}) and the body validators
(L{fbtwist.remote.calendars}).
"""

import configparser
import ipaddress
import os
from urllib.parse import unquote, urlsplit

from icalendar import Calendar
from twisted.trial.unittest import SynchronousTestCase

from fbtwist.errors import InvalidCalendar
from fbtwist.remote.calendars import eventCalendar, freeBusyCalendar
from fbtwist.remote.credentials import Credentials, readCredentials
from fbtwist.remote.federation import (
    FreeBusyTemplate,
    freeBusyURL,
    parseAllowedNetworks,
    parseCredentialsOption,
    parseFederationOption,
    parseFederationSection,
    parseFreeBusyURL,
    parseTrustRoot,
)
from fbtwist.remote.policy import ForbiddenAddress
from tests.helpers import outlookVFB

TEMPLATE = "https://fb.partner.example/freebusy/%NAME%@%SERVER%.vfb"


class FederationOptionTests(SynchronousTestCase):
    """
    C{DOMAIN = URL-TEMPLATE} values, and the C{[federation]} section.
    """

    def assertRefused(self, text, why):
        with self.assertRaises(ValueError) as caught:
            parseFederationOption(text)
        self.assertIn(why, str(caught.exception))
        self.assertNotIn("\n", str(caught.exception))

    def test_parsed(self):
        """
        A domain (in lower case, international ones in ASCII) and its
        template.
        """
        self.assertEqual(parseFederationOption(f" Partner.Example = {TEMPLATE} "),
                         FreeBusyTemplate("partner.example", TEMPLATE))
        self.assertEqual(parseFederationOption("bücher.example = https://fb.example/%NAME%").domain,
                         "xn--bcher-kva.example")
        self.assertEqual(parseFederationOption("p.example = https://fb.example/fb?user=%NAME%&d=%SERVER%").template,
                         "https://fb.example/fb?user=%NAME%&d=%SERVER%")
        self.assertEqual(parseFederationOption("p.example = https://%SERVER%/fb/%NAME%.vfb").expand("bob"),
                         "https://p.example/fb/bob.vfb")

    def test_refused(self):
        """
        Each mistake is refused with one sentence saying what is wrong.
        """
        self.assertRefused(TEMPLATE, "expected DOMAIN = URL-TEMPLATE")
        self.assertRefused("partner.example =", "expected DOMAIN = URL-TEMPLATE")
        self.assertRefused("not a domain! = " + TEMPLATE, "is not a domain name")
        self.assertRefused("p.example = https://fb.example/all.vfb", "has no %NAME%")
        self.assertRefused("p.example = https://fb.example/%USER%.vfb", "%USER% is not a placeholder")
        self.assertRefused("p.example = https://%NAME%.fb.example/x.vfb", "not in its host")
        self.assertRefused("p.example = https://x@%NAME%/x.vfb", "not in its host")
        self.assertRefused("p.example = ftp://fb.example/%NAME%.vfb", "only http and https")
        self.assertRefused("p.example = fb.example/%NAME%.vfb", "only http and https")
        self.assertRefused("p.example = https://fb.example/%NAME%.vfb#x", "fragment")
        self.assertRefused("p.example = https://u:p@fb.example/%NAME%.vfb", "user name or password")

    def test_section(self):
        """
        The section of a config file gives the templates by domain; a bad
        line is named in the error.
        """
        parser = configparser.ConfigParser(interpolation=None)
        parser.read_string(f"[federation]\npartner.example = {TEMPLATE}\nother.example = https://o.example/%NAME%\n")
        templates = parseFederationSection(parser["federation"].items())
        self.assertEqual(sorted(templates), ["other.example", "partner.example"])
        with self.assertRaises(ValueError) as caught:
            parseFederationSection([("good.example", TEMPLATE), ("bad.example", "https://b.example/x")])
        self.assertTrue(str(caught.exception).startswith("[federation] bad.example: "))
        with self.assertRaises(ValueError) as caught:
            parseFederationSection([("A.example", TEMPLATE), ("a.example", TEMPLATE)])
        self.assertIn("a.example is given twice", str(caught.exception))


class ExpansionTests(SynchronousTestCase):
    """
    Names put into templates: encoded, so that they cannot change which
    resource is asked for.
    """

    templates = {"partner.example": FreeBusyTemplate("partner.example", TEMPLATE)}

    def test_plain(self):
        """
        An address of a configured domain gives its URL, mailto: or not,
        whatever the domain's case; another domain gives none.
        """
        expected = "https://fb.partner.example/freebusy/alice@partner.example.vfb"
        self.assertEqual(freeBusyURL("alice@partner.example", self.templates), expected)
        self.assertEqual(freeBusyURL("MAILTO:alice@Partner.Example", self.templates), expected)
        self.assertIsNone(freeBusyURL("alice@elsewhere.example", self.templates))
        self.assertIsNone(freeBusyURL("alice", self.templates))

    def test_hostile(self):
        """
        A name holding /, ?, #, @, % or .. stays in its one path segment: the
        host, the path's other segments and the query are unchanged.
        """
        for name in ("a/../../admin", "a?x=1", "a#frag", "evil@attacker.example/", "a%2F..%2F", "../x",
                     "élodie", "a b"):
            url = freeBusyURL(f"{name}@partner.example", self.templates)
            parts = urlsplit(url)
            self.assertEqual((parts.scheme, parts.netloc, parts.query, parts.fragment),
                             ("https", "fb.partner.example", "", ""), name)
            segments = parts.path.split("/")
            self.assertEqual(segments[:3], ["", "freebusy", segments[2]], name)
            self.assertEqual(len(segments), 3, name)
            self.assertEqual(unquote(segments[2]), f"{name}@partner.example.vfb")

    def test_unusable(self):
        """
        Names that cannot stand in a URL at all are refused.
        """
        for name in ("", ".", "..", "a\nb", "a\x00", "x" * 300):
            self.assertRaises(ValueError, self.templates["partner.example"].expand, name)

    def test_freeBusyURL(self):
        """
        A calFBURL value must be an http or https URL.
        """
        self.assertEqual(parseFreeBusyURL(" https://fb.example/alice.vfb "), "https://fb.example/alice.vfb")
        for bad in ("ldap://x/", "javascript:alert(1)", "/relative.vfb"):
            self.assertRaises(ValueError, parseFreeBusyURL, bad)


class CredentialsTests(SynchronousTestCase):
    """
    Credentials read from files, and kept out of sight.
    """

    def write(self, content):
        path = self.mktemp()
        with open(path, "w", encoding="utf-8") as f:
            f.write(content)
        return path

    def test_read(self):
        """
        The first line is username:password; the password may hold colons.
        """
        self.assertEqual(readCredentials(self.write("alice:se:cret\nignored\n")), Credentials("alice", "se:cret"))

    def test_refused(self):
        """
        A missing file, a line without a colon or with an empty part is
        refused, without quoting the file.
        """
        for content in ("alicesecret\n", ":secret\n", "alice:\n", ""):
            with self.assertRaises(ValueError) as caught:
                readCredentials(self.write(content))
            self.assertNotIn("secret", str(caught.exception))
        self.assertRaises(ValueError, readCredentials, os.path.join(self.mktemp(), "missing"))

    def test_hidden(self):
        """
        The password is not in the credentials' repr; the header is Basic
        over UTF-8.
        """
        credentials = Credentials("zoë", "hunter2")
        self.assertNotIn("hunter2", repr(credentials))
        self.assertEqual(credentials.authorization(), b"Basic em/DqzpodW50ZXIy")

    def test_option(self):
        """
        C{DOMAIN = FILE} gives the domain and the credentials in the file.
        """
        path = self.write("alice:secret\n")
        self.assertEqual(parseCredentialsOption(f"Partner.Example = {path}"),
                         ("partner.example", Credentials("alice", "secret")))
        self.assertRaises(ValueError, parseCredentialsOption, path)


class AllowListTests(SynchronousTestCase):
    """
    The operator's allow-list.
    """

    def test_parsed(self):
        """
        Networks separated by commas permit their addresses; nonsense is
        refused.
        """
        policy = parseAllowedNetworks("10.20.0.0/16, fd00:1::/64")
        policy.check(ipaddress.ip_address("10.20.3.4"))
        self.assertRaises(ForbiddenAddress, policy.check, ipaddress.ip_address("10.21.0.1"))
        self.assertRaises(ValueError, parseAllowedNetworks, "10.0.0.0/33")


class TrustRootTests(SynchronousTestCase):
    """
    The CA file for remote servers.
    """

    def test_parsed(self):
        """
        A file without a PEM certificate, or a missing file, is refused
        (L{tests.integration.test_remote_loopback.HTTPSTests} fetches with a good one).
        """
        path = self.mktemp()
        self.assertRaises(ValueError, parseTrustRoot, path)
        with open(path, "wb") as f:
            f.write(b"no certificate here\n")
        self.assertRaises(ValueError, parseTrustRoot, path)


class ValidatorTests(SynchronousTestCase):
    """
    What fetched bodies must be.
    """

    def test_freeBusy(self):
        """
        A free/busy file passes; HTML, events and junk do not.
        """
        self.assertIsInstance(freeBusyCalendar(b"\xef\xbb\xbf\r\n" + outlookVFB()), Calendar)
        with self.assertRaises(InvalidCalendar) as caught:
            freeBusyCalendar(b"<!DOCTYPE html><html>...")
        self.assertIn("HTML", caught.exception.reason)
        self.assertRaises(InvalidCalendar, freeBusyCalendar, b"")
        self.assertRaises(InvalidCalendar, freeBusyCalendar, b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n")

    def test_events(self):
        """
        A calendar of events passes the feed validator; a free/busy file
        does not.
        """
        events = (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:1\r\n"
                  b"DTSTAMP:20260101T000000Z\r\nDTSTART:20260105T090000Z\r\nDTEND:20260105T100000Z\r\n"
                  b"END:VEVENT\r\nEND:VCALENDAR\r\n")
        self.assertIsInstance(eventCalendar(events), Calendar)
        self.assertRaises(InvalidCalendar, eventCalendar, outlookVFB())
