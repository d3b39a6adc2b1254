"""
URLs of the publishing tree: store paths to hrefs, and the URLs clients
name in C{Destination} and C{If} headers back to store paths.
"""

from typing import List, Optional
from urllib.parse import quote, unquote, urlsplit

from twisted.web import http

from fbtwist.errors import InvalidName
from fbtwist.web.responses import HTTPError

#: Where the publishing tree is mounted (see L{fbtwist.web.site.makeSite}).
MOUNT = ("pub", "calendar")
BASE = "/" + "/".join(MOUNT) + "/"


def href(path, isCollection: bool) -> str:
    """
    The canonical absolute-path href of a store path.
    """
    text = BASE + "/".join(quote(segment, safe="") for segment in path)
    if isCollection and path:
        text += "/"
    return text


def normalSegments(segments: List[str]) -> List[str]:
    """
    Drop the segments that do not change which resource a path names
    (C{.} and the empty segments of C{//}), keeping a trailing empty one
    (a URL ending in C{/}).  C{..} is left for name validation to refuse.
    """
    kept = [s for s in segments[:-1] if s not in ("", ".")]
    if segments:
        last = segments[-1]
        if last == ".":
            last = ""
        kept.append(last)
    return kept


def _sameAuthority(netloc: str, request) -> bool:
    def normal(authority: str, scheme: str) -> str:
        authority = authority.lower().rsplit("@", 1)[-1]
        default = ":443" if scheme == "https" else ":80"
        return authority[: -len(default)] if authority.endswith(default) else authority

    scheme = "https" if request.isSecure() else "http"
    host = request.getHeader(b"Host")
    if host is None:
        address = request.getHost()
        host = f"{address.host}:{address.port}".encode("ascii")
    return normal(netloc, scheme) == normal(host.decode("latin-1"), scheme)


def segmentsOfURL(url: str, request) -> Optional[List[str]]:
    """
    The tree segments a URL names, when it is on this server and under the
    publishing tree.

    @return: The decoded segments below the mount, or C{None} when the URL
        is elsewhere.
    @raise HTTPError: 502 when the URL names another server; 400 when it
        cannot be decoded.
    """
    parts = urlsplit(url.strip())
    if parts.netloc and not _sameAuthority(parts.netloc, request):
        raise HTTPError(http.BAD_GATEWAY, "the destination is on another server")
    try:
        segments = [unquote(s, encoding="utf-8", errors="strict") for s in parts.path.split("/")]
    except UnicodeDecodeError:
        raise HTTPError(http.BAD_REQUEST, "the URL is not UTF-8") from None
    segments = normalSegments(segments[1:] if segments and segments[0] == "" else segments)
    if segments[: len(MOUNT)] != list(MOUNT):
        return None
    return segments[len(MOUNT):]


def storePathOfURL(avatar, url: str, request):
    """
    The store path a URL names (as L{segmentsOfURL}), or C{None} when it is
    not in the publishing tree.

    @raise HTTPError: 400 for invalid names, 502 for other servers.
    """
    segments = segmentsOfURL(url, request)
    if segments is None:
        return None
    try:
        return avatar.path(segments)
    except InvalidName as e:
        raise HTTPError(http.BAD_REQUEST, e.reason) from None
