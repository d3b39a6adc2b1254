"""
The fast tier stays in memory: its guard (L{tests.unit.fasttier}) refuses
real sockets and the global reactor to code a C{tests.unit} test calls, and
leaves everyone else (trial, the integration tier) alone.
"""

import ast
import socket
from concurrent.futures import ThreadPoolExecutor

from twisted.internet import protocol
from twisted.python.filepath import FilePath
from twisted.trial import unittest

from tests.unit import fasttier
from tests.unit.fasttier import RealResourceUsed


def globalReactor():
    from twisted.internet import reactor

    return reactor


class GuardTests(unittest.SynchronousTestCase):
    """
    What a test of the fast tier may not do.
    """

    def test_socketRefused(self):
        """
        Making a socket fails, naming the test's module.
        """
        e = self.assertRaises(RealResourceUsed, socket.socket, socket.AF_INET, socket.SOCK_STREAM)
        self.assertIn("tests.unit.test_fasttier opened a real socket", str(e))
        self.assertRaises(RealResourceUsed, socket.getaddrinfo, "localhost", 80)

    def test_processRefused(self):
        """
        Starting a process fails, however it is started.
        """
        import os
        import subprocess

        e = self.assertRaises(RealResourceUsed, subprocess.Popen, ["/bin/true"])
        self.assertIn("tests.unit.test_fasttier started a process", str(e))
        self.assertRaises(RealResourceUsed, os.system, "true")

    def test_listenRefused(self):
        """
        The global reactor does not listen or connect for the fast tier.
        """
        reactor = globalReactor()
        e = self.assertRaises(RealResourceUsed, reactor.listenTCP, 0, protocol.Factory())
        self.assertIn("tests.unit.test_fasttier used the global reactor's listenTCP", str(e))
        self.assertRaises(RealResourceUsed, reactor.connectTCP, "127.0.0.1", 9, protocol.ClientFactory())

    def test_clockAndThreadsRefused(self):
        """
        Nor does it keep time or run threads for it.
        """
        reactor = globalReactor()
        self.assertRaises(RealResourceUsed, reactor.callLater, 0, lambda: None)
        self.assertRaises(RealResourceUsed, reactor.callInThread, lambda: None)
        self.assertRaises(RealResourceUsed, reactor.getThreadPool)
        self.assertRaises(RealResourceUsed, reactor.spawnProcess, protocol.ProcessProtocol(), "/bin/true")

    def test_othersUnaffected(self):
        """
        Code with no test of the fast tier on its stack (trial, the
        integration tier; here a thread) is not refused.
        """
        with ThreadPoolExecutor(1) as pool:
            self.assertEqual(pool.submit(fasttier.callerInFastTier).result(), "")
        self.assertEqual(fasttier.callerInFastTier(), "tests.unit.test_fasttier")

    def test_integrationTestUsingFastTierHelper(self):
        """
        A test of the integration tier that calls a helper of a fast-tier
        module (as a method borrowed from one of its test classes) is the
        integration tier's.
        """
        outside = type("OutsideTests", (unittest.SynchronousTestCase,), {
            "__module__": "tests.integration.test_x", "test_x": lambda self: None,
            "whose": lambda self: self.caller()})("test_x")
        outside.caller = fasttier.callerInFastTier
        self.assertEqual(outside.whose(), "")
        self.assertEqual(type(outside).__module__, "tests.integration.test_x")


def integrationImports(source: str) -> list:
    """
    The modules of the integration tier that C{source} imports.
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.startswith("tests.integration")]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tests.integration"):
            found.append(node.module)
    return found


class ImportTests(unittest.SynchronousTestCase):
    """
    The fast tier stands on its own: no module of it imports the
    integration tier (whose fixtures are real servers and processes).
    """

    def test_rule(self):
        """
        Imports of the integration tier are found, at module level or in a
        function.
        """
        self.assertEqual(integrationImports("import tests.integration.test_ftp\n"
                                            "def f():\n    from tests.integration.test_page import x\n"
                                            "from tests.helpers import inline\n"),
                         ["tests.integration.test_ftp", "tests.integration.test_page"])

    def test_noneImported(self):
        """
        No module of tests/unit imports tests/integration.
        """
        unit = FilePath(__file__).parent()
        found = {child.basename(): integrationImports(child.getContent().decode("utf-8"))
                 for child in unit.globChildren("*.py")}
        self.assertEqual({name: modules for name, modules in found.items() if modules}, {})
