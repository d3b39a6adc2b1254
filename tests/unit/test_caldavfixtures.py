"""
The recorded CalDAV client requests under C{tests/fixtures/caldav} stay well-formed.

Each fixture is one HTTP/1.1 request as a client sends it: request line, headers,
a blank line and the body, with CRLF after the request line and each header.
Path placeholders such as C{{principal}} stand where a client uses a URL that
discovery returned; L{loadRequest} fills them in for a replay.
"""

import re

from defusedxml.ElementTree import fromstring
from icalendar import Calendar
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

FIXTURES = FilePath(__file__).parent().sibling("fixtures").child("caldav")

# Sample values for the placeholders; a server test substitutes its own.
PLACEHOLDERS = {
    "location": "/principals/",
    "principals": "/principals/",
    "principal": "/principals/alice/",
    "attendee-principal": "/principals/bsmith/",
    "home": "/calendars/alice/",
    "home-path": "/calendars/alice",
    "calendar": "/calendars/alice/calendar/",
    "outbox": "/calendars/alice/outbox/",
}

PLACEHOLDER = re.compile(r"\{([a-z-]+)\}")
REQUEST_LINE = re.compile(r"^(PROPFIND|REPORT|POST|OPTIONS) (\S+) HTTP/1\.1$")
HEADER = re.compile(r"^([A-Za-z][A-Za-z0-9-]*): (\S.*)$")
XML_TYPES = ("text/xml", "application/xml")
NAMESPACES = {"DAV:", "urn:ietf:params:xml:ns:caldav", "http://calendarserver.org/ns/"}

CLIENTS = ("apple-macos", "apple-ios", "thunderbird", "evolution", "python-caldav")


def fixtureNames():
    """
    @return: the base names of all fixture files, sorted.
    """
    return sorted(p.basename() for p in FIXTURES.globChildren("*.http"))


def splitRequest(raw):
    """
    Split a raw request into its parts.

    @param raw: the request as C{bytes}.
    @return: C{(method, target, headers, body)}; C{headers} is a list of
        C{(name, value)} string pairs in the order sent.
    @raise ValueError: if the head is not a CRLF-separated HTTP/1.1 request.
    """
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError("no blank line after the headers")
    text = head.decode("ascii")
    if "\n" in text.replace("\r\n", ""):
        raise ValueError("bare LF in the request head")
    lines = text.split("\r\n")
    match = REQUEST_LINE.match(lines[0])
    if match is None:
        raise ValueError("bad request line: %r" % (lines[0],))
    headers = []
    for line in lines[1:]:
        header = HEADER.match(line)
        if header is None:
            raise ValueError("bad header line: %r" % (line,))
        headers.append((header.group(1), header.group(2)))
    return match.group(1), match.group(2), headers, body


def header(headers, name):
    """
    @return: the value of the header C{name} (any case), or L{None}.
    """
    for key, value in headers:
        if key.lower() == name.lower():
            return value
    return None


def loadRequest(name, values=PLACEHOLDERS):
    """
    Read a fixture and fill in its placeholders, for replaying against a server.

    @param name: the fixture's file name.
    @param values: the placeholder values (without braces), for example the
        paths that the server's own discovery answers returned.
    @return: the request as C{bytes}, its Content-Length counted again.
    """
    raw = FIXTURES.child(name).getContent()
    method, target, headers, body = splitRequest(raw)

    def fill(text):
        return PLACEHOLDER.sub(lambda m: values[m.group(1)], text)

    target = fill(target)
    body = fill(body.decode("utf-8")).encode("utf-8")
    lines = ["%s %s HTTP/1.1" % (method, target)]
    for key, value in headers:
        if key.lower() == "content-length":
            value = str(len(body))
        lines.append("%s: %s" % (key, fill(value)))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


class FixtureFormTests(SynchronousTestCase):
    """
    Every fixture is a parseable HTTP request whose body matches its type.
    """

    def test_present(self):
        """Each client has fixtures, and each has a free/busy request."""
        names = fixtureNames()
        for client in CLIENTS:
            self.assertTrue([n for n in names if n.startswith(client + "-")], client)
        freeBusy = [n for n in names if "freebusy" in n or "free-busy" in n]
        for client in ("apple-macos", "thunderbird", "evolution", "python-caldav"):
            self.assertTrue([n for n in freeBusy if n.startswith(client + "-")], client)

    def test_requestHead(self):
        """Each fixture has an HTTP/1.1 request line, CRLF headers and our Host."""
        for name in fixtureNames():
            method, target, headers, body = splitRequest(FIXTURES.child(name).getContent())
            self.assertEqual(header(headers, "Host"), "127.0.0.1:8080", name)
            self.assertTrue(target.startswith(("/", "{")), name)

    def test_contentLength(self):
        """Content-Length counts the body exactly; a body always has a type."""
        for name in fixtureNames():
            method, target, headers, body = splitRequest(FIXTURES.child(name).getContent())
            if body:
                self.assertEqual(header(headers, "Content-Length"), str(len(body)), name)
                self.assertIsNot(header(headers, "Content-Type"), None, name)
            else:
                self.assertIn(header(headers, "Content-Length"), (None, "0"), name)

    def test_xmlBodies(self):
        """XML bodies parse safely and have a DAV, CalDAV or CalendarServer root."""
        count = 0
        for name in fixtureNames():
            method, target, headers, body = splitRequest(FIXTURES.child(name).getContent())
            contentType = header(headers, "Content-Type") or ""
            if not contentType.startswith(XML_TYPES):
                continue
            count += 1
            root = fromstring(body)
            namespace = root.tag[1:].split("}")[0]
            self.assertIn(namespace, NAMESPACES, name)
            if method == "PROPFIND":
                self.assertEqual(root.tag, "{DAV:}propfind", name)
                self.assertIsNot(header(headers, "Depth"), None, name)
        self.assertGreater(count, 20)

    def test_freeBusyBodies(self):
        """iCalendar bodies are CRLF VFREEBUSY requests with organizer and attendees."""
        count = 0
        for name in fixtureNames():
            method, target, headers, body = splitRequest(FIXTURES.child(name).getContent())
            contentType = header(headers, "Content-Type") or ""
            if not contentType.startswith("text/calendar"):
                continue
            count += 1
            self.assertEqual(method, "POST", name)
            self.assertEqual(target, "{outbox}", name)
            self.assertNotIn(b"\n", body.replace(b"\r\n", b""), name)
            calendar = Calendar.from_ical(body)
            self.assertEqual(calendar["METHOD"], "REQUEST", name)
            [freeBusy] = calendar.walk("VFREEBUSY")
            self.assertTrue(str(freeBusy["ORGANIZER"]).lower().startswith("mailto:"), name)
            attendees = freeBusy["ATTENDEE"]
            attendees = attendees if isinstance(attendees, list) else [attendees]
            self.assertIn("mailto:betty@example.com", [str(a).lower() for a in attendees], name)
            self.assertLess(freeBusy["DTSTART"].dt, freeBusy["DTEND"].dt, name)
        self.assertEqual(count, 4)


class ProvenanceTests(SynchronousTestCase):
    """
    SOURCES.rst names every fixture and explains every placeholder.
    """

    def test_everyFixtureHasASource(self):
        """Each fixture file is named in SOURCES.rst, and nothing else is."""
        sources = FIXTURES.child("SOURCES.rst").getContent().decode("utf-8")
        named = set(re.findall(r"``([a-z0-9-]+\.http)``", sources))
        self.assertEqual(named, set(fixtureNames()))

    def test_placeholdersDocumented(self):
        """Every placeholder a fixture uses is documented and has a sample value."""
        sources = FIXTURES.child("SOURCES.rst").getContent().decode("utf-8")
        used = set()
        for name in fixtureNames():
            used.update(PLACEHOLDER.findall(FIXTURES.child(name).getContent().decode("utf-8")))
        self.assertEqual(used, set(PLACEHOLDERS))
        for placeholder in used:
            self.assertIn("``{%s}``" % (placeholder,), sources)


class LoadRequestTests(SynchronousTestCase):
    """
    L{loadRequest} turns a fixture into bytes ready to send.
    """

    def test_fillsPlaceholders(self):
        """Placeholders in the target and body are replaced and Content-Length follows."""
        raw = loadRequest("thunderbird-07-principal-property-search.http",
                          dict(PLACEHOLDERS, **{"home-path": "/cal/a-much-longer-home"}))
        method, target, headers, body = splitRequest(raw)
        self.assertEqual(target, "/principals/")
        self.assertIn(b"<D:match>/cal/a-much-longer-home</D:match>", body)
        self.assertEqual(header(headers, "Content-Length"), str(len(body)))
        self.assertNotIn(b"{", raw)

    def test_rejectsBareLF(self):
        """A head with bare LF line ends is not taken for a valid request."""
        self.assertRaises(ValueError, splitRequest, b"PROPFIND / HTTP/1.1\nHost: x\r\n\r\n")
