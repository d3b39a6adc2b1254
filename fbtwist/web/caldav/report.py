"""
REPORT on CalDAV resources: each report by its root element, in a module of
its own.
"""

from twisted.web import http

from fbtwist.web.caldav import freebusyquery, names, search
from fbtwist.web.caldav.names import caldavName, csName
from fbtwist.web.dav.davxml import DAVError, davName, parseXML, readBody, writeMultistatus


async def noEvents(view, node, root, request) -> None:
    """
    C{calendar-query} and C{calendar-multiget} on the read-only calendar:
    it holds no events (its busy time is what free-busy-query answers), so
    a client syncing it gets an empty multistatus, not an error.
    """
    if node.kind != names.CALENDAR:
        raise DAVError(http.FORBIDDEN, "supported-report", "calendar reports are answered on calendars")
    writeMultistatus(request, [])


REPORTS = {
    caldavName("calendar-query"): noEvents,
    caldavName("calendar-multiget"): noEvents,
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
