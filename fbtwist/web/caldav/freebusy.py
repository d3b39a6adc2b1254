"""
The one place CalDAV asks what a viewer may see of someone's free/busy
times: L{freeBusyFor}.  It goes through the lookups' own reading of the tree
(L{fbtwist.web.lookup.LookupResource}: the published C{.vfb}, or the busy
time derived from a published C{.ics}, clipped to the range; the group
rules and limits of C{/calendar/group/}), so a CalDAV client sees what
C{/calendar/} serves, no more.  When the tree's visibility decision becomes
one function of the avatar, this module is what is pointed at it.
"""

from typing import NamedTuple, Optional

from fbtwist.calendar import freebusy
from fbtwist.calendar.freebusy import FreeBusy, TimeRange
from fbtwist.errors import NotFound
from fbtwist.interfaces import USER


class Target(NamedTuple):
    """
    Whose time: a user by uid, or a group by C{cn}.
    """

    kind: str
    name: str

    @property
    def owner(self) -> str:
        """
        The owner's name as the lookups' answers give it.
        """
        return self.name if self.kind == USER else f"group-{self.name}"


class Visible(NamedTuple):
    """
    What the viewer may see: the merged periods (with their C{FBTYPE}s)
    within the range, the range as the window.
    """

    freeBusy: FreeBusy
    owner: str


#: Nothing the viewer may see: nothing published, a group too large or
#: without members who published.
HIDDEN = None


async def freeBusyFor(lookup, viewer: Optional[str], target: Target, timeRange: TimeRange) -> Optional[Visible]:
    """
    What C{viewer} (a signed-in uid) may see of C{target}'s free/busy times
    within C{timeRange}.

    @param lookup: The site's L{fbtwist.web.lookup.LookupResource}.
    @return: L{Visible}, or L{HIDDEN}.
    @raise fbtwist.errors.DirectoryUnavailable: When the directory cannot
        tell a group's members.
    """
    if target.kind == USER:
        uids = [target.name]
    else:
        groupBase = lookup.settings.groupBase
        if groupBase is None:
            return HIDDEN
        limit = lookup.settings.groupMaxMembers
        uids = await lookup.directory.groupMembers(target.name, groupBase, limit)
        if uids is None or len(uids) > limit:
            return HIDDEN
    periods, seen = [], False
    for uid in uids:
        published = lookup.published(uid)
        if published is None:
            continue
        try:
            fb = await lookup.freeBusy(published, timeRange)
        except NotFound:
            # An unreadable file: served as nothing published.
            continue
        seen = True
        periods.extend(fb.periods)
    if not seen:
        return HIDDEN
    merged = FreeBusy(freebusy.mergePeriods(periods), timeRange.start, timeRange.end)
    return Visible(merged, target.owner)
