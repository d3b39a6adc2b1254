"""
Validators for L{fbtwist.remote.fetcher.Fetcher}: what a fetched body must
be to be used.  Each returns the parsed calendar and raises
L{fbtwist.errors.InvalidCalendar} otherwise.

A cheap look at the first bytes comes first, so that an HTML error page or
another large wrong answer is turned away without being parsed.
"""

from fbtwist.calendar import ical
from fbtwist.errors import InvalidCalendar

_BOM = b"\xef\xbb\xbf"


def _looksLikeCalendar(body: bytes) -> None:
    start = body[:64].removeprefix(_BOM).lstrip().upper()
    if not start.startswith(b"BEGIN:VCALENDAR"):
        what = "HTML" if start.startswith((b"<!DOCTYPE HTML", b"<HTML", b"<")) else "not iCalendar"
        raise InvalidCalendar(f"the body is {what}: it does not start with BEGIN:VCALENDAR")


def freeBusyCalendar(body: bytes):
    """
    Accept a calendar holding at least one VFREEBUSY (free/busy of another
    organisation).
    """
    _looksLikeCalendar(body)
    return ical.validateFreeBusy(body)


def eventCalendar(body: bytes):
    """
    Accept a calendar of events (a user's ICS feed).
    """
    _looksLikeCalendar(body)
    return ical.validateEvents(body)
