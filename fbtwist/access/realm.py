"""
The realm: an avatar id (a uid, or anonymous) becomes a
L{fbtwist.access.avatar.CalendarAvatar} wrapped for the asked interface.
"""

from typing import Callable, Dict, Optional

from twisted.cred.checkers import ANONYMOUS
from twisted.cred.portal import IRealm
from twisted.internet import defer
from zope.interface import implementer

from fbtwist.access.avatar import CalendarAvatar, FreeBusyReader
from fbtwist.access.visibility import FreeBusyVisibility
from fbtwist.interfaces import ICalendarStore, IDirectory, IFreeBusyReader


def _noLogout() -> None:
    pass


@implementer(IRealm)
class FreeBusyRealm:
    """
    Asked for L{IFreeBusyReader} (the lookups and the page), it gives a
    L{FreeBusyReader}: the anonymous reader for L{ANONYMOUS}, else the
    signed-in user's.

    @ivar avatarFactories: Interface to a callable that wraps a
        L{CalendarAvatar} for that interface; each protocol registers one.
    @ivar visibility: The one L{FreeBusyVisibility} of every avatar.
    """

    def __init__(self, store: ICalendarStore, directory: IDirectory, adminGroup: Optional[str] = None,
                 visibility: Optional[FreeBusyVisibility] = None):
        self.store = store
        self.directory = directory
        self.adminGroup = adminGroup
        if visibility is None:
            from twisted.internet import reactor

            visibility = FreeBusyVisibility(store, directory, reactor)
        self.visibility = visibility
        self.avatarFactories: Dict[object, Callable] = {}

    def registerAvatarFactory(self, interface, factory: Callable) -> None:
        self.avatarFactories[interface] = factory

    def requestAvatar(self, avatarId, mind, *interfaces):
        return defer.Deferred.fromCoroutine(self._requestAvatar(avatarId, interfaces))

    async def delegatedRooms(self, uid: str) -> list:
        """
        The rooms C{uid} may publish for, when the directory knows rooms
        (a directory without them has no C{delegatedRooms}).
        """
        delegatedRooms = getattr(self.directory, "delegatedRooms", None)
        return [] if delegatedRooms is None else await delegatedRooms(uid)

    async def _requestAvatar(self, avatarId, interfaces):
        for interface in interfaces:
            if interface is IFreeBusyReader:
                # Reading free/busy times needs no administrator check (no
                # directory search): the read-only reader avatar.
                uid = None if avatarId is ANONYMOUS else avatarId
                return interface, FreeBusyReader(uid, self.visibility), _noLogout
            factory = self.avatarFactories.get(interface)
            if factory is not None:
                break
        else:
            raise TypeError("no avatar for " + ", ".join(map(repr, interfaces)))
        if avatarId is ANONYMOUS:
            avatar = CalendarAvatar(None, False, self.store, self.visibility)
        else:
            isAdmin = False
            if self.adminGroup:
                isAdmin = await self.directory.isMember(avatarId, self.adminGroup)
            avatar = CalendarAvatar(avatarId, isAdmin, self.store, self.visibility,
                                    await self.delegatedRooms(avatarId))
        wrapped = factory(avatar)
        return interface, wrapped, getattr(wrapped, "logout", lambda: None)
