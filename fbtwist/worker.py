"""
One worker process of the multi-process mode (L{fbtwist.ops.workers}):
C{python -m fbtwist.worker FD[,FD...] OPTIONS...}; or the short-lived
process that builds the name index file
(C{python -m fbtwist.worker --build-name-index PATH SECONDS OPTIONS...},
L{fbtwist.directory.indexchild}).  Its own module, above L{fbtwist.tap}, so
that the worker machinery in L{fbtwist.ops.workers} does not import the
service it is part of.
"""

import os
import sys
from typing import Sequence

from twisted.internet import protocol
from twisted.logger import globalLogBeginner

from fbtwist.logs import InfoAndUp, JSONLinesObserver, TextLinesObserver


class _MasterPipe(protocol.Protocol):
    """
    A worker's standard input: the master holds the other end, so its
    closing means the master is gone.
    """

    def __init__(self, reactor):
        self.reactor = reactor

    def connectionLost(self, reason):
        if self.reactor.running:
            self.reactor.stop()


def buildNameIndex(argv: Sequence[str]) -> int:
    """
    Build the name index file: C{argv} is C{[program, "--build-name-index",
    path, seconds, freebusy options...]}.

    @return: The exit status: 0 once written, 1 after one line on standard
        error saying why not.
    """
    from twisted.application import service
    from twisted.internet import reactor

    from fbtwist.directory.indexchild import buildInChild, reportFailure
    from fbtwist.startup import Options, buildDirectory

    path, timeout = argv[2], float(argv[3])
    options = Options()
    options.parseOptions(list(argv[4:]))
    directory = buildDirectory(options.config, reactor, service.MultiService())
    status = []

    def run():
        d = buildInChild(directory, path, reactor, timeout)
        d.addCallbacks(lambda _: status.append(0), lambda f: (reportFailure(f), status.append(1)))
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(run)
    reactor.run(installSignalHandlers=False)
    return status[0] if status else 1


def main(argv: Sequence[str]) -> None:
    """
    Run one worker: C{argv} is C{[program, "FD,FD", freebusy options...]}.
    """
    from twisted.internet import reactor, stdio

    if argv[1:2] == ["--build-name-index"]:
        status = buildNameIndex(argv)
        # The file is written and on disk, or the reason is on standard
        # error: the interpreter's teardown (~0.2 s of freeing modules and
        # objects) would only delay the end the parent waits for.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)

    # Not at the top: the name index's builder (above) starts without the
    # protocols that makeService brings.
    from fbtwist.tap import Options, makeService, settleMemory

    fds = [int(fd) for fd in argv[1].split(",")]
    options = Options()
    options.parseOptions(list(argv[2:]))
    observer = JSONLinesObserver if options.config.logFormat == "json" else TextLinesObserver
    globalLogBeginner.beginLoggingTo([InfoAndUp(observer(sys.stdout, reactor))], redirectStandardIO=False)
    top = makeService(options, reactor, adoptedFDs=fds)
    stdio.StandardIO(_MasterPipe(reactor), stdout=os.open(os.devnull, os.O_WRONLY), reactor=reactor)
    reactor.callWhenRunning(top.startService)
    reactor.callWhenRunning(settleMemory)
    reactor.addSystemEventTrigger("before", "shutdown", top.stopService)
    reactor.run()


if __name__ == "__main__":
    main(sys.argv)
