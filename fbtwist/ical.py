"""
iCalendar parsing and validation: the only module that imports C{icalendar}.

Validation accepts what real clients write (see PROTOCOL.md): Outlook's files
have no C{UID}, a bare C{ORGANIZER} and no C{FBTYPE}; lines may end in CRLF or
bare LF and may be folded.  What a published file must be is a C{VCALENDAR}
holding at least one C{VFREEBUSY} whose C{FREEBUSY} periods all parse.
"""

from icalendar import Calendar

from fbtwist.errors import InvalidCalendar

_UTF8_BOM = b"\xef\xbb\xbf"


def parseCalendar(data: bytes) -> Calendar:
    """
    Parse one iCalendar object.

    @param data: The body as published (UTF-8, an optional byte order mark).
    @return: The C{VCALENDAR} component.
    @raise InvalidCalendar: With a one-line reason when C{data} is not a
        single well-formed C{VCALENDAR}.
    """
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM):]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidCalendar(f"the body is not UTF-8 (byte {e.start})") from None
    if not text.strip():
        raise InvalidCalendar("the body is empty")
    try:
        calendar = Calendar.from_ical(text)
    except (ValueError, KeyError, IndexError, TypeError) as e:
        raise InvalidCalendar("not iCalendar: " + _oneLine(e)) from None
    if calendar.name != "VCALENDAR":
        raise InvalidCalendar(f"expected a VCALENDAR, found {calendar.name}")
    errors = [error for component in calendar.walk() for error in component.errors]
    if errors:
        raise InvalidCalendar("not iCalendar: " + _oneLine(errors[0]))
    return calendar


def validateFreeBusy(data: bytes) -> Calendar:
    """
    Check that C{data} is a publishable free/busy file.

    @return: The parsed calendar.
    @raise InvalidCalendar: With a one-line reason otherwise.
    """
    calendar = parseCalendar(data)
    if not calendar.walk("VFREEBUSY"):
        raise InvalidCalendar("the calendar has no VFREEBUSY component")
    return calendar


def _oneLine(error) -> str:
    text = " ".join(str(error).split())
    return text[:200] if text else error.__class__.__name__


#: Names whose content must be a free/busy calendar.
FREEBUSY_SUFFIXES = (".vfb", ".ifb")


def validateUpload(name: str, data: bytes) -> None:
    """
    Check the body of a publish to C{name}.  An empty body is a placeholder
    (Windows' WebDAV client creates files empty, then fills them); other
    names than calendar files (which only administrators may write) are not
    checked.

    @raise InvalidCalendar: With a one-line reason.
    """
    if not data:
        return
    if name.lower().endswith(FREEBUSY_SUFFIXES):
        validateFreeBusy(data)
