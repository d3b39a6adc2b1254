"""
GET /setup: what to enter in Outlook, Evolution and KOrganizer for this
server, built from the host the request came to, and the Outlook registry
file; over HTTP in memory (L{tests.memory}).
"""

import html
from html.parser import HTMLParser

from twisted.trial import unittest
from twisted.web.template import flattenString
from twisted.web.test.requesthelper import DummyRequest

from fbtwist.web.setuppage import SetupPage, endpointPort, registryFile
from tests.helpers import inline, statusOf
from tests.memory import startMemoryServer


def body(response: bytes) -> str:
    return response.split(b"\r\n\r\n", 1)[1].decode("utf-8")


async def getSetup(server, host: bytes, path: bytes = b"/setup") -> bytes:
    return await server.rawRequest(
        b"GET " + path + b" HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n"
    )


class RegistryFileTests(unittest.SynchronousTestCase):
    """
    The .reg file is what regedit reads.
    """

    def test_content(self):
        """
        UTF-16 with a byte order mark, CRLF, the documented key and value.
        """
        data = registryFile("https://fb.example.com/calendar/%NAME%.vfb", "16.0")
        self.assertEqual(data[:2], b"\xff\xfe")
        self.assertEqual(data[2:].decode("utf-16-le"), (
            "Windows Registry Editor Version 5.00\r\n\r\n"
            "[HKEY_CURRENT_USER\\Software\\Microsoft\\Office\\16.0\\Outlook\\Options\\Calendar]\r\n"
            '"FreeBusySearchPath"="https://fb.example.com/calendar/%NAME%.vfb"\r\n'
        ))

    def test_escaping(self):
        """
        Quotes and backslashes are escaped and line breaks dropped, so a
        value cannot add registry entries.
        """
        text = registryFile('a"b\\c\r\n[HKEY_LOCAL_MACHINE\\X]', "14.0")[2:].decode("utf-16-le")
        self.assertIn('"FreeBusySearchPath"="a\\"b\\\\c[HKEY_LOCAL_MACHINE\\\\X]"\r\n', text)
        self.assertEqual(text.count("\r\n"), 4)

    def test_unknownVersion(self):
        """
        Only known Office versions.
        """
        self.assertRaises(KeyError, registryFile, "x", "99.0")

    def test_endpointPort(self):
        """
        The FTP port is read from its endpoint description.
        """
        self.assertEqual(endpointPort("tcp:2121"), 2121)
        self.assertEqual(endpointPort("tcp:port=21:interface=10.0.0.1"), 21)
        self.assertEqual(endpointPort("tcp:21:interface=\\:\\:1"), 21)
        self.assertIsNone(endpointPort(None))
        self.assertIsNone(endpointPort("unix:/run/x"))


class _Parsed(HTMLParser):
    """
    The start tags of a page, the text of each element with an C{id} and
    the attributes of each tag with an C{id}.
    """

    def __init__(self, page: str):
        super().__init__()
        self.tags, self.text, self.attributes, self._open = [], {}, {}, []
        self.feed(page)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attributes = dict(attrs)
        if "id" in attributes:
            self.attributes[attributes["id"]] = attributes
            if tag != "input":
                self._open.append((tag, attributes["id"]))
                self.text[attributes["id"]] = ""

    def handle_endtag(self, tag):
        if self._open and self._open[-1][0] == tag:
            self._open.pop()

    def handle_data(self, data):
        for _, ident in self._open:
            self.text[ident] += data


class SetupElementTests(unittest.SynchronousTestCase):
    """
    The page is a template: whatever the request brings, its values reach
    the reader as text, never as markup.
    """

    def test_hostileValuesEscaped(self):
        """
        A login full of markup (and any value put in a slot, here the host
        name) comes back, parsed, as the same text, adding no element.
        """
        login = """a'"&<b></code><script>alert(1)</script><input value='x'>"""
        request = DummyRequest([b""])
        request.isSecure = lambda: False
        request.args = {b"login": [login.encode("utf-8")]}
        element = SetupPage(lambda: 2121, publicURL="https://fb.example.com:8443").element(request)
        element.slots["server"] = '"><script>alert(2)</script>'
        page = _Parsed(self.successResultOf(flattenString(None, element)).decode("utf-8"))
        self.assertNotIn("script", page.tags)
        self.assertEqual(page.tags.count("input"), 1)
        self.assertEqual(page.attributes["login"]["value"], login)
        self.assertEqual(page.text["evolution-username"], login)
        self.assertEqual(page.text["korganizer-username"], login)
        self.assertEqual(page.text["evolution-file"], f"/pub/calendar/{login}.vfb")
        self.assertEqual(page.text["evolution-server"], '"><script>alert(2)</script>')


class SetupPageTests(unittest.TestCase):
    """
    The page over HTTP.
    """

    @inline
    async def test_urlsFromHost(self):
        """
        Every URL on the page uses the Host the request came to.
        """
        server = startMemoryServer(self, "--ftp", "tcp:2121")
        response = await getSetup(server, b"freebusy.example.com:8080")
        self.assertEqual(statusOf(response), 200)
        page = html.unescape(body(response))
        for url in (
            "http://freebusy.example.com:8080/pub/calendar/LOGIN.vfb",
            "http://freebusy.example.com:8080/calendar/%NAME%.vfb",
            "ftp://LOGIN:PASSWORD@freebusy.example.com:2121/pub/calendar/LOGIN.vfb",
            "http://freebusy.example.com:8080/calendar/%u.vfb",
            "http://freebusy.example.com:8080/calendar/",
            "/setup/outlook-16.0.reg",
        ):
            self.assertIn(url, page)
        self.assertIn("Evolution", page)
        self.assertIn("KOrganizer", page)

    @inline
    async def test_ftpOff(self):
        """
        With FTP switched off, the page says so instead of an FTP URL.
        """
        server = startMemoryServer(self)
        page = body(await getSetup(server, b"fb.example.com"))
        self.assertIn("FTP is switched off", page)
        self.assertNotIn("ftp://", page)

    @inline
    async def test_loginEscaped(self):
        """
        A login with markup is escaped in the page and encoded in URLs.
        """
        server = startMemoryServer(self)
        response = await getSetup(server, b"fb.example.com", b"/setup?login=%3Cscript%3Ex%22%3C/script%3E")
        page = body(response)
        self.assertNotIn("<script>", page)
        self.assertIn("/pub/calendar/%3Cscript%3Ex%22%3C%2Fscript%3E.vfb", page)
        self.assertIn('value="&lt;script&gt;x&quot;&lt;/script&gt;"', page)

    @inline
    async def test_badHostIgnored(self):
        """
        A Host header that is not a host name is not used: the page falls
        back to the address the connection came to.
        """
        server = startMemoryServer(self)
        page = body(await getSetup(server, b'evil.example"><script>alert(1)</script>'))
        self.assertNotIn("<script>", page)
        self.assertNotIn("evil.example", page)
        self.assertIn(f"http://127.0.0.1:{server.port}/calendar/%NAME%.vfb", page)

    @inline
    async def test_registryDownload(self):
        """
        /setup/outlook-<version>.reg is an attachment holding the search
        URL for this host; unknown versions are 404.
        """
        server = startMemoryServer(self)
        http = server.client()
        response = await http.get(server.url("/setup/outlook-15.0.reg"))
        data = await response.content()
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders(b"Content-Disposition"),
                         [b'attachment; filename="outlook-15.0.reg"'])
        self.assertEqual(data, registryFile(f"http://127.0.0.1:{server.port}/calendar/%NAME%.vfb", "15.0"))
        for missing in ("/setup/outlook-99.0.reg", "/setup/x", "/setup/outlook-16.0.reg/more"):
            response = await http.get(server.url(missing))
            await response.content()
            self.assertEqual(response.code, 404, missing)


class HostHeaderTests(unittest.TestCase):
    """
    What is built from the Host header is not shared by caches; a
    configured public URL replaces it.
    """

    @inline
    async def test_hostDependentMarked(self):
        """
        Without --public-url, the page and the registry files say
        Vary: Host and may not be stored.
        """
        server = startMemoryServer(self)
        for path in (b"/setup", b"/setup/outlook-16.0.reg"):
            response = await getSetup(server, b"fb.example.com", path)
            head = response.split(b"\r\n\r\n", 1)[0]
            self.assertIn(b"\r\nVary: Host\r\n", head, path)
            self.assertIn(b"\r\nCache-Control: private, no-store\r\n", head, path)

    @inline
    async def test_publicURL(self):
        """
        With --public-url every URL uses it whatever the Host header says,
        and the answer does not vary by Host.
        """
        server = startMemoryServer(self, "--public-url", "https://freebusy.example.com/")
        response = await getSetup(server, b"evil.example.net")
        head, _, rest = response.partition(b"\r\n\r\n")
        page = html.unescape(rest.decode("utf-8"))
        self.assertNotIn("evil.example.net", page)
        self.assertIn("https://freebusy.example.com/pub/calendar/LOGIN.vfb", page)
        self.assertIn("https://freebusy.example.com/calendar/%NAME%.vfb", page)
        self.assertNotIn(b"Vary: Host", head)
        response = await getSetup(server, b"evil.example.net", b"/setup/outlook-16.0.reg")
        self.assertEqual(
            response.partition(b"\r\n\r\n")[2],
            registryFile("https://freebusy.example.com/calendar/%NAME%.vfb", "16.0"),
        )

    def test_badPublicURL(self):
        """
        --public-url takes only a scheme, a host and a port.
        """
        from twisted.python.usage import UsageError

        from tests.helpers import serviceOptions

        self.assertEqual(serviceOptions("--public-url", "https://fb.example.com:8443/").config.publicURL,
                         "https://fb.example.com:8443")

        for bad in ("ftp://x", "https://x/path", "freebusy.example.com", "https://u:p@x"):
            self.assertRaises(UsageError, serviceOptions, "--public-url", bad)

