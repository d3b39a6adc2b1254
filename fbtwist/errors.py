"""
Domain exceptions shared by the store, the directory and the protocols.

Protocol code maps these to wire errors with one table per protocol
(L{fbtwist.web.responses.httpErrorFor} for HTTP); the store and the directory never know
about HTTP or FTP.
"""

import errno
from typing import Optional

from twisted.cred.error import UnauthorizedLogin


class FreeBusyError(Exception):
    """
    Base class of every error fbtwist reports to a client.

    @ivar reason: A short sentence fit to show a client.
    """

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason or self.__class__.__doc__.strip().splitlines()[0]


class InvalidName(FreeBusyError):
    """
    The name is not allowed in the calendar tree.
    """


class NotFound(FreeBusyError):
    """
    Nothing is published under that name.
    """


class PermissionDenied(FreeBusyError):
    """
    You may not do that here.
    """


class Conflict(FreeBusyError):
    """
    The parent collection does not exist.
    """


class AlreadyExists(FreeBusyError):
    """
    Something already exists under that name.
    """


class Locked(FreeBusyError):
    """
    The resource is locked by a WebDAV client.
    """


class InvalidCalendar(FreeBusyError):
    """
    The body is not a valid free/busy calendar.
    """


class UnsupportedMediaType(FreeBusyError):
    """
    The body is not of a calendar media type.
    """


class TooLarge(FreeBusyError):
    """
    The body is larger than this server accepts.
    """


class InsufficientStorage(FreeBusyError):
    """
    The server has no room left to store this.
    """


class DirectoryUnavailable(FreeBusyError):
    """
    The directory cannot be reached right now.
    """


class TooManyAttempts(FreeBusyError):
    """
    Too many failed logins; try again later.

    @ivar retryAfter: Seconds until an attempt would no longer be refused,
        or C{None} when not known.
    """

    def __init__(self, reason: str = "", retryAfter: Optional[float] = None) -> None:
        super().__init__(reason)
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
