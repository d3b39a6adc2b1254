"""
The filesystem avatar: one user acting on the calendar tree.

Protocol code (the DAV resource, the FTP shell) acts only through an
L{CalendarAvatar}, whose every operation first asks
L{fbtwist.access.permissions.authorize}, so HTTP and FTP cannot disagree about who
may write what.
"""

from typing import Iterable, Iterator, Optional

from zope.interface import implementer

from fbtwist.access.permissions import Action, authorize, ownFileName, visibleMembers
from fbtwist.errors import Locked
from fbtwist.interfaces import ICalendarAvatar, ICalendarStore
from fbtwist.store.locks import LOCK_DIRECTORY, LockStore, WallClock
from fbtwist.store.paths import FileSnapshot, ResourceInfo, StorePath, validatePath


@implementer(ICalendarAvatar)
class CalendarAvatar:
    """
    @ivar uid: The user's uid, or C{None} for the anonymous reader.
    @ivar isAdmin: Whether the user may manage the whole tree.
    @ivar store: The L{ICalendarStore} acted on.
    @ivar anonymousReads: Whether the anonymous user may list and read the
        tree (read-only anonymous FTP); never set for a logged-in user.
    @ivar rooms: The uids of the rooms whose files the user may publish as
        their delegate.
    """

    anonymousReads = False

    def __init__(self, uid: Optional[str], isAdmin: bool, store: ICalendarStore, rooms: Iterable[str] = ()):
        self.uid = uid
        self.isAdmin = isAdmin
        self.store = store
        self.rooms = frozenset(rooms)

    def __repr__(self) -> str:
        return f"<CalendarAvatar uid={self.uid!r} admin={self.isAdmin}>"

    def path(self, segments) -> StorePath:
        """
        Validate a client's path and spell the user's own file names the
        canonical way (C{Alice.vfb} is C{alice.vfb} for uid C{alice}).

        @raise fbtwist.errors.InvalidName: For invalid names.
        """
        path = validatePath(segments)
        if self.uid is not None and len(path) == 1:
            own = ownFileName(self.uid, path[0], self.rooms)
            if own is not None:
                return (own,)
        return path

    def authorize(self, action: Action, path: StorePath, isCollection: bool = False) -> None:
        """
        @raise fbtwist.errors.PermissionDenied: When this user may not do
            C{action} on C{path}.
        """
        authorize(self.uid, self.isAdmin, action, path, isCollection, self.anonymousReads, self.rooms)

    def stat(self, path: StorePath) -> Optional[ResourceInfo]:
        info = self.store.stat(path)
        self.authorize(Action.LIST, path, info is not None and info.isCollection)
        return None if info is not None and self._placeholderHidden(info) else info

    def etag(self, path: StorePath) -> str:
        self.authorize(Action.READ, path)
        return self.store.etag(path)

    def read(self, path: StorePath) -> bytes:
        self.authorize(Action.READ, path)
        return self.store.read(path)

    def snapshot(self, path: StorePath) -> Optional[FileSnapshot]:
        self.authorize(Action.READ, path)
        return self.store.snapshot(path)

    def children(self, path: StorePath) -> Iterator[ResourceInfo]:
        """
        The members of the collection C{path} this user may see, lazily.
        """
        self.authorize(Action.LIST, path, isCollection=True)
        members = visibleMembers(self.uid, self.isAdmin, self.store.children(path), self.anonymousReads,
                                 self.rooms)
        return (member for member in members if not self._placeholderHidden(member))

    def _placeholderHidden(self, info: ResourceInfo) -> bool:
        """
        Whether the anonymous reader sees C{info} as absent: an empty file
        is a placeholder (a client creates the file, then fills it), so its
        owner has published nothing; the lookups answer them as they answer
        a name nobody has, and so must a listing or a download.
        """
        return self.uid is None and not info.isCollection and info.size == 0

    def openUpload(self, path: StorePath):
        self.authorize(Action.WRITE, path)
        return self.store.openUpload(path)

    def delete(self, path: StorePath) -> None:
        info = self.store.stat(path)
        self.authorize(Action.WRITE, path, info is not None and info.isCollection)
        self.store.delete(path)

    def makeCollection(self, path: StorePath) -> None:
        self.authorize(Action.MANAGE, path, isCollection=True)
        self.store.makeCollection(path)

    def deadProperties(self, path: StorePath):
        self.authorize(Action.LIST, path, self._isCollection(path))
        return self.store.deadProperties(path)

    def setDeadProperties(self, path: StorePath, properties) -> None:
        self.authorize(Action.WRITE, path, self._isCollection(path))
        self.store.setDeadProperties(path, properties)

    def copy(self, source: StorePath, destination: StorePath, recursive: bool = True) -> None:
        isCollection = self._isCollection(source)
        self.authorize(Action.READ if not isCollection else Action.LIST, source, isCollection)
        self.authorize(Action.MANAGE if isCollection else Action.WRITE, destination, isCollection)
        self.store.copy(source, destination, recursive)

    def move(self, source: StorePath, destination: StorePath) -> None:
        isCollection = self._isCollection(source)
        action = Action.MANAGE if isCollection else Action.WRITE
        self.authorize(action, source, isCollection)
        self.authorize(action, destination, isCollection)
        self.store.move(source, destination)

    def authorizeMove(self, source: StorePath, destination: StorePath, keepSource: bool) -> None:
        """
        Check, before anything is touched, that this user may COPY
        (C{keepSource}) or MOVE C{source} onto C{destination}, replacing
        whatever is there.

        @raise fbtwist.errors.PermissionDenied: When not.
        """
        isCollection = self._isCollection(source)
        if keepSource:
            self.authorize(Action.LIST if isCollection else Action.READ, source, isCollection)
        else:
            self.authorize(Action.MANAGE if isCollection else Action.WRITE, source, isCollection)
        self.authorize(Action.MANAGE if isCollection else Action.WRITE, destination, isCollection)
        if self._isCollection(destination):
            self.authorize(Action.MANAGE, destination, True)

    def lockDirectory(self):
        """
        Where WebDAV locks are kept: in the tree, shared by every server
        using it.  Reading it needs no permission; taking a lock is
        authorized as a write of the locked path.
        """
        return self.store.metadataDirectory(LOCK_DIRECTORY, create=False)

    def lockStore(self) -> LockStore:
        """
        The WebDAV locks of the tree.
        """
        return LockStore(self.lockDirectory(), WallClock)

    def assertUnlocked(self, path: StorePath) -> None:
        """
        For protocols that cannot present WebDAV lock tokens (FTP): refuse
        to change a file that a lock protects, or to add or remove it from a
        locked collection.

        @raise Locked: When a lock stands in the way.
        """
        if self.lockStore().affecting(path, membership=True):
            raise Locked(f"{'/'.join(path) or '/'} is locked by a WebDAV client")

    def _isCollection(self, path: StorePath) -> bool:
        info = self.store.stat(path)
        return info is not None and info.isCollection
