"""
A real C{twistd -n freebusy} in a child process, for what only a real
process shows: twistd's own log observers, signals, shutdown.

The child runs from the source tree (C{PYTHONPATH}), listens for HTTP on a
free loopback port and reports it in its log; the test's cleanup kills it if
it is still running.
"""

import os
import re
import signal
import subprocess
import sys
import time

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.python.filepath import FilePath

TOP = FilePath(__file__).parent().parent()

_LISTENING = re.compile(r"FreeBusySite starting on (\d+)")


class TwistdProcess:
    """
    @ivar root: The calendar tree (a fresh temporary folder).
    @ivar port: The HTTP port, once L{start} has fired.
    @ivar rlimitNoFile: When set, the child's limit of open file
        descriptors (C{RLIMIT_NOFILE}).
    """

    rlimitNoFile = None
    #: The log text that says the server is ready besides its port (the demo
    #: directory's warning), or C{None} when the port is enough.
    readyText = "DEMO DIRECTORY"

    def __init__(self, testCase, *args: str, root: FilePath = None):
        self.testCase = testCase
        self.root = root or FilePath(testCase.mktemp())
        self.logPath = os.path.abspath(testCase.mktemp()) + ".out"
        self.args = [
            "-n", "--pidfile=", "freebusy",
            "--http", "tcp:0:interface=127.0.0.1", "--ftp", "none", "--root", self.root.path, *args,
        ]
        self.process = None
        self.port = None

    async def start(self, timeout: float = 20.0) -> "TwistdProcess":
        env = dict(os.environ, PYTHONPATH=TOP.path, PYTHONWARNINGS="ignore")
        self._out = open(self.logPath, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", *self.args],
            cwd=TOP.path, env=env, stdin=subprocess.DEVNULL, stdout=self._out, stderr=subprocess.STDOUT,
            preexec_fn=self._setLimits if self.rlimitNoFile is not None else None,
        )
        self.testCase.addCleanup(self._cleanup)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = _LISTENING.search(self.output())
            if match and (self.readyText is None or self.readyText in self.output()):
                self.port = int(match.group(1))
                return self
            if self.process.poll() is not None:
                break
            await deferLater(reactor, 0.05)
        raise AssertionError("twistd did not start:\n" + self.output())

    def _setLimits(self) -> None:
        import resource

        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.rlimitNoFile, hard))

    def output(self) -> str:
        with open(self.logPath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def signal(self, number: int = signal.SIGTERM) -> None:
        self.process.send_signal(number)

    async def exited(self, timeout: float = 20.0) -> int:
        """
        Wait for the process to exit.

        @return: Its exit status.
        """
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError("twistd did not exit:\n" + self.output())
            await deferLater(reactor, 0.05)
        return self.process.returncode

    def _cleanup(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._out.close()


async def startTwistd(testCase, *args: str, root: FilePath = None) -> TwistdProcess:
    return await TwistdProcess(testCase, *args, root=root).start()


