"""
WebDAV XML in and out.

Request bodies are parsed by C{defusedxml}: a DTD, an entity declaration or
an external reference is refused (400) before anything is expanded, and
malformed XML is 400 too.  Elements are named the ElementTree way,
C{"{namespace}name"} (C{"name"} in no namespace), which is also the key of a
property.  Responses are written as text with the C{D:} prefix for C{DAV:}
and never a default namespace, so that properties in no namespace stay in
no namespace.
"""

import copy
import functools
from typing import Iterable, List, Optional, Tuple
from xml.etree.ElementTree import Element, ParseError, tostring
from xml.sax.saxutils import escape, quoteattr

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from twisted.web import http

from fbtwist.web.responses import HTTPError

DAV = "DAV:"
XML_CONTENT_TYPE = b'application/xml; charset="utf-8"'
XML_DECLARATION = '<?xml version="1.0" encoding="utf-8"?>\n'

#: Status lines, including the WebDAV codes Twisted has no phrase for.
_PHRASES = {
    207: b"Multi-Status",
    422: b"Unprocessable Entity",
    423: b"Locked",
    424: b"Failed Dependency",
    507: b"Insufficient Storage",
}


def davName(name: str) -> str:
    """
    The ElementTree name of C{name} in the C{DAV:} namespace.
    """
    return "{DAV:}" + name


def splitName(key: str) -> Tuple[str, str]:
    """
    C{"{ns}name"} to C{("ns", "name")}; C{("", "name")} in no namespace.
    """
    if key.startswith("{"):
        namespace, _, name = key[1:].partition("}")
        return namespace, name
    return "", key


class DAVError(HTTPError):
    """
    An error answered with a C{DAV:error} body naming a precondition or
    postcondition (RFC 4918 section 16).

    @ivar condition: The local name of the condition element in C{DAV:}.
    @ivar hrefs: Hrefs to put inside the condition element.
    """

    def __init__(self, code: int, condition: str, reason: str = "", hrefs: Iterable[str] = ()):
        super().__init__(code, reason or condition)
        self.condition = condition
        self.hrefs = list(hrefs)

    def body(self) -> bytes:
        inner = "".join(f"<D:href>{escape(h)}</D:href>" for h in self.hrefs)
        return (
            XML_DECLARATION
            + f'<D:error xmlns:D="DAV:"><D:{self.condition}>{inner}</D:{self.condition}></D:error>\n'
        ).encode("utf-8")


def writeDAVError(request, error: DAVError) -> None:
    """
    Answer C{request} with C{error} (the caller finishes the request).
    """
    body = error.body()
    request.setResponseCode(error.code, _PHRASES.get(error.code))
    for name, value in error.headers:
        request.setHeader(name, value)
    request.setHeader(b"Content-Type", XML_CONTENT_TYPE)
    request.setHeader(b"Content-Length", b"%d" % len(body))
    request.write(body)


def setStatus(request, code: int) -> None:
    """
    Set the response code, with a phrase also for the WebDAV codes.
    """
    request.setResponseCode(code, _PHRASES.get(code))


@functools.lru_cache(maxsize=None)
def statusLine(code: int) -> str:
    # Cached: it is written once per member of a PROPFIND, and
    # twisted.web.http is a deprecation proxy (~1.4 us per attribute).
    phrase = _PHRASES.get(code) or http.RESPONSES.get(code, b"Unknown")
    return "HTTP/1.1 %d %s" % (code, phrase.decode("ascii"))

#: How deeply elements may nest in a request body: far more than any DAV
#: body needs, far less than what would exhaust the recursion of copying
#: and serializing a dead property.
MAX_DEPTH = 100


def readBody(request) -> bytes:
    """
    The request body (already bounded by the site's upload limit).
    """
    request.content.seek(0)
    return request.content.read()


def parseXML(data: bytes) -> Optional[Element]:
    """
    Parse a request body safely.

    @return: The root element, or C{None} for an empty body.
    @raise HTTPError: 400 for a DTD, an entity, an external reference,
        malformed XML (or an unknown encoding), or elements nested deeper than L{MAX_DEPTH}.
    """
    if not data.strip():
        return None
    try:
        root = fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as e:
        raise HTTPError(http.BAD_REQUEST,
                        f"XML with a DTD or entities is not accepted ({e.__class__.__name__})") from None
    except (ParseError, ValueError, LookupError) as e:
        # LookupError: an encoding declared that Python does not know.
        raise HTTPError(http.BAD_REQUEST, f"malformed XML: {' '.join(str(e).split())}") from None
    pending = [(root, 1)]
    while pending:
        node, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise HTTPError(http.BAD_REQUEST, f"XML nested deeper than {MAX_DEPTH} elements is not accepted")
        pending.extend((child, depth + 1) for child in node)
    return root


def expectRoot(root: Optional[Element], name: str) -> Element:
    """
    @raise HTTPError: 400 unless C{root} is the C{DAV:} element C{name}.
    """
    if root is None or root.tag != davName(name):
        raise HTTPError(http.BAD_REQUEST, f"the body must be a DAV:{name} element")
    return root


def serializeElement(element: Element) -> str:
    """
    One property element, with its namespace declarations, as text fit to
    store and to put inside a C{DAV:prop} of a response.
    """
    element = copy.deepcopy(element)
    element.tail = None
    return tostring(element, encoding="unicode", short_empty_elements=True)


def emptyElement(key: str) -> str:
    """
    An empty element named C{key}, with its namespace declared.
    """
    namespace, name = splitName(key)
    if namespace == DAV:
        return f"<D:{name}/>"
    if not namespace:
        return f"<{name}/>"
    return f"<P:{name} xmlns:P={quoteattr(namespace)}/>"


def element(key: str, inner: str) -> str:
    """
    An element named C{key} around C{inner} (already XML).
    """
    namespace, name = splitName(key)
    if namespace == DAV:
        return f"<D:{name}>{inner}</D:{name}>"
    if not namespace:
        return f"<{name}>{inner}</{name}>"
    return f"<P:{name} xmlns:P={quoteattr(namespace)}>{inner}</P:{name}>"


def text(value: str) -> str:
    return escape(value)


MULTISTATUS_START = XML_DECLARATION + '<D:multistatus xmlns:D="DAV:">\n'
MULTISTATUS_END = "</D:multistatus>\n"


def response(href: str, propstats: List[Tuple[int, List[str]]], description: str = "") -> str:
    """
    One C{DAV:response} with a C{DAV:propstat} per status.

    @param propstats: (status code, property elements as XML) pairs, or
        triples adding the local name of a C{DAV:} condition for a
        C{DAV:error}; entries with no properties are left out.
    """
    parts = [f"<D:response><D:href>{escape(href)}</D:href>"]
    for code, props, *condition in propstats:
        if props:
            error = f"<D:error><D:{condition[0]}/></D:error>" if condition else ""
            parts.append(
                "<D:propstat><D:prop>" + "".join(props) + "</D:prop>"
                f"<D:status>{statusLine(code)}</D:status>{error}</D:propstat>"
            )
    if description:
        parts.append(f"<D:responsedescription>{escape(description)}</D:responsedescription>")
    parts.append("</D:response>\n")
    return "".join(parts)


def statusResponse(href: str, code: int, condition: str = "") -> str:
    """
    A C{DAV:response} carrying only a status (for DELETE, COPY, MOVE).
    """
    error = f"<D:error><D:{condition}/></D:error>" if condition else ""
    return (
        f"<D:response><D:href>{escape(href)}</D:href>"
        f"<D:status>{statusLine(code)}</D:status>{error}</D:response>\n"
    )


def writeMultistatus(request, responses: Iterable[str]) -> None:
    """
    Answer 207 with a whole (small) multistatus body.
    """
    body = (MULTISTATUS_START + "".join(responses) + MULTISTATUS_END).encode("utf-8")
    setStatus(request, 207)
    request.setHeader(b"Content-Type", XML_CONTENT_TYPE)
    request.setHeader(b"Content-Length", b"%d" % len(body))
    request.write(body)
