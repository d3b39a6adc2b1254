"""
The filesystem avatar: one user acting on the calendar tree.

Protocol code (the DAV resource, the FTP shell) acts only through an
L{CalendarAvatar}, whose every operation first asks
L{fbtwist.access.permissions.authorize}, so HTTP and FTP cannot disagree about who
may write what.
"""

from typing import Callable, Iterable, Iterator, Optional

from twisted.internet import defer
from zope.interface import implementer

from fbtwist.access.permissions import Action, authorize, ownFileName, visibleMembers
from fbtwist.access.visibility import Detail, FreeBusyVisibility, PublishedFile, Target, Viewer, Visible
from fbtwist.calendar.freebusy import TimeRange
from fbtwist.errors import Locked, NotFound, PermissionDenied
from fbtwist.interfaces import ICalendarAvatar, ICalendarStore, IFreeBusyReader
from fbtwist.store.locks import LOCK_DIRECTORY, Lock, LockStore, WallClock
from fbtwist.store.paths import FileSnapshot, ResourceInfo, StorePath, validatePath


@implementer(IFreeBusyReader)
class FreeBusyReader:
    """
    A reader of others' free/busy times, and nothing else: the read-only
    avatar of the lookups and the page (anonymous, or signed in).

    @ivar uid: The reader's uid, or C{None} for the anonymous reader.
    @ivar visibility: The L{FreeBusyVisibility} deciding what this reader
        may see.
    """

    isAdmin = False
    anonymousReads = False
    rooms: frozenset = frozenset()

    def __init__(self, uid: Optional[str], visibility: FreeBusyVisibility):
        self.uid = uid
        self.visibility = visibility
        self.viewer = Viewer(uid, self.isAdmin)

    def __repr__(self) -> str:
        return f"<FreeBusyReader uid={self.uid!r}>"

    def freeBusyFor(self, target: Target, timeRange: Optional[TimeRange] = None, detail: Detail = Detail.BUSY,
                    started: Optional[float] = None, workhours: bool = False):
        """
        What this user may see of C{target}'s free/busy times: see
        L{FreeBusyVisibility.freeBusyFor}.  A file in the tree
        (L{PublishedFile}) must also be one this user may list.

        @return: A coroutine with a L{Visible}, or L{HIDDEN}.
        """
        self._authorizeTarget(target)
        return self.visibility.freeBusyFor(self.viewer, target, timeRange, detail, started, workhours)

    def freeBusyForNow(self, target: Target, timeRange: Optional[TimeRange] = None,
                       detail: Detail = Detail.BUSY, workhours: bool = False) -> Optional[Visible]:
        """
        L{freeBusyFor}'s answer when it is known without waiting, else
        C{None} (L{FreeBusyVisibility.freeBusyForNow}); a L{PublishedFile}
        is always answered at once (L{Visible} or L{HIDDEN}).
        """
        self._authorizeTarget(target)
        return self.visibility.freeBusyForNow(self.viewer, target, timeRange, detail, workhours)

    def _authorizeTarget(self, target: Target) -> None:
        if isinstance(target, PublishedFile):
            authorize(self.uid, self.isAdmin, Action.LIST, target.path, False, self.anonymousReads, self.rooms)


@implementer(ICalendarAvatar)
class CalendarAvatar(FreeBusyReader):
    """
    A user acting on the calendar tree: every operation is authorized here
    (L{authorize}) before the store, a private collaborator no protocol
    sees, is touched.

    @ivar uid: The user's uid, or C{None} for the anonymous reader.
    @ivar isAdmin: Whether the user may manage the whole tree.
    @ivar anonymousReads: Whether the anonymous user may list and read the
        tree (read-only anonymous FTP); never set for a logged-in user.
    @ivar visibility: The L{FreeBusyVisibility} deciding what this user may
        see of others' free/busy times.
    @ivar rooms: The uids of the rooms whose files the user may publish as
        their delegate.
    """

    def __init__(self, uid: Optional[str], isAdmin: bool, store: ICalendarStore,
                 visibility: Optional[FreeBusyVisibility] = None, rooms: Iterable[str] = ()):
        self.isAdmin = isAdmin
        self._store = store
        self.rooms = frozenset(rooms)
        if visibility is None:
            from twisted.internet import reactor

            visibility = FreeBusyVisibility(store, None, reactor)
        super().__init__(uid, visibility)

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

    def peek(self, path: StorePath) -> Optional[ResourceInfo]:
        """
        What is at C{path}, without a permission check: for the answers a
        method gives before or instead of acting (C{If-Match}, a
        Destination and its parent, the root of a lock in the way), which
        tell no more than the method's own answer would.

        @return: A L{ResourceInfo}, or C{None} when nothing is there.
        """
        return self._store.stat(path)

    def listedETag(self, info: ResourceInfo) -> str:
        """
        The entity tag of a file this user listed (a property, as
        C{DAV:getetag}).

        @raise fbtwist.errors.NotFound: When it is gone meanwhile.
        """
        self.authorize(Action.LIST, info.path, info.isCollection)
        return self._store.etag(info.path)

    def listedDeadProperties(self, info: ResourceInfo):
        """
        The dead properties of a resource this user listed (no second
        look at the tree to tell a file from a collection).
        """
        self.authorize(Action.LIST, info.path, info.isCollection)
        return self._store.deadProperties(info.path, info.isCollection)

    def stat(self, path: StorePath) -> Optional[ResourceInfo]:
        info = self._store.stat(path)
        self.authorize(Action.LIST, path, info is not None and info.isCollection)
        return None if info is not None and self._placeholderHidden(info) else info

    def etag(self, path: StorePath) -> str:
        self.authorize(Action.READ, path)
        return self._store.etag(path)

    def read(self, path: StorePath) -> bytes:
        self.authorize(Action.READ, path)
        return self._store.read(path)

    def snapshot(self, path: StorePath) -> Optional[FileSnapshot]:
        self.authorize(Action.READ, path)
        return self._store.snapshot(path)

    def children(self, path: StorePath) -> Iterator[ResourceInfo]:
        """
        The members of the collection C{path} this user may see, lazily.
        """
        self.authorize(Action.LIST, path, isCollection=True)
        members = visibleMembers(self.uid, self.isAdmin, self._store.children(path), self.anonymousReads,
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
        return self._store.openUpload(path)

    def publish(self, path: StorePath, body: bytes, check: Optional[Callable[[], None]] = None) -> defer.Deferred:
        """
        Publish C{body} at C{path} atomically, away from the reactor (see
        L{fbtwist.interfaces.IUpload.commitAsync}).

        @param check: Raises to refuse the publish (a precondition, a lock
            in the way); it runs right before the new version appears, in
            another thread, under the lock store's mutex, so it must work
            from values only (never a request).
        @return: A Deferred firing with C{True} when the file was created.
        @raise fbtwist.errors.PermissionDenied: When this user may not
            write C{path}.
        """
        self.authorize(Action.WRITE, path)
        upload = self._store.openUpload(path)
        return upload.commitAsync(body, check, exclusive=self.lockStore().exclusive)

    def delete(self, path: StorePath) -> None:
        info = self._store.stat(path)
        self.authorize(Action.WRITE, path, info is not None and info.isCollection)
        self._store.delete(path)

    def makeCollection(self, path: StorePath) -> None:
        self.authorize(Action.MANAGE, path, isCollection=True)
        self._store.makeCollection(path)

    def deadProperties(self, path: StorePath):
        self.authorize(Action.LIST, path, self._isCollection(path))
        return self._store.deadProperties(path)

    def setDeadProperties(self, path: StorePath, properties) -> None:
        self.authorize(Action.WRITE, path, self._isCollection(path))
        self._store.setDeadProperties(path, properties)

    def copy(self, source: StorePath, destination: StorePath, recursive: bool = True) -> None:
        isCollection = self._isCollection(source)
        self.authorize(Action.READ if not isCollection else Action.LIST, source, isCollection)
        self.authorize(Action.MANAGE if isCollection else Action.WRITE, destination, isCollection)
        self._store.copy(source, destination, recursive)

    def move(self, source: StorePath, destination: StorePath) -> None:
        isCollection = self._isCollection(source)
        action = Action.MANAGE if isCollection else Action.WRITE
        self.authorize(action, source, isCollection)
        self.authorize(action, destination, isCollection)
        self._store.move(source, destination)

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
        return self._store.metadataDirectory(LOCK_DIRECTORY, create=False)

    def lockStore(self) -> LockStore:
        """
        The WebDAV locks of the tree.
        """
        return LockStore(self.lockDirectory(), WallClock)

    def takeLock(self, locks: LockStore, path: StorePath, scope: str, depth: str, owner: str,
                 timeout: int) -> Lock:
        """
        Lock C{path} for this user (a write of it).

        @param locks: This avatar's L{lockStore}, as the caller checked it.
        @raise fbtwist.errors.PermissionDenied: When this user may not.
        @raise fbtwist.access.values.LockConflict: When another lock is in
            the way.
        @raise fbtwist.access.values.TooManyLocks: When the user holds too
            many.
        """
        self.authorize(Action.WRITE, path, self._isCollection(path))
        return locks.create(path, scope, depth, owner, self.uid, timeout)

    def refreshLock(self, locks: LockStore, path: StorePath, held, timeout: int) -> Optional[Lock]:
        """
        Refresh one of this user's locks covering C{path} whose token is
        among C{held} (the tokens the request submits).

        @return: The refreshed lock, or C{None} when there is none such.
        @raise fbtwist.errors.PermissionDenied: When this user may not
            write C{path}.
        """
        self.authorize(Action.WRITE, path, self._isCollection(path))
        for current in locks.covering(path):
            if current.token in held and current.principal == self.uid:
                refreshed = locks.refresh(current.token, timeout)
                if refreshed is not None:
                    return refreshed
        return None

    def unlock(self, path: StorePath, token: str) -> bool:
        """
        Remove the lock C{token} on C{path}: a user may remove their own
        locks, an administrator anyone's.

        @return: C{False} when no lock C{token} covers C{path}.
        @raise fbtwist.errors.NotFound: When nothing is at C{path}.
        @raise fbtwist.errors.PermissionDenied: When this user may not.
        """
        info = self._store.stat(path)
        if info is None:
            raise NotFound()
        self.authorize(Action.WRITE, path, info.isCollection)
        locks = self.lockStore()
        current = locks.get(token)
        if current is None or not current.covers(path):
            return False
        if current.principal != self.uid and not self.isAdmin:
            raise PermissionDenied("the lock belongs to someone else")
        locks.remove(token)
        return True

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
        info = self._store.stat(path)
        return info is not None and info.isCollection
