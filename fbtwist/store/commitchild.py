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
back.  Each thread commits together what arrived while it was busy (up to
L{BATCH} publishes, L{commitBatch}): under load a few waits for the disk
serve many publishes.

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
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from twisted.python.filepath import FilePath

from fbtwist.store.files import (
    DirectoryFsyncs,
    _removeIfExists,
    _setEtagAttribute,
    startWriteback,
    writeLockedTemporary,
)
from fbtwist.store.locks import LockStore, WallClock
from fbtwist.store.warmnames import warmSiblings

#: What an answer says instead of C{created} when the server must commit
#: the publish itself.
FALLBACK = "fallback"

_HEAD = struct.Struct("!II")


#: The most publishes one thread commits together (L{commitBatch}).
BATCH = 32


class Publish(NamedTuple):
    """
    One publish to commit (L{commitBatch}).

    @ivar target: The file's path.
    @ivar place: Where to make the temporary file (the staging folder and
        stem), or C{None}: beside the target.
    @ivar path: The file's store path.
    @ivar data: Its new content.
    @ivar etag: The entity tag it is labelled with.
    @ivar existed: Whether a file was there when the publish began, when
        known.
    """

    target: str
    place: Optional[Tuple[str, str]]
    path: tuple
    data: bytes
    etag: str
    existed: Optional[bool]


class _Written:
    """
    A publish's temporary file, written and locked, until renamed or removed.
    """

    __slots__ = ("temp", "fd", "locked")

    def __init__(self, temp: Optional[str], fd: int, locked: Optional[bool]):
        self.temp, self.fd, self.locked = temp, fd, locked

    def drop(self) -> None:
        """
        Close it (letting its lock go), removing it unless it was renamed.
        """
        try:
            if self.temp is not None:
                _removeIfExists(self.temp)
        finally:
            os.close(self.fd)


def commitBatch(locks: LockStore, fsyncs: DirectoryFsyncs, publishes: Sequence[Publish]) -> list:
    """
    Commit each of C{publishes} as the new version of its file, together:
    the temporary files made, written and labelled, the writing of all
    their data started (L{startWriteback}), each fsynced (the first waits
    for the disk, the others then mostly find their data there and their
    blocks in the journal's commit), each renamed over its target (in
    their order: of two publishes of one file, the last stays), and every
    folder renamed into fsynced once.  A publish is thus durable exactly
    as one committed alone, and each has an outcome of its own: one that
    fails or falls back changes nothing, and nothing of the others.

    One publish at a time, each would wait for a commit of the journal of
    its own, and the threads committing them for one another: measured
    with C{bench/publishcost.py} (100,000 users), the threads spent 0.67 ms
    of CPU a publish that way and 0.33 ms in batches, most of the
    difference the kernel's switching between the threads.

    @return: The outcome of each publish, in their order: whether its
        file is new, L{FALLBACK} (nothing changed: the server commits it
        itself), or the exception that refused it (an C{OSError}: nothing
        changed, unless only the fsync of its folder failed).
    """
    outcomes: list = [None] * len(publishes)
    written: Dict[int, _Written] = {}
    renamed: Dict[str, list] = {}

    def fail(index: int, error: Exception) -> None:
        outcomes[index] = error
        written.pop(index).drop()

    try:
        for index, publish in enumerate(publishes):
            try:
                temp, fd, locked, status = writeLockedTemporary(FilePath(publish.target), publish.place,
                                                                publish.data)
            except Exception as e:
                outcomes[index] = e
                continue
            written[index] = _Written(temp, fd, locked)
            try:
                # Labelled before the fsync, which makes the label durable too.
                _setEtagAttribute(fd, publish.etag, status)
            except Exception as e:
                fail(index, e)
        startWriteback([each.fd for each in written.values()])
        for index in list(written):
            try:
                os.fsync(written[index].fd)
            except Exception as e:
                fail(index, e)
        for index in list(written):
            each, publish = written[index], publishes[index]
            try:
                # Held exclusively until the rename: a WebDAV lock taken
                # meanwhile waits for this commit (L{LockStore.publishing}),
                # or is in the index now.
                if each.locked is not True or locks.mayApply(publish.path):
                    outcomes[index] = FALLBACK
                    continue
                created = not os.path.exists(publish.target) if publish.existed is None else not publish.existed
                try:
                    os.rename(each.temp, publish.target)
                except OSError as e:
                    if e.errno != errno.EXDEV:
                        raise
                    outcomes[index] = FALLBACK
                    continue
                each.temp = None
                outcomes[index] = created
                renamed.setdefault(os.path.dirname(publish.target), []).append(index)
                if created and len(publish.path) == 1:
                    warmSiblings(publish.target)
            except Exception as e:
                outcomes[index] = e
            finally:
                written.pop(index).drop()
    finally:
        for each in written.values():
            each.drop()
    for folder, indexes in renamed.items():
        try:
            fsyncs.sync(folder)
        except Exception as e:
            for index in indexes:
                outcomes[index] = e
    return outcomes


def commitOne(locks: LockStore, fsyncs: DirectoryFsyncs, target: str, place: Optional[Tuple[str, str]],
              path: tuple, data: bytes, etag: str, existed: Optional[bool]):
    """
    Commit C{data} as the new version of the file at C{target} (the store
    path C{path}): a batch of one (L{commitBatch}).

    @return: Whether the file is new, or L{FALLBACK} (nothing changed).
    @raise Exception: What refused it (an C{OSError}: nothing changed).
    """
    [outcome] = commitBatch(locks, fsyncs, [Publish(target, place, path, data, etag, existed)])
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def answers(batch: Sequence[Tuple[dict, bytes]], locks: LockStore, fsyncs: DirectoryFsyncs) -> List[dict]:
    """
    The answers to a batch of requests, each with the bytes after it,
    committed together (L{commitBatch}): C{{"id": ..., "created": bool or
    FALLBACK}}, or C{{"id": ..., "errno": n, "message": text}}.
    """
    publishes = []
    for request, data in batch:
        place = request["place"]
        publishes.append(Publish(request["target"], tuple(place) if place is not None else None,
                                 tuple(request["path"]), data, request["etag"], request["existed"]))
    replies = []
    for (request, _), outcome in zip(batch, commitBatch(locks, fsyncs, publishes)):
        if isinstance(outcome, OSError):
            replies.append({"id": request["id"], "errno": outcome.errno or errno.EIO,
                            "message": outcome.strerror or str(outcome)})
        elif isinstance(outcome, Exception):
            # Not the disk's: the server commits it itself, and says why there.
            replies.append({"id": request["id"], "created": FALLBACK, "message": repr(outcome)})
        else:
            replies.append({"id": request["id"], "created": outcome})
    return replies


def frame(header: dict, data: bytes = b"") -> bytes:
    """
    One frame: the lengths of a JSON header and of the bytes after it.
    """
    encoded = json.dumps(header).encode("utf-8")
    return _HEAD.pack(len(encoded), len(data)) + encoded + data


class FrameReader:
    """
    The frames of a stream read in pieces (a large publish comes in many:
    each byte is copied into the buffer once, and once out of it).
    """

    def __init__(self):
        self._buffer = bytearray()

    def feed(self, data: bytes) -> List[Tuple[bytes, bytes]]:
        """
        The frames that C{data}, read after what was fed before, completes:
        each its JSON header (encoded) and the bytes after it.
        """
        buffer = self._buffer
        buffer += data
        frames, at = [], 0
        while len(buffer) - at >= _HEAD.size:
            headerLength, dataLength = _HEAD.unpack_from(buffer, at)
            start = at + _HEAD.size
            end = start + headerLength + dataLength
            if len(buffer) < end:
                break
            frames.append((bytes(buffer[start:start + headerLength]), bytes(buffer[start + headerLength:end])))
            at = end
        if at:
            del buffer[:at]
        return frames


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
            # What arrived meanwhile is committed together (L{commitBatch}).
            batch = requests.get()
            ending = batch is None
            while not ending and len(batch) < BATCH:
                try:
                    more = requests.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    ending = True
                else:
                    batch += more
            if batch:
                reply = b"".join(frame(each) for each in answers(batch, locks, fsyncs))
                try:
                    with writing:
                        out.write(reply)
                        out.flush()
                except OSError:
                    pass  # the server is gone: the commits stand, unanswered
            if ending:
                return

    workers = [threading.Thread(target=work, name=f"fbtwist-commit-{n}", daemon=True) for n in range(threads)]
    for worker in workers:
        worker.start()
    # What one read brings (the server writes a turn of its reactor's
    # requests at once) is committed together.
    reader = FrameReader()
    while True:
        data = os.read(0, 1 << 16)
        if not data:
            break
        frames = [(json.loads(header.decode("utf-8")), body) for header, body in reader.feed(data)]
        for start in range(0, len(frames), BATCH):
            requests.put(frames[start:start + BATCH])
    for _ in workers:
        requests.put(None)
    for worker in workers:
        worker.join()


if __name__ == "__main__":
    main(sys.argv)
