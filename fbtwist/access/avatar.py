"""
The filesystem avatar: one user acting on the calendar tree.

Protocol code (the DAV resource, the FTP shell) acts only through an
L{CalendarAvatar}, whose every operation first asks
L{fbtwist.access.permissions.authorize}, so HTTP and FTP cannot disagree about who
may write what.  Its operations return Deferreds: those that only look
(a C{stat}, a listing's start, the locks in force) fire at once; those
that may block (a write's fsync and rename, a collection's removal or copy,
waiting for the lock store's mutex) run in the store's thread pool.  Every
change is asked under L{Preconditions} (entity tags, a WebDAV C{If} header,
lock tokens), which the avatar evaluates
(L{fbtwist.access.preconditions}) right before it makes the change, under
the lock store's mutex, so protocols never see a lock store.
"""

import weakref
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from twisted.internet import defer
from zope.interface import implementer

from fbtwist.access import preconditions as conditions
from fbtwist.access.permissions import Action, authorize, listableNames, ownFileName
from fbtwist.access.values import NO_PRECONDITIONS, ActiveLocks, LockGranted, Preconditions
from fbtwist.access.visibility import Detail, FreeBusyVisibility, PlainSource, PublishedFile, Target, Viewer, Visible
from fbtwist.calendar.freebusy import TimeRange
from fbtwist.errors import (
    AlreadyExists,
    Conflict,
    InsufficientStorage,
    LockedBy,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
)
from fbtwist.interfaces import ICalendarAvatar, ICalendarStore, IFreeBusyReader
from fbtwist.store.locks import LOCK_DIRECTORY, LockConflict, LockStore, TooManyLocks, WallClock
from fbtwist.store.paths import FileSnapshot, ResourceInfo, StorePath, validatePath

#: The most dead-property text one resource may carry (a user could
#: otherwise fill the disk one PROPPATCH at a time).
MAX_DEAD_PROPERTIES = 256 * 1024

#: Each store's L{LockStore}, made once (see L{locksOf}).
_lockStores: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def locksOf(store: ICalendarStore) -> LockStore:
    """
    The WebDAV locks of C{store}'s tree: one L{LockStore} per store, made at
    its first use (it keeps what it learnt of the tree's lock index, and
    every publish asks it).
    """
    locks = _lockStores.get(store)
    if locks is None:
        locks = _lockStores[store] = LockStore(store.metadataDirectory(LOCK_DIRECTORY, create=False), WallClock)
    return locks


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

    def plainNow(self, target: Target, whole: bool = True) -> Optional[PlainSource]:
        """
        The one file and detail C{target}'s whole answer is made of, when
        known at once: L{FreeBusyVisibility.plainNow}.
        """
        return self.visibility.plainNow(self.viewer, target, whole)

    def visibleFrom(self, source: PlainSource):
        """
        The answer of a L{plainNow} source: L{FreeBusyVisibility.visibleFrom}.
        """
        return self.visibility.visibleFrom(source)

    def rememberedAnswer(self, target: Target):
        """
        The plain answer about C{target} remembered in memory:
        L{FreeBusyVisibility.rememberedNow}.
        """
        return self.visibility.rememberedNow(self.viewer, target)

    def rememberAnswer(self, ticket: tuple, answer: tuple) -> None:
        """
        Remember a plain answer: L{FreeBusyVisibility.rememberNow}.
        """
        self.visibility.rememberNow(ticket, answer)

    def keepAnswer(self, source: PlainSource, kept: bytes) -> None:
        """
        Keep C{kept} with the source's file version:
        L{FreeBusyVisibility.keepAnswer}.
        """
        self.visibility.keepAnswer(source, kept)

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

    # -- looking: these fire at once -----------------------------------------

    def listedETag(self, info: ResourceInfo) -> str:
        """
        The entity tag of a file this user listed (a property, as
        C{DAV:getetag}), at once: asked for every member of a listing.

        @raise fbtwist.errors.NotFound: When it is gone meanwhile.
        """
        self.authorize(Action.LIST, info.path, info.isCollection)
        return self._store.etag(info.path)

    def listedDeadProperties(self, info: ResourceInfo) -> Dict[str, str]:
        """
        The dead properties of a resource this user listed (no second
        look at the tree to tell a file from a collection), at once.
        """
        self.authorize(Action.LIST, info.path, info.isCollection)
        return self._store.deadProperties(info.path, info.isCollection)

    def stat(self, path: StorePath) -> defer.Deferred:
        """
        @return: A Deferred firing with the L{ResourceInfo} at C{path}, or
            C{None} when nothing (this user may see) is there.
        """
        return defer.maybeDeferred(self._visibleStat, path)

    def _visibleStat(self, path: StorePath) -> Optional[ResourceInfo]:
        info = self._store.stat(path)
        self.authorize(Action.LIST, path, info is not None and info.isCollection)
        return None if info is not None and self._placeholderHidden(info) else info

    def read(self, path: StorePath) -> defer.Deferred:
        """
        @return: A Deferred firing with the bytes of the file at C{path}.
        """
        return defer.maybeDeferred(self._read, path)

    def _read(self, path: StorePath) -> bytes:
        self.authorize(Action.READ, path)
        return self._store.read(path)

    def snapshot(self, path: StorePath) -> defer.Deferred:
        """
        @return: A Deferred firing with a L{FileSnapshot} of the file at
            C{path} (bytes, ETag and time of one version), or C{None}.
        """
        return defer.maybeDeferred(self._snapshot, path)

    def _snapshot(self, path: StorePath) -> Optional[FileSnapshot]:
        self.authorize(Action.READ, path)
        return self._store.snapshot(path)

    def list(self, path: StorePath) -> defer.Deferred:
        """
        The members of the collection C{path} this user may see.

        @return: A Deferred firing with an iterator of L{ResourceInfo}s,
            read lazily from the tree as it is consumed (a listing of
            100,000 files is streamed, not held).
        """
        return defer.maybeDeferred(self._children, path)

    def _children(self, path: StorePath) -> Iterator[ResourceInfo]:
        return (info for info, _, _ in self._detailedChildren(path, False, False))

    def listDetailed(self, path: StorePath, etags: bool = False, deadProperties: bool = False) -> defer.Deferred:
        """
        L{list}, each member with what a PROPFIND shows of it besides its
        L{ResourceInfo}, read in the same pass over the tree (as
        L{listedETag} and L{listedDeadProperties} would give them).

        @param etags: Whether to read each file's entity tag.
        @param deadProperties: Whether to read each member's dead properties.
        @return: A Deferred firing with an iterator of C{(info, entity tag
            or None, dead properties)}, read lazily as L{list}'s.
        """
        return defer.maybeDeferred(self._detailedChildren, path, etags, deadProperties)

    def _detailedChildren(self, path: StorePath, etags: bool, deadProperties: bool) -> Iterator:
        self.authorize(Action.LIST, path, isCollection=True)
        if self.isAdmin and self.uid is not None:
            # An administrator sees every member: no question per member.
            return self._store.listing(path, etags, deadProperties)

        def visible(info: ResourceInfo) -> bool:
            try:
                self.authorize(Action.LIST, info.path, info.isCollection)
            except PermissionDenied:
                return False
            return not self._placeholderHidden(info)

        # A user sees only their own files: the others are skipped by name.
        names = listableNames(self.uid, self.isAdmin, path, self.anonymousReads, self.rooms)
        named = None if names is None else (lambda name: name.lower() in names)
        return self._store.listing(path, etags, deadProperties, visible, named)

    def _placeholderHidden(self, info: ResourceInfo) -> bool:
        """
        Whether the anonymous reader sees C{info} as absent: an empty file
        is a placeholder (a client creates the file, then fills it), so its
        owner has published nothing; the lookups answer them as they answer
        a name nobody has, and so must a listing or a download.
        """
        return self.uid is None and not info.isCollection and info.size == 0

    def activeLocks(self) -> defer.Deferred:
        """
        The WebDAV locks in force in the tree (a few small files, read at
        once): for showing them, as C{DAV:lockdiscovery} does.

        @return: A Deferred firing with L{ActiveLocks}.
        """
        def read():
            locks = self._locks()
            return ActiveLocks(locks.all(), locks.clock.seconds())

        return defer.maybeDeferred(read)

    # -- changing: preconditions evaluated here, slow work in a thread ---------

    def publish(self, path: StorePath, body: bytes, preconditions: Preconditions = NO_PRECONDITIONS) -> defer.Deferred:
        """
        Publish C{body} at C{path} atomically, away from the reactor (see
        L{fbtwist.interfaces.IUpload.commitAsync}).

        @param preconditions: Evaluated right before the new version
            appears, in another thread, under the lock store's mutex when a
            lock may apply: the entity tags against the file's current
            version, the C{If} header, and the locks of the file (and of
            its collection when the file is new).
        @return: A Deferred firing with C{True} when the file was created,
            or failing with L{PermissionDenied}, L{PreconditionFailed},
            L{LockedBy} or what the store refuses.
        """
        try:
            self.authorize(Action.WRITE, path)
            upload = self._store.openUpload(path)
        except Exception:
            return defer.fail()
        return self._commit(upload, body, preconditions)

    def openUpload(self, path: StorePath, preconditions: Preconditions = NO_PRECONDITIONS) -> defer.Deferred:
        """
        Start a streamed publish of C{path} (FTP's C{STOR}): refused at once
        when this user may not write it or a lock stands in the way; what
        is written to the upload appears once L{commitUpload} commits it.

        @return: A Deferred firing with an L{fbtwist.interfaces.IUpload}.
        """
        def open():
            self.authorize(Action.WRITE, path)
            self._check(self._locks(), preconditions, path, [(path, False, True)])
            return self._store.openUpload(path)

        return defer.maybeDeferred(open)

    def checkChange(self, path: StorePath, preconditions: Preconditions = NO_PRECONDITIONS) -> defer.Deferred:
        """
        Refuse at once what adding, replacing or removing the file C{path}
        would be refused for by a lock or the C{If} header, for a protocol
        that makes several changes and must fail before the first (FTP's
        rename); each change still evaluates them again when it is made.

        @return: A Deferred firing with C{None}, or failing with
            L{LockedBy} or L{PreconditionFailed}.
        """
        return defer.maybeDeferred(lambda: self._check(self._locks(), preconditions, path, [(path, False, True)]))

    def commitUpload(self, upload, preconditions: Preconditions = NO_PRECONDITIONS) -> defer.Deferred:
        """
        Commit an upload from L{openUpload} as L{publish} commits its body
        (a lock taken meanwhile refuses it; the old version is then kept).

        @return: A Deferred firing with C{True} when the file was created.
        """
        return self._commit(upload, b"", preconditions)

    def _commit(self, upload, data: bytes, preconditions: Preconditions) -> defer.Deferred:
        path = upload.path
        try:
            locks = self._locks()
        except Exception:
            upload.abort()
            return defer.fail()

        def check() -> None:
            # A new file changes its collection's membership, which a lock
            # on the collection protects; whether it is new is asked only
            # when the index says a lock may apply here (the collection's
            # included), else no lock needs it.
            created = locks.mayApply(path) and self._store.stat(path) is None
            self._check(locks, preconditions, path, [(path, False, created)], entityTags=True)

        # Without conditions, only a WebDAV lock can refuse it: the commit
        # process may commit it (it asks the lock index itself).
        plain = preconditions.ifMatch is None and preconditions.ifNoneMatch is None and preconditions.ifHeader is None
        return upload.commitAsync(data, check, exclusive=locks.exclusive, plain=plain)

    def delete(self, path: StorePath, preconditions: Preconditions = NO_PRECONDITIONS) -> defer.Deferred:
        """
        Remove the file or collection (with everything in it) at C{path},
        its dead properties and the locks rooted in it.

        @return: A Deferred firing with C{None}, or failing with
            L{NotFound}, L{PermissionDenied}, L{PreconditionFailed} or
            L{LockedBy}.
        """
        def delete():
            info = self._existing(path)
            self.authorize(Action.MANAGE if info.isCollection else Action.WRITE, path, info.isCollection)
            locks = self._locks()

            def work():
                with locks.exclusive():
                    self._check(locks, preconditions, path, [(path, info.isCollection, True)], entityTags=True)
                    self._store.delete(path)
                locks.removeWithin(path)

            return self._store.runBlocking(work)

        return defer.maybeDeferred(delete)

    def makeCollection(self, path: StorePath, preconditions: Preconditions = NO_PRECONDITIONS) -> defer.Deferred:
        """
        Make a collection at C{path} (administrators).

        @return: A Deferred firing with C{None}, or failing with
            L{AlreadyExists} when something is there.
        """
        def make():
            self.authorize(Action.MANAGE, path, isCollection=True)
            if self._store.stat(path) is not None:
                raise AlreadyExists("something already exists under that name")
            locks = self._locks()

            def work():
                with locks.exclusive():
                    self._check(locks, preconditions, path, [(path, False, True)])
                    self._store.makeCollection(path)

            return self._store.runBlocking(work)

        return defer.maybeDeferred(make)

    def copy(self, source: StorePath, destination: StorePath, preconditions: Preconditions = NO_PRECONDITIONS,
             overwrite: bool = True, recursive: bool = True) -> defer.Deferred:
        """
        Copy C{source} (with its members when C{recursive}) and its dead
        properties onto C{destination}, replacing what is there when
        C{overwrite}.

        @return: A Deferred firing with whether something was replaced, or
            failing with L{NotFound} (no source), L{PermissionDenied} (the
            same place, or into itself), L{PreconditionFailed} (a
            destination and no C{overwrite}), L{Conflict} (no collection
            to put it in), L{LockedBy}.
        """
        return defer.maybeDeferred(self._transfer, source, destination, preconditions, True, overwrite, recursive)

    def move(self, source: StorePath, destination: StorePath, preconditions: Preconditions = NO_PRECONDITIONS,
             overwrite: bool = True) -> defer.Deferred:
        """
        Move C{source} onto C{destination} as L{copy} copies it; the locks
        rooted in C{source} go.
        """
        return defer.maybeDeferred(self._transfer, source, destination, preconditions, False, overwrite, True)

    def _transfer(self, source: StorePath, destination: StorePath, preconditions: Preconditions,
                  keepSource: bool, overwrite: bool, recursive: bool) -> defer.Deferred:
        self._existing(source)
        if destination == source:
            raise PermissionDenied("the source and the destination are the same")
        if not source or destination[: len(source)] == source:
            raise PermissionDenied("a collection cannot be copied or moved into itself")
        self.authorizeMove(source, destination, keepSource)
        existing = self._store.stat(destination)
        if existing is not None and not overwrite:
            raise PreconditionFailed("the destination exists and Overwrite is F")
        parent = self._store.stat(destination[:-1])
        if parent is None or not parent.isCollection:
            raise Conflict("the destination's parent collection does not exist")
        changes = [(destination, True, True)]
        if not keepSource:
            changes.append((source, True, True))
        locks = self._locks()

        def work():
            with locks.exclusive():
                self._check(locks, preconditions, source, changes)
                if existing is not None:
                    self._store.delete(destination)
                if keepSource:
                    self._store.copy(source, destination, recursive)
                else:
                    self._store.move(source, destination)
            if existing is not None:
                locks.removeWithin(destination)
            if not keepSource:
                locks.removeWithin(source)
            return existing is not None

        return self._store.runBlocking(work)

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

    def patchProperties(self, path: StorePath, updates: Sequence[Tuple[str, Optional[str]]],
                        preconditions: Preconditions = NO_PRECONDITIONS) -> defer.Deferred:
        """
        Set and remove dead properties of C{path}, all or nothing: each of
        C{updates}, in order, sets a key to serialized XML or (C{None})
        removes it.  No updates: only the preconditions are evaluated.

        @return: A Deferred firing with C{None}, or failing with
            L{InsufficientStorage} when the properties would be larger than
            L{MAX_DEAD_PROPERTIES} (nothing changes).
        """
        def patch():
            info = self._existing(path)
            self.authorize(Action.WRITE, path, info.isCollection)
            locks = self._locks()

            def work():
                with locks.exclusive():
                    self._check(locks, preconditions, path, [(path, False, False)])
                    if not updates:
                        return
                    properties = self._store.deadProperties(path, info.isCollection)
                    for key, value in updates:
                        if value is None:
                            properties.pop(key, None)
                        else:
                            properties[key] = value
                    if sum(len(k) + len(v) for k, v in properties.items()) > MAX_DEAD_PROPERTIES:
                        raise InsufficientStorage("the resource's properties would be too large")
                    self._store.setDeadProperties(path, properties)

            return self._store.runBlocking(work)

        return defer.maybeDeferred(patch)

    def lock(self, path: StorePath, scope: str, depth: str, owner: str, timeout: int,
             preconditions: Preconditions = NO_PRECONDITIONS) -> defer.Deferred:
        """
        Lock C{path} for this user (a write of it); an unmapped name gets an
        empty file first.  Taking the lock waits, in a thread, for the
        publishes it concerns that are under way.

        @param scope: L{fbtwist.access.values.EXCLUSIVE} or C{SHARED}.
        @param depth: C{"0"} or C{"infinity"}.
        @param owner: The client's C{DAV:owner} element as XML, or C{""}.
        @param timeout: Seconds asked for (bounded by the lock store).
        @return: A Deferred firing with a L{LockGranted}, or failing with
            L{PermissionDenied}, L{PreconditionFailed} (the C{If} header),
            L{LockedBy} (a lock in the way of the new file, or a
            conflicting one, C{conflicting} set),
            L{InsufficientStorage} (the user holds too many locks).
        """
        def lock():
            isCollection = self._isCollection(path)
            self.authorize(Action.WRITE, path, isCollection)
            locks = self._locks()

            def work():
                created = False
                with locks.exclusive():
                    self._check(locks, preconditions, path, [])
                    if self._store.stat(path) is None:
                        self._check(locks, preconditions, path, [(path, False, True)])
                        created = self._store.openUpload(path).commit()
                try:
                    taken = locks.create(path, scope, depth, owner, self.uid, timeout)
                except TooManyLocks:
                    if created:
                        self._store.delete(path)
                    raise InsufficientStorage("you hold too many locks; unlock some first") from None
                except LockConflict as e:
                    if created:
                        self._store.delete(path)
                    raise LockedBy("the resource is locked", e.lock, self._isCollection(e.lock.path),
                                   conflicting=True) from None
                return LockGranted(taken, created, locks.clock.seconds())

            return self._store.runBlocking(work)

        return defer.maybeDeferred(lock)

    def refreshLock(self, path: StorePath, timeout: int,
                    preconditions: Preconditions = NO_PRECONDITIONS) -> defer.Deferred:
        """
        Refresh one of this user's locks covering C{path} whose token
        C{preconditions} submits.

        @return: A Deferred firing with a L{LockGranted}, or C{None} when
            there is no such lock; failing with L{PreconditionFailed} when
            nothing is at C{path}, L{PermissionDenied} when this user may
            not write it.
        """
        def refresh():
            info = self._store.stat(path)
            self.authorize(Action.WRITE, path, info is not None and info.isCollection)
            if info is None:
                raise PreconditionFailed("nothing is locked there")
            locks = self._locks()

            def work():
                for current in locks.covering(path):
                    if current.token in preconditions.tokens and current.principal == self.uid:
                        refreshed = locks.refresh(current.token, timeout)
                        if refreshed is not None:
                            return LockGranted(refreshed, False, locks.clock.seconds())
                return None

            return self._store.runBlocking(work)

        return defer.maybeDeferred(refresh)

    def unlock(self, path: StorePath, token: str, preconditions: Preconditions = NO_PRECONDITIONS) -> defer.Deferred:
        """
        Remove the lock C{token} on C{path}: a user may remove their own
        locks, an administrator anyone's.

        @return: A Deferred firing with C{False} when no lock C{token}
            covers C{path}; failing with L{NotFound} when nothing is at
            C{path}, L{PermissionDenied} when this user may not.
        """
        def unlock():
            info = self._existing(path)
            self.authorize(Action.WRITE, path, info.isCollection)
            locks = self._locks()

            def work():
                self._check(locks, preconditions, path, [])
                current = locks.get(token)
                if current is None or not current.covers(path):
                    return False
                if current.principal != self.uid and not self.isAdmin:
                    raise PermissionDenied("the lock belongs to someone else")
                locks.remove(token)
                return True

            return self._store.runBlocking(work)

        return defer.maybeDeferred(unlock)

    # -- the domain's own ------------------------------------------------------

    def _locks(self) -> LockStore:
        """
        The WebDAV locks of the tree, kept in it, shared by every server
        using it.  Reading them needs no permission; taking a lock is
        authorized as a write of the locked path.
        """
        return locksOf(self._store)

    def _check(self, locks: LockStore, preconditions: Preconditions, path: StorePath,
               changes: List[conditions.Change], entityTags: bool = False) -> None:
        """
        Evaluate C{preconditions} for a change of C{path} touching
        C{changes}: the entity tags (when C{entityTags}: the operations
        replacing or removing a file's content), the C{If} header, then the
        locks.
        """
        if entityTags and (preconditions.ifMatch is not None or preconditions.ifNoneMatch is not None):
            exists = self._store.stat(path) is not None
            conditions.checkEntityTags(preconditions, exists, self._currentETag(path) if exists else None)
        if preconditions.ifHeader is not None:
            conditions.checkIfHeader(preconditions, path, locks.all(), self._currentETag)
        conditions.checkLocks(preconditions, self.uid, changes, locks.affecting, self._isCollection)

    def _currentETag(self, path: StorePath) -> Optional[str]:
        """
        The entity tag of the file at C{path}, or C{None} (no file, a
        collection, or one this user may not read): the state preconditions
        compare, which tells no more than a read would.
        """
        info = self._store.stat(path)
        if info is None or info.isCollection:
            return None
        try:
            self.authorize(Action.READ, path)
            return self._store.etag(path)
        except (PermissionDenied, NotFound):
            return None

    def _existing(self, path: StorePath) -> ResourceInfo:
        info = self._store.stat(path)
        if info is None:
            raise NotFound()
        return info

    def _isCollection(self, path: StorePath) -> bool:
        info = self._store.stat(path)
        return info is not None and info.isCollection
