"""
An upload into the calendar tree: the body written to a temporary file as
it arrives, then committed atomically.
"""

import errno
import hashlib
import os
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Callable, ContextManager, Iterator, Optional, Tuple

from twisted.internet import defer
from twisted.python.filepath import FilePath
from zope.interface import implementer

from fbtwist.interfaces import IUpload
from fbtwist.store.commitchild import FALLBACK
from fbtwist.store.files import (
    RawFile,
    _createTemporary,
    _createTemporaryFor,
    _removeIfExists,
    _setEtagAttribute,
    _storageError,
    entityTag,
    writeLockedTemporary,
)
from fbtwist.store.paths import StorePath
from fbtwist.store.pool import Afterwards
from fbtwist.store.warmnames import warmSiblings

if TYPE_CHECKING:
    from fbtwist.store.committer import CommitProcess
    from fbtwist.store.tree import CalendarStore


@implementer(IUpload)
class Upload:
    """
    A new version of one file being written; see L{fbtwist.store.tree.CalendarStore.openUpload}.
    """

    def __init__(self, store: "CalendarStore", path: StorePath, target: FilePath, existed: Optional[bool] = None,
                 place: Optional[Tuple[str, str]] = None):
        self._store = store
        self.path = path
        self._target = target
        #: Where the temporary file is made: the tree's staging folder and
        #: the stem of its name, or C{None} for beside the target (see
        #: L{fbtwist.store.files._createTemporary}).
        self._place = place
        #: Whether a file was there when the upload began, when known.
        self._existed = existed
        #: The temporary file's path, once created.
        self._temp: Optional[str] = None
        self._hash = hashlib.sha256()
        self.size = 0
        self._done = False
        self._writingOut = False
        self._abortRequested = False
        #: Whether the temporary file was locked exclusively when created
        #: (L{_writeWhole}).
        self._lockedForCommit = False
        # Created with the first write: a publish sent in one piece creates
        # it where it is written, off the reactor thread (creating a file
        # waits for the directory, which other threads' fsyncs hold).
        self._file = None

    def _open(self):
        if self._file is None:
            temp, fd = _createTemporaryFor(self._target, shared=True, place=self._place)
            self._temp = temp
            # Unbuffered: a publish is written in one piece, an FTP upload in
            # the transport's chunks; a buffer would only add system calls.
            self._file = RawFile(fd)
        return self._file

    def write(self, data: bytes) -> None:
        """
        Append C{data} to the new version.

        @raise InsufficientStorage: When the disk is full.
        """
        try:
            file, view = self._open(), memoryview(data)
            while view:
                view = view[file.write(view):]
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
            with open(self._temp, "rb") as f:
                return f.read()
        except OSError as e:
            raise _storageError(e, self.path) from None

    def _writeOut(self, data: bytes) -> None:
        """
        Append C{data}, then flush and fsync the temporary file and label it
        with its entity tag: the slow part of a commit.  It touches nothing
        but this upload's own file, so it may run in another thread.
        """
        written = None
        if data and self._file is None:
            written = self._writeWhole(data)
        elif data:
            self.write(data)
        fd = self._open().fileno()
        # Labelled before the fsync, which makes the label durable too.
        _setEtagAttribute(fd, entityTag(self._hash.hexdigest()), written)
        os.fsync(fd)

    def _writeWhole(self, data: bytes) -> os.stat_result:
        """
        Create the temporary file and write all of C{data} to it: a publish
        sent in one piece, whose commit follows in this thread
        (L{fbtwist.store.files.writeLockedTemporary}: locked exclusively
        from the start, for the commit, see
        L{fbtwist.store.locks.LockStore.publishing}).

        @return: Its status once written.
        @raise OSError: When it cannot be created or written.
        """
        temp, fd, locked, written = writeLockedTemporary(self._target, self._place, data)
        self._temp, self._file, self._lockedForCommit = temp, RawFile(fd), locked is True
        self._hash.update(data)
        self.size += len(data)
        return written

    def _rename(self) -> bool:
        created = not (self._target.exists() if self._existed is None else self._existed)
        self._created = created
        try:
            os.rename(self._temp, self._target.path)
        except OSError as e:
            if e.errno != errno.EXDEV:
                raise
            # The target's folder moved to another filesystem (a mount)
            # since the upload began in the staging folder.
            self._renameFromBeside()
        self._done = True
        if created and len(self.path) == 1:
            # A new publisher: the other name its lookups ask for, cached
            # by the kernel here (in the store's thread, for a publish)
            # rather than first in the reactor's thread.
            warmSiblings(self._target.path)
        # Closed only now: the file's lock tells a starting server that its
        # writer is alive (see L{fbtwist.store.tree.CalendarStore.removeStaleTemporaries}).
        self._file.close()
        return created

    def _renameFromBeside(self) -> None:
        """
        Commit through a copy of the temporary file made beside the target,
        as without a staging folder: written, labelled, fsynced and renamed
        over the target; then the staged file goes.  Its lock, held
        exclusively for the commit, is taken on the copy too, so that no
        starting server sweeps it meanwhile.
        """
        copy, fd = _createTemporary(self._target)
        try:
            with open(self._temp, "rb") as source:
                while True:
                    chunk = source.read(1 << 16)
                    if not chunk:
                        break
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view):]
            _setEtagAttribute(fd, entityTag(self._hash.hexdigest()))
            os.fsync(fd)
            os.rename(copy, self._target.path)
        except BaseException:
            _removeIfExists(copy)
            raise
        finally:
            os.close(fd)
        _removeIfExists(self._temp)

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
        try:
            self._store._directoryFsyncs.sync(os.path.dirname(self._target.path))
        except OSError as e:
            raise _storageError(e, self.path) from None
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
                    exclusive: Callable[[], ContextManager] = nullcontext, plain: bool = False) -> defer.Deferred:
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
            lock), held around C{check} and the rename; when what it
            returns has a C{publishing} method (a lock store's mutex), what
            that returns is held instead
            (L{fbtwist.store.locks.LockStore.publishing}: the mutex only when
            a lock may apply to this file).
        @param plain: C{check} refuses only for a WebDAV lock (the publish
            states no conditions), and C{exclusive} is the tree's lock
            store's: then a publish sent in one piece may be committed by
            the store's commit process (L{fbtwist.store.committer}), which
            asks the lock index itself and gives back to this path any
            publish a lock may apply to.
        @return: A Deferred firing with C{True} when the file did not exist
            before, or failing as L{commit} does or with what C{check}
            raised (the old version kept).
        """
        return defer.Deferred.fromCoroutine(self._commitAsync(data, check, exclusive, plain))

    async def _commitAsync(self, data: bytes, check, exclusive, plain: bool = False) -> bool:
        derived = None
        if self._store.deriveOnCommit is not None:
            with self._abortingOnFailure():
                content = (self.contents() if self._file is not None else b"") + data
                derived = await self._store.deriveOnCommit(self.path, content)
            if self._done:
                raise defer.CancelledError("the upload was aborted")
        store = self._store
        committer = store.committer
        if plain and committer is not None and derived is None and self._file is None and data:
            created = await self._commitElsewhere(committer, data)
            if created is not FALLBACK:
                return created
        self._writingOut = True
        with self._abortingOnFailure():
            try:
                # One trip to the store's threads for everything that
                # blocks, the directory's fsync included.
                outcome = await store.runBlocking(self._writeOutAndRename, data, check, exclusive, derived)
            finally:
                self._writingOut = False
        if type(outcome) is bool:
            return outcome
        # A runner that is not the store's pool gives what the pool would
        # have waited for or gone on with itself.
        folder = os.path.dirname(self._target.path)
        if type(outcome) is Afterwards:
            store.runBlocking(outcome.work)
            return outcome.value
        settled = outcome.settled()
        if settled is None:
            # Joined another thread's fsync, which this runner does not
            # wait for: the group commit in the reactor's thread instead.
            await self._syncFolder(store._directorySyncs.sync(folder))
            return self._created
        value, failed = settled
        if failed:
            await self._syncFolder(defer.fail(value))
        return value

    async def _commitElsewhere(self, committer: "CommitProcess", data: bytes):
        """
        Have C{committer} commit C{data}, the whole new version.

        @return: Whether the file is new, or L{FALLBACK}: nothing changed,
            commit it here.
        """
        hashed = self._hash.copy()
        hashed.update(data)
        self._writingOut = True
        try:
            created = await committer.commit(self._target.path, self._place, self.path, data,
                                             entityTag(hashed.hexdigest()), self._existed)
        except OSError as e:
            self._writingOut = False
            self.abort()
            raise _storageError(e, self.path) from None
        self._writingOut = False
        if created == FALLBACK:
            if self._abortRequested:
                self.abort()
                raise defer.CancelledError("the upload was aborted while it was being written")
            return FALLBACK
        self._hash = hashed
        self.size += len(data)
        self._created = created
        self._done = True
        return created

    async def _syncFolder(self, synced: defer.Deferred) -> None:
        try:
            await synced
        except OSError as e:
            raise _storageError(e, self.path) from None

    def _writeOutAndRename(self, data: bytes, check, exclusive, derived: Optional[bytes] = None):
        """
        Write out, check and rename, then fsync the directory or join the
        fsync of another commit's thread
        (L{fbtwist.store.files.DirectoryFsyncs.syncOrJoin}), so that a
        publish costs one trip to the store's threads, whose outcome the
        pool hands to the reactor once the rename is durable.

        @return: Whether the file is new, or what the pool makes of it (an
            L{fbtwist.store.pool.Later} or L{fbtwist.store.pool.Afterwards}
            giving it).
        @raise InsufficientStorage: When the disk is full (also for the
            directory's fsync, after the rename: the new version may not
            survive a crash, and the publish is refused).
        """
        fsyncs, folder = self._store._directoryFsyncs, os.path.dirname(self._target.path)
        fsyncs.arriving(folder)
        try:
            self._writeOut(data)
            with self._holding(exclusive):
                if self._abortRequested:
                    raise defer.CancelledError("the upload was aborted while it was being written")
                if check is not None:
                    check()
                created = self._rename()
        except BaseException:
            fsyncs.leave(folder)
            raise
        if derived is not None:
            try:
                self._store._storeDerived(self.path, derived)
            except BaseException:
                fsyncs.leave(folder)
                raise
        try:
            return fsyncs.syncOrJoin(folder, created, arrived=True)
        except OSError as e:
            raise _storageError(e, self.path) from None

    def _holding(self, exclusive: Callable[[], ContextManager]) -> ContextManager:
        """
        What to hold around the check and the rename: C{exclusive()}, or,
        when that offers it (a lock store's mutex), its cheaper
        C{publishing(path, descriptor)} for this file, which takes the mutex
        only when a lock may apply to it
        (L{fbtwist.store.locks.LockStore.publishing}).
        """
        held = exclusive()
        publishing = getattr(held, "publishing", None)
        if publishing is not None:
            if self._lockedForCommit:
                return publishing(self.path, self._file.fileno(), locked=True)
            return publishing(self.path, self._file.fileno())
        return held

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
            _removeIfExists(self._temp)
        try:
            self._file.close()
        except OSError:
            pass
