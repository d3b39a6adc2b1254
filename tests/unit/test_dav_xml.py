"""
Tests for L{fbtwist.web.dav.davxml}: safe parsing and namespace-correct output.
"""

from xml.etree.ElementTree import fromstring

from twisted.trial.unittest import SynchronousTestCase

from fbtwist.web.dav.davxml import MAX_DEPTH, DAVError, emptyElement, expectRoot, parseXML, response, serializeElement
from fbtwist.web.responses import HTTPError

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<D:propfind xmlns:D="DAV:"><D:prop><x>&lol3;</x></D:prop></D:propfind>"""

EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<D:propfind xmlns:D="DAV:"><D:prop><x>&xxe;</x></D:prop></D:propfind>"""

DTD_ONLY = b"""<?xml version="1.0"?>
<!DOCTYPE propfind SYSTEM "http://example.com/evil.dtd">
<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>"""


class ParseXMLTests(SynchronousTestCase):
    """
    Request bodies go through defusedxml; anything unsafe or malformed is 400.
    """

    def assertBadRequest(self, data):
        with self.assertRaises(HTTPError) as caught:
            parseXML(data)
        self.assertEqual(caught.exception.code, 400)

    def test_entityExpansionRefused(self):
        """
        The billion laughs never expand: 400.
        """
        self.assertBadRequest(BILLION_LAUGHS)

    def test_externalEntityRefused(self):
        """
        An external entity (a local file) is never read: 400.
        """
        self.assertBadRequest(EXTERNAL)

    def test_dtdRefused(self):
        """
        Any DTD is refused.
        """
        self.assertBadRequest(DTD_ONLY)

    def test_malformed(self):
        """
        Broken XML, a prefix bound to no namespace, and an unknown encoding
        are 400.
        """
        self.assertBadRequest(b"<D:propfind xmlns:D='DAV:'><D:prop></D:propfind>")
        self.assertBadRequest(b"<D:propfind xmlns:D='DAV:'><D:prop><bar:foo xmlns:bar=''/></D:prop></D:propfind>")
        self.assertBadRequest(b"<undeclared:propfind/>")
        self.assertBadRequest(b"<?xml version='1.0' encoding='ebcdic'?><D:propfind xmlns:D='DAV:'/>")

    def test_deepNestingRefused(self):
        """
        Elements nested deeper than MAX_DEPTH are 400 (they would exhaust
        the recursion of storing a dead property); MAX_DEPTH levels parse.
        """
        self.assertBadRequest(b"<D:prop xmlns:D='DAV:'>" + b"<a>" * 5000 + b"</a>" * 5000 + b"</D:prop>")
        self.assertBadRequest(b"<a>" * (MAX_DEPTH + 1) + b"</a>" * (MAX_DEPTH + 1))
        self.assertEqual(parseXML(b"<a>" * MAX_DEPTH + b"</a>" * MAX_DEPTH).tag, "a")

    def test_emptyBody(self):
        """
        An empty (or blank) body is no document.
        """
        self.assertIsNone(parseXML(b""))
        self.assertIsNone(parseXML(b"  \r\n"))

    def test_namespacesByURINotPrefix(self):
        """
        Elements are named by namespace URI, whatever prefix the client
        chose, and the default namespace applies to unprefixed names.
        """
        root = parseXML(b"<propfind xmlns='DAV:'><prop><Z:Win32FileAttributes xmlns:Z='urn:schemas-microsoft-com:'/>"
                        b"<plain xmlns=''/></prop></propfind>")
        self.assertEqual(expectRoot(root, "propfind").tag, "{DAV:}propfind")
        self.assertEqual([e.tag for e in root[0]], ["{urn:schemas-microsoft-com:}Win32FileAttributes", "plain"])

    def test_expectRoot(self):
        """
        The wrong root element is 400.
        """
        with self.assertRaises(HTTPError):
            expectRoot(parseXML(b"<x:propfind xmlns:x='urn:other'/>"), "propfind")


class WriteXMLTests(SynchronousTestCase):
    """
    What fbtwist writes parses back to the same names.
    """

    def test_serializedPropertyKeepsNamespaces(self):
        """
        A stored property value keeps the namespaces of its children.
        """
        prop = parseXML(b"<t:valnspace xmlns:t='http://example.com/'>"
                        b"<foo xmlns='bar'>x</foo><z:y xmlns:z='q'/></t:valnspace>")
        again = fromstring(serializeElement(prop))
        self.assertEqual(again.tag, "{http://example.com/}valnspace")
        self.assertEqual([c.tag for c in again], ["{bar}foo", "{q}y"])

    def test_emptyElementNamespaces(self):
        """
        Empty elements for DAV:, another namespace and no namespace.
        """
        wrapper = "<D:prop xmlns:D='DAV:'>%s</D:prop>"
        for key in ["{DAV:}getetag", "{urn:schemas-microsoft-com:}Win32FileAttributes", "plain"]:
            self.assertEqual(fromstring(wrapper % emptyElement(key))[0].tag, key)

    def test_responseWithError(self):
        """
        A propstat can carry a DAV:error condition.
        """
        xml = "<D:multistatus xmlns:D='DAV:'>%s</D:multistatus>" % response(
            "/pub/calendar/a b", [(403, ["<D:getetag/>"], "cannot-modify-protected-property"), (424, ["<x/>"])]
        )
        root = fromstring(xml)
        propstats = root.findall("{DAV:}response/{DAV:}propstat")
        self.assertEqual(propstats[0].find("{DAV:}status").text, "HTTP/1.1 403 Forbidden")
        self.assertIsNotNone(propstats[0].find("{DAV:}error/{DAV:}cannot-modify-protected-property"))
        self.assertEqual(propstats[1].find("{DAV:}status").text, "HTTP/1.1 424 Failed Dependency")

    def test_davErrorBody(self):
        """
        A DAVError body names its condition in DAV:.
        """
        root = fromstring(DAVError(403, "propfind-finite-depth").body())
        self.assertIsNotNone(root.find("{DAV:}propfind-finite-depth"))
