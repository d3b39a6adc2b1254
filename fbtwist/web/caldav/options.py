"""
OPTIONS on CalDAV resources: the C{DAV} header names C{calendar-access}
and C{calendar-schedule} (Thunderbird and Evolution turn scheduling and
free/busy on only when they see them) and C{calendar-availability} (RFC
7953: the inbox's C{CALDAV:calendar-availability}), answered without
authentication.
"""

from twisted.web import http

#: WebDAV class 1, access control (principals), CalDAV, its scheduling and
#: availability.
DAV_HEADER = b"1, 3, access-control, calendar-access, calendar-schedule, calendar-availability"


def options(node, allowedMethods, request) -> None:
    request.setResponseCode(http.OK)
    request.setHeader(b"Allow", ", ".join(allowedMethods).encode("ascii"))
    request.setHeader(b"DAV", DAV_HEADER)
    request.setHeader(b"Content-Length", b"0")
