"""
The FTP view of the calendar tree: an L{IFTPShell} over a
L{fbtwist.access.avatar.CalendarAvatar}.

Outlook 98 publishes to C{ftp://userid:password@HOST/pub/calendar/userid.vfb},
so the FTP view puts the store's root (what HTTP serves as
C{/pub/calendar/}) at C{/pub/calendar/}; C{/} and C{/pub} are read-only
virtual directories leading to it, and nothing else exists.  Every operation
goes through the avatar, so L{fbtwist.access.permissions.authorize} decides, as for
HTTP.

Domain errors become FTP replies by their C{ftpReply} (L{ftpErrorFor}); every
failure the shell reports is an L{FTPReplyError}, whose reply never fails to
format (Twisted's own C{FTPCmdError} raises for reply templates without
C{%s}, such as 552's).
"""

from datetime import datetime, timezone
from typing import List, Optional, Sequence, Tuple

from twisted.internet import defer, interfaces
from twisted.protocols.basic import FileSender
from twisted.protocols.ftp import FTPCmdError, IFTPShell, IReadFile, IWriteFile
from twisted.python.filepath import Permissions
from zope.interface import implementer

from fbtwist.access.avatar import CalendarAvatar
from fbtwist.access.permissions import Action
from fbtwist.access.values import NO_PRECONDITIONS, ResourceInfo, StorePath
from fbtwist.access.visibility import HIDDEN, Detail, PublishedFile
from fbtwist.availability.publish import validatePublish
from fbtwist.calendar import publicview
from fbtwist.errors import (
    AlreadyExists,
    FreeBusyError,
    NotFound,
    PermissionDenied,
    TooLarge,
)

#: Where the store's root appears in the FTP view.
VIEW_ROOT = ("pub", "calendar")

class FTPReplyError(FTPCmdError):
    """
    A failed command, with the reply the client gets.

    @ivar code: The three-digit reply code (text).
    @ivar text: The rest of the reply line.
    @ivar reason: The C{publish-rejected} reason slug (C{too-large}, ...).
    """

    def __init__(self, code: str, text: str, reason: str = "aborted"):
        super().__init__(text)
        self.code = self.errorCode = code
        self.text = " ".join(text.split())
        self.reason = reason

    def response(self) -> str:
        return f"{self.code} {self.text}"


def viewPath(segments: Sequence[str]) -> str:
    """
    The FTP path of C{segments} as a client sees it (C{/pub/calendar/x}).
    """
    return "/" + "/".join(segments)


def ftpErrorFor(error: FreeBusyError, segments: Sequence[str] = ()) -> FTPReplyError:
    """
    The FTP reply for a domain error about C{segments}: its C{ftpReply}
    code, counted under its C{label}.
    """
    code, reason = error.ftpReply or "550", error.label or "aborted"
    text = error.reason if not segments else f"{viewPath(segments)}: {error.reason}"
    return FTPReplyError(code, text, reason)


def _attributes(isDirectory: bool, size: int, modified: float, keys: Sequence[str]) -> List:
    values = {
        "size": size,
        "directory": isDirectory,
        "permissions": Permissions(0o755 if isDirectory else 0o644),
        "hardlinks": 2 if isDirectory else 1,
        "modified": modified,
        "owner": "fbtwist",
        "group": "fbtwist",
    }
    return [values[key] for key in keys]


def _infoAttributes(info: ResourceInfo, keys: Sequence[str]) -> List:
    return _attributes(info.isCollection, info.size, info.modified, keys)


@implementer(IReadFile)
class _PublishedFile:
    """
    A file's content, sent to a consumer with flow control.
    """

    def __init__(self, data: bytes):
        self.data = data

    def send(self, consumer) -> defer.Deferred:
        from io import BytesIO

        return FileSender().beginFileTransfer(BytesIO(self.data), consumer)


@implementer(IWriteFile, interfaces.IConsumer)
class UploadFile:
    """
    An FTP upload into an L{fbtwist.interfaces.IUpload}: the bytes go to a
    temporary file, bounded by C{limit}; L{close} validates them with
    L{fbtwist.availability.publish.validatePublish} and commits atomically; L{abort} leaves
    the published file untouched.

    It is its own consumer: L{write} raises an L{FTPReplyError} (552) as
    soon as the upload grows past C{limit}.
    """

    producer = None

    def __init__(self, upload, segments: Sequence[str], limit: int, avatar=None):
        self.upload = upload
        self.segments = list(segments)
        self.limit = limit
        self.avatar = avatar
        self._finished = False

    @property
    def size(self) -> int:
        return self.upload.size

    @property
    def path(self) -> StorePath:
        """
        The store path being written.
        """
        return self.upload.path

    def receive(self) -> defer.Deferred:
        return defer.succeed(self)

    def registerProducer(self, producer, streaming) -> None:
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None

    def write(self, data: bytes) -> None:
        """
        @raise FTPReplyError: 552 past the limit, 452 when the disk is full.
        """
        if self._finished:
            raise FTPReplyError("451", "the upload was aborted")
        if self.upload.size + len(data) > self.limit:
            self.abort()
            raise ftpErrorFor(TooLarge(f"the file is larger than {self.limit} bytes, the most this server accepts"),
                              self.segments)
        try:
            self.upload.write(data)
        except FreeBusyError as e:
            self.abort()
            raise ftpErrorFor(e, self.segments) from None

    def close(self) -> defer.Deferred:
        """
        Validate and commit.

        @return: A Deferred firing with C{True} when the file was created,
            C{False} when it replaced an older one; failing with an
            L{FTPReplyError} (the old file untouched) otherwise.
        """
        if self._finished:
            return defer.fail(FTPReplyError("451", "the upload was aborted; nothing was stored"))
        return defer.Deferred.fromCoroutine(self._close())

    async def _close(self) -> bool:
        try:
            validatePublish(self.upload.path[-1], self.upload.contents())
            if self.avatar is None:
                created = await self.upload.commitAsync(b"")
            else:
                # FTP holds no lock tokens: a WebDAV client's lock, even one
                # taken during the upload, refuses it right before the rename.
                created = await self.avatar.commitUpload(self.upload, NO_PRECONDITIONS)
        except FreeBusyError as e:
            self.abort()
            raise ftpErrorFor(e, self.segments) from None
        except BaseException:
            self.abort()
            raise
        self._finished = True
        return created

    def abort(self) -> None:
        """
        Discard the upload; the published file stays as it was.  Safe to
        call more than once.
        """
        self._finished = True
        self.upload.abort()


@implementer(IFTPShell)
class CalendarFTPShell:
    """
    One logged-in FTP user's view of the calendar tree.

    Paths are lists of segments, already made absolute and freed of C{.}
    and C{..} by the protocol.

    @ivar avatar: The L{CalendarAvatar} every operation goes through.
    @ivar maxUpload: The largest file accepted by C{STOR}, in bytes.
    """

    def __init__(self, avatar: CalendarAvatar, maxUpload: int):
        self.avatar = avatar
        self.maxUpload = maxUpload

    def __repr__(self) -> str:
        return f"<CalendarFTPShell {self.avatar!r}>"

    @property
    def uid(self) -> Optional[str]:
        """
        Who logged in: a uid, or C{None} for the anonymous reader.
        """
        return self.avatar.uid

    def _locate(self, segments: Sequence[str]) -> Tuple[Optional[StorePath], Optional[str]]:
        """
        Where C{segments} leads.

        @return: C{(storePath, None)} in the tree, or C{(None, child)} for
            the virtual directories C{/} and C{/pub}, whose only child is
            C{child}.
        @raise NotFound: For anything else.
        @raise InvalidName: For names the store refuses.
        """
        lowered = [s.lower() for s in segments[: len(VIEW_ROOT)]]
        if len(segments) < len(VIEW_ROOT) and lowered == list(VIEW_ROOT[: len(segments)]):
            return None, VIEW_ROOT[len(segments)]
        if lowered != list(VIEW_ROOT):
            raise NotFound(f"no such file or directory (calendars are in {viewPath(VIEW_ROOT)}/)")
        return self.avatar.path(segments[len(VIEW_ROOT):]), None

    def _run(self, segments, operation) -> defer.Deferred:
        """
        Run the coroutine function C{operation}: a domain error it raises
        becomes the FTP reply about C{segments}.
        """

        def failed(failure):
            failure.trap(FreeBusyError)
            raise ftpErrorFor(failure.value, segments)

        return defer.Deferred.fromCoroutine(operation()).addErrback(failed)

    def _virtualDirectoryAttributes(self, keys) -> List:
        return _attributes(True, 0, 0.0, keys)

    async def _statFile(self, path: StorePath) -> ResourceInfo:
        info = await self.avatar.stat(path)
        if info is None:
            raise NotFound("no such file or directory")
        return info

    # -- IFTPShell ----------------------------------------------------------

    def access(self, path) -> defer.Deferred:
        async def access():
            storePath, _ = self._locate(path)
            if storePath is not None and not (await self._statFile(storePath)).isCollection:
                raise NotFound("not a directory")

        return self._run(path, access)

    def stat(self, path, keys=()) -> defer.Deferred:
        async def stat():
            storePath, _ = self._locate(path)
            if storePath is None:
                return self._virtualDirectoryAttributes(keys)
            info = await self._statFile(storePath)
            if self.avatar.uid is None and not info.isCollection:
                info, _ = await self._publicFile(storePath)
            return _infoAttributes(info, keys)

        return self._run(path, stat)

    def list(self, path, keys=()) -> defer.Deferred:
        async def listing():
            storePath, child = self._locate(path)
            if storePath is None:
                return [(child, self._virtualDirectoryAttributes(keys))]
            info = await self._statFile(storePath)
            entries = [info] if not info.isCollection else await self.avatar.list(storePath)
            if self.avatar.uid is None:
                entries = await self._publicEntries(entries)
            return [(entry.name, _infoAttributes(entry, keys)) for entry in entries]

        return self._run(path, listing)

    def openForReading(self, path) -> defer.Deferred:
        async def open():
            storePath, _ = self._locate(path)
            if storePath is None or (await self._statFile(storePath)).isCollection:
                raise NotFound("is a directory")
            if self.avatar.uid is None:
                _, data = await self._publicFile(storePath)
            else:
                data = await self.avatar.read(storePath)
            return _PublishedFile(data)

        return self._run(path, open)

    # -- what the anonymous reader sees -------------------------------------

    async def _publicFile(self, path: StorePath) -> Tuple[ResourceInfo, bytes]:
        """
        A file as the anonymous reader gets it: what the avatar may see of
        it (L{CalendarAvatar.freeBusyFor}, the lookups' decision) rendered
        by L{publicview.publicView} (the lookups' answer), with the size of
        those bytes, so that C{SIZE}, C{LIST} and C{RETR} agree; never a
        full calendar's events.

        @raise PermissionDenied: For anything but a published, readable
            free/busy file.
        """
        answer = self.avatar.freeBusyForNow(PublishedFile(path), None, Detail.BUSY)
        if answer is HIDDEN or answer is None:
            raise PermissionDenied("only published free/busy times are public")
        stamp = datetime.fromtimestamp(answer.modified, timezone.utc)
        data = publicview.publicView(answer.freeBusy, answer.owner, stamp)
        info = await self._statFile(path)
        return info._replace(size=len(data)), data

    async def _publicEntries(self, entries) -> List[ResourceInfo]:
        """
        The entries the anonymous reader may see, files with the size
        L{_publicFile} gives them (collections as they are).
        """
        visible = []
        for entry in entries:
            if entry.isCollection:
                visible.append(entry)
                continue
            try:
                visible.append((await self._publicFile(entry.path))[0])
            except (PermissionDenied, NotFound):
                continue
        return visible

    def openForWriting(self, path) -> defer.Deferred:
        """
        Start an upload: nothing is changed until the returned
        L{UploadFile}'s C{close} validates and commits it.
        """

        async def open():
            storePath, _ = self._locate(path)
            if storePath is None:
                raise PermissionDenied(f"only files in {viewPath(VIEW_ROOT)}/ can be written")
            upload = await self.avatar.openUpload(storePath, NO_PRECONDITIONS)
            return UploadFile(upload, path, self.maxUpload, self.avatar)

        return self._run(path, open)

    def removeFile(self, path) -> defer.Deferred:
        async def remove():
            storePath, _ = self._locate(path)
            if storePath is None or (await self._statFile(storePath)).isCollection:
                raise PermissionDenied("is a directory (use RMD)")
            await self.avatar.delete(storePath, NO_PRECONDITIONS)

        return self._run(path, remove)

    def makeDirectory(self, path) -> defer.Deferred:
        async def make():
            storePath, _ = self._locate(path)
            if storePath is None:
                raise AlreadyExists("exists")
            await self.avatar.makeCollection(storePath, NO_PRECONDITIONS)

        return self._run(path, make)

    def removeDirectory(self, path) -> defer.Deferred:
        async def remove():
            storePath, _ = self._locate(path)
            if storePath is None or storePath == ():
                raise PermissionDenied("this directory cannot be removed")
            if not (await self._statFile(storePath)).isCollection:
                raise PermissionDenied("not a directory (use DELE)")
            await self.avatar.delete(storePath, NO_PRECONDITIONS)

        return self._run(path, remove)

    def rename(self, fromPath, toPath) -> defer.Deferred:
        """
        Rename a file under the rule of a WebDAV MOVE
        (L{CalendarAvatar.authorizeMove}): a user may rename their own
        published files into each other (C{alice.ics} to C{alice.vfb}), an
        administrator any file.  The renamed file is checked as an upload
        to the new name would be.  A refusal names the path it is about.
        """

        async def renamed():
            source, _ = self._locate(fromPath)
            if source is None or not source:
                raise PermissionDenied("this directory cannot be renamed")
            if (await self._statFile(source)).isCollection:
                raise PermissionDenied("directories cannot be renamed over FTP")
            self.avatar.authorize(Action.WRITE, source)
            return source

        async def rename(source):
            target, _ = self._locate(toPath)
            if target is None or not target:
                raise PermissionDenied("this directory cannot be replaced")
            self.avatar.authorizeMove(source, target, keepSource=False)
            if target == source:
                return
            data = await self.avatar.read(source)
            validatePublish(target[-1], data)
            # Both refused by a lock, before either changes.
            await self.avatar.checkChange(source, NO_PRECONDITIONS)
            await self.avatar.checkChange(target, NO_PRECONDITIONS)
            await self.avatar.publish(target, data, NO_PRECONDITIONS)
            await self.avatar.delete(source, NO_PRECONDITIONS)

        d = self._run(fromPath, renamed)
        d.addCallback(lambda source: self._run(toPath, lambda: rename(source)))
        return d


def ftpAvatarFactory(maxUpload: int, anonymousReads: bool = False):
    """
    The realm's avatar factory for L{IFTPShell}
    (C{realm.registerAvatarFactory(IFTPShell, ftpAvatarFactory(...))}).

    @param anonymousReads: Whether an anonymous login (C{--ftp-anonymous})
        may list and download; it can never write.
    """

    def wrap(avatar: CalendarAvatar) -> CalendarFTPShell:
        if avatar.uid is None and anonymousReads:
            avatar.anonymousReads = True
        return CalendarFTPShell(avatar, maxUpload)

    return wrap
