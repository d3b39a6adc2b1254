"""
The realm: an avatar id (a uid, or anonymous) becomes a
L{fbtwist.access.avatar.CalendarAvatar} wrapped for the asked interface.
"""

from typing import Callable, Dict, Optional

from twisted.cred.checkers import ANONYMOUS
from twisted.cred.portal import IRealm
from twisted.internet import defer
from zope.interface import implementer

from fbtwist.access.avatar import CalendarAvatar
from fbtwist.interfaces import ICalendarStore, IDirectory


@implementer(IRealm)
class FreeBusyRealm:
    """
    @ivar avatarFactories: Interface to a callable that wraps a
        L{CalendarAvatar} for that interface; each protocol registers one.
    """

    def __init__(self, store: ICalendarStore, directory: IDirectory, adminGroup: Optional[str] = None):
        self.store = store
        self.directory = directory
        self.adminGroup = adminGroup
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
            factory = self.avatarFactories.get(interface)
            if factory is not None:
                break
        else:
            raise TypeError("no avatar for " + ", ".join(map(repr, interfaces)))
        if avatarId is ANONYMOUS:
            avatar = CalendarAvatar(None, False, self.store)
        else:
            isAdmin = False
            if self.adminGroup:
                isAdmin = await self.directory.isMember(avatarId, self.adminGroup)
            avatar = CalendarAvatar(avatarId, isAdmin, self.store, await self.delegatedRooms(avatarId))
        wrapped = factory(avatar)
        return interface, wrapped, getattr(wrapped, "logout", lambda: None)
