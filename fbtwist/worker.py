"""
One worker process of the multi-process mode (L{fbtwist.ops.workers}):
C{python -m fbtwist.worker FD[,FD...] OPTIONS...}.  Its own module, above
L{fbtwist.tap}, so that the worker machinery in L{fbtwist.ops.workers} does not
import the service it is part of.
"""

import os
import sys
from typing import Sequence

from twisted.internet import protocol
from twisted.logger import globalLogBeginner

from fbtwist.logs import InfoAndUp, JSONLinesObserver, TextLinesObserver
from fbtwist.tap import Options, makeService, settleMemory


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


def main(argv: Sequence[str]) -> None:
    """
    Run one worker: C{argv} is C{[program, "FD,FD", freebusy options...]}.
    """
    from twisted.internet import reactor, stdio

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
