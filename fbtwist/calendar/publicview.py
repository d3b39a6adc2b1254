"""
The one definition of what anyone but a calendar's owner gets of it: plain
busy periods with the owner's name, nothing of the events themselves;
rendering is L{fbtwist.calendar.freebusy}'s.
"""

import functools
import uuid
from dataclasses import replace
from datetime import datetime

from fbtwist.calendar.freebusy import STYLE_EXPLICIT, STYLE_PUBLISHED, FreeBusy, renderICalendar, renderJCal
from fbtwist.calendar.ical import readFreeBusy

#: Names the way L{publicView} renders; part of every lookup's entity tag,
#: so that a client holding an answer rendered another way (by an earlier
#: version) gets the new one, not a 304.
PUBLIC_RENDERING = "rfc5545-1"

#: The namespace of the C{urn:uuid:} owner addresses of L{publicView}.
_OWNER_NAMESPACE = uuid.UUID("5d1b4a9e-3c4f-5a8e-9d3b-0f6a2c7e8b41")


def publicUID(owner: str) -> str:
    """
    The C{UID} of every answer about C{owner} (a login, or C{group-<cn>}):
    the same for every version and every range, so that a client sees
    one free/busy object per person.
    """
    return f"fbtwist-{owner}"


def publicOrganizer(owner: str) -> str:
    """
    The C{ORGANIZER} of an answer whose source names none (a full
    calendar, a group, a file without one): a URI that stands for
    C{owner} and nobody else.  No mail address is made up: the server
    does not know the owner's without asking the directory.
    """
    return "urn:uuid:" + str(uuid.uuid5(_OWNER_NAMESPACE, owner))


def publicView(fb: FreeBusy, owner: str, stamp: datetime, style: str = STYLE_PUBLISHED, jcal: bool = False) -> bytes:
    """
    What anyone but the owner reads of C{owner}'s free/busy times, through
    every door (the lookup URLs, anonymous FTP): one C{VFREEBUSY} rendered
    by this server, valid RFC 5545 for strict parsers, whatever the source
    (a clean Outlook file, one carrying event details, a full calendar).

    It holds the published periods with their C{FBTYPE}s exactly (unless
    C{style} asks otherwise), the window (C{DTSTART}/C{DTEND}), a C{UID}
    stable per owner (L{publicUID}), C{DTSTAMP} (C{stamp}, to the second)
    and C{ORGANIZER} (the published one as a URI, else
    L{publicOrganizer}); a source without a window gets the span of its
    periods.  Nothing else of the source leaves.

    @param fb: What readers may learn (L{readFreeBusy}, or periods derived
        from a full calendar).
    @param owner: The login, or C{group-<cn>} for a group.
    @param jcal: Render jCal (RFC 7265) instead of iCalendar text.
    """
    fb, stamp = _publicWindow(fb, owner, stamp)
    render = renderJCal if jcal else renderICalendar
    return render(fb, publicUID(owner), stamp, style)


def publicReply(fb: FreeBusy, owner: str, stamp: datetime, uid: str, organizer: str, attendee: str) -> bytes:
    """
    L{publicView} of C{fb} as the iTIP C{REPLY} (RFC 5546 3.5.2) to a
    free/busy request: the same periods and window, every C{FBTYPE}
    explicit, with the request's C{UID}, its C{ORGANIZER} (the asker) and
    the C{ATTENDEE} whose time it is.
    """
    fb, stamp = _publicWindow(fb, owner, stamp)
    fb = replace(fb, organizer=organizer)
    return renderICalendar(fb, uid, stamp, STYLE_EXPLICIT, method="REPLY", attendee=attendee)


def _publicWindow(fb: FreeBusy, owner: str, stamp: datetime):
    stamp = stamp.replace(microsecond=0)
    if not fb.organizer:
        fb = replace(fb, organizer=publicOrganizer(owner))
    if fb.start is None or fb.end is None:
        # iTIP (RFC 5546) wants the window of a published VFREEBUSY: the
        # span of the periods, when the source gave none.
        start = fb.start or min((p.start for p in fb.periods), default=None) or fb.end or stamp
        end = fb.end or max((p.end for p in fb.periods), default=None) or start
        fb = replace(fb, start=start, end=max(start, end))
    return fb, stamp


@functools.lru_cache(maxsize=1024)
def publicFreeBusy(data: bytes, owner: str, stamp: datetime) -> bytes:
    """
    L{publicView} of a published free/busy file, as served without
    parameters.  Recent answers are remembered (anonymous FTP asks for
    the same file's answer for C{LIST}, C{SIZE} and C{RETR}).

    @raise InvalidCalendar: When it is not a free/busy file.
    """
    fb, _ = readFreeBusy(data)
    return publicView(fb, owner, stamp)
