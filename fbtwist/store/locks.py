"""
WebDAV write locks, kept in the calendar tree.

Each lock is one small JSON file in a hidden directory of the tree, so a
restarted server keeps its locks and several servers sharing one tree honour
each other's.  Files are written to a temporary name, fsynced and renamed;
taking, refreshing and removing a lock happen under an exclusive C{flock}
of one file in that directory, so two servers cannot both grant conflicting
locks.  Locks past their timeout are ignored and removed when seen.

Beside the locks, an index: for every path a lock is rooted at, an empty
file named by a hash of the path (L{_MARKER_SUFFIX}), made before the lock's
file and removed after the last lock rooted there.  Whether any lock can
apply to a path is then a few C{stat}s of names (the path and its
ancestors), not a reading of every lock; only when one of those names
exists are the locks read.  Each L{LockStore} keeps the names of the index
while the directory's modification time stays as it was (any server making
or removing an entry changes it), so that a publish then costs one C{stat}
of the directory.

A publish whose target no lock can apply to commits without the mutex
(L{LockStore.publishing}).  What keeps a WebDAV lock taken meanwhile (by
any server) from being overtaken by such a publish: the publish holds its
temporary file's C{flock} exclusively from before it looks at the index
until its rename, and taking a lock, once its index entry and file are
written, waits for every temporary file it could concern whose lock is held
exclusively (L{LockStore.create}).  A publish that looked before the entry
existed has therefore renamed before the lock is granted; one that looks
after sees the entry and takes the mutex.
"""

import errno
import fcntl
import hashlib
import json
import os
import threading
import time
import uuid
from contextlib import contextmanager
from functools import lru_cache
from typing import ContextManager, Hashable, Iterator, List, NamedTuple, Optional, Set, Tuple

from twisted.logger import Logger
from twisted.python.filepath import FilePath

from fbtwist.errors import descriptorError
from fbtwist.store.files import (
    _NO_LOCKS,
    STAGING_FOLDER,
    atomicWrite,
    isTemporaryOf,
    stagedStem,
    stagedTarget,
    stagingUsable,
    waitForCommit,
)
from fbtwist.store.watch import MISSING, FolderWatch

EXCLUSIVE = "exclusive"
SHARED = "shared"
INFINITY = "infinity"
TOKEN_SCHEME = "opaquelocktoken:"
#: The longest lock a client gets, in seconds (also for C{Infinite}).
MAX_TIMEOUT = 3600
DEFAULT_TIMEOUT = MAX_TIMEOUT
#: The most locks one user may hold at once (each is a file in the tree).
MAX_LOCKS_PER_PRINCIPAL = 64

class WallClock:
    """
    The clock locks are timed by: wall time, the same for every server
    sharing the tree.
    """

    @staticmethod
    def seconds() -> float:
        return time.time()


#: The store's metadata directory the locks live in.
LOCK_DIRECTORY = "davlocks"

_SUFFIX = ".lock"
_MUTEX = ".mutex"
#: An index entry: some lock may be rooted at the path its name hashes.
_MARKER_SUFFIX = ".held"

#: Lock directories whose locks this process has checked to be indexed
#: (locks written before the index existed get their entries then).
_indexed: Set[str] = set()
#: The paths the current thread's publish found no lock for, while it
#: holds its temporary file exclusively (L{LockStore.publishing}).
_publishing = threading.local()


@lru_cache(maxsize=4096)
def _markerName(path: Tuple[str, ...]) -> str:
    # Cached: every publish asks for the names of its file and its
    # ancestors, the same few paths over and over.
    key = "/".join(path).encode("utf-8", "surrogatepass")
    return hashlib.sha256(key).hexdigest()[:40] + _MARKER_SUFFIX


class Lock(NamedTuple):
    """
    One write lock.

    @ivar path: The store path of the lock root.
    @ivar depth: C{"0"} or C{"infinity"}.
    @ivar scope: L{EXCLUSIVE} or L{SHARED}.
    @ivar owner: The client's C{DAV:owner} element as XML, or C{""}.
    @ivar principal: The uid that took the lock.
    @ivar timeout: The granted timeout in seconds.
    @ivar expires: When it lapses, in the clock's seconds.
    """

    token: str
    path: Tuple[str, ...]
    depth: str
    scope: str
    owner: str
    principal: Optional[str]
    timeout: int
    expires: float

    def covers(self, path) -> bool:
        """
        Whether the lock applies to C{path}: its root, or (depth infinity)
        anything below it.
        """
        path = tuple(path)
        if path == self.path:
            return True
        return self.depth == INFINITY and path[: len(self.path)] == self.path

    def within(self, path) -> bool:
        """
        Whether the lock's root is C{path} or below it.
        """
        return self.path[: len(path)] == tuple(path)

    def overlaps(self, path, depth: str) -> bool:
        """
        Whether a lock on C{path} with C{depth} would apply to a resource
        this lock applies to.
        """
        path = tuple(path)
        return self.covers(path) or (depth == INFINITY and self.within(path))

    def remaining(self, now: float) -> int:
        return max(0, int(self.expires - now + 0.5))


class LockConflict(Exception):
    """
    A lock is held that conflicts with the one asked for.

    @ivar lock: That lock.
    """

    def __init__(self, lock: Lock):
        super().__init__(lock.token)
        self.lock = lock


class TooManyLocks(Exception):
    """
    The user already holds L{MAX_LOCKS_PER_PRINCIPAL} locks.
    """


class LockStore:
    """
    The locks of one tree.

    @param directory: The hidden directory the locks live in.
    @param clock: An C{IReactorTime} (only C{seconds} is used); every
        server sharing the tree must use the wall clock.
    """

    log = Logger()
    #: The index's entries as last listed, with the lock directory's
    #: identity and modification time then (see L{_entries}).
    _listed: Optional[Tuple[Hashable, frozenset]] = None
    #: The lock directory's version (made when first needed).
    _watch: Optional[FolderWatch] = None

    def __init__(self, directory: FilePath, clock):
        self.directory = directory
        self.clock = clock

    def exclusive(self) -> "_Mutex":
        """
        Hold the tree's lock mutex (an exclusive C{flock}, so other servers
        sharing the tree wait too): taking, refreshing and removing locks
        hold it, and so does a publish between its lock check and its
        rename when a lock may apply to its file (L{publishing}).  Blocks:
        taken in the reactor thread only around a few small files' I/O.

        @return: A context manager holding the mutex while entered; an
            upload given it uses its C{publishing} instead (see
            L{fbtwist.store.uploads.Upload.commitAsync}).
        """
        return _Mutex(self)

    def _lockMutex(self) -> int:
        mutex = self.directory.child(_MUTEX).path
        try:
            # Without O_CREAT: creating takes the directory's own lock, which
            # every publish would then contend for with readers of the locks.
            fd = os.open(mutex, os.O_RDWR)
        except FileNotFoundError:
            # The directory appears with the first use: reading needs none.
            self.directory.makedirs(ignoreExistingDirectory=True)
            fd = os.open(mutex, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        return fd

    @contextmanager
    def publishing(self, path, fd: int, locked: bool = False) -> Iterator[None]:
        """
        What a publish of C{path} holds around its last check and its rename
        (L{fbtwist.store.uploads.Upload.commitAsync}), in place of
        L{exclusive}: the exclusive C{flock} of its temporary file C{fd}
        (locked shared while it was written, see
        L{fbtwist.store.files._createTemporary}), and the mutex too only
        when the index says a lock may apply to C{path} or to its parent.
        Without the mutex, L{affecting} of C{path} answers from what was
        looked at here, in this thread, while it is held.

        @param locked: C{fd} is locked exclusively already (a publish sent
            in one piece locks its file so when it creates it, in the
            commit's thread).
        """
        if not locked:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as e:
                if e.errno not in _NO_LOCKS:
                    raise
                # No locks on this filesystem: no waiting for commits either.
                with self.exclusive():
                    yield
                return
        path = tuple(path)
        if self._mayApply(path):
            with self.exclusive():
                # An entry left by locks that expired goes now, so that it
                # costs one publish the mutex, not every one.
                self._pruneIndex()
                yield
            return
        _publishing.free = (self.directory.path, path)
        try:
            yield
        finally:
            _publishing.free = None

    def mayApply(self, path) -> bool:
        """
        Whether the index says a lock may apply to C{path} or to a member of
        it: one is rooted at it or at one of its ancestors (its collection
        included).  C{False} means that no lock does; C{True} that one may
        (L{affecting} tells which).
        """
        return self._mayApply(tuple(path))

    def _mayApply(self, path) -> bool:
        """
        Whether a lock may be rooted at C{path} or at one of its ancestors:
        one C{stat} per name, no lock read.
        """
        if getattr(_publishing, "free", None) == (self.directory.path, path):
            return False
        self._index()
        entries = self._entries()
        if entries is not None:
            return any(_markerName(path[:length]) in entries for length in range(len(path) + 1))
        for length in range(len(path) + 1):
            try:
                os.stat(os.path.join(self.directory.path, _markerName(path[:length])))
                return True
            except FileNotFoundError:
                continue
            except NotADirectoryError:
                return False
            except OSError as e:
                raise (descriptorError(e) or e) from None
        return False

    def _entries(self) -> Optional[frozenset]:
        """
        The index's entries (names), listed again only when the lock
        directory changed: one C{stat} per question while it does not.
        C{None} while its last change is too recent to be sure of (then
        each name is looked for).

        Making or removing an entry, by this server or any other sharing the
        tree, changes the directory's entries, so its version
        (L{fbtwist.store.watch.FolderWatch}, which says when that can be
        trusted) tells whether a listing kept is still right.
        """
        watch = self._watch
        if watch is None:
            watch = self._watch = FolderWatch(self.directory.path)
        version = watch.version()
        if version is None:
            return None
        if version is MISSING:
            return frozenset()
        listed = self._listed
        if listed is not None and listed[0] == version:
            return listed[1]
        try:
            names = os.listdir(self.directory.path)
        except (FileNotFoundError, NotADirectoryError):
            return frozenset()
        except OSError as e:
            raise (descriptorError(e) or e) from None
        entries = frozenset(name for name in names if name.endswith(_MARKER_SUFFIX))
        # Listed after the version was read: a change in between shows in
        # the next version, and the names are listed again then.
        self._listed = (version, entries)
        return entries

    def _index(self) -> None:
        """
        Once per process and lock directory: give the locks written without
        an index entry (by an older version) theirs.
        """
        if self.directory.path in _indexed:
            return
        if not os.path.isdir(self.directory.path):
            _indexed.add(self.directory.path)
            return
        with self.exclusive():
            self._indexHeld()

    def _indexHeld(self) -> None:
        # L{_index} under the mutex.
        if self.directory.path not in _indexed:
            for lock in self.all():
                self._mark(lock.path)
            _indexed.add(self.directory.path)

    def _mark(self, path) -> None:
        marker = os.path.join(self.directory.path, _markerName(path))
        if not os.path.exists(marker):
            os.close(os.open(marker, os.O_WRONLY | os.O_CREAT, 0o644))

    def _pruneIndex(self, inForce: Optional[List["Lock"]] = None) -> None:
        """
        Remove the index entries no lock in force is rooted at any more
        (the last one there was removed, or expired).  Under L{exclusive}:
        an entry is made and removed only under the mutex, so one being
        made for a new lock is never taken away.
        """
        used = {_markerName(lock.path) for lock in (self.all() if inForce is None else inForce)}
        try:
            names = os.listdir(self.directory.path)
        except FileNotFoundError:
            return
        for name in names:
            if name.endswith(_MARKER_SUFFIX) and name not in used:
                try:
                    os.unlink(os.path.join(self.directory.path, name))
                except FileNotFoundError:
                    pass

    def _waitForCommits(self, lock: Lock) -> None:
        """
        Wait for the publishes under way that the new C{lock} concerns and
        that may have looked at the index before its entry was made (see
        the module's description).  The tree is the lock directory's parent.
        """
        tree = os.path.dirname(self.directory.path)
        staging = os.path.join(tree, STAGING_FOLDER)
        self._waitForStagedCommits(staging, lock)
        root = os.path.join(tree, *lock.path)
        if os.path.isdir(root):
            if lock.depth == INFINITY:
                walk = os.walk(root)
            else:
                try:
                    walk = [(root, None, os.listdir(root))]
                except OSError:
                    return
            for directory, _, names in walk:
                for name in names:
                    if isTemporaryOf(name):
                        waitForCommit(os.path.join(directory, name))
            return
        parent, basename = os.path.split(root)
        if self._allStaged(staging, parent, lock.path):
            # Not a look at the folder, which may hold a million files.
            return
        try:
            with os.scandir(parent) as entries:
                names = [entry.name for entry in entries if isTemporaryOf(entry.name, basename)]
        except OSError:
            return
        for name in names:
            waitForCommit(os.path.join(parent, name))

    @staticmethod
    def _allStaged(staging: str, parent: str, path) -> bool:
        """
        Whether every upload of the file C{path}, in the folder C{parent},
        makes its temporary file in the staging folder C{staging}, none
        beside it (see L{fbtwist.store.files.stagingUsable}): the staging
        folder is usable, on the folder's filesystem, and the path fits in
        one of its names.
        """
        if stagedStem(path) is None or not stagingUsable(staging):
            return False
        try:
            return os.stat(parent).st_dev == os.stat(staging).st_dev
        except OSError:
            return False

    @staticmethod
    def _waitForStagedCommits(staging: str, lock: Lock) -> None:
        """
        L{_waitForCommits} of the uploads whose temporary files are in the
        tree's staging folder C{staging}: each one's name tells its
        target's path.
        """
        try:
            names = os.listdir(staging)
        except OSError:
            return
        root = tuple(lock.path)
        for name in names:
            target = stagedTarget(name)
            if target is None or target[:len(root)] != root:
                continue
            # The lock's own file, or (a collection's lock) a member: any
            # below it for an infinite depth, one level down otherwise.
            if len(target) == len(root) or lock.depth == INFINITY or len(target) == len(root) + 1:
                waitForCommit(os.path.join(staging, name))

    def _file(self, token: str) -> Optional[FilePath]:
        if not token.startswith(TOKEN_SCHEME):
            return None
        try:
            name = uuid.UUID(token[len(TOKEN_SCHEME):]).hex
        except ValueError:
            return None
        return self.directory.child(name + _SUFFIX)

    def _load(self, fp: FilePath) -> Optional[Lock]:
        try:
            with open(fp.path, encoding="utf-8") as f:
                data = json.load(f)
            lock = Lock(
                token=data["token"], path=tuple(data["path"]), depth=data["depth"], scope=data["scope"],
                owner=data["owner"], principal=data["principal"], timeout=int(data["timeout"]),
                expires=float(data["expires"]),
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as e:
            if descriptorError(e) is not None:
                # Not a broken lock: ignoring it would let a write through.
                raise descriptorError(e) from None
            self.log.warn("ignoring unreadable lock file {file}: {error}", file=fp.path, error=e)
            return None
        if lock.expires <= self.clock.seconds():
            self._remove(fp)
            return None
        return lock

    def _remove(self, fp: FilePath) -> None:
        try:
            os.unlink(fp.path)
        except FileNotFoundError:
            pass

    def _save(self, lock: Lock) -> None:
        data = json.dumps(lock._asdict(), ensure_ascii=False).encode("utf-8")
        atomicWrite(self._file(lock.token), data)

    def all(self) -> List[Lock]:
        """
        Every lock in force (expired ones are removed on the way).
        """
        locks = []
        try:
            names = os.listdir(self.directory.path)
        except OSError as e:
            if e.errno == errno.ENOENT:
                return []
            raise (descriptorError(e) or e) from None
        for name in names:
            if name.endswith(_SUFFIX) and not name.startswith("."):
                lock = self._load(self.directory.child(name))
                if lock is not None:
                    locks.append(lock)
        return locks

    def get(self, token: str) -> Optional[Lock]:
        """
        The lock in force with C{token}, or C{None}.
        """
        fp = self._file(token)
        return None if fp is None else self._load(fp)

    def covering(self, path) -> List[Lock]:
        """
        The locks that apply to C{path}.
        """
        if not self._mayApply(tuple(path)):
            return []
        return [lock for lock in self.all() if lock.covers(path)]

    def affecting(self, path, recursive: bool = False, membership: bool = False) -> List[Lock]:
        """
        The locks whose tokens a change of C{path} needs.

        @param recursive: The change reaches everything below C{path} too
            (DELETE or MOVE of a collection).
        @param membership: The change adds or removes C{path} from its
            parent collection, which a lock on the parent protects.
        """
        path = tuple(path)
        parent = path[:-1]
        if not recursive and not self._mayApply(path):
            return []
        found = []
        for lock in self.all():
            if (lock.covers(path) or (recursive and lock.within(path))
                    or (membership and path and lock.covers(parent))):
                found.append(lock)
        return found

    def create(self, path, scope: str, depth: str, owner: str, principal: Optional[str], timeout: int) -> Lock:
        """
        Take a new lock.

        @raise LockConflict: When a lock held on an overlapping resource is
            exclusive, or this one is.
        @raise TooManyLocks: When C{principal} holds too many locks already.
        """
        timeout = clampTimeout(timeout)
        with self.exclusive():
            held = 0
            inForce = self.all()
            for other in inForce:
                if other.overlaps(path, depth) and EXCLUSIVE in (scope, other.scope):
                    raise LockConflict(other)
                held += other.principal == principal
            if held >= MAX_LOCKS_PER_PRINCIPAL:
                raise TooManyLocks(principal)
            lock = Lock(
                token=TOKEN_SCHEME + str(uuid.uuid4()), path=tuple(path), depth=depth, scope=scope,
                owner=owner, principal=principal, timeout=timeout,
                expires=self.clock.seconds() + timeout,
            )
            self._indexHeld()
            self._pruneIndex(inForce)
            self._mark(lock.path)
            self._save(lock)
        # Outside the mutex: a publish that saw the entry waits for the
        # mutex while holding its temporary file.
        self._waitForCommits(lock)
        return lock

    def refresh(self, token: str, timeout: int) -> Optional[Lock]:
        """
        Give the lock C{token} a new timeout.

        @return: The refreshed lock, or C{None} when it is not in force.
        """
        timeout = clampTimeout(timeout)
        with self.exclusive():
            lock = self.get(token)
            if lock is None:
                return None
            lock = lock._replace(timeout=timeout, expires=self.clock.seconds() + timeout)
            self._save(lock)
        return lock

    def remove(self, token: str) -> bool:
        """
        @return: Whether the lock C{token} was in force.
        """
        with self.exclusive():
            lock = self.get(token)
            if lock is None:
                return False
            self._remove(self._file(token))
            self._pruneIndex()
        return True

    def removeWithin(self, path) -> None:
        """
        Remove the locks rooted at C{path} or below (it was deleted or
        moved away).
        """
        with self.exclusive():
            for lock in self.all():
                if lock.within(path):
                    self._remove(self._file(lock.token))
            self._pruneIndex()


class _Mutex:
    """
    The lock mutex of one L{LockStore}, held while entered (see
    L{LockStore.exclusive}).
    """

    def __init__(self, store: LockStore):
        self._store = store
        self._fd: Optional[int] = None

    def __enter__(self) -> None:
        self._fd = self._store._lockMutex()
        try:
            # Indexed now, so that what is asked while it is held (which
            # locks affect a path) never takes the mutex a second time.
            self._store._indexHeld()
        except BaseException:
            os.close(self._fd)
            self._fd = None
            raise

    def __exit__(self, *exception) -> bool:
        fd, self._fd = self._fd, None
        os.close(fd)
        return False

    def publishing(self, path, fd: int, locked: bool = False) -> ContextManager[None]:
        """
        What a publish holds instead of the mutex: L{LockStore.publishing}.
        """
        return self._store.publishing(path, fd, locked)


def clampTimeout(seconds: int) -> int:
    return max(1, min(int(seconds), MAX_TIMEOUT))


def parseTimeout(header: Optional[bytes]) -> int:
    """
    The timeout a client asks for (C{Timeout: Second-3600, Infinite}): the
    first value understood, bounded by L{MAX_TIMEOUT}.
    """
    if header is None:
        return DEFAULT_TIMEOUT
    for value in header.decode("latin-1").split(","):
        value = value.strip()
        if value.lower() == "infinite":
            return MAX_TIMEOUT
        if value.lower().startswith("second-"):
            try:
                return clampTimeout(int(value[len("second-"):]))
            except ValueError:
                continue
    return DEFAULT_TIMEOUT
