"""
The C{free-busy-query} REPORT (RFC 4791 section 7.10) on a user's or a
room's calendar, calendar home or principal: one C{VFREEBUSY} for the time
range, the same periods as an outbox request for them gets, as
C{text/calendar}.
"""

from datetime import datetime, timezone

from twisted.web import http

from fbtwist.calendar import freebusy as periods
from fbtwist.calendar.freebusy import MAX_RANGE, STYLE_EXPLICIT, RangeError, TimeRange
from fbtwist.calendar.publicview import publicView
from fbtwist.interfaces import ROOM, USER
from fbtwist.web.caldav import names
from fbtwist.web.caldav.caldavxml import CalDAVError
from fbtwist.web.caldav.freebusy import HIDDEN, Target, freeBusyFor
from fbtwist.web.caldav.names import caldavName
from fbtwist.web.dav.davxml import DAVError
from fbtwist.web.responses import CALENDAR_TYPE


def timeRange(element, now: datetime) -> TimeRange:
    """
    The range of a C{CALDAV:time-range} element: C{start} and C{end} in UTC
    (RFC 4791 section 9.9); a missing end is the lookups' default window
    after the start.

    @raise CalDAVError: 403 C{valid-filter} for a missing, malformed or
        too long range.
    """
    if element is None:
        raise CalDAVError(http.FORBIDDEN, "valid-filter", "a free-busy-query needs a CALDAV:time-range")
    start, end = element.get("start"), element.get("end")
    try:
        if start is None:
            raise RangeError("the time-range needs a start")
        begin = periods.parseUTC("start", start)
        finish = periods.parseUTC("end", end) if end is not None else begin + MAX_RANGE
    except RangeError as e:
        raise CalDAVError(http.FORBIDDEN, "valid-filter", str(e)) from None
    if finish <= begin:
        raise CalDAVError(http.FORBIDDEN, "valid-filter", "the time-range ends before it starts")
    if finish - begin > MAX_RANGE:
        raise CalDAVError(http.FORBIDDEN, "valid-filter",
                          f"a time-range may span at most {MAX_RANGE.days} days")
    return TimeRange(begin, finish)


async def freeBusyQuery(view, node, root, request) -> None:
    if node.kind not in (names.CALENDAR, names.HOME) and not (
            node.kind == names.PRINCIPAL and node.principalKind in (USER, ROOM)):
        raise CalDAVError(http.FORBIDDEN, "supported-report",
                          "free-busy-query is answered on a user's or a room's calendar, calendar home or principal")
    now = view.service.now()
    answer = await freeBusyFor(view.service.lookup, view.uid, Target(node.principalKind or USER, node.name),
                               timeRange(root.find(caldavName("time-range")), now))
    if answer is HIDDEN:
        raise DAVError(http.FORBIDDEN, "need-privileges",
                       f"no free/busy time of {node.name} that you may see is published")
    body = publicView(answer.freeBusy, answer.owner, now.astimezone(timezone.utc), STYLE_EXPLICIT)
    request.setResponseCode(http.OK)
    request.setHeader(b"Content-Type", CALENDAR_TYPE)
    request.setHeader(b"Content-Length", b"%d" % len(body))
    request.write(body)
