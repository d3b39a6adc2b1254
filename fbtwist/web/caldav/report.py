"""
REPORT on CalDAV resources: each report by its root element, in a module of
its own.
"""

from twisted.web import http

from fbtwist.web.caldav import freebusyquery, search
from fbtwist.web.caldav.names import caldavName, csName
from fbtwist.web.dav.davxml import DAVError, davName, parseXML, readBody

REPORTS = {
    caldavName("free-busy-query"): freebusyquery.freeBusyQuery,
    davName("principal-property-search"): search.principalPropertySearch,
    davName("principal-search-property-set"): search.principalSearchPropertySet,
    csName("calendarserver-principal-search"): search.calendarServerPrincipalSearch,
}


async def report(view, node, request) -> None:
    root = parseXML(readBody(request))
    if root is None:
        raise DAVError(http.BAD_REQUEST, "supported-report", "a REPORT needs a body naming the report")
    handler = REPORTS.get(root.tag)
    if handler is None:
        raise DAVError(http.FORBIDDEN, "supported-report", f"this server does not know the report {root.tag}")
    await handler(view, node, root, request)
