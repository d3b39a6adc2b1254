"""
The one place CalDAV asks what a viewer may see of someone's free/busy
times: L{freeBusyFor}, which asks the realm's one decision,
L{fbtwist.access.visibility.FreeBusyVisibility.freeBusyFor}, exactly as the
lookups under C{/calendar/} do (the published C{.vfb}, or the busy time
derived from a published C{.ics}, clipped to the range; the group rules and
limits): a CalDAV client sees what C{/calendar/} serves, no more.
"""

from typing import NamedTuple, Optional

from fbtwist.access.visibility import HIDDEN, Account, Group, Mask, Person, Viewer, Visible
from fbtwist.calendar.freebusy import FreeBusy, TimeRange
from fbtwist.errors import PermissionDenied
from fbtwist.interfaces import GROUP, ROOM, USER

__all__ = ["HIDDEN", "Mask", "Target", "Visible", "freeBusyFor"]


class Target(NamedTuple):
    """
    Whose time: a user or a room by uid, or a group by C{cn}.
    """

    kind: str
    name: str
    #: The name is the uid the lookup name of a user resolved to: it is
    #: not resolved again.
    resolved: bool = False

    @property
    def owner(self) -> str:
        """
        The owner's name as the lookups' answers give it.
        """
        return f"group-{self.name}" if self.kind == GROUP else self.name


async def freeBusyFor(lookup, viewer: Optional[str], target: Target, timeRange: TimeRange,
                      started: Optional[float] = None, mask: Optional[Mask] = None):
    """
    What C{viewer} (a signed-in uid) may see of C{target}'s free/busy times
    within C{timeRange}.

    @param lookup: The site's L{fbtwist.web.lookup.LookupResource} (its
        C{visibility} is the realm's one decision).
    @param started: When the request arrived (the visibility decision's
        clock): every hidden attendee of one request shares one floor.
    @param mask: A meeting of the viewer's to leave out (L{Mask}).
    @return: A L{Visible} whose window is C{timeRange}, or L{HIDDEN} (never
        published, not visible, a group too large: alike).
    @raise fbtwist.errors.DirectoryUnavailable: When the directory cannot
        tell.
    """
    if target.kind == ROOM or (target.kind == USER and target.resolved):
        # The directory named the room, or the user's address was resolved
        # already: the uid is not resolved again.
        wanted = Account(target.name)
    elif target.kind == USER:
        wanted = Person(target.name)
    else:
        wanted = Group(target.name)
    try:
        answer = await lookup.visibility.freeBusyFor(Viewer(viewer), wanted, timeRange, started=started, mask=mask)
    except PermissionDenied:
        # A group larger than this server merges: no authority to see it.
        return HIDDEN
    if answer is HIDDEN:
        return HIDDEN
    fb = answer.freeBusy
    window = FreeBusy(fb.periods, timeRange.start, timeRange.end, fb.organizer)
    return answer._replace(freeBusy=window, owner=target.owner)
