"""
OPTIONS: what the publishing tree offers.  Answered without authentication
(Office asks before it logs in), with C{MS-Author-Via: DAV} so that Office
does not fall back to FrontPage RPC, and always 200 with an empty body (a 204
broke Outlook's publishing for one server).  C{DAV: 1, 2}: class 1
(properties, collections) and class 2 (locks).
"""

from twisted.web import http


def options(allowedMethods, request) -> None:
    request.setResponseCode(http.OK)
    request.setHeader(b"Allow", ", ".join(allowedMethods).encode("ascii"))
    request.setHeader(b"DAV", b"1, 2")
    request.setHeader(b"MS-Author-Via", b"DAV")
    request.setHeader(b"Content-Length", b"0")
