"""
Domain exceptions shared by the store, the directory and the protocols.

Each error says what it is once, here: its reason, the HTTP status and
FTP reply code it is answered with and the label it is counted under in
logs and metrics (C{publish-rejected} reasons), so that a rejection reads
the same whichever protocol carried it.  The protocols read these
attributes (L{fbtwist.web.responses.httpErrorFor},
L{fbtwist.ftp.shell.ftpErrorFor}, L{fbtwist.logs.publishRejectionReason});
the store and the directory only raise the errors.
"""

import errno
from typing import Optional

from twisted.cred.error import UnauthorizedLogin

#: Seconds a client is asked to wait when the directory is down (or it
#: was refused for too many failed logins and the wait is not known).
DIRECTORY_RETRY_AFTER = 30

#: Seconds a client is asked to wait when the server is out of descriptors.
BUSY_RETRY_AFTER = 5


class FreeBusyError(Exception):
    """
    Base class of every error fbtwist reports to a client.

    Every subclass sets the three class attributes below.

    @ivar reason: A short sentence fit to show a client.
    @cvar httpStatus: The HTTP status code it is answered with.
    @cvar ftpReply: The FTP reply code it is answered with (text; C{421}
        also ends the session).
    @cvar label: Its slug in logs and metrics (the C{reason} of a
        C{publish-rejected} event), the same over every protocol.
    @cvar retryAfter: Seconds a client is asked to wait before trying
        again (HTTP C{Retry-After}), or C{None}.
    """

    httpStatus: Optional[int] = None
    ftpReply: Optional[str] = None
    label: Optional[str] = None
    retryAfter: Optional[float] = None

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason or self.__class__.__doc__.strip().splitlines()[0]


class InvalidName(FreeBusyError):
    """
    The name is not allowed in the calendar tree.
    """

    httpStatus = 400
    ftpReply = "553"
    label = "invalid-name"


class NotFound(FreeBusyError):
    """
    Nothing is published under that name.
    """

    httpStatus = 404
    ftpReply = "550"
    label = "not-found"


class PermissionDenied(FreeBusyError):
    """
    You may not do that here.
    """

    httpStatus = 403
    ftpReply = "550"
    label = "forbidden"


class Conflict(FreeBusyError):
    """
    The parent collection does not exist.
    """

    httpStatus = 409
    ftpReply = "550"
    label = "conflict"


class AlreadyExists(FreeBusyError):
    """
    Something already exists under that name.
    """

    httpStatus = 405
    ftpReply = "550"
    label = "conflict"


class Locked(FreeBusyError):
    """
    The resource is locked by a WebDAV client.
    """

    httpStatus = 423
    ftpReply = "550"
    label = "locked"


class LockedBy(Locked):
    """
    A WebDAV lock stands in the way of a change.

    @ivar lock: The lock in the way (a L{fbtwist.access.values.Lock}), or
        C{None}.
    @ivar rootIsCollection: Whether the lock's root is a collection (for
        naming it: WebDAV answers with its URL).
    @ivar conflicting: Whether it is in the way of a new lock
        (C{DAV:no-conflicting-lock}) rather than of a change made without
        its token (C{DAV:lock-token-submitted}).
    """

    def __init__(self, reason: str = "", lock=None, rootIsCollection: bool = False,
                 conflicting: bool = False) -> None:
        super().__init__(reason)
        self.lock = lock
        self.rootIsCollection = rootIsCollection
        self.conflicting = conflicting


class PreconditionFailed(FreeBusyError):
    """
    A condition the client set for the change does not hold.
    """

    httpStatus = 412
    ftpReply = "550"
    label = "precondition-failed"


class InvalidCalendar(FreeBusyError):
    """
    The body is not a valid free/busy calendar.
    """

    httpStatus = 400
    ftpReply = "550"
    label = "invalid-calendar"


class UnsupportedMediaType(FreeBusyError):
    """
    The body is not of a calendar media type.
    """

    httpStatus = 415
    ftpReply = "550"
    label = "unsupported-media-type"


class TooLarge(FreeBusyError):
    """
    The body is larger than this server accepts.
    """

    httpStatus = 413
    ftpReply = "552"
    label = "too-large"


class InsufficientStorage(FreeBusyError):
    """
    The server has no room left to store this.
    """

    httpStatus = 507
    ftpReply = "452"
    label = "storage-full"


class DirectoryUnavailable(FreeBusyError):
    """
    The directory cannot be reached right now.
    """

    httpStatus = 503
    ftpReply = "421"
    label = "directory-unavailable"
    retryAfter = DIRECTORY_RETRY_AFTER


class TooManyAttempts(FreeBusyError):
    """
    Too many failed logins; try again later.

    @ivar retryAfter: Seconds until an attempt would no longer be refused,
        or C{None} when not known.
    """

    httpStatus = 429
    ftpReply = "421"
    label = "too-many-attempts"
    retryAfter = DIRECTORY_RETRY_AFTER

    def __init__(self, reason: str = "", retryAfter: Optional[float] = None) -> None:
        super().__init__(reason)
        if retryAfter is not None:
            self.retryAfter = retryAfter


class WrongPassword(UnauthorizedLogin):
    """
    The login names a directory entry, but the password is not its.

    @ivar uid: The entry's uid, for counting failures per entry; never to
        be shown to a client.
    """

    def __init__(self, reason: str, uid: str) -> None:
        super().__init__(reason)
        self.uid = uid


class OutOfDescriptors(FreeBusyError):
    """
    The server is too busy to answer right now; try again shortly.

    Raised when the process (or the system) has no file descriptors left
    (C{EMFILE}, C{ENFILE}): a passing condition, not a fault of the request
    (HTTP answers 503 with C{Retry-After}, FTP 421/452).
    """

    httpStatus = 503
    ftpReply = "421"
    label = "out-of-descriptors"
    retryAfter = BUSY_RETRY_AFTER


#: The errno values of running out of file descriptors.
_NO_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE})


def descriptorError(error: BaseException) -> Optional[OutOfDescriptors]:
    """
    @return: L{OutOfDescriptors} when C{error} is an C{OSError} for want of
        file descriptors (or already that error), otherwise C{None}.
    """
    if isinstance(error, OutOfDescriptors):
        return error
    if isinstance(error, OSError) and error.errno in _NO_DESCRIPTORS:
        return OutOfDescriptors()
    return None
