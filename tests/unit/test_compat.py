"""
Contract tests of the adapters that fence in Twisted's and ldaptor's private
names (L{fbtwist.compat}): each name still exists in the installed library,
and no other fbtwist module uses one.
"""

import importlib
import importlib.util
import inspect
import os
import re

from ldaptor import __version__ as ldaptorVersion
from twisted.copyright import version as twistedVersion
from twisted.trial import unittest

import fbtwist
from fbtwist.compat import PrivateName
from fbtwist.compat import ldaptor as ldaptorAdapter
from fbtwist.compat import twisted as twistedAdapter

ADAPTERS = [
    ("Twisted", twistedVersion, twistedAdapter),
    ("ldaptor", ldaptorVersion, ldaptorAdapter),
]


def resolve(dotted: str):
    """
    The module, or the class in a module, that C{dotted} names.
    """
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for name in parts[split:]:
            found = getattr(found, name)
        return found
    raise ImportError(dotted)


def missing(name: PrivateName) -> bool:
    """
    Whether the installed library lacks C{name}: for an instance
    attribute, no class of the owner's MRO sets or declares it.
    """
    try:
        owner = resolve(name.owner)
    except (ImportError, AttributeError):
        return True
    if hasattr(owner, name.attribute):
        return False
    if not name.instance:
        return True
    pattern = re.compile(r"\bself\.%s\b" % re.escape(name.attribute))
    return not any(pattern.search(inspect.getsource(cls)) for cls in owner.__mro__
                   if cls.__module__.split(".")[0] in ("twisted", "ldaptor"))


class PrivateNamesExistTests(unittest.SynchronousTestCase):
    """
    Every private name an adapter relies on is in the installed library.
    """

    def test_everyNameExists(self):
        """
        Each listed private name exists, or the failure names it, the
        library version and the adapter to fix.
        """
        checked = 0
        for library, version, adapter in ADAPTERS:
            for name in adapter.PRIVATE_NAMES:
                if name.usedBy is not None and importlib.util.find_spec(name.usedBy) is None:
                    continue  # needed only by a part of fbtwist not installed here
                checked += 1
                if missing(name):
                    self.fail(f"{name.owner}.{name.attribute} is gone in {library} {version}: "
                              f"see {adapter.__name__.replace('.', '/')}.py")
        self.assertGreaterEqual(checked, 7)

    def test_detectsAMissingName(self):
        """
        The check reports a name the library does not have, on a class, an
        instance and a module.
        """
        self.assertTrue(missing(PrivateName("twisted.web.http.HTTPChannel", "_noSuchThing", instance=True)))
        self.assertTrue(missing(PrivateName("twisted.internet.tcp.Port", "_noSuchThing")))
        self.assertTrue(missing(PrivateName("twisted.web.noSuchModule", "ParseError")))
        self.assertFalse(missing(PrivateName("twisted.web.http.HTTPChannel", "_version", instance=True)))


class FencedInTests(unittest.SynchronousTestCase):
    """
    Only the adapters use the libraries' private names.
    """

    def test_onlyAdaptersUseThem(self):
        """
        No fbtwist module outside L{fbtwist.compat} names a private name
        the adapters list, nor imports a private module of Twisted or ldaptor.
        """
        top = os.path.dirname(os.path.abspath(fbtwist.__file__))
        names = {n.attribute for _, _, adapter in ADAPTERS for n in adapter.PRIVATE_NAMES
                 if n.attribute.startswith("_")}
        uses = re.compile(r"\b(%s)\b" % "|".join(map(re.escape, sorted(names))))
        privateModule = re.compile(r"^\s*(from|import)\s+(twisted|ldaptor)(\.\w+)*\._", re.MULTILINE)
        offenders = []
        for folder, dirs, files in os.walk(top):
            if os.path.basename(folder) == "compat":
                continue
            for file in files:
                if file.endswith(".py"):
                    path = os.path.join(folder, file)
                    with open(path, encoding="utf-8") as f:
                        text = f.read()
                    offenders += [f"{path}: {m.group(0)}" for m in uses.finditer(text)]
                    offenders += [f"{path}: {m.group(0).strip()}" for m in privateModule.finditer(text)]
        self.assertEqual(offenders, [])


class AdapterTests(unittest.SynchronousTestCase):
    """
    The adapter functions do what their callers rely on.
    """

    def test_channelRequestLine(self):
        """
        The request line is read from a channel that has parsed it, and is
        C{None}s before.
        """
        from twisted.internet.testing import StringTransport
        from twisted.web.http import HTTPChannel

        channel = HTTPChannel()
        channel.makeConnection(StringTransport())
        self.assertEqual(twistedAdapter.channelRequestLine(channel), (None, None, None))
        channel.dataReceived(b"PUT /pub/calendar/a.vfb HTTP/1.1\r\nContent-Length: 5\r\n")
        self.assertEqual(twistedAdapter.channelRequestLine(channel), (b"PUT", b"/pub/calendar/a.vfb", b"HTTP/1.1"))

    def test_channelTimerPaused(self):
        """
        The idle timer of a site's HTTP channel stops while paused, and runs
        from the start once resumed.
        """
        from twisted.internet.address import IPv4Address
        from twisted.internet.task import Clock
        from twisted.internet.testing import StringTransport
        from twisted.web.resource import Resource
        from twisted.web.server import Site

        clock = Clock()
        protocol = Site(Resource(), reactor=clock).buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        transport = StringTransport()
        protocol.makeConnection(transport)
        paused = twistedAdapter.pauseChannelTimer(protocol)
        self.assertEqual(paused, 60)
        clock.advance(120)
        self.assertFalse(transport.disconnecting)
        twistedAdapter.resumeChannelTimer(protocol, paused)
        clock.advance(59)
        self.assertFalse(transport.disconnecting)
        clock.advance(2)
        self.assertTrue(transport.disconnecting)

    def test_httpClientParseError(self):
        """
        The parse error of Twisted's HTTP client is an exception class.
        """
        self.assertTrue(issubclass(twistedAdapter.httpClientParseError(), Exception))


class CFunctionTests(unittest.SynchronousTestCase):
    """
    L{fbtwist.compat.libc.cFunction}: the C library's functions, each set up
    once, or C{None}.
    """

    def setUp(self):
        from fbtwist.compat import libc

        self.libc = libc
        # Each test asks afresh (the module's own cache left as it was).
        self.patch(libc, "_functions", {})

    def test_found(self):
        """
        A function the C library has is given, with the types given, the
        same object when asked again.
        """
        import ctypes

        getpid = self.libc.cFunction("getpid", ())
        self.assertEqual(getpid(), os.getpid())
        self.assertIs(getpid.restype, ctypes.c_int)
        self.assertIs(self.libc.cFunction("getpid", ()), getpid)

    def test_errno(self):
        """
        A failing call's C{errno} is kept for C{ctypes.get_errno}.
        """
        import ctypes
        import errno

        close = self.libc.cFunction("close", (ctypes.c_int,))
        self.assertEqual(close(-1), -1)
        self.assertEqual(ctypes.get_errno(), errno.EBADF)

    def test_missing(self):
        """
        A name the C library has not: C{None}, remembered.
        """
        self.assertIsNone(self.libc.cFunction("fbtwist_no_such_function", ()))
        self.assertIn("fbtwist_no_such_function", self.libc._functions)

    def test_noLibrary(self):
        """
        Where the interpreter's C library cannot be opened, every function
        is C{None}.
        """
        self.patch(self.libc, "_library", False)
        self.assertIsNone(self.libc.cFunction("getpid", ()))

    def test_users(self):
        """
        The calls fbtwist makes are found on this system (Linux, glibc).
        """
        from fbtwist.directory import heap
        from fbtwist.store import changes, files

        self.assertIsNotNone(files._syncFileRange())
        self.assertIsNotNone(changes._inotifyCalls())
        self.assertIsNotNone(heap._trim)
        self.assertIsInstance(heap.releaseFreeMemory(), bool)
