"""
What keeps the fast tier honest: a test of C{tests.unit} may not open a
socket or use the global reactor (its clock, its threads, its listeners,
connections and processes); it runs on a L{MemoryReactorClock}, a
L{StringTransport}, L{twisted.test.iosim} or L{tests.memory}.

The guard is decided by the calling code, not by the process: trial runs
both tiers in one process, and a test of the integration tier (or trial
itself) uses real sockets and the real reactor freely.  A call is the fast
tier's when a frame of a C{tests.unit} module (other than this one) is on
the stack.
"""

import sys

#: The global reactor's methods that reach the world outside the test (or
#: its real clock), refused to the fast tier.
REACTOR_METHODS = (
    "callLater", "callInThread", "getThreadPool", "listenTCP", "connectTCP", "listenSSL", "connectSSL",
    "listenUNIX", "connectUNIX", "listenUDP", "spawnProcess", "resolve",
)

#: Audit events (see L{sys.addaudithook}) of a socket being made or used.
SOCKET_EVENTS = frozenset({"socket.__new__", "socket.bind", "socket.connect", "socket.getaddrinfo"})

_installed = []


class RealResourceUsed(AssertionError):
    """
    A test of the fast tier opened a socket or used the global reactor.
    """


def callerInFastTier(frame=None) -> str:
    """
    The name of the first C{tests.unit} module (but this one) on the stack
    above C{frame}, or an empty string.
    """
    frame = frame or sys._getframe(1)
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name.startswith("tests.unit.") and name != __name__:
            return name
        frame = frame.f_back
    return ""


def _auditSockets(event: str, args: tuple) -> None:
    if event in SOCKET_EVENTS and _installed:
        module = callerInFastTier(sys._getframe(1))
        if module:
            raise RealResourceUsed(f"{module} opened a real socket ({event}{args!r}): the fast tier runs in "
                                   f"memory (tests/memory.py); real sockets belong in tests/integration")


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
    Refuse sockets and the global reactor to the fast tier (once per
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
    sys.addaudithook(_auditSockets)
