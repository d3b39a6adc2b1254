"""
Files on disk: atomic writes (a temporary file on the same filesystem,
flushed, fsynced and renamed over the target, so a reader sees the old file
or the new one, never part of one), temporary files and their sweeping,
directory syncs, ETags and storage errors.

A temporary file is made in the tree's staging folder (L{STAGING_FOLDER},
hidden at the top of the tree, see L{stagingFolder}) when the target's
folder is on the same filesystem, else beside the target.  In the staging
folder, which holds only the writes under way, creating and removing a
name costs little; beside the target, in a folder of a million published
files, each would insert a name into and remove one from the folder's
large index, on top of the rename.
"""

import ctypes
import errno
import fcntl
import hashlib
import os
import random
import stat
import threading
from functools import partial
from typing import Callable, Dict, Optional, Tuple

from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath

from fbtwist.compat.libc import cFunction
from fbtwist.errors import Conflict, InsufficientStorage, PermissionDenied, descriptorError
from fbtwist.store.paths import ResourceInfo, StorePath
from fbtwist.store.pool import Afterwards, Later

_ETAG_XATTR = "user.fbtwist.etag"
_TEMP_SUFFIX = ".tmp"
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
#: The hidden folder at the top of a tree where its temporary files are made.
STAGING_FOLDER = ".uploads"
#: What joins the segments of a target's path in the name of its temporary
#: file in the staging folder: never part of a name (see
#: L{fbtwist.store.paths.validateName}).
STAGED_SEPARATOR = "\\"
#: The longest name a filesystem takes.
_NAME_MAX = 255
#: The bits of a mode that say the type of a file (what stat.S_IFMT keeps).
TYPE_BITS = 0o170000


def etagForContent(data: bytes) -> str:
    """
    The strong entity tag of a file's content (quoted, as HTTP sends it).
    """
    return entityTag(hashlib.sha256(data).hexdigest())


#: Filesystems without C{flock} answer one of these.
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS)


def _lockTemporary(fd: int, mode: int = fcntl.LOCK_EX) -> Optional[bool]:
    """
    Take the lock of an open temporary file without waiting.

    @param mode: C{LOCK_EX}, or C{LOCK_SH} for an upload's file (see
        L{_createTemporary}).
    @return: C{True} when taken, C{False} when another open file holds it
        (its writer is alive), C{None} when the filesystem has no locks.
    """
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as e:
        if e.errno in _NO_LOCKS:
            return None
        raise
    return True


def stagingFolder(root: str, rootDevice: int) -> Optional[Tuple[str, int]]:
    """
    The staging folder of the tree at C{root} (on the device
    C{rootDevice}), made by the first write that needs it (see
    L{_createTemporary}).

    @return: Its path and the device it is on, or C{None} when something
        else has its name (temporary files are then made beside their
        targets).
    """
    path = os.path.join(root, STAGING_FOLDER)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return path, rootDevice
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode):
        return None
    return path, st.st_dev


def stagingUsable(folder: str) -> bool:
    """
    Whether temporary files are made in the staging folder C{folder}: it
    is a directory this process may write to.  Writers make theirs beside
    their targets only when it is not (L{_createTemporaryFor}), so that a
    new WebDAV lock of a file knows where to look for its commits under
    way (L{fbtwist.store.locks.LockStore}) without listing the file's
    folder.
    """
    try:
        st = os.lstat(folder)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and os.access(folder, os.W_OK | os.X_OK)


def stagedStem(path) -> Optional[str]:
    """
    What names the temporary file of a write of the store path C{path} in
    the staging folder (L{isTemporaryOf} of it), or C{None} when the name
    would be too long for the filesystem (then it is made beside the
    target).
    """
    stem = STAGED_SEPARATOR.join(path)
    # "." + stem + "." + 12 hex digits + suffix
    if len(stem.encode("utf-8", "surrogatepass")) + 14 + len(_TEMP_SUFFIX) > _NAME_MAX:
        return None
    return stem


def stagedTarget(name: str) -> Optional[Tuple[str, ...]]:
    """
    The store path a temporary file of the staging folder called C{name}
    is being written for, or C{None} when C{name} is not one.
    """
    if not isTemporaryOf(name):
        return None
    middle = name[1:-len(_TEMP_SUFFIX)]
    stem, dot, random = middle.rpartition(".")
    if not dot or len(random) != 12 or not stem:
        return None
    return tuple(stem.split(STAGED_SEPARATOR))


def _createTemporary(target: FilePath, shared: bool = False,
                     place: Optional[Tuple[str, str]] = None) -> Tuple[str, int]:
    path, fd, _ = _createTemporaryLocked(target, shared, place)
    return path, fd


def _createTemporaryLocked(target: FilePath, shared: bool = False, place: Optional[Tuple[str, str]] = None,
                           checkLinks: bool = True) -> Tuple[str, int, Optional[bool]]:
    """
    Create a temporary file beside C{target}, or in C{place} (a hidden name
    ending in L{_TEMP_SUFFIX}, see L{isTemporaryOf}) and lock it, so that no
    starting server removes it while its writer lives.

    @param shared: Lock it shared, not exclusively: an upload's file, whose
        writer takes the lock exclusively only for its commit
        (L{fbtwist.store.locks.LockStore.publishing}), so that taking a
        WebDAV lock can wait for the commits under way and for no upload
        still arriving.
    @param place: The folder to make it in and the stem of its name
        (the tree's staging folder and L{stagedStem} of the target's path);
        by default beside C{target}, named after it.
    @param checkLinks: Make sure it still has its name once locked (see
        below); when C{False}, the caller does, with an C{fstat} it makes
        anyway (C{st_nlink} 0: removed, to be made again).
    @return: Its path, a descriptor open for writing, holding the lock
        until it is closed, and whether it is locked (C{None}: the
        filesystem has no locks); L{_createTemporary} gives the first two.
    @raise OSError: When it cannot be created.
    """
    if place is None:
        folder, name = os.path.split(target.path)
    else:
        folder, name = place
    for attempt in range(5):
        # The name need not be secret, only unlikely to be taken (O_EXCL
        # makes sure): the random module's generator costs no system call.
        path = os.path.join(folder, f".{name}.{random.getrandbits(48):012x}{_TEMP_SUFFIX}")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except FileExistsError:
            continue
        except FileNotFoundError:
            if place is None or attempt:
                raise
            # The staging folder's first use (or it was removed).
            try:
                os.mkdir(folder, 0o755)
            except FileExistsError:
                pass
            continue
        try:
            locked = _lockTemporary(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            # A server starting between the creation and the lock may have
            # taken the lock first and removed the file (the file then has
            # no name left: only its writer renames it): then try another.
            # Once locked, no starting server removes it.
            if locked is not False and (not checkLinks or os.fstat(fd).st_nlink > 0):
                return path, fd, locked
        except FileNotFoundError:
            pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    raise OSError(errno.EAGAIN, "no temporary file could be created and locked")


def _createTemporaryFor(target: FilePath, shared: bool = False,
                        place: Optional[Tuple[str, str]] = None) -> Tuple[str, int]:
    """
    L{_createTemporary} in C{place}, else (no place given, or the staging
    folder is no longer a directory it may write to, see L{stagingUsable})
    beside C{target}.

    @return: Its path and a locked descriptor, as L{_createTemporary}.
    @raise OSError: When it cannot be created (in a usable staging folder,
        what failed there: a disk full or a lack of descriptors would fail
        beside the target too).
    """
    path, fd, _ = _createTemporaryLockedFor(target, shared, place)
    return path, fd


def _createTemporaryLockedFor(target: FilePath, shared: bool = False, place: Optional[Tuple[str, str]] = None,
                              checkLinks: bool = True) -> Tuple[str, int, Optional[bool]]:
    """
    L{_createTemporaryFor}, giving what L{_createTemporaryLocked} gives.
    """
    if place is not None:
        try:
            return _createTemporaryLocked(target, shared, place, checkLinks)
        except OSError:
            if stagingUsable(place[0]):
                raise
    return _createTemporaryLocked(target, shared, checkLinks=checkLinks)


def writeLockedTemporary(target: FilePath, place: Optional[Tuple[str, str]],
                         data: bytes) -> Tuple[str, int, Optional[bool], os.stat_result]:
    """
    A temporary file for C{target} (L{_createTemporaryLockedFor}, locked
    exclusively from the start) holding all of C{data}: a publish sent in
    one piece.  The one C{fstat} that gives its status once written (what
    labels it) also tells that no starting server removed it before it was
    locked (then it is made again).

    @return: Its path, a descriptor open for writing, whether it is locked
        (C{None}: the filesystem has no locks) and its status.
    @raise OSError: When it cannot be created or written (nothing is left).
    """
    for _ in range(5):
        temp, fd, locked = _createTemporaryLockedFor(target, place=place, checkLinks=False)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            written = os.fstat(fd)
        except BaseException:
            os.close(fd)
            _removeIfExists(temp)
            raise
        if written.st_nlink > 0:
            return temp, fd, locked, written
        os.close(fd)
    raise OSError(errno.EAGAIN, "no temporary file could be created and locked")


def _syncFileRange():
    """
    The C library's C{sync_file_range} (Linux), or C{None} where there is
    none.
    """
    return cFunction("sync_file_range", (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint))


#: C{sync_file_range}'s flag that starts the writing of the dirty pages
#: and does not wait for it.
_SYNC_FILE_RANGE_WRITE = 2


def startWriteback(fds) -> None:
    """
    Have the kernel start writing the data of each of the files open as
    C{fds} to the disk, without waiting for it: their fsyncs, one after
    the other, then find the data written or on its way, and on a
    journalling filesystem (ext4, XFS) the first commit of the journal
    covers the blocks given to all of them, so that the others have no
    commit of their own to wait for.  Only a hint: where there is no
    C{sync_file_range} (or it fails), the fsyncs do it all.
    """
    call = _syncFileRange()
    if call is None:
        return
    for fd in fds:
        call(fd, 0, 0, _SYNC_FILE_RANGE_WRITE)


def entityTag(digest: str) -> str:
    """
    The entity tag of a file whose content's SHA-256 is C{digest} (hex), as
    L{etagForContent} gives it (for content hashed as it is written).
    """
    return '"' + digest[:32] + '"'


class RawFile:
    """
    A descriptor open for writing, as the file object uploads write to:
    unlike an unbuffered file object it costs no C{fstat} to make.
    """

    def __init__(self, fd: int):
        self._fd = fd

    def fileno(self) -> int:
        return self._fd

    def write(self, data) -> int:
        return os.write(self._fd, data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)


def isTemporaryOf(name: str, basename: Optional[str] = None) -> bool:
    """
    Whether C{name} is one of the temporary files L{_createTemporary}
    makes (of a target called C{basename}, when given).
    """
    if not (name.startswith(".") and name.endswith(_TEMP_SUFFIX)):
        return False
    if basename is None:
        return True
    # "." + basename + "." + 12 hex digits + suffix
    middle = name[1:-len(_TEMP_SUFFIX)]
    return len(middle) == len(basename) + 13 and middle.startswith(basename + ".")


def waitForCommit(path: str) -> None:
    """
    Wait until the writer of the temporary file C{path}, when it is
    committing (it holds its lock exclusively, see L{_createTemporary}),
    has renamed it or given up; return at once for an upload still
    arriving (a shared lock), a file gone, or one without a writer.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return  # renamed (committed) or removed meanwhile
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
    except OSError as e:
        if e.errno not in _NO_LOCKS:
            raise
    finally:
        os.close(fd)


def _removeIfAbandoned(path: str, olderThan: float) -> bool:
    """
    Remove the temporary file C{path} when no live writer holds it (or, on
    a filesystem without locks, when it was last written before
    C{olderThan}).

    @return: Whether it was removed.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        locked = _lockTemporary(fd)
        if locked is False or (locked is None and os.fstat(fd).st_mtime >= olderThan):
            return False
        # Removed while the lock is held: a writer that created the file but
        # had not locked it yet sees that it is gone and starts another.
        os.unlink(path)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _syncDirectory(path: str) -> None:
    # A rename is durable only once the directory entry is on disk; where
    # no caller can be told, a failure is let pass.
    try:
        _syncDirectoryOrFail(path)
    except OSError:
        pass


#: What fsync of a directory answers on filesystems that cannot do it.
_NO_DIRECTORY_FSYNC = frozenset((errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS))


def _syncDirectoryOrFail(path: str) -> None:
    """
    Fsync the directory C{path} after a commit's rename in it.  A directory
    gone meanwhile, or a filesystem that cannot fsync directories, has
    nothing more to do; an fsync that fails (an I/O error, a full disk)
    raises: the rename may not survive a crash.

    @raise OSError: When the fsync failed.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in _NO_DIRECTORY_FSYNC:
            raise
    finally:
        os.close(fd)


class _Syncs:
    """
    The fsyncs of one directory (L{DirectoryFsyncs}).
    """

    __slots__ = ("begun", "ended", "running", "waiting", "joined", "arriving")

    def __init__(self):
        #: The fsyncs begun and the last that ended well, counted.
        self.begun = self.ended = 0
        self.running = False
        #: Callers waiting for another's fsync.
        self.waiting = 0
        #: Commits that renamed while an fsync ran (L{DirectoryFsyncs.syncOrJoin}):
        #: their L{Later}s and values, for the next fsync.
        self.joined: list = []
        #: Commits between L{DirectoryFsyncs.arriving} and their rename.
        self.arriving = 0


class DirectoryFsyncs:
    """
    The fsyncs of directories as the store's threads run them, one at a
    time per directory: one fsync of a directory makes durable every rename
    made in it before the fsync began.

    A commit's thread, right after its rename, L{syncOrJoin}s: with no
    fsync of the directory running, it runs one there and then, which also
    serves the commits that joined before it began; with one running, the
    commit joins the next and the thread goes on to other work (waiting
    would hold a thread of the small pool).  Whoever ran an fsync runs the
    next while commits have joined (after handing its own outcome over), so
    that under load one thread fsyncs the directory for all, one fsync per
    group, and the others write.  A commit whose thread sees others being
    written into the same directory (L{arriving}) joins too, unless
    L{GROUP} have joined: the last of them runs the fsync for all.

    @param fsync: Called with a directory's path (in the calling thread),
        returns once it was fsynced, raises when that failed.
    """

    #: The most commits joined while no fsync runs: the next commit's
    #: thread runs one even with others still being written.
    GROUP = 8

    def __init__(self, fsync: Optional[Callable[[str], None]] = None):
        self._fsync = _syncDirectoryOrFail if fsync is None else fsync
        self._changed = threading.Condition(threading.Lock())
        self._directories: Dict[str, _Syncs] = {}

    def waiting(self, path: str) -> int:
        """
        How many callers of L{sync} wait for another's fsync of C{path}.
        """
        with self._changed:
            syncs = self._directories.get(path)
            return 0 if syncs is None else syncs.waiting

    def _syncsOf(self, path: str) -> _Syncs:
        syncs = self._directories.get(path)
        if syncs is None:
            syncs = self._directories[path] = _Syncs()
        return syncs

    def arriving(self, path: str) -> None:
        """
        Say that a commit into the directory C{path} is being written in
        this thread: its L{syncOrJoin} (with C{arrived}) or L{leave} follows.
        """
        with self._changed:
            self._syncsOf(path).arriving += 1

    def leave(self, path: str) -> None:
        """
        Say that a commit L{arriving} in C{path} failed before its rename:
        when it was the last being written, the commits that joined get
        their fsync now.  Blocks: call it in a thread of the store's pool.
        """
        with self._changed:
            syncs = self._syncsOf(path)
            syncs.arriving -= 1
            if syncs.arriving or syncs.running or not syncs.joined:
                return
        self._serveJoined(path)

    def syncOrJoin(self, path: str, value, arrived: bool = False):
        """
        Make every rename made in C{path} before this call durable, the way
        a commit's call in the store's pool does it (see the class).  Blocks
        (an fsync): call it in a thread of the store's pool.

        @param value: What the call gives once that is done.
        @param arrived: The commit said it was L{arriving}.
        @return: C{value} (this thread ran the fsync, nobody joined
            meanwhile); an L{Afterwards} giving C{value}, whose work runs
            the fsyncs of the commits that joined; or a L{Later} resolved
            with C{value} (or the failure of the fsync that served it) by
            the thread running the next fsync.
        @raise OSError: When the fsync this thread ran failed.
        """
        with self._changed:
            syncs = self._syncsOf(path)
            if arrived:
                syncs.arriving -= 1
            if syncs.running or (syncs.arriving and len(syncs.joined) < self.GROUP):
                later = Later()
                syncs.joined.append((later, value))
                return later
            served = self._begin(syncs)
        try:
            self._run(path, syncs, served)
        except BaseException:
            self._serveJoined(path)
            raise
        if syncs.joined:
            return Afterwards(value, lambda: self._serveJoined(path))
        return value

    def _begin(self, syncs: _Syncs) -> list:
        """
        Under the lock: an fsync begins, which serves the commits joined
        so far (returned; no longer joined).
        """
        syncs.begun += 1
        syncs.running = True
        served, syncs.joined = syncs.joined, []
        return served

    def _serveJoined(self, path: str) -> None:
        """
        Run fsyncs of C{path} while commits joined and none runs.
        """
        while True:
            with self._changed:
                syncs = self._syncsOf(path)
                if syncs.running or not syncs.joined:
                    return
                served = self._begin(syncs)
            try:
                self._run(path, syncs, served)
            except BaseException:
                pass  # failed for those it served (L{_run})

    def sync(self, path: str) -> None:
        """
        Return once every rename made in C{path} before this call is
        durable: after an fsync of C{path} that began after this call, run
        here or, when one was running, by the first caller waiting for the
        next (or by whoever serves the commits that joined meanwhile).
        Blocks: call it in a thread of the store's pool.
        """
        with self._changed:
            syncs = self._syncsOf(path)
            # The first fsync that begins from now on serves this caller.
            needed = syncs.begun + 1
            while syncs.ended < needed:
                if not syncs.running:
                    served = self._begin(syncs)
                    break
                syncs.waiting += 1
                self._changed.wait()
                syncs.waiting -= 1
            else:
                return
        try:
            self._run(path, syncs, served)
        finally:
            self._serveJoined(path)

    def _run(self, path: str, syncs: _Syncs, served: list) -> None:
        """
        Fsync C{path} (begun under the lock, L{_begin}) and give the
        commits it serves (C{served}) their outcome: their value, or the
        fsync's failure, which is raised here too.
        """
        error = None
        try:
            self._fsync(path)
        except BaseException as e:
            error = e
        with self._changed:
            # Failed, it serves no one: those waiting start another.
            if error is None:
                syncs.ended = syncs.begun
            syncs.running = False
            if len(self._directories) > 1024:
                # Directories no one syncs or waits for need nothing kept.
                self._directories = {
                    p: s for p, s in self._directories.items() if s.running or s.waiting or s.joined or s.arriving
                }
            if syncs.waiting:
                self._changed.notify_all()
        if served:
            failure = None if error is None else Failure(error)
            for later, value in served:
                if failure is None:
                    later.resolve(value)
                else:
                    later.resolve(failure, True)
        if error is not None:
            raise error


class _DirectorySyncs:
    """
    Group commit of directory entries, in the reactor's thread: one fsync
    of a directory makes durable every rename made in it before the fsync
    began, so commits waiting for the same directory share one (those that
    joined another thread's fsync, L{DirectoryFsyncs.syncOrJoin}, when the
    store's C{runBlocking} is not its pool, which waits for that fsync
    itself).  A commit arriving while an
    fsync of its directory is running waits for the next, which starts as
    soon as the running one ends and serves everyone who arrived meanwhile.

    @param fsync: Called with a directory's path, returns a Deferred that
        fires once that directory was fsynced.
    """

    def __init__(self, fsync: Callable[[str], defer.Deferred]):
        self._fsync = fsync
        #: Directories being synced -> the commits waiting for the next sync.
        self._next: Dict[str, list] = {}

    def sync(self, path: str) -> defer.Deferred:
        """
        @return: A Deferred that fires once every rename made in C{path}
            before this call is durable.
        """
        waiting = self._next.get(path)
        if waiting is not None:
            d = defer.Deferred()
            waiting.append(d)
            return d
        self._next[path] = []
        return self._start(path)

    def _start(self, path: str) -> defer.Deferred:
        return defer.maybeDeferred(self._fsync, path).addBoth(self._ended, path)

    def _ended(self, result, path: str):
        waiting = self._next.pop(path)
        if waiting:
            self._next[path] = []

            def release(outcome):
                for d in waiting:
                    d.errback(outcome) if isinstance(outcome, Failure) else d.callback(None)

            self._start(path).addBoth(release)
        return result


def _removeIfExists(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def atomicWrite(target: FilePath, data: bytes, place: Optional[Tuple[str, str]] = None) -> None:
    """
    Replace the file C{target} with C{data}: temp file, fsync, rename.

    @param place: Where to make the temporary file (see
        L{_createTemporary}); by default beside C{target}.
    """
    try:
        temp, fd = _createTemporaryFor(target, place=place)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
                os.rename(temp, target.path)
        except BaseException:
            _removeIfExists(temp)
            raise
    except OSError as e:
        raise _storageError(e, ()) from None


def _versionOf(st: os.stat_result) -> Tuple[int, int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


#: Makes a L{ResourceInfo} of a tuple of its fields, in C: a namedtuple's
#: own constructor is a Python function (two calls more per member of a
#: listing).
_newInfo = partial(tuple.__new__, ResourceInfo)


def _info(path: StorePath, st: os.stat_result) -> ResourceInfo:
    # A listing makes one per member: as few calls as may be (the type
    # bits compared rather than asked of stat.S_ISDIR; the earlier of the
    # times without min()).
    modified, changed = st.st_mtime, st.st_ctime
    return _newInfo((path, st.st_mode & TYPE_BITS == stat.S_IFDIR, st.st_size, modified,
                     changed if changed <= modified else modified, st.st_ino))


def _setEtagAttribute(path, etag: str, st: Optional[os.stat_result] = None) -> None:
    # Remembered with size and mtime, so that an edit made by another
    # program (which keeps the attribute) is noticed.  C{path} may be a
    # descriptor of the file open, C{st} its status once written.
    try:
        if st is None:
            st = os.stat(path)
        value = f"{etag}|{st.st_size}|{st.st_mtime_ns}"
        os.setxattr(path, _ETAG_XATTR, value.encode("ascii"))
    except OSError:
        # Filesystems without user xattrs: the ETag is computed on demand.
        pass


def _storageError(error: OSError, path: StorePath) -> Exception:
    if descriptorError(error) is not None:
        return descriptorError(error)
    if error.errno in _NO_SPACE:
        return InsufficientStorage()
    if error.errno in (errno.ENOENT, errno.ENOTDIR):
        return Conflict()
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return PermissionDenied("the server may not write there")
    return error
