"""
The commit process (L{fbtwist.store.committer}): C{python -m
fbtwist.store.commitchild LOCK_FOLDER THREADS}, its requests on standard
input and its answers on standard output, in the frames of
L{fbtwist.store.committer}.

Each request is one publish sent in one piece, committed as
L{fbtwist.store.uploads.Upload} commits it in the server's own threads: a
temporary file made and locked exclusively, the body written, labelled
with its entity tag and fsynced; then, holding that lock, the lock index
asked whether a WebDAV lock may apply to the file (then the answer is
L{fbtwist.store.committer.FALLBACK}: the server commits it itself, with
its full check), the rename, and the fsync of the folder, shared with the
other commits into it.  Its own threads wait for the disk, so that the
server's reactor thread never waits for them to hand the interpreter lock
back.

It ends when its standard input closes (the server stopped, or died),
once the requests it read are answered; the signals that stop a server
(C{SIGTERM} from systemd to every process of the service, C{SIGINT} from a
terminal to its process group) are left to the server, which closes that
input once the publishes in flight are done.
"""

import errno
import json
import os
import queue
import signal
import struct
import sys
import threading
from typing import Optional, Tuple

from twisted.python.filepath import FilePath

from fbtwist.store.files import DirectoryFsyncs, _removeIfExists, _setEtagAttribute, writeLockedTemporary
from fbtwist.store.locks import LockStore, WallClock
from fbtwist.store.warmnames import warmSiblings

#: What an answer says instead of C{created} when the server must commit
#: the publish itself.
FALLBACK = "fallback"

_HEAD = struct.Struct("!II")


def commitOne(locks: LockStore, fsyncs: DirectoryFsyncs, target: str, place: Optional[Tuple[str, str]],
              path: tuple, data: bytes, etag: str, existed: Optional[bool]):
    """
    Commit C{data} as the new version of the file at C{target} (the store
    path C{path}).

    @param place: Where to make the temporary file (the staging folder and
        stem), or C{None}: beside the target.
    @param existed: Whether a file was there when the publish began, when
        known.
    @return: Whether the file is new, or L{FALLBACK} (nothing changed).
    @raise OSError: What refused it (nothing changed).
    """
    temp, fd, locked, written = writeLockedTemporary(FilePath(target), place, data)
    try:
        # Labelled before the fsync, which makes the label durable too.
        _setEtagAttribute(fd, etag, written)
        os.fsync(fd)
        # Held exclusively until the rename: a WebDAV lock taken meanwhile
        # waits for this commit (L{LockStore.publishing}), or is in the
        # index now.
        if locked is not True or locks.mayApply(path):
            return FALLBACK
        created = not os.path.exists(target) if existed is None else not existed
        try:
            os.rename(temp, target)
        except OSError as e:
            if e.errno == errno.EXDEV:
                return FALLBACK
            raise
        temp = None
        if created and len(path) == 1:
            warmSiblings(target)
    finally:
        if temp is not None:
            _removeIfExists(temp)
        os.close(fd)
    fsyncs.sync(os.path.dirname(target))
    return created


def answer(request: dict, data: bytes, locks: LockStore, fsyncs: DirectoryFsyncs) -> dict:
    """
    The answer to one request: C{{"id": ..., "created": bool or
    FALLBACK}}, or C{{"id": ..., "errno": n, "message": text}}.
    """
    place = request["place"]
    try:
        created = commitOne(locks, fsyncs, request["target"], tuple(place) if place is not None else None,
                            tuple(request["path"]), data, request["etag"], request["existed"])
    except OSError as e:
        return {"id": request["id"], "errno": e.errno or errno.EIO, "message": e.strerror or str(e)}
    except Exception as e:
        # Not the disk's: the server commits it itself, and says why there.
        return {"id": request["id"], "created": FALLBACK, "message": repr(e)}
    return {"id": request["id"], "created": created}


def frame(header: dict, data: bytes = b"") -> bytes:
    """
    One frame: the lengths of a JSON header and of the bytes after it.
    """
    encoded = json.dumps(header).encode("utf-8")
    return _HEAD.pack(len(encoded), len(data)) + encoded + data


def readFrame(stream) -> Optional[Tuple[dict, bytes]]:
    """
    The next frame of C{stream} (a binary file), or C{None} at its end.
    """
    head = stream.read(_HEAD.size)
    if len(head) < _HEAD.size:
        return None
    headerLength, dataLength = _HEAD.unpack(head)
    header = stream.read(headerLength)
    data = stream.read(dataLength)
    if len(header) < headerLength or len(data) < dataLength:
        return None
    return json.loads(header.decode("utf-8")), data


def main(argv) -> None:
    # Stopped by its server only (see the module): killed halfway, the
    # publishes it was sent would go back to a server that is stopping.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    lockFolder, threads = argv[1], int(argv[2])
    locks = LockStore(FilePath(lockFolder), WallClock)
    fsyncs = DirectoryFsyncs()
    requests: queue.SimpleQueue = queue.SimpleQueue()
    out = sys.stdout.buffer
    writing = threading.Lock()

    def work():
        while True:
            item = requests.get()
            if item is None:
                return
            reply = frame(answer(item[0], item[1], locks, fsyncs))
            try:
                with writing:
                    out.write(reply)
                    out.flush()
            except OSError:
                pass  # the server is gone: the commit stands, unanswered

    workers = [threading.Thread(target=work, name=f"fbtwist-commit-{n}", daemon=True) for n in range(threads)]
    for worker in workers:
        worker.start()
    stream = sys.stdin.buffer
    while True:
        item = readFrame(stream)
        if item is None:
            break
        requests.put(item)
    for _ in workers:
        requests.put(None)
    for worker in workers:
        worker.join()


if __name__ == "__main__":
    main(sys.argv)
