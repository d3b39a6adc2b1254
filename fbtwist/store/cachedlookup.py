"""
Looking a name up without waiting: L{lstatCached} answers like C{os.lstat}
when the kernel has the name in its cache of directory entries, and
raises L{NotCached} when it would have to wait for the filesystem.

A name the kernel has not looked up yet (a user's C{.ics} that nobody
asked for since the server started, say) is looked up under the
directory's lock, which a publish holds while it creates its temporary
file and renames it over the old one.  Those steps wait for the
filesystem's journal, on a busy disk for hundreds of milliseconds; a lookup
in the reactor thread would stall every request meanwhile.  The reactor
thread asks here instead, and leaves what is not cached to a thread.

Linux's C{openat2} with C{RESOLVE_CACHED} (Linux 5.12) tells the two
apart; where it is missing (another system, an older kernel, a C library
without C{syscall}), L{lstatCached} is C{os.lstat}.
"""

import ctypes
import errno
import os
import sys

#: The system call's number (the same on x86-64 and arm64, and every
#: architecture added since Linux 5.6), and its flag.
_SYS_OPENAT2 = 437
_RESOLVE_CACHED = 0x20
_AT_FDCWD = -100


class NotCached(Exception):
    """
    The kernel would have to wait for the filesystem to look this name up.

    @ivar path: The name, for a thread to look up (C{os.lstat}) so that it
        is cached the next time.
    """

    def __init__(self, path: str):
        super().__init__(path)
        self.path = path


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def _openat2():
    if not sys.platform.startswith("linux"):
        return None
    try:
        call = ctypes.CDLL(None, use_errno=True).syscall
    except (OSError, AttributeError):
        return None
    call.restype = ctypes.c_long
    call.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
    return call


_syscall = _openat2()
_how = _OpenHow(os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, 0, _RESOLVE_CACHED)
_howSize = ctypes.sizeof(_how)
_howPointer = ctypes.byref(_how)


def available() -> bool:
    """
    Whether L{lstatCached} can tell a cached name from one that is not
    (else it always looks up, as C{os.lstat} does).
    """
    return _syscall is not None


def lstatCached(path: str) -> os.stat_result:
    """
    C{os.lstat(path)}, answered only from the kernel's caches.

    @raise NotCached: When answering would mean waiting for the filesystem.
    @raise OSError: As C{os.lstat} (C{FileNotFoundError}, ...).
    """
    global _syscall
    if _syscall is None:
        return os.lstat(path)
    fd = _syscall(_SYS_OPENAT2, _AT_FDCWD, os.fsencode(path), _howPointer, _howSize)
    if fd < 0:
        code = ctypes.get_errno()
        if code == errno.EAGAIN:
            raise NotCached(path)
        if code in (errno.ENOSYS, errno.EINVAL, errno.EPERM, errno.E2BIG):
            # No openat2 (or no RESOLVE_CACHED, or a filter refusing it):
            # look up as before, from now on.
            _syscall = None
            return os.lstat(path)
        raise OSError(code, os.strerror(code), path)
    try:
        # O_PATH without following: the name itself, a link or not, as lstat.
        return os.fstat(fd)
    finally:
        os.close(fd)


def lookUp(path: str) -> None:
    """
    Look C{path} up, waiting as long as it takes (in a thread), so that the
    kernel has it in its cache for L{lstatCached}; what is found, or not,
    does not matter.
    """
    try:
        os.lstat(path)
    except OSError:
        pass
