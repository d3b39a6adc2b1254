"""
The live properties of CalDAV resources: what discovery asks of the root,
principals, the calendar home and its members.  A property a resource does
not have is a C{404} propstat, never an error.
"""

from typing import Dict, List, Optional

from fbtwist.interfaces import GROUP, ROOM, USER, PrincipalRecord
from fbtwist.web.caldav import names
from fbtwist.web.caldav.names import Node, caldavName, csName
from fbtwist.web.dav.davxml import davName, element, emptyElement, text

_DISPLAY_NAMES = {names.INBOX: "Inbox", names.OUTBOX: "Outbox", names.CALDAV_ROOT: "CalDAV",
                  names.SITE_ROOT: "fbtwist"}

#: RFC 6638's CALDAV:calendar-user-type of each kind of principal.
CALENDAR_USER_TYPES = {USER: "INDIVIDUAL", GROUP: "GROUP", ROOM: "ROOM"}
#: Apple's CS:record-type of each kind (Apple's clients call rooms
#: "locations", and search for them as such).
RECORD_TYPES = {USER: "users", GROUP: "groups", ROOM: "locations"}

#: RFC 7953's property of a scheduling inbox: its owner's availability.
CALENDAR_AVAILABILITY = caldavName("calendar-availability")

#: What an allprop PROPFIND gets.
ALLPROP = [davName(n) for n in ("resourcetype", "displayname", "current-user-principal", "owner")]


def _href(value: str) -> str:
    return f"<D:href>{text(value)}</D:href>"


def _caldav(name: str, inner: str = "") -> str:
    return f'<C:{name} xmlns:C="{names.CALDAV}">{inner}</C:{name}>' if inner else \
        f'<C:{name} xmlns:C="{names.CALDAV}"/>'


def calendarUserAddresses(record: PrincipalRecord) -> List[str]:
    """
    A principal's calendar user addresses: C{mailto:} for each of its mail
    addresses (the first first), then its principal URL.
    """
    return ["mailto:" + a for a in record.addresses] + [names.principalHref(record.kind, record.name)]


class PropertyContext:
    """
    What one PROPFIND's property values are made from.

    @ivar viewer: The signed-in user's uid.
    @ivar record: The directory's record of the node's principal, or C{None}.
    @ivar availability: The viewer's working hours as an iCalendar text
        (a C{VCALENDAR} of C{VAVAILABILITY}s), for their own inbox's
        C{CALDAV:calendar-availability}; C{None}: not asked for, or none.
    """

    def __init__(self, viewer: str, node: Node, record: Optional[PrincipalRecord],
                 availability: Optional[str] = None):
        self.viewer = viewer
        self.node = node
        self.record = record
        self.availability = availability


def _resourceType(node: Node) -> str:
    inner = "<D:collection/>"
    if node.kind == names.PRINCIPAL:
        inner += "<D:principal/>"
    elif node.kind == names.CALENDAR:
        inner += _caldav("calendar")
    elif node.kind == names.INBOX:
        inner += _caldav("schedule-inbox")
    elif node.kind == names.OUTBOX:
        inner += _caldav("schedule-outbox")
    return inner


def _privileges(context: PropertyContext) -> str:
    node = context.node
    privileges = ["<D:privilege><D:read/></D:privilege>"]
    if node.kind in (names.CALENDAR, names.HOME, names.PRINCIPAL):
        privileges.append("<D:privilege>" + _caldav("read-free-busy") + "</D:privilege>")
    if node.kind == names.OUTBOX and node.name == context.viewer:
        privileges.append("<D:privilege>" + _caldav("schedule-send") + "</D:privilege>")
        privileges.append("<D:privilege>" + _caldav("schedule-send-freebusy") + "</D:privilege>")
    return "".join(privileges)


def _supportedReports(context: PropertyContext) -> str:
    reports = [davName("principal-property-search"), davName("principal-search-property-set"),
               csName("calendarserver-principal-search")]
    if context.node.kind in (names.CALENDAR, names.HOME) or (
            context.node.kind == names.PRINCIPAL and context.node.principalKind in (USER, ROOM)):
        reports.append(caldavName("free-busy-query"))
    if context.node.kind == names.CALENDAR:
        reports += [caldavName("calendar-query"), caldavName("calendar-multiget")]
    return "".join(f"<D:supported-report><D:report>{emptyElement(r)}</D:report></D:supported-report>"
                   for r in reports)


def propertyValue(key: str, context: PropertyContext) -> Optional[str]:
    """
    The inner XML of the property C{key} of the context's node, or C{None}
    when the node has no such property.
    """
    node, record, viewer = context.node, context.record, context.viewer
    ownPrincipal = names.principalHref(USER, viewer)
    ownerUid = node.name if node.kind in (names.HOME, names.CALENDAR, names.INBOX, names.OUTBOX) else None
    if key == davName("resourcetype"):
        return _resourceType(node)
    if key == davName("current-user-principal"):
        return _href(ownPrincipal)
    if key == davName("principal-collection-set"):
        return _href(names.PRINCIPALS)
    if key == davName("current-user-privilege-set"):
        return _privileges(context)
    if key == davName("supported-report-set"):
        return _supportedReports(context)
    if key == davName("displayname"):
        if node.kind == names.PRINCIPAL and record is not None:
            return text(record.displayName)
        if node.kind == names.CALENDAR and record is not None:
            return text(f"Free/busy of {record.displayName}")
        return _DISPLAY_NAMES.get(node.kind)
    if key == davName("owner"):
        if ownerUid is not None:
            return _href(names.principalHref(node.principalKind or USER, ownerUid))
        if node.kind == names.PRINCIPAL:
            return _href(node.href)
        return None
    if key == caldavName("calendar-home-set"):
        if node.kind == names.PRINCIPAL and node.principalKind in (USER, ROOM):
            return _href(names.homeHref(node.name))
        if node.kind in (names.SITE_ROOT, names.CALDAV_ROOT):
            return _href(names.homeHref(viewer))
        return None
    if key == CALENDAR_AVAILABILITY:
        # RFC 7953's property, on the owner's own scheduling inbox only.
        if node.kind == names.INBOX and node.name == viewer and context.availability is not None:
            return text(context.availability)
        return None
    if node.kind == names.CALENDAR:
        if key == caldavName("supported-calendar-component-set"):
            return _component("VEVENT") + _component("VFREEBUSY")
        if key == caldavName("calendar-description"):
            return text("Busy time as published to fbtwist (read-only)")
    if node.kind != names.PRINCIPAL or record is None:
        return None
    addresses = calendarUserAddresses(record)
    values: Dict[str, str] = {
        davName("principal-URL"): _href(node.href),
        caldavName("calendar-user-address-set"): "".join(_href(a) for a in addresses),
        caldavName("calendar-user-type"): CALENDAR_USER_TYPES[record.kind],
        csName("email-address-set"): "".join(
            f'<CS:email-address xmlns:CS="{names.CALENDARSERVER}">{text(a)}</CS:email-address>'
            for a in record.addresses),
        csName("record-type"): RECORD_TYPES[record.kind],
        davName("alternate-URI-set"): "".join(_href("mailto:" + a) for a in record.addresses),
    }
    if record.kind == USER:
        values[caldavName("schedule-inbox-URL")] = _href(names.homeHref(record.name) + "inbox/")
        values[caldavName("schedule-outbox-URL")] = _href(names.homeHref(record.name) + "outbox/")
    return values.get(key)


def _component(name: str) -> str:
    return f'<C:comp xmlns:C="{names.CALDAV}" name="{name}"/>'


def renderProperties(keys: List[str], context: PropertyContext):
    """
    @return: C{(found, missing)}: property elements as XML.
    """
    found, missing = [], []
    for key in keys:
        value = propertyValue(key, context)
        if value is None:
            missing.append(emptyElement(key))
        else:
            found.append(element(key, value))
    return found, missing

