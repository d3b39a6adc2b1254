"""
The names changed in one folder, as the kernel tells them (Linux's
C{inotify}), for what a process remembers of the folder's files in memory
(L{fbtwist.access.answers}).

The kernel queues an event inside the system call that changes a name or a
file (a create, a write, a rename, a change of its times, its mode or its
extended attributes, a removal), before that call returns; so a reader that
reads the queue before it answers from memory sees every change made before
its request arrived, by any process of this machine: a publish's rename in
the commit process or in another worker has been queued before its client
was told C{201 Created}, and so before that client could ask for the file.

Only changes made on this machine are queued: on a filesystem another
machine writes to (NFS, GlusterFS, CIFS, Ceph, any FUSE filesystem) the
other machine's changes never show.  So a folder is only watched on a
local filesystem (L{LOCAL_FILESYSTEMS}, by the type of its mount:
L{filesystemType}); elsewhere L{FolderChanges.open} gives C{None} and the
caller looks at the files every time.

Nothing of Twisted's is used: C{twisted.internet.inotify} reads its events
from the reactor, in a later turn than a request read in the same turn may
be answered, and parses them one call at a time.  The three system calls
are made through C{ctypes}.
"""

import ctypes
import errno
import os
import select
import struct
from typing import Callable, Iterator, NamedTuple, Optional, Tuple

from twisted.logger import Logger

from fbtwist.compat.libc import cFunction

# From <sys/inotify.h>.
IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_UNMOUNT = 0x00002000
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000

#: Every change of a member's name, content, times, mode or attributes.
WATCHED = (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
           | IN_DELETE_SELF | IN_MOVE_SELF)

#: Events after which nothing can be said of any name: the queue
#: overflowed (events were lost), or the folder itself went (removed,
#: renamed, unmounted: the watch ends).
_EVERYTHING = IN_Q_OVERFLOW | IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT
#: Events after which the watch is gone.
_ENDED = IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT

_EVENT = struct.Struct("iIII")

#: Filesystems whose every change is made through this machine's kernel
#: (by the type C{/proc/self/mountinfo} gives them).  Not NFS, CIFS,
#: GlusterFS, Ceph, Lustre, OCFS2, GFS2, 9p, virtiofs or any FUSE
#: filesystem: other machines may write to those.
LOCAL_FILESYSTEMS = frozenset({
    "ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "f2fs", "zfs", "bcachefs", "jfs", "reiserfs", "overlay",
})

_log = Logger()


def parseEvents(data: bytes) -> Iterator[Tuple[int, str]]:
    """
    The C{(mask, name)} of each event of C{data}, as C{read} gives them
    from an inotify descriptor; the name is C{""} for an event of the
    watched folder itself.
    """
    offset, end = 0, len(data)
    while offset + _EVENT.size <= end:
        _, mask, _, length = _EVENT.unpack_from(data, offset)
        offset += _EVENT.size
        name = data[offset:offset + length].rstrip(b"\0")
        offset += length
        yield mask, os.fsdecode(name)


def _unescaped(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash as octal escapes.
    return (field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n")
            .replace("\\134", "\\"))


class Mount(NamedTuple):
    """
    One line of C{/proc/self/mountinfo}, what L{mountOf} gives of it.

    @ivar kind: The filesystem's type (C{ext4}, C{nfs4}, C{fuse.glusterfs}, ...).
    @ivar source: What is mounted (C{/dev/vda}, C{server:/export}, ...).
    @ivar point: Where.
    """

    kind: str
    source: str
    point: str


def mountOf(path: str, mountinfo: Optional[str] = None) -> Optional[Mount]:
    """
    The mount holding C{path}, from C{mountinfo} (the text of
    C{/proc/self/mountinfo}, read when not given): the mount of the
    path's device, else the mount whose point is the longest prefix of
    the path; C{None} when it cannot be told.
    """
    try:
        path = os.path.realpath(path)
        device = os.stat(path).st_dev
        if mountinfo is None:
            with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
                mountinfo = f.read()
    except OSError:
        return None
    wanted = f"{os.major(device)}:{os.minor(device)}"
    byDevice, byPrefix, longest, deviceLongest = None, None, -1, -1
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        try:
            separator = fields.index("-")
            number, point = fields[2], _unescaped(fields[4])
            mount = Mount(fields[separator + 1], _unescaped(fields[separator + 2]), point)
        except (ValueError, IndexError):
            continue
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if number == wanted:
            # The last mount of a device is the one on top; of a device
            # mounted at several points (bind mounts), the one holding
            # the path names where it is.
            reach = len(point) if inside else -1
            if reach >= deviceLongest:
                byDevice, deviceLongest = mount, reach
        if inside and len(point) >= longest:
            byPrefix, longest = mount, len(point)
    return byDevice or byPrefix


def filesystemType(path: str, mountinfo: Optional[str] = None) -> Optional[str]:
    """
    The type of the filesystem holding C{path} (L{mountOf}'s C{kind}), or
    C{None} when it cannot be told.
    """
    mount = mountOf(path, mountinfo)
    return None if mount is None else mount.kind


def _inotifyCalls():
    """
    The C library's C{inotify_init1} and C{inotify_add_watch}, or C{None}
    where there are none.
    """
    init = cFunction("inotify_init1", (ctypes.c_int,))
    add = cFunction("inotify_add_watch", (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32))
    return None if init is None or add is None else (init, add)


class FolderChanges:
    """
    A watch of one folder's members (see the module): L{drain} tells each
    name changed since it was last called.

    @ivar path: The folder.
    @ivar ended: Whether the watch is over (the folder went, or the
        descriptor was closed): nothing more will be told.
    """

    def __init__(self, path: str, descriptor: int, changed: Callable[[str, bool], None],
                 everything: Callable[[], None]):
        self.path = path
        self._descriptor = descriptor
        self._changed = changed
        self._everything = everything
        self.ended = False
        self._poll = select.poll()
        self._poll.register(descriptor, select.POLLIN)

    @classmethod
    def open(cls, path: str, changed: Callable[[str, bool], None], everything: Callable[[], None],
             local: Callable[[str], bool] = lambda path: filesystemType(path) in LOCAL_FILESYSTEMS,
             ) -> Optional["FolderChanges"]:
        """
        Watch the folder C{path}: L{drain} calls C{changed(name,
        attributesOnly)} for each member changed, and C{everything()} when
        it cannot tell which changed (or the watch ended).
        C{attributesOnly} is true when the kernel told only that the
        member's attributes changed (C{IN_ATTRIB}: its mode, owner, times,
        links or extended attributes), not its content nor its name.

        @param local: Whether a path is on a filesystem only this machine
            writes to (by default, by its type: L{LOCAL_FILESYSTEMS}).
        @return: The watch, or C{None} when the folder cannot be watched
            (not on a local filesystem, no inotify, or the kernel's limits
            of watches or instances reached: logged).
        """
        calls = _inotifyCalls()
        if calls is None or not local(path):
            return None
        init, add = calls
        descriptor = init(os.O_NONBLOCK | os.O_CLOEXEC)
        if descriptor < 0:
            _log.warn("cannot watch {path} for changes ({error}): lookups look at the files every time",
                      path=path, error=os.strerror(ctypes.get_errno()))
            return None
        if add(descriptor, os.fsencode(path), WATCHED | IN_ONLYDIR) < 0:
            error = ctypes.get_errno()
            os.close(descriptor)
            if error not in (errno.ENOENT, errno.ENOTDIR):
                _log.warn("cannot watch {path} for changes ({error}): lookups look at the files every time",
                          path=path, error=os.strerror(error))
            return None
        return cls(path, descriptor, changed, everything)

    def drain(self) -> bool:
        """
        Tell every change queued since the last call (one C{read} when
        there is none).

        @return: Whether the watch still tells changes (C{False}: it ended,
            and C{everything} was called).
        """
        if self.ended:
            return False
        # Nothing queued (nearly always): one poll, no exception.
        if not self._poll.poll(0):
            return True
        while True:
            try:
                data = os.read(self._descriptor, 65536)
            except BlockingIOError:
                return True
            except OSError as e:
                if e.errno == errno.EINTR:
                    continue
                _log.warn("reading the changes of {path} failed ({error}): lookups look at the files every time",
                          path=self.path, error=e.strerror)
                self.close()
                self._everything()
                return False
            for mask, name in parseEvents(data):
                if mask & _EVERYTHING or not name:
                    if mask & _ENDED:
                        self.close()
                    self._everything()
                elif not name.startswith("."):
                    # Hidden names (temporary files, properties) are no
                    # member's content.
                    self._changed(name, mask & WATCHED == IN_ATTRIB)
            if self.ended:
                return False

    def close(self) -> None:
        """
        End the watch (its descriptor closed).
        """
        if not self.ended:
            self.ended = True
            try:
                os.close(self._descriptor)
            except OSError:
                pass

    def __del__(self):
        self.close()
