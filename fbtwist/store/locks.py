"""
WebDAV write locks, kept in the calendar tree.

Each lock is one small JSON file in a hidden directory of the tree, so a
restarted server keeps its locks and several servers sharing one tree honour
each other's.  Files are written to a temporary name, fsynced and renamed;
taking, refreshing and removing a lock happen under an exclusive C{flock}
of one file in that directory, so two servers cannot both grant conflicting
locks.  Locks past their timeout are ignored and removed when seen.
"""

import errno
import fcntl
import json
import os
import time
import uuid
from contextlib import contextmanager
from typing import Iterator, List, NamedTuple, Optional, Tuple

from twisted.logger import Logger
from twisted.python.filepath import FilePath

from fbtwist.errors import descriptorError
from fbtwist.store.files import atomicWrite

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

    def __init__(self, directory: FilePath, clock):
        self.directory = directory
        self.clock = clock

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """
        Hold the tree's lock mutex (an exclusive C{flock}, so other servers
        sharing the tree wait too): taking, refreshing and removing locks
        hold it, and so does a publish between its lock check and its
        rename (L{fbtwist.store.uploads.Upload.commitAsync}).  Blocks: taken in the
        reactor thread only around a few small files' I/O.
        """
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
            yield
        finally:
            os.close(fd)

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
            for other in self.all():
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
            self._save(lock)
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
