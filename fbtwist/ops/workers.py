"""
The multi-process mode, C{--workers N}: a master process binds the HTTP
listening sockets and starts N worker processes that adopt them
(C{reactor.adoptStreamPort}), as Apple's Twisted-based Calendar Server does.

The kernel hands each new connection to whichever worker accepts it first,
so the workers share the load without the master touching a request; each
worker accepts one connection at a time, so that a burst of them spreads
over the workers (L{_OneAcceptAtATimePort}).  They
share nothing else in memory: the calendar tree is on disk and every write
is an atomic rename, so two workers publishing the same file leave one
whole version or the other.

A worker is C{python -m fbtwist.worker FD[,FD...] OPTIONS...}: the same
C{freebusy} options as the master (without C{--workers}), and the inherited
descriptors to serve instead of its C{--http} endpoints.  Its standard input
is a pipe from the master; when the master goes away, even by C{kill -9},
the pipe closes and the worker stops.  A worker that dies while the master
runs is started again after L{RESTART_DELAY} seconds.
"""

import os
import socket
import sys
from typing import List, Sequence

from twisted.application import service
from twisted.internet import defer, endpoints, protocol, tcp
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IReactorSocket
from twisted.logger import Logger
from twisted.python.failure import Failure

from fbtwist.compat.twisted import adoptListeningPort
from fbtwist.ops.listeners import cannotListen

#: Seconds before a worker that died is started again.
RESTART_DELAY = 1.0

#: Seconds a stopping master waits for its workers before killing them.
STOP_TIMEOUT = 10.0


def workerArguments(options) -> List[str]:
    """
    The C{freebusy} command line that gives a worker the master's settings,
    rebuilt from the options the master was given (C{--workers} left out).
    Secrets stay in their files: only file names are passed on.  Workers
    serve HTTP only: the master keeps FTP and a metrics listener of its own
    (they cannot share those ports).
    """
    from fbtwist.config import settings

    args = []
    if options.get("config"):
        args += ["--config", options["config"]]
    for f in settings():
        name = f.metadata["option"]
        if name in ("workers", "ftp", "metrics"):
            continue
        given = options.get(name)
        if f.metadata["flag"]:
            if given:
                args.append(f"--{name}")
            continue
        if given is None or given == []:
            continue
        for value in given if isinstance(given, list) else [given]:
            args += [f"--{name}", value]
    args += ["--ftp", "none"]
    metrics = options.config.metrics if hasattr(options, "config") else "http"
    args += ["--metrics", "http" if metrics == "http" else "none"]
    return args


class _Unused(protocol.Factory):
    """
    The master's listeners never accept (they stop reading at once); this
    factory would only serve if they did.
    """

    protocol = protocol.Protocol


class _WorkerProcess(protocol.ProcessProtocol):
    def __init__(self, master: "WorkerMaster", index: int):
        self.master = master
        self.index = index
        self.ended = defer.Deferred()

    def processEnded(self, reason):
        self.ended.callback(None)
        self.master._workerEnded(self, reason)


class WorkerMaster(service.Service):
    """
    Binds the HTTP endpoints, then keeps C{count} workers serving them.

    @param failure: The exception that ends start-up when an endpoint
        cannot be listened on (L{fbtwist.tap.startupFailure}).
    @ivar ports: The master's listening ports (bound, never reading).
    @ivar workers: The running workers' process transports, by index.
    """

    log = Logger()

    def __init__(self, reactor, descriptions: Sequence[str], count: int, workerArgs: Sequence[str],
                 executable: str = sys.executable, failure: type = SystemExit):
        self.reactor = reactor
        self.failure = failure
        self.descriptions = list(descriptions)
        self.count = count
        self.workerArgs = list(workerArgs)
        self.executable = executable
        self.ports = []
        self.workers = {}
        self._processes = {}
        self._stopping = False

    def privilegedStartService(self):
        # Bound here, as the single-process listeners are: before twistd
        # gives up root, and where it reports the failure in one sentence.
        super().privilegedStartService()
        self._bind()

    def startService(self):
        super().startService()
        self._stopping = False
        if not self.ports:
            self._bind()
        for index in range(self.count):
            self._spawn(index)

    def _bind(self) -> None:
        """
        Listen on every description.

        @raise Exception: C{self.failure} with L{fbtwist.ops.listeners.cannotListen}'s
            sentence when one cannot be listened on (those already bound are
            closed).
        """
        for description in self.descriptions:
            d = endpoints.serverFromString(self.reactor, description).listen(_Unused())
            # TCP endpoints listen synchronously: the result is there.
            port = []
            d.addBoth(port.append)
            if port and isinstance(port[0], Failure) and port[0].check(CannotListenError):
                self._unbind()
                raise self.failure(cannotListen("http", description, port[0].value))
            if not port or not hasattr(port[0], "fileno"):
                self._unbind()
                raise RuntimeError(f"cannot bind {description} for the workers: {port and port[0]}")
            port[0].stopReading()
            self.ports.append(port[0])
            self.log.info("workers will serve {address}", address=str(port[0].getHost()))

    def _unbind(self) -> None:
        for port in self.ports:
            port.stopListening()
        self.ports = []

    def _spawn(self, index: int) -> None:
        if self._stopping:
            return
        fds = [port.fileno() for port in self.ports]
        childFDs = {0: "w", 1: 1, 2: 2}
        inherited = []
        for offset, fd in enumerate(fds):
            childFDs[3 + offset] = fd
            inherited.append(str(3 + offset))
        argv = [self.executable, "-m", "fbtwist.worker", ",".join(inherited), *self.workerArgs]
        worker = _WorkerProcess(self, index)
        transport = self.reactor.spawnProcess(
            worker, self.executable, argv, env=os.environ.copy(), path=os.getcwd(), childFDs=childFDs,
        )
        self.workers[index] = transport
        self._processes[index] = worker
        self.log.info("started worker {index} (pid {pid})", index=index, pid=transport.pid)

    def _workerEnded(self, worker: _WorkerProcess, reason) -> None:
        if self._processes.get(worker.index) is not worker:
            return
        del self._processes[worker.index]
        del self.workers[worker.index]
        if self._stopping:
            return
        self.log.warn("worker {index} ended ({reason}); starting another", index=worker.index,
                      reason=reason.getErrorMessage())
        self.reactor.callLater(RESTART_DELAY, self._spawn, worker.index)

    def stopService(self):
        super().stopService()
        self._stopping = True
        ended = []
        for index, transport in list(self.workers.items()):
            ended.append(self._processes[index].ended)
            try:
                transport.signalProcess("TERM")
            except Exception:
                pass
        killer = self.reactor.callLater(STOP_TIMEOUT, self._killAll)
        self._unbind()

        def done(_):
            if killer.active():
                killer.cancel()

        return defer.gatherResults(ended).addCallback(done)

    def _killAll(self) -> None:
        for transport in self.workers.values():
            try:
                transport.signalProcess("KILL")
            except Exception:
                pass


class _OneAcceptAtATimePort(tcp.Port):
    """
    A listening port that accepts one connection each time it is readable.

    Twisted's port accepts up to a hundred at once (and raises its limit
    while there are more).  On a socket that several workers listen on, the
    first to wake up would take a whole burst of new connections (say a
    client opening its 32 keep-alive connections) and be saturated while
    the others stay idle.  Taking one at a time, a worker busy with requests
    comes back for the next later than an idle one: connections go where
    there is time for them.
    """

    @property
    def numberAccepts(self) -> int:
        return 1

    @numberAccepts.setter
    def numberAccepts(self, value: int) -> None:
        pass  # Twisted adapts it after each round: not here.


class AdoptedPortService(service.Service):
    """
    Serves C{factory} on a listening socket inherited from the master,
    accepting one connection at a time (L{_OneAcceptAtATimePort}).
    """

    def __init__(self, reactor: IReactorSocket, fd: int, factory):
        self.reactor = reactor
        self.fd = fd
        self.factory = factory
        self.port = None

    def startService(self):
        super().startService()
        family = socket.socket(fileno=os.dup(self.fd))
        try:
            addressFamily = family.family
        finally:
            family.close()
        self.port = adoptListeningPort(_OneAcceptAtATimePort, self.reactor, self.fd, addressFamily, self.factory)
        self.port.startListening()

    def stopService(self):
        super().stopService()
        if self.port is not None:
            port, self.port = self.port, None
            return port.stopListening()
