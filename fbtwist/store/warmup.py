"""
The service that warms the kernel's cache of the tree's names at start
(L{fbtwist.store.warmnames} says why, and is the child it runs).
"""

import os
import sys

from twisted.application.service import Service
from twisted.internet import protocol
from twisted.internet.interfaces import IReactorProcess
from twisted.logger import Logger

#: A top folder smaller than this (bytes of its entries, as the filesystem
#: counts them: some hundreds of names) is not worth a child process.
MINIMUM_FOLDER_BYTES = 64 * 1024


def worthWarming(root: str, minimumFolderBytes: int = MINIMUM_FOLDER_BYTES) -> bool:
    """
    Whether L{NameWarmup} warms the names of the tree at C{root} (and then
    logs it): its top folder can be looked at and takes at least
    C{minimumFolderBytes} (a smaller one is looked through in no time).
    """
    try:
        return os.stat(root).st_size >= minimumFolderBytes
    except OSError:
        return False


class _WarmupProtocol(protocol.ProcessProtocol):
    def __init__(self, service: "NameWarmup"):
        self.service = service
        self.output = b""

    def outReceived(self, data: bytes) -> None:
        self.output = (self.output + data)[-4096:]

    def errReceived(self, data: bytes) -> None:
        self.output = (self.output + data)[-4096:]

    def processEnded(self, reason) -> None:
        self.service.childEnded(reason.value.exitCode, self.output.decode("utf-8", "replace").strip())


class NameWarmup(Service):
    """
    Runs L{fbtwist.store.warmnames} for the tree at C{root} once, in a
    child process, when started (with a reactor that can start processes,
    and a top folder of at least C{minimumFolderBytes}); a child still
    running when the service stops is stopped.

    @ivar exitCode: The child's exit code once it ended, else C{None}.
    """

    log = Logger()
    name = "name-warmup"

    def __init__(self, root: str, reactor, python: str = sys.executable,
                 minimumFolderBytes: int = MINIMUM_FOLDER_BYTES):
        self.root = root
        self.reactor = reactor
        self.python = python
        self.minimumFolderBytes = minimumFolderBytes
        self.exitCode = None
        self._process = None

    def startService(self) -> None:
        super().startService()
        if not IReactorProcess.providedBy(self.reactor):
            return
        if not worthWarming(self.root, self.minimumFolderBytes):
            return
        argv = [self.python, "-m", "fbtwist.store.warmnames", self.root]
        try:
            self._process = self.reactor.spawnProcess(_WarmupProtocol(self), argv[0], argv, env=os.environ.copy(),
                                                      childFDs={0: "w", 1: "r", 2: "r"})
        except OSError as e:
            self.log.warn("names of the calendar tree not warmed: {reason}", reason=e.strerror)

    def stopService(self) -> None:
        super().stopService()
        if self._process is not None:
            try:
                self._process.signalProcess("KILL")
            except Exception:
                pass  # ended meanwhile

    def childEnded(self, code, output: str) -> None:
        """
        The child ended with exit C{code}, having written C{output}: log
        what it did, or why it failed.
        """
        self._process = None
        self.exitCode = code
        if code == 0:
            count, _, seconds = output.partition(" ")
            self.log.info("{count} names of the calendar tree looked up once in {seconds}s "
                          "(the kernel's name cache warmed for lookups)", count=count, seconds=seconds)
        elif self.running:
            self.log.warn("names of the calendar tree not warmed: {reason}", reason=output or f"exit code {code}")
