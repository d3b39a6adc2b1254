"""
Free/busy by outbox POST (RFC 6638 section 5.1): a C{METHOD:REQUEST}
iCalendar object with one C{VFREEBUSY} naming the asker (C{ORGANIZER}, one
of the signed-in user's addresses) and the attendees, answered with a
C{CALDAV:schedule-response} holding one C{CALDAV:response} per attendee:

  - C{2.0;Success} with a C{METHOD:REPLY} C{VFREEBUSY} (L{publicReply} of
    what L{freeBusyFor} lets the user see, the requested window);
  - C{3.7;Invalid calendar user}: no user or group has that address;
  - C{3.8;No authority}: there is nothing of theirs the user may see;
  - C{5.1;Service unavailable}: the directory, or the other organisation
    of a federated address, cannot be asked now.

Each C{CALDAV:response} holds only C{recipient}, C{request-status} and
C{calendar-data} (python caldav refuses anything else).  Thunderbird's and
Apple's C{Originator} must, when sent, be the organizer; C{Recipient} is
not needed (Evolution sends none): the attendees are the C{ATTENDEE}s.
Apple's C{X-CALENDARSERVER-MASK-UID} names the meeting the organizer is
moving: it is left out of each attendee's busy time where that attendee
published a full calendar holding it with the organizer as its
C{ORGANIZER} (and, in the organizer's own calendar, also without one), as
Apple's server does (L{fbtwist.access.visibility.Mask}); a published
free/busy file has no events, so nothing is masked there.
"""

import re
from datetime import datetime, timezone
from typing import List, Optional
from xml.sax.saxutils import escape

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import http

from fbtwist.calendar import ical
from fbtwist.calendar.freebusy import MAX_RANGE, TimeRange
from fbtwist.calendar.publicview import publicReply
from fbtwist.errors import DirectoryUnavailable, InvalidCalendar
from fbtwist.interfaces import GROUP, ROOM, USER
from fbtwist.remote.source import RemoteUnavailable
from fbtwist.web.caldav import itip, names
from fbtwist.web.caldav.caldavxml import CalDAVError, calendarText
from fbtwist.web.caldav.freebusy import HIDDEN, Mask, Target, freeBusyFor
from fbtwist.web.caldav.names import CALDAV, mailAddress, nodeOfHref
from fbtwist.web.dav.davxml import XML_CONTENT_TYPE, XML_DECLARATION, readBody
from fbtwist.web.responses import HTTPError

log = Logger()

#: The largest free/busy request read (a request for the most attendees
#: allowed is far smaller).
MAX_BODY = 512 * 1024

SUCCESS = "2.0;Success"
INVALID_USER = "3.7;Invalid calendar user"
NO_AUTHORITY = "3.8;No authority"
UNAVAILABLE = "5.1;Service unavailable"

_ATTENDEE_LINE = re.compile(rb"^attendee[;:]", re.IGNORECASE | re.MULTILINE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _unfolded(data: bytes) -> bytes:
    return data.replace(b"\r\n ", b"").replace(b"\r\n\t", b"").replace(b"\n ", b"").replace(b"\n\t", b"")


def _utc(name: str, component) -> datetime:
    value = component.get(name)
    moment = getattr(value, "dt", None)
    if not isinstance(moment, datetime) or moment.tzinfo is None or moment.utcoffset().total_seconds() != 0:
        raise CalDAVError(http.FORBIDDEN, "valid-scheduling-message",
                          f"the VFREEBUSY needs {name} as a UTC date-time")
    return moment.astimezone(timezone.utc)


class FreeBusyRequest:
    """
    A parsed outbox request.

    @ivar organizer: The C{ORGANIZER} as sent.
    @ivar attendees: The C{ATTENDEE} values as sent, in order, each once.
    @ivar maskUID: The C{UID} of the meeting to leave out
        (C{X-CALENDARSERVER-MASK-UID}), or C{None}.
    """

    def __init__(self, uid: str, organizer: str, attendees: List[str], timeRange: TimeRange,
                 maskUID: Optional[str] = None):
        self.uid, self.organizer, self.attendees, self.timeRange = uid, organizer, attendees, timeRange
        self.maskUID = maskUID


def parseRequest(data: bytes, contentType: Optional[bytes], maxAttendees: int) -> FreeBusyRequest:
    """
    @raise HTTPError: 413 or 415 for a body too large or not iCalendar by
        type; L{CalDAVError} 403 for one that is not a valid free/busy
        request.
    """
    if len(data) > MAX_BODY:
        raise HTTPError(http.REQUEST_ENTITY_TOO_LARGE, f"a free/busy request may be at most {MAX_BODY} bytes")
    mediaType = (contentType or b"").split(b";", 1)[0].strip().lower()
    if mediaType != b"text/calendar":
        raise HTTPError(http.UNSUPPORTED_MEDIA_TYPE, "post a free/busy request as text/calendar")
    attendeeCount = len(_ATTENDEE_LINE.findall(_unfolded(data)))
    if attendeeCount > maxAttendees:
        raise CalDAVError(http.FORBIDDEN, "max-attendees-per-instance",
                          f"at most {maxAttendees} attendees per free/busy request (--caldav-max-attendees)")
    fast = itip.read(data)
    if fast is None:
        fast = _readWithICalendar(data)
    if (fast.method or "").upper() != "REQUEST":
        raise CalDAVError(http.FORBIDDEN, "valid-scheduling-message", "a free/busy request has METHOD:REQUEST")
    if fast.components != 1:
        raise CalDAVError(http.FORBIDDEN, "valid-scheduling-message",
                          "a free/busy request holds exactly one VFREEBUSY and nothing else")
    if len(fast.organizers) != 1:
        raise CalDAVError(http.FORBIDDEN, "valid-scheduling-message", "the VFREEBUSY needs one ORGANIZER")
    attendees = list(dict.fromkeys(a.strip() for a in fast.attendees if a.strip()))
    if not attendees:
        raise CalDAVError(http.FORBIDDEN, "valid-scheduling-message", "the VFREEBUSY names no ATTENDEE")
    start, end = fast.start, fast.end
    if start is None or end is None:
        raise CalDAVError(http.FORBIDDEN, "valid-scheduling-message",
                          "the VFREEBUSY needs DTSTART and DTEND as UTC date-times")
    if end <= start or end - start > MAX_RANGE:
        raise CalDAVError(http.FORBIDDEN, "valid-scheduling-message",
                          f"DTEND must follow DTSTART, by at most {MAX_RANGE.days} days")
    uid = _CONTROL.sub("", fast.uid or "")[:255] or "fbtwist-freebusy"
    maskUID = (fast.maskUID or "").strip() or None
    if maskUID is not None and (len(maskUID) > 255 or _CONTROL.search(maskUID)):
        raise CalDAVError(http.FORBIDDEN, "valid-scheduling-message",
                          "X-CALENDARSERVER-MASK-UID must be a UID of at most 255 characters")
    return FreeBusyRequest(uid, fast.organizers[0].strip(), attendees, TimeRange(start, end), maskUID)


def _readWithICalendar(data: bytes) -> itip.Request:
    """
    What L{itip.read} does not know, read by C{icalendar}.

    @raise CalDAVError: 403 C{valid-calendar-data} for a body that is not
        iCalendar, C{valid-scheduling-message} for a window not in UTC.
    """
    try:
        calendar = ical.parseCalendar(data)
    except InvalidCalendar as e:
        raise CalDAVError(http.FORBIDDEN, "valid-calendar-data", e.reason) from None
    components = [c for c in calendar.subcomponents if c.name != "VTIMEZONE"]
    if len(components) != 1 or components[0].name != "VFREEBUSY":
        return itip.Request(str(calendar.get("METHOD", "")), 0, None, [], [], None, None)
    component = components[0]

    def values(name):
        found = component.get(name, [])
        return [str(v) for v in (found if isinstance(found, list) else [found])]

    masks = values("X-CALENDARSERVER-MASK-UID")
    return itip.Request(str(calendar.get("METHOD", "")), 1, str(component.get("UID", "")), values("ORGANIZER"),
                        values("ATTENDEE"), _utc("DTSTART", component), _utc("DTEND", component),
                        masks[0] if masks else None)


async def _principalOf(service, address: str) -> Optional[Target]:
    """
    Whose address C{address} is: a user or a room (resolved as the lookups
    resolve names), else a room or a group holding it; C{None} for nobody.
    """
    node = nodeOfHref(address) if address.startswith(("/", "http:", "https:")) else None
    if node is not None:
        if node.kind != names.PRINCIPAL or await service.record(node) is None:
            return None
        return Target(node.principalKind, node.name)
    mail = mailAddress(address)
    if mail is None:
        return None
    uid = await service.lookup.resolve(mail)
    if uid is not None:
        return Target(USER, uid, resolved=True)
    record = await service.directory.principalByAddress(mail, service.groupBase)
    if record is None or record.kind not in (GROUP, ROOM):
        return None
    return Target(record.kind, record.name)


def _federated(service, address: str) -> Optional[Target]:
    """
    For an address nobody has here: another organisation's person, whose
    free/busy the visibility decision fetches from there (C{--federate}),
    or C{None}.
    """
    mail = mailAddress(address)
    if mail is None or not service.lookup.visibility.isFederated(mail):
        return None
    return Target(USER, mail)


async def _isOrganizer(view, organizer: str) -> bool:
    target = await _principalOf(view.service, organizer)
    return target is not None and target.kind == USER and target.name == view.uid


def _response(recipient: str, status: str, data: Optional[bytes] = None) -> str:
    calendarData = f"<C:calendar-data>{calendarText(data)}</C:calendar-data>" if data is not None else ""
    return (f"<C:response><C:recipient><D:href>{escape(recipient)}</D:href></C:recipient>"
            f"<C:request-status>{status}</C:request-status>{calendarData}</C:response>")


async def _mask(view, request: FreeBusyRequest) -> Optional[Mask]:
    """
    The meeting the request asks to leave out, organized by the signed-in
    user (their addresses from the directory), or C{None}.
    """
    if request.maskUID is None:
        return None
    record = await view.service.directory.principal(USER, view.uid, None)
    addresses = frozenset(record.addresses) if record is not None else frozenset()
    return Mask(request.maskUID, view.uid, addresses)


async def _answerFor(view, request: FreeBusyRequest, attendee: str, stamp: datetime, started: float,
                     mask: Optional[Mask] = None) -> str:
    try:
        target = await _principalOf(view.service, attendee) or _federated(view.service, attendee)
        if target is None:
            return _response(attendee, INVALID_USER)
        answer = await freeBusyFor(view.service.lookup, view.uid, target, request.timeRange, started, mask)
    except (DirectoryUnavailable, RemoteUnavailable):
        return _response(attendee, UNAVAILABLE)
    if answer is HIDDEN:
        return _response(attendee, NO_AUTHORITY)
    reply = publicReply(answer.freeBusy, answer.owner, stamp, request.uid, request.organizer, attendee)
    return _response(attendee, SUCCESS, reply)


async def _together(answers) -> List[str]:
    """
    The results of the coroutines C{answers}, in their order, all run at
    once: an attendee whose directory search or other organisation is slow
    does not hold up the others (each attendee's wait is its own, not the
    sum of all before it).
    """
    try:
        return await defer.gatherResults([defer.Deferred.fromCoroutine(answer) for answer in answers],
                                         consumeErrors=True)
    except defer.FirstError as e:
        e.subFailure.raiseException()


async def post(view, node, request) -> None:
    if node.name != view.uid:
        raise CalDAVError(http.FORBIDDEN, "organizer-allowed", "post free/busy requests to your own outbox")
    parsed = parseRequest(readBody(request), request.getHeader(b"Content-Type"),
                          view.service.settings.maxAttendees)
    originator = request.getHeader(b"Originator")
    allowed = await _isOrganizer(view, parsed.organizer)
    if allowed and originator is not None:
        allowed = await _isOrganizer(view, originator.decode("utf-8", "replace"))
    if not allowed:
        raise CalDAVError(http.FORBIDDEN, "organizer-allowed",
                          "the ORGANIZER (and Originator) must be one of your own calendar user addresses")
    stamp = view.service.now().replace(microsecond=0)
    started = view.service.lookup.visibility.clock.seconds()
    try:
        mask = await _mask(view, parsed)
    except DirectoryUnavailable:
        # The answers say so, attendee by attendee, as without a mask.
        mask = None
    parts = await _together(_answerFor(view, parsed, attendee, stamp, started, mask)
                            for attendee in parsed.attendees)
    body = (XML_DECLARATION + f'<C:schedule-response xmlns:D="DAV:" xmlns:C="{CALDAV}">'
            + "".join(parts) + "</C:schedule-response>\n").encode("utf-8")
    request.setResponseCode(http.OK)
    request.setHeader(b"Content-Type", XML_CONTENT_TYPE)
    request.setHeader(b"Content-Length", b"%d" % len(body))
    request.write(body)
