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
validated or escaped before it reaches HTML, a URL or the registry file.
"""

import html
import re
from typing import Callable, Optional
from urllib.parse import quote

from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

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


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _field(label: str, value: str, ident: str) -> str:
    return f'<tr><th>{_e(label)}</th><td><code id="{_e(ident)}">{_e(value)}</code></td></tr>\n'


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
        return self.page(request).encode("utf-8")

    def page(self, request) -> str:
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
        publishURL = f"{base}{PUBLISH_PATH}{urlLogin}.vfb"
        searchURL = f"{base}{SEARCH_PATH}%NAME%.vfb"
        ftpPort = self.ftpPort()
        if ftpPort is not None:
            ftpHost = hostName(host) + ("" if ftpPort == 21 else f":{ftpPort}")
            ftpURL = f"ftp://{urlLogin}:PASSWORD@{ftpHost}{PUBLISH_PATH}{urlLogin}.vfb"
        scheme = "Secure WebDAV (HTTPS)" if secure else "WebDAV (HTTP)"
        port = host.rsplit(":", 1)[1] if re.search(r":\d+$", host) else ("443" if secure else "80")

        parts = [
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
            "<title>Free/busy set-up</title>",
            "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
            "th{text-align:left;padding-right:1em;vertical-align:top}code{background:#eee;padding:0 .2em;"
            "word-break:break-all}.warn{color:#900}</style></head><body>",
            "<h1>Set up your calendar for free/busy</h1>",
            f"<p>This server is <code id=\"server\">{_e(base)}</code>.</p>",
            "<form method=\"get\" action=\"/setup\"><label>Your login: "
            f"<input id=\"login\" name=\"login\" value=\"{_e(login or '')}\" autocomplete=\"username\"></label> "
            "<button id=\"show\" type=\"submit\">Show my settings</button></form>",
        ]
        if login is None:
            parts.append(f"<p>Replace <code>{_LOGIN_PLACEHOLDER}</code> below with your login, "
                         "or enter it above.</p>")
        if not secure:
            parts.append("<p class=\"warn\">This page was loaded over plain HTTP: your password would "
                         "cross the network readable by anyone on the way. Ask your administrator "
                         "for the HTTPS address; Windows also refuses to send passwords to a "
                         "plain-HTTP WebDAV server.</p>")

        parts.append("<h2>Outlook 2000 and later</h2>"
                     "<p>File &rarr; Options &rarr; Calendar &rarr; Free/Busy Options (Outlook 2000 to "
                     "2007: Tools &rarr; Options &rarr; Calendar Options &rarr; Free/Busy Options). "
                     "Outlook asks for your login and password when it first publishes.</p><table>")
        parts.append(_field("Publish at my location", publishURL, "outlook-publish"))
        parts.append(_field("Search location", searchURL, "outlook-search"))
        parts.append("</table>")

        parts.append("<h2>Outlook 98</h2>")
        if ftpPort is not None:
            parts.append("<p>Outlook 98 publishes by FTP; put your password in place of "
                         "<code>PASSWORD</code>. <span class=\"warn\">FTP sends it unencrypted.</span></p><table>")
            parts.append(_field("Publish at my location", ftpURL, "outlook98-publish"))
            parts.append(_field("Search location", searchURL, "outlook98-search"))
            parts.append("</table>")
        else:
            parts.append("<p id=\"outlook98-publish\">FTP is switched off on this server, so Outlook 98 "
                         "cannot publish here; it can still search:</p><table>")
            parts.append(_field("Search location", searchURL, "outlook98-search"))
            parts.append("</table>")

        parts.append("<h2>Outlook 2010 and later, by registry file</h2>"
                     f"<p>These files set the search location (the <code>{REGISTRY_VALUE}</code> value "
                     "under <code id=\"registry-key\">" + _e(REGISTRY_KEY.format(version="<version>"))
                     + "</code>) for your Windows user; open the one for your Outlook and "
                     "restart Outlook.</p><ul>")
        for version, names in OUTLOOK_VERSIONS.items():
            parts.append(f"<li><a id=\"reg-{_e(version)}\" href=\"/setup/outlook-{_e(version)}.reg\" download>"
                         f"outlook-{_e(version)}.reg</a> &ndash; {_e(names)}</li>")
        parts.append("</ul>")

        parts.append("<h2>Evolution</h2><p>Edit &rarr; Preferences &rarr; Calendar and Tasks &rarr; "
                     "Free/Busy, <em>Template</em> (Evolution puts the part of the address before the "
                     "<code>@</code> for <code>%u</code>):</p><table>")
        parts.append(_field("Template", f"{base}{SEARCH_PATH}%u.vfb", "evolution-template"))
        parts.append("</table><p>To publish: Calendar &rarr; Publish Calendar Information &rarr; Add, "
                     "type <em>Free/Busy</em>:</p><table>")
        parts.append(_field("Service type", scheme, "evolution-service"))
        parts.append(_field("Server", hostName(host), "evolution-server"))
        parts.append(_field("Port", port, "evolution-port"))
        parts.append(_field("File", f"{PUBLISH_PATH}{shownLogin}.vfb", "evolution-file"))
        parts.append(_field("Username", shownLogin, "evolution-username"))
        parts.append("</table>")

        parts.append("<h2>KOrganizer</h2><p>Settings &rarr; Configure KOrganizer &rarr; Free/Busy.</p>"
                     "<p>Publish your free/busy information automatically:</p><table>")
        parts.append(_field("Server URL", publishURL, "korganizer-publish"))
        parts.append(_field("Username", shownLogin, "korganizer-username"))
        parts.append("</table><p>Retrieve other people's free/busy information automatically (leave "
                     "<em>Use full email address for retrieval</em> off):</p><table>")
        parts.append(_field("Server URL", f"{base}{SEARCH_PATH}", "korganizer-retrieve"))
        parts.append("</table></body></html>\n")
        return "".join(parts)


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
