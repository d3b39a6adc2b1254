"""
The calendar tree on the filesystem.

A store path is a tuple of validated name segments relative to the root of
the tree, which is what HTTP serves as C{/pub/calendar/}; C{()} is the root
collection itself.  Every write is atomic: the new content goes to a
temporary file in the same directory, is flushed and fsynced, and is renamed
over the target, so a reader sees the old file or the new one, never part of
one.  Names starting with C{.} are never valid client names, which leaves
them free for temporary files and metadata.

The store knows nothing of HTTP or FTP; it raises L{fbtwist.errors} only.
"""

import errno
import fcntl
import hashlib
import json
import os
import secrets
import stat
import time
import unicodedata
from collections import OrderedDict
from contextlib import contextmanager, nullcontext
from typing import Callable, ContextManager, Dict, Iterator, NamedTuple, Optional, Tuple

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath
from zope.interface import implementer

from fbtwist.errors import (
    AlreadyExists,
    Conflict,
    FreeBusyError,
    InsufficientStorage,
    InvalidName,
    NotFound,
    PermissionDenied,
    descriptorError,
)
from fbtwist.interfaces import ICalendarStore, IUpload

StorePath = Tuple[str, ...]

MAX_NAME_LENGTH = 255
MAX_DEPTH = 16
_ETAG_XATTR = "user.fbtwist.etag"
_TEMP_SUFFIX = ".tmp"
#: Dead properties of a file live beside it, of a collection inside it.
_PROPS_PREFIX = ".props."
_COLLECTION_PROPS = ".props"
_PROPS_SUFFIX = ".json"
#: What was derived from a file's content (see L{CalendarStore.derived}).
_DERIVED_PREFIX = ".derived."
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class ResourceInfo(NamedTuple):
    """
    What the store knows about one resource without reading it.
    """

    path: StorePath
    isCollection: bool
    size: int
    modified: float
    created: float
    inode: int

    @property
    def name(self) -> str:
        return self.path[-1] if self.path else ""


class FileSnapshot(NamedTuple):
    """
    One version of a file: what is known of it, its entity tag and its
    content, read together (see L{CalendarStore.snapshot}).
    """

    info: ResourceInfo
    etag: str
    data: bytes


def validateName(name: str) -> str:
    """
    Check one path segment a client sent.

    @return: C{name}, unchanged.
    @raise InvalidName: For empty names, C{.} and C{..}, names starting with
        C{.}, names holding C{/}, C{\\}, NUL or other control characters, and
        names longer than L{MAX_NAME_LENGTH} bytes in UTF-8.
    """
    if not isinstance(name, str):
        raise InvalidName("names must be text")
    if not name:
        raise InvalidName("empty name")
    if name.startswith("."):
        raise InvalidName("names may not start with '.'")
    if "/" in name or "\\" in name:
        raise InvalidName("names may not contain '/' or '\\'")
    if not (name.isascii() and name.isprintable()) and any(
        unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in name
    ):
        # (Printable ASCII, nearly every name, has none: no need to look.)
        raise InvalidName("names may not contain control characters")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_LENGTH:
        raise InvalidName("name too long")
    return name


def validatePath(segments) -> StorePath:
    """
    Validate every segment of a path; a trailing empty segment (a URL
    ending in C{/}) is dropped.

    @raise InvalidName: When any segment is invalid or the path is too deep.
    """
    segments = list(segments)
    if segments and segments[-1] == "":
        segments.pop()
    if len(segments) > MAX_DEPTH:
        raise InvalidName("path too deep")
    return tuple(validateName(s) for s in segments)


def etagForContent(data: bytes) -> str:
    """
    The strong entity tag of a file's content (quoted, as HTTP sends it).
    """
    return '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


@implementer(IUpload)
class Upload:
    """
    A new version of one file being written; see L{CalendarStore.openUpload}.
    """

    def __init__(self, store: "CalendarStore", path: StorePath, target: FilePath):
        self._store = store
        self.path = path
        self._target = target
        self._temp: Optional[FilePath] = None
        self._hash = hashlib.sha256()
        self.size = 0
        self._done = False
        self._writingOut = False
        self._abortRequested = False
        # Created with the first write: a publish sent in one piece creates
        # it where it is written, off the reactor thread (creating a file
        # waits for the directory, which other threads' fsyncs hold).
        self._file = None

    def _open(self):
        if self._file is None:
            temp, fd = _createTemporary(self._target)
            self._temp = FilePath(temp)
            self._file = os.fdopen(fd, "wb")
        return self._file

    def write(self, data: bytes) -> None:
        """
        Append C{data} to the new version.

        @raise InsufficientStorage: When the disk is full.
        """
        try:
            self._open().write(data)
        except OSError as e:
            self.abort()
            raise _storageError(e, self.path) from None
        self._hash.update(data)
        self.size += len(data)

    def contents(self) -> bytes:
        """
        Everything written so far (for validation before L{commit}).
        """
        try:
            self._open().flush()
            with open(self._temp.path, "rb") as f:
                return f.read()
        except OSError as e:
            raise _storageError(e, self.path) from None

    def _writeOut(self, data: bytes) -> None:
        """
        Append C{data}, then flush and fsync the temporary file and label it
        with its entity tag: the slow part of a commit.  It touches nothing
        but this upload's own file, so it may run in another thread.
        """
        if data:
            self.write(data)
        file = self._open()
        file.flush()
        os.fsync(file.fileno())
        _setEtagAttribute(self._temp.path, '"' + self._hash.hexdigest()[:32] + '"')

    def _rename(self) -> bool:
        created = not self._target.exists()
        os.rename(self._temp.path, self._target.path)
        self._done = True
        # Closed only now: the file's lock tells a starting server that its
        # writer is alive (see L{CalendarStore.removeStaleTemporaries}).
        self._file.close()
        return created

    def commit(self) -> bool:
        """
        Make the new version visible, atomically.

        @return: C{True} when the file did not exist before.
        @raise InsufficientStorage: When the disk is full; the old version is
            kept.
        """
        with self._abortingOnFailure():
            self._writeOut(b"")
            created = self._rename()
        _syncDirectory(self._target.parent().path)
        return created

    @contextmanager
    def _abortingOnFailure(self) -> Iterator[None]:
        """
        Discard the new version when the block fails (the old one stays),
        an C{OSError} becoming the store's domain error.
        """
        try:
            yield
        except OSError as e:
            self.abort()
            raise _storageError(e, self.path) from None
        except BaseException:
            self.abort()
            raise

    def commitAsync(self, data: bytes = b"", check: Optional[Callable[[], None]] = None,
                    exclusive: Callable[[], ContextManager] = nullcontext) -> defer.Deferred:
        """
        Append C{data} and commit, run by the store's C{runBlocking} (a
        thread pool in the server), so that the reactor serves others
        meanwhile: writing, fsync, then C{check} and the rename one right
        after the other under C{exclusive()}, then the fsync of the
        directory (shared with concurrent commits into it).  A decision
        C{check} makes (a lock, a precondition) therefore still holds when
        the new version appears, as long as whatever could change it (taking
        a lock) takes the same C{exclusive} too.

        @param check: Raises to refuse the commit; the old version is kept.
            It runs where the writing runs (another thread in the server).
        @param exclusive: A context manager factory (WebDAV's lock store's
            lock), held around C{check} and the rename.
        @return: A Deferred firing with C{True} when the file did not exist
            before, or failing as L{commit} does or with what C{check}
            raised (the old version kept).
        """
        return defer.Deferred.fromCoroutine(self._commitAsync(data, check, exclusive))

    async def _commitAsync(self, data: bytes, check, exclusive) -> bool:
        derived = None
        if self._store.deriveOnCommit is not None:
            with self._abortingOnFailure():
                content = (self.contents() if self._file is not None else b"") + data
                derived = await self._store.deriveOnCommit(self.path, content)
            if self._done:
                raise defer.CancelledError("the upload was aborted")
        self._writingOut = True
        with self._abortingOnFailure():
            try:
                created = await self._store.runBlocking(self._writeOutAndRename, data, check, exclusive, derived)
            finally:
                self._writingOut = False
        await self._store._directorySyncs.sync(self._target.parent().path)
        return created

    def _writeOutAndRename(self, data: bytes, check, exclusive, derived: Optional[bytes] = None) -> bool:
        self._writeOut(data)
        with exclusive():
            if self._abortRequested:
                raise defer.CancelledError("the upload was aborted while it was being written")
            if check is not None:
                check()
            created = self._rename()
        if derived is not None:
            self._store._storeDerived(self.path, derived)
        return created

    def abort(self) -> None:
        """
        Discard the new version; the old one is untouched.  Safe to call
        more than once.
        """
        if self._done:
            return
        if self._writingOut:
            # Another thread has the file: it is discarded once that is done.
            self._abortRequested = True
            return
        self._done = True
        if self._file is None:
            return
        if self._temp is not None:
            _removeIfExists(self._temp.path)
        try:
            self._file.close()
        except OSError:
            pass


@implementer(ICalendarStore)
class CalendarStore:
    """
    A tree of collections (directories) and calendar files under C{root}.

    @ivar runBlocking: How L{Upload.commitAsync} runs its slow steps: called
        as C{runBlocking(f, *args)}, it returns a Deferred firing with
        C{f(*args)}.  The server gives a thread pool's
        (L{fbtwist.tap.threadRunner}); by default they run at once, in the
        calling thread.
    """

    log = Logger()

    #: What to derive from a file being published, or C{None}: called as
    #: C{deriveOnCommit(path, content)} before L{Upload.commitAsync} makes
    #: the new version visible, it returns a Deferred firing with C{None}
    #: or with bytes to keep beside the file (L{derived}); failing, it
    #: refuses the publish (the old version stays).
    deriveOnCommit: Optional[Callable[[StorePath, bytes], defer.Deferred]] = None

    def __init__(self, root: FilePath, runBlocking: Optional[Callable[..., defer.Deferred]] = None):
        root.makedirs(ignoreExistingDirectory=True)
        self.root = FilePath(os.path.realpath(root.path))
        self.runBlocking = runBlocking if runBlocking is not None else defer.maybeDeferred
        self._snapshots = _SnapshotCache()
        self._directorySyncs = _DirectorySyncs(lambda path: self.runBlocking(_syncDirectory, path))

    def _filePath(self, path: StorePath) -> FilePath:
        """
        The filesystem path of a validated store path, refusing anything that
        resolves (through symbolic links) outside the root.
        """
        fp = self.root
        segments = validatePath(path)
        for segment in segments:
            fp = fp.child(segment)
        if segments and not self._mayHoldLinks(fp.path, len(segments)):
            return fp
        real = os.path.realpath(fp.path)
        if real != self.root.path and not real.startswith(self.root.path + os.sep):
            raise PermissionDenied("that name leads outside the calendar tree")
        return fp

    def _mayHoldLinks(self, path: str, depth: int) -> bool:
        """
        Whether any of the last C{depth} components of C{path} (those below
        the root, which is a real path) is a symbolic link.  Checking only
        those is much cheaper than C{realpath} of the whole path, which is
        what every request would otherwise pay.
        """
        for _ in range(depth):
            try:
                if stat.S_ISLNK(os.lstat(path).st_mode):
                    return True
            except FileNotFoundError:
                pass  # a missing name is no link (a new file's, say)
            except OSError:
                return True  # let realpath decide
            path = os.path.dirname(path)
        return False

    def _lookUp(self, path: StorePath) -> Optional[Tuple[str, os.stat_result]]:
        """
        The filesystem path of C{path} and its C{stat}, or C{None} when
        nothing (or neither a file nor a collection) is there.
        """
        if len(path) == 1 and path[0]:
            # The root is a real path, so only the name itself could be a
            # link: one lstat answers both questions (every lookup asks).
            fsPath = os.path.join(self.root.path, validateName(path[0]))
            try:
                st = os.lstat(fsPath)
            except (FileNotFoundError, NotADirectoryError):
                return None
            if not stat.S_ISLNK(st.st_mode):
                return (fsPath, st) if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode) else None
        fsPath = self._filePath(path).path
        try:
            st = os.stat(fsPath)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            return None
        return fsPath, st

    def stat(self, path: StorePath) -> Optional[ResourceInfo]:
        """
        @return: What is known of C{path}, or C{None} when nothing is there.
        """
        found = self._lookUp(path)
        return None if found is None else _info(path, found[1])

    def snapshot(self, path: StorePath) -> Optional[FileSnapshot]:
        """
        The file at C{path} as it is now, or C{None} when there is no file.

        Recently read files are answered from memory while their inode,
        size, modification and change times are unchanged: a publish
        replaces a file by renaming a new one over it, and an edit in place
        moves its times, so a cached version is never served after the file
        changed (one C{stat} per call).
        """
        found = self._lookUp(path)
        if found is None or not stat.S_ISREG(found[1].st_mode):
            return None
        fsPath, st = found
        cached = self._snapshots.get(fsPath, _versionOf(st))
        if cached is not None:
            return cached
        try:
            # Unbuffered: nothing but the bytes is wanted (a miss costs a
            # few syscalls, no buffer objects; with 100,000 users most
            # lookups miss).
            with open(fsPath, "rb", buffering=0) as f:
                st = os.fstat(f.fileno())
                data = f.read(st.st_size + 1)
                if len(data) > st.st_size:
                    data += f.readall()  # it grew meanwhile (written in place)
                etag = self._etagOf(f.fileno(), st, lambda: data)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except OSError as e:
            raise (descriptorError(e) or e) from None
        snapshot = FileSnapshot(_info(path, st), etag, data)
        if len(data) == st.st_size:
            self._snapshots.put(fsPath, _versionOf(st), snapshot)
        return snapshot

    @staticmethod
    def _etagOf(fsPath, st: os.stat_result, content: Callable[[], bytes]) -> str:
        """
        The entity tag remembered with the file when it matches C{st}, else
        that of C{content()}.

        @param fsPath: The file's path, or a descriptor of it open.
        """
        try:
            etag, size, mtime = os.getxattr(fsPath, _ETAG_XATTR).decode("ascii").split("|")
            if int(size) == st.st_size and int(mtime) == st.st_mtime_ns:
                return etag
        except (OSError, ValueError):
            pass
        # No attribute, or the file was changed behind our back.
        return etagForContent(content())

    def etag(self, path: StorePath) -> str:
        """
        The strong entity tag of the content of the file at C{path}.
        """
        fsPath = self._filePath(path).path
        try:
            st = os.stat(fsPath)
        except OSError:
            return etagForContent(self.read(path))
        return self._etagOf(fsPath, st, lambda: self.read(path))

    def read(self, path: StorePath) -> bytes:
        """
        @return: The content of the file at C{path}.
        @raise NotFound: When there is no file there.
        """
        fp = self._filePath(path)
        try:
            with open(fp.path, "rb") as f:
                return f.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise NotFound() from None
        except OSError as e:
            raise (descriptorError(e) or e) from None

    def openUpload(self, path: StorePath) -> Upload:
        """
        Start writing a new version of the file at C{path}.

        @raise Conflict: When the parent collection does not exist.
        @raise AlreadyExists: When C{path} is a collection.
        """
        if not path:
            raise AlreadyExists("the root is a collection")
        fp = self._filePath(path)
        if not fp.parent().isdir():
            raise Conflict()
        if fp.isdir():
            raise AlreadyExists("a collection exists under that name")
        return Upload(self, path, fp)

    def write(self, path: StorePath, data: bytes) -> bool:
        """
        Replace the file at C{path} with C{data}, atomically.

        @return: C{True} when the file did not exist before.
        """
        upload = self.openUpload(path)
        upload.write(data)
        return upload.commit()

    def delete(self, path: StorePath) -> None:
        """
        Remove the file or the whole collection at C{path}.

        @raise NotFound: When nothing is there.
        """
        if not path:
            raise PermissionDenied("the root collection cannot be deleted")
        fp = self._filePath(path)
        if not fp.exists():
            raise NotFound()
        try:
            fp.remove()
            # A collection's properties went with it; a file's are beside it.
            _removeIfExists(self._propertiesFile(path, False).path)
            _removeIfExists(self._derivedFile(path).path)
        except OSError as e:
            raise _storageError(e, path) from None
        _syncDirectory(fp.parent().path)

    def makeCollection(self, path: StorePath) -> None:
        """
        Create the collection C{path}.

        @raise AlreadyExists: When something is there already.
        @raise Conflict: When the parent does not exist.
        """
        fp = self._filePath(path)
        if not path or fp.exists():
            raise AlreadyExists()
        if not fp.parent().isdir():
            raise Conflict()
        try:
            os.mkdir(fp.path)
        except FileExistsError:
            raise AlreadyExists() from None
        except OSError as e:
            raise _storageError(e, path) from None

    def children(self, path: StorePath) -> Iterator[ResourceInfo]:
        """
        The members of the collection C{path}, lazily (a collection may hold
        100,000 files).  Hidden names and anything that is neither a file nor
        a directory are skipped.
        """
        fp = self._filePath(path)
        try:
            entries = os.scandir(fp.path)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound() from None
        except OSError as e:
            raise (descriptorError(e) or e) from None
        with entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
                    yield _info(path + (entry.name,), st)

    def _propertiesFile(self, path: StorePath, isCollection: bool) -> FilePath:
        fp = self._filePath(path)
        if isCollection:
            return fp.child(_COLLECTION_PROPS + _PROPS_SUFFIX)
        return fp.sibling(_PROPS_PREFIX + fp.basename() + _PROPS_SUFFIX)

    def _derivedFile(self, path: StorePath) -> FilePath:
        fp = self._filePath(path)
        return fp.sibling(_DERIVED_PREFIX + fp.basename() + _PROPS_SUFFIX)

    def derived(self, path: StorePath) -> Optional[bytes]:
        """
        What was last derived from the content of the file at C{path} and
        kept beside it (L{deriveOnCommit}, L{setDerived}), shared by every
        server using the tree; C{None} when nothing was.  It may describe
        another version of the file than the current one: its content says.
        """
        if not path:
            return None
        try:
            with open(self._derivedFile(path).path, "rb") as f:
                return f.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except OSError as e:
            self.log.warn("ignoring unreadable derived data of {path}: {error}", path="/".join(path), error=e)
            return None

    def setDerived(self, path: StorePath, data: bytes) -> None:
        """
        Keep C{data}, derived from the file at C{path}, beside it,
        atomically.

        @raise InsufficientStorage: When the disk is full.
        """
        atomicWrite(self._derivedFile(path), data)

    def _storeDerived(self, path: StorePath, data: bytes) -> None:
        # After a publish: the file is out; a lookup derives again what
        # could not be kept.
        try:
            self.setDerived(path, data)
        except (OSError, FreeBusyError) as e:
            self.log.warn("could not keep what was derived from {path}: {error}", path="/".join(path), error=e)

    def deadProperties(self, path: StorePath, isCollection: Optional[bool] = None) -> Dict[str, str]:
        """
        The properties clients stored on the resource at C{path}.

        @param isCollection: What the caller knows C{path} to be (from
            L{stat} or L{children}), saving a second look.
        @return: Property key (C{"{namespace}name"}) to its serialized XML
            element; empty when there are none.
        @raise NotFound: When nothing is at C{path}.
        """
        if isCollection is None:
            info = self.stat(path)
            if info is None:
                raise NotFound()
            isCollection = info.isCollection
        try:
            with open(self._propertiesFile(path, isCollection).path, encoding="utf-8") as f:
                loaded = json.load(f)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            self.log.warn("ignoring unreadable properties of {path}: {error}", path="/".join(path), error=e)
            return {}
        if not isinstance(loaded, dict):
            return {}
        return {k: v for k, v in loaded.items() if isinstance(k, str) and isinstance(v, str)}

    def setDeadProperties(self, path: StorePath, properties: Dict[str, str]) -> None:
        """
        Replace the dead properties of the resource at C{path}, atomically
        (all of them or none).

        @raise NotFound: When nothing is at C{path}.
        """
        info = self.stat(path)
        if info is None:
            raise NotFound()
        target = self._propertiesFile(path, info.isCollection)
        if not properties:
            _removeIfExists(target.path)
            return
        data = json.dumps(properties, ensure_ascii=False, sort_keys=True).encode("utf-8")
        atomicWrite(target, data)

    def metadataDirectory(self, name: str, create: bool = True) -> FilePath:
        """
        A hidden directory at the top of the tree for protocol state that
        must be shared by every server using the tree (e.g. WebDAV locks).

        @param create: Make it when it does not exist yet.
        """
        fp = self.root.child("." + validateName(name))
        if create:
            fp.makedirs(ignoreExistingDirectory=True)
        return fp

    def copy(self, source: StorePath, destination: StorePath, recursive: bool = True) -> None:
        """
        Copy the file or collection C{source} (its dead properties included)
        to C{destination}, which must not exist.  Collections are copied
        with all their members when C{recursive}, else as an empty
        collection.

        @raise NotFound: When C{source} does not exist.
        @raise Conflict: When the parent of C{destination} does not exist.
        @raise AlreadyExists: When C{destination} exists.
        """
        info = self.stat(source)
        if info is None:
            raise NotFound()
        if self.stat(destination) is not None:
            raise AlreadyExists()
        if info.isCollection:
            self.makeCollection(destination)
            props = self.deadProperties(source)
            if props:
                self.setDeadProperties(destination, props)
            if recursive:
                for child in list(self.children(source)):
                    self.copy(child.path, destination + (child.name,), True)
            return
        if not destination:
            raise AlreadyExists("the root is a collection")
        self.write(destination, self.read(source))
        props = self.deadProperties(source)
        if props:
            self.setDeadProperties(destination, props)

    def move(self, source: StorePath, destination: StorePath) -> None:
        """
        Rename the file or collection C{source} (its dead properties
        included) to C{destination}, which must not exist, atomically.

        @raise NotFound: When C{source} does not exist.
        @raise Conflict: When the parent of C{destination} does not exist.
        @raise AlreadyExists: When C{destination} exists.
        """
        info = self.stat(source)
        if info is None:
            raise NotFound()
        if not source or not destination:
            raise PermissionDenied("the root collection cannot be moved")
        if self.stat(destination) is not None:
            raise AlreadyExists()
        src = self._filePath(source)
        dst = self._filePath(destination)
        if not dst.parent().isdir():
            raise Conflict()
        try:
            os.rename(src.path, dst.path)
            if not info.isCollection:
                srcProps = self._propertiesFile(source, False)
                dstProps = self._propertiesFile(destination, False)
                if srcProps.exists():
                    os.replace(srcProps.path, dstProps.path)
                else:
                    _removeIfExists(dstProps.path)
        except OSError as e:
            raise _storageError(e, destination) from None
        _syncDirectory(dst.parent().path)
        _syncDirectory(src.parent().path)

    def removeStaleTemporaries(self, olderThan: float = 3600.0) -> int:
        """
        Remove temporary files left by writers that died (C{kill -9}, power
        loss), at once: a writer holds an exclusive C{flock} on its
        temporary file until it is renamed or removed, and the kernel drops
        the lock when the writer's process dies, so a temporary file whose
        lock can be taken has no writer left.  Another live server's upload
        (on a shared tree whose filesystem passes locks between nodes, as
        local disks, NFS and GlusterFS do) keeps its lock and its file.  On
        a filesystem without locks only files older than C{olderThan}
        seconds go.

        @return: How many were removed.
        """
        removed = 0
        limit = time.time() - olderThan
        for dirpath, dirnames, filenames in os.walk(self.root.path):
            for name in filenames:
                if name.startswith(".") and name.endswith(_TEMP_SUFFIX):
                    if _removeIfAbandoned(os.path.join(dirpath, name), limit):
                        removed += 1
        if removed:
            self.log.info("removed {count} temporary files left by writers that died", count=removed)
        return removed


def _lockTemporary(fd: int) -> Optional[bool]:
    """
    Take the exclusive lock of an open temporary file without waiting.

    @return: C{True} when taken, C{False} when another open file holds it
        (its writer is alive), C{None} when the filesystem has no locks.
    """
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as e:
        if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            return None
        raise
    return True


def _createTemporary(target: FilePath) -> Tuple[str, int]:
    """
    Create a temporary file beside C{target} (a hidden name ending in
    L{_TEMP_SUFFIX}) and lock it, so that no starting server removes it
    while its writer lives.

    @return: Its path and a descriptor open for writing, holding the lock
        until it is closed.
    @raise OSError: When it cannot be created.
    """
    for attempt in range(5):
        path = target.sibling("." + target.basename() + "." + secrets.token_hex(6) + _TEMP_SUFFIX).path
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        try:
            locked = _lockTemporary(fd)
            # A server starting between the creation and the lock may have
            # taken the lock first and removed the file: then try another.
            if locked is not False and os.stat(path).st_ino == os.fstat(fd).st_ino:
                return path, fd
        except FileNotFoundError:
            pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    raise OSError(errno.EAGAIN, "no temporary file could be created and locked")


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
    # A rename is durable only once the directory entry is on disk.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _DirectorySyncs:
    """
    Group commit of directory entries: one fsync of a directory makes
    durable every rename made in it before the fsync began, so commits
    waiting for the same directory share one.  A commit arriving while an
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


def atomicWrite(target: FilePath, data: bytes) -> None:
    """
    Replace the file C{target} with C{data}: temp file, fsync, rename.
    """
    try:
        temp, fd = _createTemporary(target)
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


class _SnapshotCache:
    """
    The most recently read files, least recently used first out, holding
    at most C{maxBytes} of content and no file larger than C{maxFile}.
    """

    def __init__(self, maxBytes: int = 32 * 2**20, maxFile: int = 2**20):
        self.maxBytes = maxBytes
        self.maxFile = maxFile
        self._bytes = 0
        self._entries: "OrderedDict[str, Tuple[tuple, FileSnapshot]]" = OrderedDict()

    def get(self, fsPath: str, version: tuple) -> Optional[FileSnapshot]:
        entry = self._entries.get(fsPath)
        if entry is None or entry[0] != version:
            return None
        self._entries.move_to_end(fsPath)
        return entry[1]

    def put(self, fsPath: str, version: tuple, snapshot: FileSnapshot) -> None:
        old = self._entries.pop(fsPath, None)
        if old is not None:
            self._bytes -= len(old[1].data)
        if len(snapshot.data) > self.maxFile:
            return
        self._entries[fsPath] = (version, snapshot)
        self._bytes += len(snapshot.data)
        while self._bytes > self.maxBytes:
            _, (_, evicted) = self._entries.popitem(last=False)
            self._bytes -= len(evicted.data)


def _info(path: StorePath, st: os.stat_result) -> ResourceInfo:
    return ResourceInfo(
        path=path,
        isCollection=stat.S_ISDIR(st.st_mode),
        size=st.st_size,
        modified=st.st_mtime,
        created=min(st.st_ctime, st.st_mtime),
        inode=st.st_ino,
    )


def _setEtagAttribute(path: str, etag: str) -> None:
    # Remembered with size and mtime, so that an edit made by another
    # program (which keeps the attribute) is noticed.
    try:
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
