"""
The name index built in a short-lived child process: it searches the
directory, writes the index file and exits, so the memory of the build
(the tables of a million names, which CPython's allocator keeps long after
they are freed) goes with it.  The process that started it only maps the
file, as the workers of C{--workers} do.

The file is kept between runs (in C{--name-index-dir}): at start the last
one is mapped at once, while the child builds the new one, so lookups and
binds answer from the index within a second of a restart.  Every build is
a full one: a user deleted or renamed in the directory stops resolving by
the index once the next build ends, at most C{--name-index-refresh} plus
the build's time after the change (and after the first build of a start).
"""

import os
import signal
import sys
import time
from typing import List, Optional

from twisted.internet import defer, protocol
from twisted.logger import Logger

from fbtwist.directory.mappedindex import IndexFileError, MappedNameIndex, temporaryFilesOf
from fbtwist.errors import DirectoryUnavailable

#: How long (seconds) a child may take before it is killed, by default.
BUILD_TIMEOUT = 600.0
#: Seconds before a failed build is tried again (sooner than the refresh
#: interval: until the first build, names are searched per request).
RETRY_DELAY = 30.0
#: Entries per page of the child's search.  The child has no reactor to
#: keep responsive, and the server works out the search's candidates again
#: for every page (OpenLDAP: ~1 ms per thousand entries below the base), so
#: a million users cost slapd ~5 s of CPU in pages of 5,000, ~3.6 s in
#: pages of 50,000 and ~3.1 s in pages of 200,000 (larger pages save little
#: more), and fewer round trips, where neither side works; a server that
#: allows smaller pages sends those (paging lets it).  One page is one
#: directory call (see L{CHILD_TIMEOUT_FACTOR}): a million users' load
#: sends five, of a second or two each on two busy cores.
CHILD_PAGE_SIZE = 200000
#: The child's timeout of a directory call is C{--ldap-timeout} times this:
#: that timeout is meant for searches of a few entries, and here one page
#: of L{CHILD_PAGE_SIZE} entries is one call (the whole build has its own
#: limit, C{timeout} of L{buildInChild}): 60 s by default, as much time
#: per entry as ten times it gave pages of 50,000.
CHILD_TIMEOUT_FACTOR = 40
#: How much of a child's error output is kept for the log line.
_ERROR_TAIL = 2000


class _BuildProtocol(protocol.ProcessProtocol):
    """
    Collects a child's error output and fires C{ended} with its exit
    status (an int, or a signal name) once it has exited.
    """

    def __init__(self):
        self.ended = defer.Deferred()
        self.errors = b""

    def connectionMade(self):
        # Its standard input stays open: its closing (this process gone,
        # however) tells the child to stop.
        pass

    def errReceived(self, data: bytes):
        self.errors = (self.errors + data)[-_ERROR_TAIL:]

    def processEnded(self, reason):
        value = reason.value
        code = getattr(value, "exitCode", None)
        if code is None:
            code = f"signal {getattr(value, 'signal', '?')}"
        self.ended.callback(code)

    def lastError(self) -> str:
        """
        The child's last non-empty line of error output (one sentence), or
        C{""}.
        """
        lines = [line.strip() for line in self.errors.decode("utf-8", "replace").splitlines() if line.strip()]
        return lines[-1] if lines else ""


class ChildIndexBuild:
    """
    Builds the name index of C{directory} in a child process writing
    C{path}, and makes the mapped file C{directory.nameIndex}: the
    C{loadNameIndex()} and C{retryDelay()} a
    L{fbtwist.directory.nameindex.NameIndexRefresher} drives.

    @param directory: Gets the index (C{nameIndex}).
    @param reactor: Spawns the child and times it.
    @param path: The index file the child writes (atomically).
    @param argv: The child's command line, C{argv[0]} the executable; the
        child must write C{path} and exit 0, or write one sentence on its
        standard error and exit non-zero.
    @param timeout: Seconds after which the child is killed and the build
        failed.
    """

    log = Logger()

    def __init__(self, directory, reactor, path: str, argv: List[str], timeout: float = BUILD_TIMEOUT):
        self.directory = directory
        self.reactor = reactor
        self.path = path
        self.argv = list(argv)
        self.timeout = timeout
        self._process = None
        self._ended: Optional[defer.Deferred] = None
        self._failed = False

    @property
    def childPID(self) -> Optional[int]:
        """
        The process id of the build running now in a child, or C{None}.
        """
        return None if self._process is None else self._process.pid

    def mapKept(self, maxAge: float) -> Optional[MappedNameIndex]:
        """
        Map the index file an earlier run left, if any, as
        C{directory.nameIndex}, at once, when it was written less than
        C{maxAge} seconds ago (no staler than the index of a process that
        kept running would be); a damaged file or one of another version is
        removed with one warning (the build replaces it).

        @return: The mapped index, or C{None}.
        """
        try:
            age = time.time() - os.stat(self.path).st_mtime
        except FileNotFoundError:
            return None
        except OSError as e:
            self.log.warn("the kept name index {path} cannot be used ({error}); building a new one",
                          path=self.path, error=str(e))
            return None
        if age > maxAge:
            self.log.info("the kept name index {path} is {age:.0f}s old: not used, building a new one",
                          path=self.path, age=age)
            return None
        try:
            index = MappedNameIndex(self.path)
        except (OSError, IndexFileError, ValueError) as e:
            self.log.warn("the kept name index {path} cannot be used ({error}); building a new one",
                          path=self.path, error=str(e))
            try:
                os.unlink(self.path)
            except OSError:
                pass
            return None
        self.directory.nameIndex = index
        self.log.info("kept name index of an earlier run ({age:.0f}s old) in use: {path}, {entries} entries, "
                      "{names} names; rebuilding it", path=self.path, age=age, entries=index.entries, names=len(index))
        return index

    def retryDelay(self) -> float:
        """
        @return: Seconds until a failed build is tried again.
        """
        return RETRY_DELAY if self._failed else 0.0

    def loadNameIndex(self) -> defer.Deferred:
        """
        Run one build.

        @return: A Deferred firing with the new mapped index once it is
            C{directory.nameIndex}, or failing with L{DirectoryUnavailable}
            (one sentence: why the child failed, or that it took too long).
            Cancelling it kills the child.
        """
        built = _BuildProtocol()
        started = self.reactor.seconds()
        process = self._process = self.reactor.spawnProcess(
            built, self.argv[0], self.argv, env=os.environ.copy(), childFDs={0: "w", 1: "r", 2: "r"},
        )
        timedOut = []
        self._ended = built.ended

        def kill():
            timedOut.append(True)
            _signal(process, "KILL")

        timer = self.reactor.callLater(self.timeout, kill)

        def cancel(d):
            _signal(process, "KILL")

        result = defer.Deferred(cancel)

        pid = process.pid

        def ended(code):
            self._process = self._ended = None
            if code != 0:
                # Killed while writing: its temporary file stays otherwise.
                for leftover in temporaryFilesOf(self.path, pid):
                    try:
                        os.unlink(leftover)
                    except OSError:
                        pass
            if timer.active():
                timer.cancel()
            if result.called:
                return
            if code != 0:
                self._failed = True
                if timedOut:
                    reason = f"the name index build took longer than {self.timeout:g}s and was stopped"
                else:
                    reason = built.lastError() or f"the name index build process ended with {code}"
                result.errback(DirectoryUnavailable(reason))
                return
            try:
                index = MappedNameIndex(self.path)
            except (OSError, IndexFileError, ValueError) as e:
                self._failed = True
                result.errback(DirectoryUnavailable(f"the built name index cannot be mapped: {e}"))
                return
            self._failed = False
            # The old mapping goes with its last user (as the workers'
            # follower leaves it): a lookup may hold it across a wait.
            self.directory.nameIndex = index
            self.log.info("name index loaded from {server}: {entries} entries, {names} names in {seconds:.2f}s "
                          "(built by a child process)", server=self.directory.server, entries=index.entries,
                          names=len(index), seconds=self.reactor.seconds() - started)
            result.callback(index)

        built.ended.addCallback(ended)
        return result

    def stop(self) -> defer.Deferred:
        """
        Kill a child still building (fbtwist is stopping).

        @return: A Deferred firing once no child runs.
        """
        if self._process is None or self._ended is None:
            return defer.succeed(None)
        ended = defer.Deferred()
        self._ended.addBoth(lambda result: (ended.callback(None), result)[1])
        _signal(self._process, "KILL")
        return ended


def _signal(process, name: str) -> None:
    try:
        process.signalProcess(name)
    except (OSError, ProcessLookupError):
        pass
    except Exception as e:  # twisted.internet.error.ProcessExitedAlready
        if type(e).__name__ != "ProcessExitedAlready":
            raise


def buildInChild(directory, path: str, reactor, timeout: float) -> defer.Deferred:
    """
    The child's side: load C{directory}'s name index into C{path} (it
    writes and maps the file), stopping when its standard input closes
    (the process that started it is gone) or after C{timeout} seconds.

    @return: A Deferred firing with C{None} once written, or failing.
    """
    from twisted.internet import stdio

    directory.indexFile = path
    directory.timeout *= CHILD_TIMEOUT_FACTOR
    load = directory.loadNameIndex(pageSize=CHILD_PAGE_SIZE)

    class _Parent(protocol.Protocol):
        def connectionLost(self, reason):
            if not load.called:
                os.kill(os.getpid(), signal.SIGKILL)

    stdio.StandardIO(_Parent(), stdout=os.open(os.devnull, os.O_WRONLY), reactor=reactor)
    reactor.callLater(timeout, lambda: os.kill(os.getpid(), signal.SIGKILL))
    return load


def reportFailure(failure) -> None:
    """
    Write why a child's build failed, in one line, on its standard error.
    """
    message = failure.getErrorMessage() or failure.type.__name__
    sys.stderr.write(" ".join(message.split()) + "\n")
    sys.stderr.flush()
