"""
What a user publishes about their working hours: a C{VCALENDAR} of
C{VAVAILABILITY} components named C{<login>.avail.ics}, next to their
free/busy file, checked when it is published like the other calendar files.
"""

from fbtwist.availability.vavailability import readAvailability
from fbtwist.calendar import ical

#: The name a user's working hours are published under: C{<login>.avail.ics}
#: (never read as a calendar of events).
AVAILABILITY_SUFFIX = ical.AVAILABILITY_SUFFIX


def isAvailabilityName(name: str) -> bool:
    """
    Whether C{name} is a working-hours file (any case).
    """
    lowered = name.lower()
    return lowered.endswith(AVAILABILITY_SUFFIX) and len(lowered) > len(AVAILABILITY_SUFFIX)


def validatePublish(name: str, data: bytes) -> None:
    """
    Check the body of a publish to C{name}: a working-hours file must be a
    C{VAVAILABILITY} calendar this server can read and expand; other names
    are checked as L{fbtwist.calendar.ical.validateUpload} does.  An empty
    body is a placeholder and never checked.

    @raise fbtwist.errors.InvalidCalendar: With a one-line reason.
    """
    if data and isAvailabilityName(name):
        readAvailability(data)
        return
    ical.validateUpload(name, data)
