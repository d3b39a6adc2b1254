"""
What keeps the fast tier honest: a test of C{tests.unit} may not open a
socket, start a process or use the global reactor (its clock, its threads,
its listeners, connections and processes); it runs on a L{MemoryReactorClock}, a
L{StringTransport}, L{twisted.test.iosim} or L{tests.memory}.

The guard is decided by the test being run, not by the process: trial runs
both tiers in one process, and a test of the integration tier (or trial
itself) uses real sockets and the real reactor freely.  A call is the fast
tier's when the test on the stack is one of a C{tests.unit} module (see
L{callerInFastTier}).
"""

import sys
import unittest as pyunit

#: The global reactor's methods that reach the world outside the test (or
#: its real clock), refused to the fast tier.
REACTOR_METHODS = (
    "callLater", "callInThread", "getThreadPool", "listenTCP", "connectTCP", "listenSSL", "connectSSL",
    "listenUNIX", "connectUNIX", "listenUDP", "spawnProcess", "resolve",
)

#: Audit events (see L{sys.addaudithook}) of a socket being made or used,
#: and of a process being started.
REFUSED_EVENTS = {
    "socket.__new__": "opened a real socket",
    "socket.bind": "opened a real socket",
    "socket.connect": "opened a real socket",
    "socket.getaddrinfo": "opened a real socket",
    "subprocess.Popen": "started a process",
    "os.fork": "started a process",
    "os.forkpty": "started a process",
    "os.posix_spawn": "started a process",
    "os.spawn": "started a process",
    "os.system": "started a process",
    "os.exec": "started a process",
}

_installed = []


class RealResourceUsed(AssertionError):
    """
    A test of the fast tier opened a socket or used the global reactor.
    """


def callerInFastTier(frame=None) -> str:
    """
    The module of the fast tier's test that the code above C{frame} runs
    for, or an empty string.

    The test is the innermost L{unittest.TestCase} that is the C{self} of
    test code (a module of C{tests}) on the stack: a test of the integration
    tier may use a helper of the fast tier's modules freely.  Without one,
    the first C{tests.unit} module (but this one) with a function on the
    stack.  (Trial's own code, which runs a test and keeps its timeout on
    the reactor, is not a test's.)  (A module's own import is
    not counted: what a library does when it is imported, such as looking
    for a shared library with C{ldconfig}, is no test's.)
    """
    frame = frame or sys._getframe(1)
    found = ""
    while frame is not None:
        code, name = frame.f_code, frame.f_globals.get("__name__", "")
        if name.startswith("tests.") and "self" in code.co_varnames:
            test = frame.f_locals.get("self")
            if isinstance(test, pyunit.TestCase):
                module = type(test).__module__
                return module if module.startswith("tests.unit.") else ""
        if not found and name.startswith("tests.unit.") and name != __name__ and code.co_name != "<module>":
            found = name
        frame = frame.f_back
    return found


def _audit(event: str, args: tuple) -> None:
    if event in REFUSED_EVENTS and _installed:
        module = callerInFastTier(sys._getframe(1))
        if module:
            raise RealResourceUsed(f"{module} {REFUSED_EVENTS[event]} ({event}{args!r}): the fast tier runs in "
                                   f"memory (tests/memory.py); real sockets and processes belong in "
                                   f"tests/integration")


def _refusing(reactor, name: str):
    method = getattr(reactor, name)

    def refuse(*args, **kwargs):
        module = callerInFastTier(sys._getframe(1))
        if module:
            raise RealResourceUsed(f"{module} used the global reactor's {name}: the fast tier runs on a "
                                   f"MemoryReactorClock (tests/memory.py); the real reactor belongs in "
                                   f"tests/integration")
        return method(*args, **kwargs)

    refuse.guarded = method
    return refuse


def guard() -> None:
    """
    Refuse sockets, processes and the global reactor to the fast tier (once per
    process; an audit hook cannot be removed, so it only acts while the
    guard is installed).
    """
    if _installed:
        return
    from twisted.internet import reactor

    for name in REACTOR_METHODS:
        if hasattr(reactor, name):
            setattr(reactor, name, _refusing(reactor, name))
    _installed.append(reactor)
    sys.addaudithook(_audit)
