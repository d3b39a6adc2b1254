"""
The realm: an avatar id (a uid, or anonymous) becomes a
L{fbtwist.access.avatar.CalendarAvatar} wrapped for the asked interface.
"""

from typing import Callable, Dict, Optional, Tuple

from twisted.cred.checkers import ANONYMOUS
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.portal import IRealm
from twisted.internet import defer
from zope.interface import implementer

from fbtwist.access.avatar import CalendarAvatar, FreeBusyReader
from fbtwist.access.visibility import FreeBusyVisibility
from fbtwist.cache import LRUCache
from fbtwist.interfaces import ICalendarStore, IDirectory, IFreeBusyReader


def noLogout() -> None:
    """
    The logout of an avatar that needs none (a protocol need not wait for
    the end of its session to call it).
    """


@implementer(IRealm)
class FreeBusyRealm:
    """
    Asked for L{IFreeBusyReader} (the lookups and the page), it gives a
    L{FreeBusyReader}: the anonymous reader for L{ANONYMOUS}, else the
    signed-in user's.

    @ivar avatarFactories: Interface to a callable that wraps a
        L{CalendarAvatar} for that interface; each protocol registers one.
    @ivar visibility: The one L{FreeBusyVisibility} of every avatar.
    @ivar roles: What the directory said of a signed-in user (member of
        the administrators' group? the rooms delegated to them?), kept
        C{rolesTTL} seconds from the answer, so that the logins of a
        client publishing every few seconds ask the directory nothing.  A
        change in the directory (a user added to or removed from the group,
        a room's delegate changed) is therefore seen by this server's new
        logins at the latest C{rolesTTL} seconds later, as a changed
        password is by the bind cache; a failed question is not kept.
    """

    def __init__(self, store: ICalendarStore, directory: IDirectory, adminGroup: Optional[str] = None,
                 visibility: Optional[FreeBusyVisibility] = None, clock=None, rolesTTL: float = 0.0,
                 rolesSize: int = 1000):
        """
        @param clock: An C{IReactorTime} timing C{roles} (needed when
            C{rolesTTL} is given).
        @param rolesTTL: Seconds a user's roles are kept; 0 asks the
            directory at every login.
        @param rolesSize: The most users whose roles are kept.
        """
        self.store = store
        self.directory = directory
        self.adminGroup = adminGroup
        self.clock = clock
        self.rolesTTL = rolesTTL
        self.roles = LRUCache(rolesSize, clock=lambda: self.clock.seconds())
        if visibility is None:
            from twisted.internet import reactor

            visibility = FreeBusyVisibility(store, directory, reactor)
        self.visibility = visibility
        self.avatarFactories: Dict[object, Callable] = {}

    def registerAvatarFactory(self, interface, factory: Callable) -> None:
        self.avatarFactories[interface] = factory

    def requestAvatar(self, avatarId, mind, *interfaces):
        known = self.avatarNow(avatarId, *interfaces)
        if known is not None:
            return defer.succeed(known)
        return defer.Deferred.fromCoroutine(self._requestAvatar(avatarId, interfaces))

    def avatarNow(self, avatarId, *interfaces) -> Optional[tuple]:
        """
        L{requestAvatar}'s answer when it needs no question to the
        directory: a signed-in user whose roles are kept (L{roles}), asked
        for an interface a factory is registered for.

        @return: C{(interface, avatar, logout)}, or C{None} when
            L{requestAvatar} must be asked.
        """
        if avatarId is ANONYMOUS or self.rolesTTL <= 0:
            return None
        for interface in interfaces:
            if interface is IFreeBusyReader:
                return None
            factory = self.avatarFactories.get(interface)
            if factory is not None:
                break
        else:
            return None
        known = self.roles.get((avatarId, self.adminGroup))
        if known is None:
            return None
        isAdmin, rooms = known
        wrapped = factory(CalendarAvatar(avatarId, isAdmin, self.store, self.visibility, rooms))
        return interface, wrapped, getattr(wrapped, "logout", noLogout)

    async def delegatedRooms(self, uid: str) -> list:
        """
        The rooms C{uid} may publish for, when the directory knows rooms
        (a directory without them has no C{delegatedRooms}).
        """
        delegatedRooms = getattr(self.directory, "delegatedRooms", None)
        return [] if delegatedRooms is None else await delegatedRooms(uid)

    async def _rolesOf(self, uid: str) -> Tuple[bool, list]:
        """
        Whether C{uid} is an administrator, and the rooms they may publish
        for: from L{roles}, else asked of the directory (and kept).
        """
        # Keyed by the group too: a test or an operator changing
        # adminGroup is never answered for the old one.
        key = (uid, self.adminGroup)
        known = self.roles.get(key) if self.rolesTTL > 0 else None
        if known is not None:
            return known
        isAdmin = False
        if self.adminGroup:
            isAdmin = await self.directory.isMember(uid, self.adminGroup)
        known = (isAdmin, await self.delegatedRooms(uid))
        if self.rolesTTL > 0:
            self.roles.put(key, known, expires=self.clock.seconds() + self.rolesTTL)
        return known

    async def _requestAvatar(self, avatarId, interfaces):
        for interface in interfaces:
            if interface is IFreeBusyReader:
                # Reading free/busy times needs no administrator check (no
                # directory search): the read-only reader avatar.
                uid = None if avatarId is ANONYMOUS else avatarId
                return interface, FreeBusyReader(uid, self.visibility), noLogout
            factory = self.avatarFactories.get(interface)
            if factory is not None:
                break
        else:
            raise TypeError("no avatar for " + ", ".join(map(repr, interfaces)))
        if avatarId is ANONYMOUS:
            avatar = CalendarAvatar(None, False, self.store, self.visibility)
        else:
            isAdmin, rooms = await self._rolesOf(avatarId)
            avatar = CalendarAvatar(avatarId, isAdmin, self.store, self.visibility, rooms)
        wrapped = factory(avatar)
        return interface, wrapped, getattr(wrapped, "logout", noLogout)


def loginNow(portal, credentials, interface) -> Optional[tuple]:
    """
    What C{portal.login(credentials, None, interface)} would give, when it
    is known without waiting: a login the checker's bind cache holds (every
    check of L{fbtwist.access.checker.DirectoryChecker.cachedLogin} made)
    and an avatar the realm makes without asking the directory
    (L{FreeBusyRealm.avatarNow}).  Once this returns it, the login is
    counted as the portal's would be.

    @param portal: A L{twisted.cred.portal.Portal} over a L{FreeBusyRealm}.
    @return: C{(interface, avatar, logout)}, or C{None}: ask the portal.
    """
    checker = portal.checkers.get(IUsernamePassword)
    cachedLogin = getattr(checker, "cachedLogin", None)
    avatarNow = getattr(portal.realm, "avatarNow", None)
    if cachedLogin is None or avatarNow is None or not IUsernamePassword.providedBy(credentials):
        return None
    login = cachedLogin(credentials)
    if login is None:
        return None
    known = avatarNow(login.uid, interface)
    if known is not None:
        login.confirm()
    return known
