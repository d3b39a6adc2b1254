"""
CalDAV additions to the WebDAV XML helpers of L{fbtwist.web.dav.davxml}:
preconditions in the CalDAV namespace, and iCalendar text inside XML.
"""

from xml.sax.saxutils import escape

from fbtwist.web.caldav.names import CALDAV
from fbtwist.web.dav.davxml import XML_DECLARATION, DAVError


class CalDAVError(DAVError):
    """
    An error answered with a C{DAV:error} body naming a CalDAV precondition
    (RFC 4791 section 1.3, RFC 6638 section 3.2), with the reason as text
    beside it.
    """

    def body(self) -> bytes:
        return (
            XML_DECLARATION
            + f'<D:error xmlns:D="DAV:" xmlns:C="{CALDAV}"><C:{self.condition}/>'
            + f"<D:responsedescription>{escape(self.reason)}</D:responsedescription></D:error>\n"
        ).encode("utf-8")


def calendarText(data: bytes) -> str:
    """
    iCalendar bytes as XML character data, its CRLF line ends kept (an XML
    parser would turn a literal CR LF into LF).
    """
    return escape(data.decode("utf-8")).replace("\r", "&#13;")
