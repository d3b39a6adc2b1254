"""
The calendar tree on the filesystem.

A store path (L{fbtwist.store.paths}) is a tuple of validated name segments
relative to the root of the tree, which is what HTTP serves as
C{/pub/calendar/}; C{()} is the root collection itself.  Every write is
atomic (L{fbtwist.store.files}): the new content goes to a temporary file in
the tree's staging folder (or, on another filesystem, in the same
directory), is flushed and fsynced, and is renamed over the target, so a
reader sees the old file or the new one, never part of one.  Names
starting with C{.} are never valid client names, which leaves them free for
temporary files, the staging folder and metadata.

The store knows nothing of HTTP or FTP; it raises L{fbtwist.errors} only.
"""

import errno
import json
import os
import stat
import time
from stat import S_IFDIR, S_IFREG
from typing import Callable, Dict, Iterator, Optional, Tuple

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.filepath import FilePath
from zope.interface import implementer

from fbtwist.cache import LRUCache
from fbtwist.errors import AlreadyExists, Conflict, FreeBusyError, NotFound, PermissionDenied, descriptorError
from fbtwist.interfaces import ICalendarStore
from fbtwist.store.changes import FolderChanges
from fbtwist.store.files import (
    _ETAG_XATTR,
    _TEMP_SUFFIX,
    TYPE_BITS,
    DirectoryFsyncs,
    _DirectorySyncs,
    _info,
    _removeIfAbandoned,
    _removeIfExists,
    _storageError,
    _syncDirectory,
    _versionOf,
    atomicWrite,
    etagForContent,
    stagedStem,
    stagingFolder,
)
from fbtwist.store.paths import FileSnapshot, ResourceInfo, StorePath, validateName, validatePath
from fbtwist.store.uploads import Upload

#: Dead properties of a file live beside it, of a collection inside it.
_PROPS_PREFIX = ".props."
_COLLECTION_PROPS = ".props"
_PROPS_SUFFIX = ".json"
#: What was derived from a file's content (see L{CalendarStore.derived}).
_DERIVED_PREFIX = ".derived."
#: The extended attribute holding what a reader kept with one version of a
#: file (L{CalendarStore.keep}): that version's size and modification time
#: in nanoseconds, then what was kept.
_KEPT_XATTR = "user.fbtwist.kept"
#: The most L{CalendarStore.keep} keeps (ext4 holds all of a file's
#: extended attributes in one block of 4 KiB; XFS and others hold more).
MAX_KEPT_BYTES = 60 * 1024
#: The most keeps waiting while others are written: beyond it a keep is
#: skipped (the next read of the file asks again).
_MAX_KEEPS_WAITING = 1024
#: Errors that tell the whole tree keeps nothing: the store stops trying.
_KEEPS_IMPOSSIBLE = frozenset((errno.ENOTSUP, errno.EROFS))


def _fileState(st: os.stat_result) -> tuple:
    """
    One file's part of L{CalendarStore.filesState}.
    """
    return st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_nlink, st.st_mode


#: Where the change time is in L{_fileState}.
_CTIME = 4

#: How long after its last change a file's state is not told
#: (L{CalendarStore.filesState}), in nanoseconds.
UNSETTLED_NS = 1_000_000_000

#: The time, for file times (L{CalendarStore.filesState}).
_nowNs = time.time_ns


@implementer(ICalendarStore)
class CalendarStore:
    """
    A tree of collections (directories) and calendar files under C{root}.

    @param snapshotBytes: How much recently read content L{snapshot} keeps
        in memory at most, and C{snapshotFileBytes} the largest file it keeps.
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
    #: The process committing publishes sent in one piece
    #: (L{fbtwist.store.committer.CommitProcess}), or C{None}: the store's
    #: threads commit every one.
    committer = None

    def __init__(self, root: FilePath, runBlocking: Optional[Callable[..., defer.Deferred]] = None,
                 snapshotBytes: int = 32 * 2**20, snapshotFileBytes: int = 2**20):
        root.makedirs(ignoreExistingDirectory=True)
        self.root = FilePath(os.path.realpath(root.path))
        self.runBlocking = runBlocking if runBlocking is not None else defer.maybeDeferred
        self._snapshots = _SnapshotCache(snapshotBytes, snapshotFileBytes)
        #: The file versions a keep was tried for (L{keep}: once each), by
        #: filesystem path, and how many keeps are under way.
        self._keepsTried: Dict[str, tuple] = {}
        #: Keeps waiting to be written (L{keep}), and whether a write of
        #: some is under way.
        self._keepsWaiting: list = []
        self._keeping = False
        #: Why the tree keeps nothing (L{keep}), once it is known.
        self.keepsRefused: Optional[str] = None
        self._directoryFsyncs = DirectoryFsyncs()
        self._directorySyncs = _DirectorySyncs(lambda path: self.runBlocking(self._directoryFsyncs.sync, path))
        self._rootDevice = os.stat(self.root.path).st_dev
        #: Where temporary files are made (L{fbtwist.store.files.stagingFolder}):
        #: its path and device, or C{None} (beside their targets).
        self._staging = stagingFolder(self.root.path, self._rootDevice)

    def _temporaryPlace(self, path, folderDevice: int) -> Optional[Tuple[str, str]]:
        """
        Where to make the temporary file of a write of C{path} (segments
        below the root, hidden ones too), whose folder is on the device
        C{folderDevice}: the staging folder with the stem of the file's
        name, or C{None} for beside the target (no staging folder, another
        filesystem, which a rename cannot cross, or a path too long for a
        name).
        """
        if self._staging is None or folderDevice != self._staging[1]:
            return None
        stem = stagedStem(path)
        return None if stem is None else (self._staging[0], stem)

    def _atomicWrite(self, target: FilePath, data: bytes) -> None:
        """
        L{atomicWrite} of C{target}, a file of the tree, its temporary file
        made where L{_temporaryPlace} says.
        """
        place = None
        if self._staging is not None:
            relative = os.path.relpath(target.path, self.root.path).split(os.sep)
            try:
                device = self._rootDevice if len(relative) == 1 else os.stat(target.dirname()).st_dev
            except OSError:
                device = None
            place = self._temporaryPlace(relative, device)
        atomicWrite(target, data, place)

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
                st = _resolvingAgain(os.lstat, fsPath)
            except (FileNotFoundError, NotADirectoryError):
                return None
            if not stat.S_ISLNK(st.st_mode):
                return (fsPath, st) if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode) else None
        fsPath = self._filePath(path).path
        try:
            st = _resolvingAgain(os.stat, fsPath)
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

    def snapshot(self, path: StorePath, whole: bool = True) -> Optional[FileSnapshot]:
        """
        The file at C{path} as it is now, or C{None} when there is no file.

        Recently read files are answered from memory while their inode,
        size, modification and change times are unchanged: a publish
        replaces a file by renaming a new one over it, and an edit in place
        moves its times, so a cached version is never served after the file
        changed (one C{stat} per call).

        @param whole: C{False} for a reader that wants only what was kept
            with the file (L{keep}) when there is something: then its
            content is not read (its C{etag} and C{data} are C{None}), at
            the cost of one more system call (against five) after the
            C{stat}; when nothing is kept, the whole file is read as with
            C{True}.
        """
        found = self._lookUp(path)
        if found is None or not stat.S_ISREG(found[1].st_mode):
            return None
        fsPath, st = found
        cached = self._snapshots.get(fsPath, _versionOf(st))
        if cached is not None:
            return cached
        if not whole:
            try:
                kept = _resolvingAgain(_keptWith, fsPath, st)
            except OSError:
                kept = None
            if kept is not None:
                # Kept with a version of this size and time: the file's now
                # (a file renamed over it meanwhile has its own kept answer,
                # stamped with its own size and time).
                return FileSnapshot(_info(path, st), None, None, kept)

        def readNow():
            # Through the descriptor alone: nothing but the bytes is wanted
            # (with 100,000 users most lookups miss: open, fstat, read,
            # the ETag's and the kept answer's attributes and close, no
            # file object, whose own
            # fstat would be one more system call).  A folder put there
            # meanwhile fails the read with IsADirectoryError.
            fd = os.open(fsPath, os.O_RDONLY | os.O_CLOEXEC)
            try:
                st = os.fstat(fd)
                data = os.read(fd, st.st_size + 1)
                if len(data) > st.st_size:
                    # It grew meanwhile (written in place): the rest too.
                    rest = [data]
                    while rest[-1]:
                        rest.append(os.read(fd, 1 << 16))
                    data = b"".join(rest)
                return st, data, self._etagOf(fd, st, lambda: data), _keptWith(fd, st)
            finally:
                os.close(fd)

        try:
            st, data, etag, kept = _resolvingAgain(readNow)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except OSError as e:
            raise (descriptorError(e) or e) from None
        snapshot = FileSnapshot(_info(path, st), etag, data, kept)
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

    def hasOneName(self, path: StorePath) -> bool:
        """
        Whether the file at C{path} is a file of its own, reached by that
        name only: not a symbolic link, nor a file with other (hard)
        links, whose changes through another name a watch of this name's
        folder would not see (L{watchTop}).
        """
        try:
            fsPath = self._filePath(path).path
            st = os.lstat(fsPath)
        except (OSError, FreeBusyError):
            return False
        return stat.S_ISREG(st.st_mode) and st.st_nlink == 1

    def filesState(self, *names: str) -> Optional[tuple]:
        """
        The state of the files C{names} at the top of the tree (a person's
        files), which any change of them made through any of their names
        changes: for each, its inode, size, modification and change times,
        links and mode (the change time moves with every write, rename, link
        or attribute set), or C{()} when there is none; C{None} when one is
        not a plain file (a symbolic link is not followed) or cannot be
        looked at, or changed within the last L{UNSETTLED_NS} (the kernel's
        clock of file times moves in ticks: a change made in the same tick,
        after the look, would leave the same times).
        """
        return self._statesNow(names, _nowNs() - UNSETTLED_NS)

    def filesStateSince(self, before: tuple, *names: str) -> Optional[tuple]:
        """
        The state of the files C{names} now (as L{filesState}, even right
        after a change), when it differs from their state C{before} (given
        by L{filesState} for the same names) only in their change times:
        what setting an extended attribute of a file (such as the answer a
        reader kept with it, L{keep}) or its owner changes, and nothing
        else.  C{None} otherwise: another inode, size, modification time,
        mode or number of links, a file come or gone.

        Told within L{UNSETTLED_NS} of a change, as it may be: everything
        of a file but its content is in its state, and its content changes
        only through a name, this one (whose changes a watch tells) or
        another (a link, which changes the number of links).
        """
        now = self._statesNow(names, None)
        if now is None or len(now) != len(before):
            return None
        for was, state in zip(before, now):
            if was[:_CTIME] != state[:_CTIME] or was[_CTIME + 1:] != state[_CTIME + 1:]:
                return None
        return now

    def _statesNow(self, names, settled: Optional[int]) -> Optional[tuple]:
        """
        Each file's L{_fileState}, or C{()} for a missing one; C{None} when
        one is not a plain file or cannot be looked at, or (given
        C{settled}, in nanoseconds) changed after C{settled}.
        """
        states = []
        top = self.root.path + os.sep
        for name in names:
            try:
                st = os.lstat(top + validateName(name))
            except FileNotFoundError:
                states.append(())
                continue
            except (OSError, FreeBusyError):
                return None
            if not stat.S_ISREG(st.st_mode) or (settled is not None and st.st_ctime_ns > settled):
                return None
            states.append(_fileState(st))
        return tuple(states)

    def watchTop(self, changed: Callable[[str, bool], None], everything: Callable[[], None]
                 ) -> Optional[FolderChanges]:
        """
        Watch the files at the top of the tree (where each person's
        C{<uid>.vfb} and C{<uid>.ics} are) for changes made on this machine:
        L{FolderChanges.open}, on a local filesystem only.
        """
        return FolderChanges.open(self.root.path, changed, everything)

    def keep(self, snapshot: FileSnapshot, kept: bytes) -> None:
        """
        Keep C{kept} (what a reader made of C{snapshot}'s content, e.g. a
        rendered answer) with that version of the file, for every server
        using the tree: L{snapshot} gives it back (C{FileSnapshot.kept})
        while the file is that version, and a new version has nothing kept.

        It is kept in an extended attribute of the file, and never synced:
        it is a cache, made again when lost.  Keeps wait in a list, written
        together by one call in the store's threads (L{runBlocking}) at a
        time, so that publishes have the other threads.  One try for each
        version of a file; nothing is kept (and nothing fails) when the
        filesystem has no extended attributes, the tree is read-only, the
        file is not the server's or has several names (hard links), C{kept}
        is larger than L{MAX_KEPT_BYTES} or the filesystem's limit, or
        L{_MAX_KEEPS_WAITING} keeps are already waiting.
        """
        info = snapshot.info
        if (self.keepsRefused is not None or len(kept) > MAX_KEPT_BYTES or snapshot.kept == kept
                or len(self._keepsWaiting) >= _MAX_KEEPS_WAITING or not info.path):
            return
        try:
            fsPath = self._filePath(info.path).path
        except FreeBusyError:
            return
        version = (info.inode, info.size, info.modified)
        if self._keepsTried.get(fsPath) == version:
            return
        if len(self._keepsTried) >= 65536:
            self._keepsTried.clear()
        self._keepsTried[fsPath] = version
        self._keepsWaiting.append((fsPath, version, kept, snapshot))
        if not self._keeping:
            self._keepWaiting()

    def _keepWaiting(self) -> None:
        """
        Write the keeps waiting, in one call in the store's threads; then
        those that waited meanwhile.
        """
        batch, self._keepsWaiting = self._keepsWaiting, []
        self._keeping = True

        def done(results):
            for (fsPath, version, kept, snapshot), st in zip(batch, results):
                if isinstance(st, os.stat_result):
                    # The attribute moved the file's change time: its
                    # snapshot is cached again, with what was kept.
                    self._snapshots.put(fsPath, _versionOf(st), snapshot._replace(kept=kept))
                elif st in _KEEPS_IMPOSSIBLE and self.keepsRefused is None:
                    self.keepsRefused = os.strerror(st)
                    self.log.info("lookups' answers are not kept with the files ({reason}): each file not in "
                                  "memory is rendered again", reason=self.keepsRefused)

        def failed(failure):
            self.log.failure("keeping answers with {count} files", failure, count=len(batch))

        def again(_):
            self._keeping = False
            if self._keepsWaiting and self.keepsRefused is None:
                self._keepWaiting()
            else:
                self._keepsWaiting = []

        work = [(fsPath, version, kept) for fsPath, version, kept, _ in batch]
        self.runBlocking(_keepAllWith, work).addCallbacks(done, failed).addBoth(again)

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
            return _resolvingAgain(_readFile, fp.path)
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
        if len(path) == 1:
            # The parent is the root: one lstat tells the rest (most
            # publishes; the upload runs its slow steps in other threads,
            # this runs in the reactor's).
            found = self._lookUp(path)
            if found is not None and stat.S_ISDIR(found[1].st_mode):
                raise AlreadyExists("a collection exists under that name")
            return Upload(self, path, self.root.child(path[0]), existed=found is not None,
                          place=self._temporaryPlace(path, self._rootDevice))
        fp = self._filePath(path)
        try:
            parent = os.stat(fp.dirname())
        except OSError:
            raise Conflict() from None
        if not stat.S_ISDIR(parent.st_mode):
            raise Conflict()
        if fp.isdir():
            raise AlreadyExists("a collection exists under that name")
        return Upload(self, path, fp, place=self._temporaryPlace(path, parent.st_dev))

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
        return (info for info, _, _ in self.listing(path))

    def listing(self, path: StorePath, etags: bool = False, deadProperties: bool = False,
                wanted: Optional[Callable[[ResourceInfo], bool]] = None,
                named: Optional[Callable[[str], bool]] = None,
                ) -> Iterator[Tuple[ResourceInfo, Optional[str], Dict[str, str]]]:
        """
        L{children}, each with what a listing of their properties shows,
        read in the same pass over the collection (no second look up of each
        name).

        @param etags: Whether to give each file's entity tag (C{None} for a
            collection, or a file gone meanwhile).
        @param deadProperties: Whether to give each member's dead
            properties (else an empty dict).  The collection is first
            scanned for the names of property files, so that members
            without any (most) cost no attempt to open one.
        @param wanted: Which members to give (the others are skipped before
            anything more is read of them); all by default.
        @param named: Which names of members to look at at all (the others
            are skipped before their C{stat}); all by default.
        @return: An iterator of C{(info, etag, dead properties)}.
        """
        folder = self._filePath(path).path
        try:
            # Listed through a descriptor of the folder: each member's stat
            # looks up one name, not the whole path again.
            descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            try:
                entries = os.scandir(descriptor)
            except OSError:
                os.close(descriptor)
                raise
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound() from None
        except OSError as e:
            raise (descriptorError(e) or e) from None
        try:
            withProperties = self._namesWithProperties(folder) if deadProperties else ()
            # os.path.join(folder, name), without a call per member.
            inFolder = os.path.join(folder, "")
            noProperties: Dict[str, str] = {}
            # A folder may hold a million members: no call per member that
            # can be spared (the type bits compared, not asked of stat).
            with entries:
                for entry in entries:
                    name = entry.name
                    if name[0] == "." or (named is not None and not named(name)):
                        continue
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    fileType = st.st_mode & TYPE_BITS
                    isFile = fileType == S_IFREG
                    if not (isFile or fileType == S_IFDIR):
                        continue
                    memberPath = path + (name,)
                    info = _info(memberPath, st)
                    if wanted is not None and not wanted(info):
                        continue
                    etag = None
                    if etags and isFile:
                        try:
                            etag = self._etagOf(inFolder + name, st,
                                                lambda memberPath=memberPath: self.read(memberPath))
                        except (NotFound, PermissionDenied):
                            pass
                    dead = noProperties
                    if deadProperties and (not isFile or withProperties is None or name in withProperties):
                        dead = self.deadProperties(memberPath, not isFile)
                    yield info, etag, dead
        finally:
            os.close(descriptor)

    #: How many names of files with properties L{listing} holds while it
    #: lists a collection; beyond that it looks for each file's.
    PROPERTY_NAMES_HELD = 10000

    def _namesWithProperties(self, fsPath: str):
        """
        The names of the files of the directory C{fsPath} that have dead
        properties, or C{None} when more than L{PROPERTY_NAMES_HELD} do.
        """
        names = set()
        start, end = len(_PROPS_PREFIX), -len(_PROPS_SUFFIX)
        try:
            with os.scandir(fsPath) as entries:
                for entry in entries:
                    name = entry.name
                    if name.startswith(_PROPS_PREFIX) and name.endswith(_PROPS_SUFFIX):
                        names.add(name[start:end])
                        if len(names) > self.PROPERTY_NAMES_HELD:
                            return None
        except OSError:
            return None
        return names

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
        self._atomicWrite(self._derivedFile(path), data)

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
        self._atomicWrite(target, data)

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
        seconds go.  The staging folder is swept with the rest of the
        tree: what it holds are temporary files too.

        @return: How many were removed.
        """
        removed = 0
        limit = time.time() - olderThan
        # Each folder's entries looked at as they are read, not listed
        # first: a folder of a million files would otherwise cost a list of
        # a million names (some 80 MB at the start of every process).
        folders = [self.root.path]
        while folders:
            try:
                entries = os.scandir(folders.pop())
            except OSError:
                continue
            with entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        folders.append(entry.path)
                        continue
                    name = entry.name
                    if name.startswith(".") and name.endswith(_TEMP_SUFFIX):
                        if _removeIfAbandoned(entry.path, limit):
                            removed += 1
        if removed:
            self.log.info("removed {count} temporary files left by writers that died", count=removed)
        return removed


class _SnapshotCache:
    """
    The most recently read files, least recently used first out, holding
    at most C{maxBytes} of content and no file larger than C{maxFile}.

    An entry is kept as one flat tuple of plain values (the version, the
    fields of the L{ResourceInfo} with its path as one string, the entity
    tag and the content), not as the L{FileSnapshot} given out: the
    garbage collector stops following a tuple of such values once it has
    seen it (one level of nested tuples per collection), so tens of
    thousands of cached files add nothing to its full passes, which
    otherwise walked three objects for each (stalls of the reactor of
    some 100 ms now and then under load).  A hit makes the
    L{FileSnapshot} anew (two small objects).
    """

    def __init__(self, maxBytes: int = 32 * 2**20, maxFile: int = 2**20):
        self.maxBytes = maxBytes
        self.maxFile = maxFile
        # fsPath -> version + (path, isCollection, size, modified, created,
        # inode, etag, content, kept), weighed by the content's and the
        # kept bytes' lengths.
        self._entries = LRUCache(maxBytes, weigh=lambda entry: len(entry[-2]) + len(entry[-1] or b""))

    def get(self, fsPath: str, version: tuple) -> Optional[FileSnapshot]:
        entry = self._entries.get(fsPath)
        if entry is None or entry[:len(version)] != version:
            return None
        path, isCollection, size, modified, created, inode, etag, data, kept = entry[len(version):]
        # Segments never hold "/" (validateName).
        info = ResourceInfo(tuple(path.split("/")), isCollection, size, modified, created, inode)
        return FileSnapshot(info, etag, data, kept)

    def put(self, fsPath: str, version: tuple, snapshot: FileSnapshot) -> None:
        if len(snapshot.data) > self.maxFile:
            self._entries.pop(fsPath)
            return
        path, isCollection, size, modified, created, inode = snapshot.info
        self._entries.put(fsPath, version + ("/".join(path), isCollection, size, modified, created, inode,
                                             snapshot.etag, snapshot.data, snapshot.kept))



def _keptWith(fd, st: os.stat_result) -> Optional[bytes]:
    """
    What was kept with the version of the file open as C{fd} (or at the
    path C{fd}) whose C{stat} is C{st} (L{CalendarStore.keep}), or C{None}.

    @raise OSError: For C{ESTALE} only (the path led to a file replaced
        since, on a shared filesystem: look it up again).
    """
    try:
        value = os.getxattr(fd, _KEPT_XATTR)
    except OSError as e:
        if e.errno == errno.ESTALE:
            raise
        return None
    stamp = b"%d|%d\n" % (st.st_size, st.st_mtime_ns)
    # Kept for another version (edited in place since) counts for nothing.
    return value[len(stamp):] if value.startswith(stamp) else None


def _keepAllWith(work):
    """
    L{_keepWith} each C{(fsPath, version, kept)} of C{work}, in order.

    @return: Their results, in the same order.
    """
    return [_keepWith(fsPath, version, kept) for fsPath, version, kept in work]


def _keepWith(fsPath: str, version: tuple, kept: bytes):
    """
    Keep C{kept} with the file at C{fsPath} when it is still the version
    C{version} (inode, size, modification time), in a thread of the store.

    @return: The file's C{stat} once kept, else C{None} (another version,
        not a file, or a file of several names), or the C{errno} that
        refused it.
    """
    try:
        fd = os.open(fsPath, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if (not stat.S_ISREG(st.st_mode) or (st.st_ino, st.st_size, st.st_mtime) != version
                # A file of several names: what one name's reader made of it
                # may not be another's (a lookup's answer names the owner).
                or st.st_nlink != 1):
            return None
        os.setxattr(fd, _KEPT_XATTR, b"%d|%d\n" % (st.st_size, st.st_mtime_ns) + kept)
        return os.fstat(fd)
    except OSError as e:
        return e.errno
    finally:
        os.close(fd)


#: How often a path is looked up again when the filesystem answers ESTALE.
_STALE_ATTEMPTS = 5


def _resolvingAgain(operation: Callable, *args):
    """
    Call C{operation(*args)}, a call that looks a path up, again when it
    fails with C{ESTALE}: on a filesystem shared by several machines
    (GlusterFS, NFS) the name led to a file another machine has replaced
    since (a publish renames a new file over the old one, and the old one
    is gone at once, even for a reader that has it open); looking the name
    up again finds the new file.

    @raise OSError: What the last attempt raised.
    """
    for attempt in range(_STALE_ATTEMPTS):
        try:
            return operation(*args)
        except OSError as e:
            if e.errno != errno.ESTALE or attempt == _STALE_ATTEMPTS - 1:
                raise


def _readFile(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()
