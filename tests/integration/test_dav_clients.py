"""
Real WebDAV clients against a real fbtwist on loopback: the litmus
conformance suite (as an administrator) and scripted cadaver sessions (as
normal users).
"""

import io
import os
import re

from twisted.internet import defer, protocol
from twisted.python.filepath import FilePath
from twisted.trial import unittest

from tests.davhelpers import startDAVServer
from tests.helpers import PASSWORDS, outlookVFB

LITMUS = "/usr/bin/litmus"
CADAVER = "/usr/bin/cadaver"
LITMUS_SUITES = ("basic", "copymove", "props", "locks", "http")


class _Collect(protocol.ProcessProtocol):
    def __init__(self, stdin: bytes):
        self.stdin = stdin
        self.output = []
        self.done = defer.Deferred()

    def connectionMade(self):
        if self.stdin:
            self.transport.write(self.stdin)
        self.transport.closeStdin()

    def outReceived(self, data):
        self.output.append(data)

    errReceived = outReceived

    def processEnded(self, reason):
        self.done.callback((reason.value.exitCode, b"".join(self.output).decode("utf-8", "replace")))


async def runProcess(argv, env, cwd, stdin: bytes = b"", timeout: float = 120.0):
    """
    Run a program to its end (killed after C{timeout} seconds).

    @return: (exit code, everything it wrote to stdout and stderr).
    """
    from twisted.internet import reactor

    collect = _Collect(stdin)
    transport = reactor.spawnProcess(collect, argv[0], argv, env=env, path=cwd)
    killer = reactor.callLater(timeout, transport.signalProcess, "KILL")
    try:
        return await collect.done
    finally:
        if killer.active():
            killer.cancel()


def parseLitmus(output: str):
    """
    @return: {suite: (run, passed, failed, warnings)} from litmus's summaries.
    """
    suites = {}
    warnings = {}
    current = None
    for line in output.splitlines():
        started = re.match(r"-> running `(\w+)':", line)
        if started:
            current = started.group(1)
            warnings[current] = 0
        issued = re.search(r"(\d+) warnings? (were|was) issued", line)
        if issued and current:
            warnings[current] += int(issued.group(1))
        summary = re.match(r"<- summary for `(\w+)': of (\d+) tests run: (\d+) passed, (\d+) failed", line)
        if summary:
            name = summary.group(1)
            suites[name] = (int(summary.group(2)), int(summary.group(3)), int(summary.group(4)),
                            warnings.get(name, 0))
    return suites


class LitmusTests(unittest.TestCase):
    """
    litmus, the WebDAV conformance suite, as an administrator.
    """

    timeout = 180

    async def _litmus(self):
        server = await startDAVServer(self)
        workdir = FilePath(self.mktemp())
        workdir.makedirs()
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TESTS": " ".join(LITMUS_SUITES),
               "HOME": workdir.path, "LANG": "C"}
        code, output = await runProcess(
            [LITMUS, "-k", server.url("/pub/calendar/"), "admin", PASSWORDS["admin"]], env, workdir.path
        )
        problems = [line for line in output.splitlines()
                    if re.search(r"\bWARNING\b|\bFAIL\b|warning", line)]
        suites = parseLitmus(output)
        self.assertEqual(set(suites), set(LITMUS_SUITES), output)
        for name, (run, passed, failed, warnings) in suites.items():
            self.assertEqual((failed, warnings), (0, 0),
                             f"litmus {name}: {failed} failed, {warnings} warnings\n{output}")
            self.assertEqual(run, passed, output)
        self.assertEqual(problems, [], output)
        self.assertEqual(code, 0, output)

    def test_litmusPassesWithoutWarnings(self):
        """
        basic, copymove, props, locks and http: 100% and no warning.
        """
        return defer.Deferred.fromCoroutine(self._litmus())


class LitmusParserTests(unittest.SynchronousTestCase):
    """
    The litmus output parser sees failures and warnings.
    """

    def test_parse(self):
        """
        Counts, failures and warnings per suite.
        """
        output = (
            "-> running `basic':\n 0. init.... pass\n"
            "<- summary for `basic': of 16 tests run: 16 passed, 0 failed. 100.0%\n"
            "-> running `props':\n 3. propfind_invalid2.... WARNING: no 400\n"
            "-> 1 warning was issued.\n"
            "<- summary for `props': of 30 tests run: 29 passed, 1 failed. 96.7%\n"
        )
        self.assertEqual(parseLitmus(output), {"basic": (16, 16, 0, 0), "props": (30, 29, 1, 1)})


class CadaverTests(unittest.TestCase):
    """
    cadaver, a command-line WebDAV client, driven by a script on stdin.
    """

    timeout = 60

    async def cadaver(self, login, script):
        home = FilePath(self.mktemp())
        home.makedirs()
        netrc = home.child(".netrc")
        netrc.setContent(f"machine 127.0.0.1\nlogin {login}\npassword {PASSWORDS[login]}\n".encode("utf-8"))
        os.chmod(netrc.path, 0o600)
        home.child("mine.vfb").setContent(outlookVFB(f"{login}@example.com"))
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home.path, "LANG": "C"}
        code, output = await runProcess(
            [CADAVER, self.server.url("/pub/calendar/")], env, home.path, stdin=script.encode("utf-8"), timeout=30
        )
        return home, code, output

    async def _setUp(self):
        self.server = await startDAVServer(self)

    def setUp(self):
        return defer.Deferred.fromCoroutine(self._setUp())

    async def _ownFile(self):
        home, code, output = await self.cadaver("alice", "\n".join([
            "put mine.vfb alice.vfb",
            "get alice.vfb back.vfb",
            "propset alice.vfb color red",
            "propget alice.vfb color",
            "lock alice.vfb",
            "put mine.vfb alice.vfb",
            "unlock alice.vfb",
            "quit",
        ]) + "\n")
        self.assertEqual(code, 0, output)
        self.assertNotIn("failed", output)
        self.assertEqual(output.count("succeeded"), 6, output)
        self.assertIn("Value of color is: red", output)
        self.assertEqual(home.child("back.vfb").getContent(), outlookVFB("alice@example.com"))
        self.assertEqual(self.server.store.read(("alice.vfb",)), outlookVFB("alice@example.com"))
        props = self.server.store.deadProperties(("alice.vfb",))
        self.assertEqual([key for key in props if key.endswith("}color")], ["{http://webdav.org/cadaver/custom-properties/}color"])
        self.assertEqual(self.server.store.metadataDirectory("davlocks").globChildren("*.lock"), [])

    def test_publishPropsetLockUnlock(self):
        """
        put, get, propset, propget, lock, put while locked, unlock: all
        succeed for the user's own file.
        """
        return defer.Deferred.fromCoroutine(self._ownFile())

    async def _otherFile(self):
        original = outlookVFB("betty@example.com")
        self.server.store.write(("bsmith.vfb",), original)
        home, code, output = await self.cadaver("alice", "\n".join([
            "put mine.vfb bsmith.vfb",
            "delete bsmith.vfb",
            "propset bsmith.vfb color red",
            "lock bsmith.vfb",
            "move bsmith.vfb alice.vfb",
            "copy bsmith.vfb alice.vfb",
            "mkcol newcollection",
            "quit",
        ]) + "\n")
        self.assertEqual(code, 0, output)
        self.assertNotIn("succeeded", output)
        self.assertEqual(output.count("403 Forbidden"), 7, output)
        self.assertEqual(self.server.store.read(("bsmith.vfb",)), original)
        self.assertEqual(self.server.store.deadProperties(("bsmith.vfb",)), {})
        self.assertIsNone(self.server.store.stat(("alice.vfb",)))

    def test_cannotTouchAnotherUsersFile(self):
        """
        Every change to bsmith's file by alice fails with 403 and changes nothing.
        """
        return defer.Deferred.fromCoroutine(self._otherFile())


class WebDAV4Tests(unittest.TestCase):
    """
    PyPI's C{webdav4} client (what C{fsspec}'s WebDAV filesystem uses),
    which asks about one file with a PROPFIND without Depth.
    """

    async def _fileQueries(self):
        from twisted.internet import threads
        from webdav4.client import Client

        server = await startDAVServer(self)
        client = Client(server.url("/pub/calendar/"), auth=("alice", PASSWORDS["alice"]))
        self.addCleanup(client.http.close)

        def queries():
            client.upload_fileobj(io.BytesIO(outlookVFB()), "alice.vfb", overwrite=True)
            return client.exists("alice.vfb"), client.isfile("alice.vfb"), client.content_length("alice.vfb")

        return await threads.deferToThread(queries)

    def test_fileQueries(self):
        """
        webdav4's exists, isfile and content_length of a published file work.
        """
        d = defer.Deferred.fromCoroutine(self._fileQueries())
        d.addCallback(self.assertEqual, (True, True, len(outlookVFB())))
        return d
