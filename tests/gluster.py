"""
A GlusterFS volume on this machine, for tests (Debian packages
C{glusterfs-server} and C{glusterfs-client}; root only): one brick in a
test folder, served by the machine's C{glusterd} (the test's own when none
runs), mounted through FUSE as often as wanted.  Each mount is a client of
its own, as a mount on another machine would be: it has its own caches and
its own locks, which the brick arbitrates.

Every step registers its undoing with the test's C{addCleanup} as soon as
it has succeeded, so a failure half-way leaves nothing behind: no mount, no
volume, no daemon, no state or log of the volume in C{/var/lib/glusterd},
C{/var/run/gluster} or C{/var/log/glusterfs} (only the lines the C{gluster}
command adds to its own logs there).  Runs of several test processes on one machine
take turns (an C{flock} on L{TURN}), since they share C{glusterd}.
"""

import fcntl
import glob
import os
import signal
import socket
import subprocess
import time
from typing import Optional

from tests.netns import run
from tests.processes import pidAlive, stopProcess

#: What a volume shared by several fbtwist nodes needs: without them a
#: client keeps answering from its metadata cache (C{stat-prefetch}) the
#: size and times, and reads the content, of a file another client has
#: replaced since; and a lazy open (C{open-behind}) reaches the brick only
#: at the first read, by which time another client's rename may have
#: removed the file (C{ESTALE}).
VOLUME_OPTIONS = (("performance.stat-prefetch", "off"), ("performance.open-behind", "off"))
#: And each mount: no kernel cache of names and attributes, which would
#: otherwise keep a replaced file's inode for a second.
MOUNT_OPTIONS = "entry-timeout=0,attribute-timeout=0"

#: Held while a test has a volume: tests in other processes wait.
TURN = "/run/lock/fbtwist-gluster.lock"
_RUN = "/var/run/gluster"


def _gluster(*args: str, timeout: float = 60.0) -> str:
    return run("gluster", "--mode=script", *args, timeout=timeout)


def _glusterdAnswers() -> bool:
    return subprocess.run(["gluster", "--mode=script", "volume", "list"], capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=30).returncode == 0


class GlusterVolume:
    """
    A one-brick volume, started, and its FUSE mounts.

    @ivar host: The server's name in the volume: this machine's host name
        (the C{gluster} command refuses C{localhost} and C{127.0.0.1}).
    """

    def __init__(self, testCase, basedir: str, name: str):
        self.testCase = testCase
        self.basedir = basedir
        self.name = name
        self.host = socket.gethostname()
        self.brick = os.path.join(basedir, "brick")

    def start(self, timeout: float = 60.0) -> "GlusterVolume":
        """
        Wait for the turn, start C{glusterd} if none answers, create the
        volume and start it.
        """
        cleanup = self.testCase.addCleanup
        os.makedirs(self.brick)
        turn = open(TURN, "a")
        cleanup(turn.close)
        deadline = time.monotonic() + 300
        while True:
            try:
                fcntl.flock(turn, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"another test kept {TURN} for 300 s") from None
                time.sleep(0.2)
        if not _glusterdAnswers():
            self._startDaemon(timeout)
        sockets = set(glob.glob(os.path.join(_RUN, "*.socket")))
        _gluster("volume", "create", self.name, f"{self.host}:{self.brick}", "force")
        cleanup(self._delete, sockets)
        for option, value in VOLUME_OPTIONS:
            _gluster("volume", "set", self.name, option, value)
        _gluster("volume", "start", self.name)
        cleanup(self._stop)
        return self

    def _startDaemon(self, timeout: float) -> None:
        log = open(os.path.join(self.basedir, "glusterd.out"), "wb")
        with log:
            daemon = subprocess.Popen(
                ["glusterd", "-N", f"--log-file={os.path.join(self.basedir, 'glusterd.log')}"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.testCase.addCleanup(self._stopDaemon, daemon)
        deadline = time.monotonic() + timeout
        while not _glusterdAnswers():
            if daemon.poll() is not None or time.monotonic() > deadline:
                with open(os.path.join(self.basedir, "glusterd.log"), "rb") as f:
                    raise RuntimeError(f"glusterd did not start: {f.read()[-2000:]!r}")
            time.sleep(0.2)

    @staticmethod
    def _stopDaemon(daemon: subprocess.Popen) -> None:
        stopProcess(daemon, 15)

    def _stop(self) -> None:
        try:
            _gluster("volume", "stop", self.name)
        finally:
            # A brick whose stop failed half-way would outlive the volume.
            for pidFile in glob.glob(os.path.join(_RUN, "vols", self.name, "*.pid")):
                try:
                    with open(pidFile) as f:
                        os.kill(int(f.read().strip()), signal.SIGKILL)
                except (OSError, ValueError):
                    pass

    def _delete(self, sockets: set) -> None:
        _gluster("volume", "delete", self.name)
        # What the volume's brick left in glusterd's shared folders.
        for path in set(glob.glob(os.path.join(_RUN, "*.socket"))) - sockets:
            os.remove(path)
        brickLog = "/var/log/glusterfs/bricks/" + self.brick.strip("/").replace("/", "-") + ".log"
        if os.path.exists(brickLog):
            os.remove(brickLog)
        folder = os.path.join(_RUN, "vols", self.name)
        if os.path.isdir(folder) and not os.listdir(folder):
            os.rmdir(folder)

    def mount(self, path: str) -> str:
        """
        Mount the volume through FUSE at C{path} (a new folder): one more
        client.

        @return: C{path}.
        """
        os.makedirs(path)
        log = path.rstrip("/") + ".log"
        run("mount", "-t", "glusterfs", "-o", f"{MOUNT_OPTIONS},log-file={log}", f"{self.host}:/{self.name}", path)
        self.testCase.addCleanup(self._unmount, path, _clientOf(path))
        return path

    @staticmethod
    def _unmount(path: str, client: Optional[int]) -> None:
        try:
            run("umount", path)
        except RuntimeError:
            # Busy (a process the test could not end still has a file
            # open): detach now, the kernel finishes when it lets go.
            run("umount", "-l", path)
        # The client process does not always end with its mount.
        deadline = time.monotonic() + 5
        while client is not None and pidAlive(client):
            if time.monotonic() > deadline:
                os.kill(client, signal.SIGTERM)
                break
            time.sleep(0.1)


def _clientOf(mountPoint: str) -> Optional[int]:
    """
    The process id of the FUSE client serving C{mountPoint}, if found.
    """
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if argv[0].endswith(b"glusterfs") and mountPoint.encode() in argv:
                return int(entry)
    return None

