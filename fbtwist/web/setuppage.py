"""
C{GET /setup}: what to enter in each calendar client for this server (older
free/busy servers shipped a Windows "Outlook Configuration Tool"; this is a
page).

Every URL is built from the configured public URL (C{--public-url}) or,
without one, from the host name and scheme the request came to, so that the
page shows what works from where the reader is; such an answer depends on
the request's C{Host} header and is marked so that no cache shares it
(L{markHostDependent}).  A user may type their
login into the page's form (C{/setup?login=alice}) to get their own publish
URLs.  C{/setup/outlook-<version>.reg} is a registry file setting Outlook
2010 and later's documented C{FreeBusySearchPath} value.

Everything taken from the request (the C{Host} header, the login) is
validated or escaped before it reaches a URL or the registry file; the HTML
is a template (C{fbtwist/data/setup.xhtml}) whose flattener escapes every
value put in.
"""

import re
from typing import Callable, Dict, Optional
from urllib.parse import quote

from twisted.python.filepath import FilePath
from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from twisted.web.template import Element, XMLFile, renderElement, renderer

from fbtwist.web.responses import writeError

#: Office version numbers (as in the registry) and the Outlooks that use them.
OUTLOOK_VERSIONS = {
    "14.0": "Outlook 2010",
    "15.0": "Outlook 2013",
    "16.0": "Outlook 2016, 2019, 2021, 2024 and Microsoft 365",
}
REGISTRY_KEY = "HKEY_CURRENT_USER\\Software\\Microsoft\\Office\\{version}\\Outlook\\Options\\Calendar"
REGISTRY_VALUE = "FreeBusySearchPath"

PUBLISH_PATH = "/pub/calendar/"
SEARCH_PATH = "/calendar/"

_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}))(?::(\d{1,5}))?$")
_LOGIN_PLACEHOLDER = "LOGIN"
_DATA = FilePath(__file__).parent().sibling("data")


def requestHost(request) -> str:
    """
    The C{host[:port]} the request was sent to: its C{Host} header when that
    is a well-formed host name or address, otherwise the address the
    connection came in on.
    """
    header = request.getHeader(b"Host")
    if header is not None:
        try:
            text = header.decode("ascii").strip()
        except UnicodeDecodeError:
            text = ""
        match = _HOST.match(text)
        if match and (match.group(2) is None or 0 < int(match.group(2)) < 65536):
            return text
    address = request.getHost()
    host = getattr(address, "host", "localhost")
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{address.port}"


def hostName(hostAndPort: str) -> str:
    """
    C{host[:port]} without the port.
    """
    if hostAndPort.startswith("["):
        return hostAndPort[: hostAndPort.index("]") + 1]
    return hostAndPort.split(":", 1)[0]


def baseURL(request, publicURL: Optional[str] = None) -> str:
    """
    C{publicURL} when set, otherwise the scheme and C{host[:port]} the
    request came to (L{markHostDependent} the answer then).
    """
    if publicURL is not None:
        return publicURL
    scheme = "https" if request.isSecure() else "http"
    return f"{scheme}://{requestHost(request)}"


def markHostDependent(request, publicURL: Optional[str]) -> None:
    """
    When an answer is built from the request's C{Host} header (no public
    URL is configured), say so to caches: C{Vary: Host}, and not to be
    stored, so that a forged host name cannot reach another reader.
    """
    if publicURL is None:
        request.setHeader(b"Vary", b"Host")
        request.setHeader(b"Cache-Control", b"private, no-store")
    else:
        request.setHeader(b"Cache-Control", b"no-cache")


def endpointPort(description: Optional[str]) -> Optional[int]:
    """
    The port of a server endpoint description (C{tcp:2121},
    C{tcp:port=21:interface=10.0.0.1}), or C{None} when it has none.
    """
    if not description:
        return None
    parts = re.split(r"(?<!\\):", description)
    for part in parts[1:]:
        key, equals, value = part.partition("=")
        if equals and key == "port":
            return int(value) if value.isdigit() else None
    positional = [p for p in parts[1:] if "=" not in p]
    if positional and positional[0].isdigit():
        return int(positional[0])
    return None


def registryFile(searchURL: str, version: str) -> bytes:
    """
    A C{.reg} file setting C{FreeBusySearchPath} for one Office version, as
    regedit writes them (UTF-16 with a byte order mark, CRLF).

    @raise KeyError: For an unknown version.
    """
    OUTLOOK_VERSIONS[version]
    escaped = searchURL.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(c for c in escaped if c.isprintable())
    text = (
        "Windows Registry Editor Version 5.00\r\n"
        "\r\n"
        f"[{REGISTRY_KEY.format(version=version)}]\r\n"
        f'"{REGISTRY_VALUE}"="{escaped}"\r\n'
    )
    return b"\xff\xfe" + text.encode("utf-16-le")


class SetupPage(Resource):
    """
    C{/setup} and its registry files.

    @param ftpPort: Returns the FTP listener's port, or C{None} when FTP is
        switched off.
    """

    def __init__(self, ftpPort: Callable[[], Optional[int]] = lambda: None, publicURL: Optional[str] = None):
        super().__init__()
        self.ftpPort = ftpPort
        self.publicURL = publicURL

    def getChild(self, path, request):
        if path == b"":
            return self
        try:
            name = path.decode("ascii")
        except UnicodeDecodeError:
            name = ""
        match = re.fullmatch(r"outlook-(\d+\.\d)\.reg", name)
        if match and match.group(1) in OUTLOOK_VERSIONS and not request.postpath:
            return RegistryFile(match.group(1), self.publicURL)
        return _NotFound()

    def _login(self, request) -> Optional[str]:
        values = request.args.get(b"login")
        if not values:
            return None
        try:
            login = values[0].decode("utf-8").strip()
        except UnicodeDecodeError:
            return None
        if not login or len(login) > 256 or not login.isprintable():
            return None
        return login

    def render_GET(self, request):
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        markHostDependent(request, self.publicURL)
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        request.setHeader(b"Content-Security-Policy",
                          b"default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
        return renderElement(request, self.element(request))

    def element(self, request) -> "SetupElement":
        """
        The page for C{request}: its URLs and the login it asks for.
        """
        login = self._login(request)
        shownLogin = login if login is not None else _LOGIN_PLACEHOLDER
        urlLogin = quote(shownLogin, safe="")
        base = baseURL(request, self.publicURL)
        if self.publicURL is not None:
            host = self.publicURL.split("://", 1)[1]
            secure = self.publicURL.startswith("https:")
        else:
            host = requestHost(request)
            secure = request.isSecure()
        ftpURL = None
        ftpPort = self.ftpPort()
        if ftpPort is not None:
            ftpHost = hostName(host) + ("" if ftpPort == 21 else f":{ftpPort}")
            ftpURL = f"ftp://{urlLogin}:PASSWORD@{ftpHost}{PUBLISH_PATH}{urlLogin}.vfb"
        port = host.rsplit(":", 1)[1] if re.search(r":\d+$", host) else ("443" if secure else "80")
        slots = dict(
            base=base,
            login=login or "",
            placeholder=_LOGIN_PLACEHOLDER,
            publishURL=f"{base}{PUBLISH_PATH}{urlLogin}.vfb",
            searchURL=f"{base}{SEARCH_PATH}%NAME%.vfb",
            ftpURL=ftpURL or "",
            registryValue=REGISTRY_VALUE,
            registryKey=REGISTRY_KEY.format(version="<version>"),
            evolutionTemplate=f"{base}{SEARCH_PATH}%u.vfb",
            scheme="Secure WebDAV (HTTPS)" if secure else "WebDAV (HTTP)",
            server=hostName(host),
            port=port,
            file=f"{PUBLISH_PATH}{shownLogin}.vfb",
            username=shownLogin,
            korganizerRetrieve=f"{base}{SEARCH_PATH}",
        )
        return SetupElement(slots, askedLogin=login is not None, secure=secure, ftp=ftpURL is not None)


class SetupElement(Element):
    """
    The set-up page (C{setup.xhtml}): every value from the request goes in
    through a slot or an attribute, so the flattener escapes it.

    @ivar slots: The page's values by slot name.
    """

    loader = XMLFile(_DATA.child("setup.xhtml"))

    def __init__(self, slots: Dict[str, str], askedLogin: bool, secure: bool, ftp: bool):
        super().__init__()
        self.slots = slots
        self.askedLogin = askedLogin
        self.secure = secure
        self.ftp = ftp

    @renderer
    def page(self, request, tag):
        return tag.fillSlots(**self.slots)

    @renderer
    def ifNoLogin(self, request, tag):
        return "" if self.askedLogin else tag

    @renderer
    def ifPlainHTTP(self, request, tag):
        return "" if self.secure else tag

    @renderer
    def ifFTP(self, request, tag):
        return tag if self.ftp else ""

    @renderer
    def ifNoFTP(self, request, tag):
        return "" if self.ftp else tag

    @renderer
    def registryFiles(self, request, tag):
        return [tag.clone().fillSlots(version=version, outlooks=names) for version, names in OUTLOOK_VERSIONS.items()]


class RegistryFile(Resource):
    """
    C{/setup/outlook-<version>.reg}.
    """

    isLeaf = True

    def __init__(self, version: str, publicURL: Optional[str] = None):
        super().__init__()
        self.version = version
        self.publicURL = publicURL

    def render_GET(self, request):
        body = registryFile(f"{baseURL(request, self.publicURL)}{SEARCH_PATH}%NAME%.vfb", self.version)
        markHostDependent(request, self.publicURL)
        request.setHeader(b"Content-Type", b"application/octet-stream")
        request.setHeader(
            b"Content-Disposition", b'attachment; filename="outlook-%s.reg"' % self.version.encode("ascii")
        )
        request.setHeader(b"Content-Length", b"%d" % len(body))
        return body


class _NotFound(Resource):
    isLeaf = True

    def render(self, request):
        writeError(request, http.NOT_FOUND, "no such set-up file")
        return NOT_DONE_YET
