"""
The reliability and security suite: a real fbtwist process (C{twistd -n
freebusy}) against a real slapd, attacked from outside.  Every test is
bounded in time; C{FBTWIST_LOAD_SECONDS} sets the length of the concurrent
load test (60 by default).
"""

import os
import random
import resource
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.processes import (
    FbtwistProcess,
    UserDirectory,
    basicAuthorization,
    freeBusyFile,
    processTreeRSS,
    publish,
    request,
    userName,
    userPassword,
    versionOf,
)

LOAD_SECONDS = float(os.environ.get("FBTWIST_LOAD_SECONDS", "60"))


class RealServerMixin:
    """
    A private slapd with C{users} users and fbtwist in front of it, both
    stopped by the test's cleanup.
    """

    users = 60

    def startServers(self, preexec_fn=None, extraArgs=()):
        self.base = os.path.abspath(self.mktemp())
        os.makedirs(self.base)
        self.directory = UserDirectory(os.path.join(self.base, "ldap"), self.users)
        self.directory.start()
        self.addCleanup(self.directory.stop)
        self.root = os.path.join(self.base, "tree")
        self.server = FbtwistProcess(
            self.root, self.directory.searchURL, extraArgs=extraArgs, preexec_fn=preexec_fn,
            logPath=os.path.join(self.base, "fbtwist.log"),
        )
        self.server.start()
        self.addCleanup(self.server.stop)

    def publishAs(self, index: int, body: bytes, timeout: float = 15.0) -> int:
        return publish(self.server.port, userName(index), userPassword(index), body, timeout=timeout)

    def published(self, index: int) -> bytes:
        with open(os.path.join(self.root, userName(index) + ".vfb"), "rb") as f:
            return f.read()

    def assertNoInternalErrors(self):
        log = self.server.log()
        self.assertNotIn("internal error", log)
        self.assertNotIn("Unhandled Error", log)


class KillDuringUploadsTests(RealServerMixin, SynchronousTestCase):
    """
    C{kill -9} of the server while 200 uploads are under way.
    """

    def test_everyFileOldOrNew(self):
        """
        After the kill every published file is entirely its old content or
        entirely one of the new ones sent.
        """
        self.startServers()
        users = range(20)
        old = {i: freeBusyFile(f"old-{i}", 2500) for i in users}
        for i in users:
            self.assertEqual(self.publishAs(i, old[i]), 201)
        new = {}
        jobs = []
        for round in range(10):
            for i in users:
                body = freeBusyFile(f"new-{i}-{round}", 2500)
                new.setdefault(i, set()).add(body)
                jobs.append((i, body))
        done = []

        def upload(job):
            try:
                done.append(self.publishAs(*job, timeout=10))
            except OSError:
                pass

        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(upload, job) for job in jobs]
            deadline = time.monotonic() + 60
            while len(done) < 40 and time.monotonic() < deadline:
                time.sleep(0.01)
            self.server.kill()
            for future in futures:
                future.result(timeout=30)
        self.assertGreaterEqual(len(done), 40)
        self.assertLess(len(done), len(jobs), "the kill came after every upload finished")
        for i in users:
            content = self.published(i)
            self.assertTrue(content == old[i] or content in new[i], f"{userName(i)}.vfb is torn")
        visible = [n for n in os.listdir(self.root) if not n.startswith(".")]
        self.assertEqual(sorted(visible), sorted(f"{userName(i)}.vfb" for i in users))


class ConcurrentLoadTests(RealServerMixin, SynchronousTestCase):
    """
    50 clients publishing and reading at once for C{FBTWIST_LOAD_SECONDS}.
    """

    def test_fiftyClients(self):
        """
        No errors, every read sees its writer's last version whole, and the
        server's memory stays flat.
        """
        self.startServers()
        clients = 50
        problems = []
        counts = [0] * clients
        stop = threading.Event()

        def client(index):
            version = 0
            while not stop.is_set():
                version += 1
                body = freeBusyFile(f"c{index}-{version}", random.randint(1, 200))
                try:
                    status = self.publishAs(index, body)
                    if status not in (201, 204):
                        problems.append(f"PUT {index}: {status}")
                        continue
                    status, got = request(self.server.port, "GET", f"/calendar/{userName(index)}.vfb")
                    if status != 200 or versionOf(got) != f"c{index}-{version}":
                        problems.append(f"GET {index}: {status}, {len(got)} bytes")
                except OSError as e:
                    problems.append(f"client {index}: {e!r}")
                counts[index] += 1

        samples = []
        with ThreadPoolExecutor(clients) as pool:
            futures = [pool.submit(client, i) for i in range(clients)]
            started = time.monotonic()
            while time.monotonic() - started < LOAD_SECONDS:
                time.sleep(min(1.0, LOAD_SECONDS / 10))
                samples.append(processTreeRSS(self.server.pid))
            stop.set()
            for future in futures:
                future.result(timeout=60)
        self.assertEqual(problems[:10], [])
        self.assertTrue(all(counts), "a client made no progress")
        for i in range(clients):
            self.assertIn(b"ORGANIZER:c%d-" % i, self.published(i))
        # Flat: after the first fifth (imports, caches, buffers warm up) the
        # resident size grows by less than 10 MB or 20 %.
        warm = samples[max(1, len(samples) // 5) - 1]
        self.assertLess(max(samples), max(warm + 10 * 2**20, warm * 1.2), f"RSS samples: {samples}")
        self.assertNoInternalErrors()


class DirectoryOutageTests(RealServerMixin, SynchronousTestCase):
    """
    The directory stopped in the middle of a load, then started again.
    """

    def test_outageThenRecovery(self):
        """
        Requests needing the directory get 503 with Retry-After while it is
        down, none gets a 500, and service comes back without a restart.
        """
        self.startServers()
        statuses = []
        stop = threading.Event()
        # Users never seen before the outage, so that no cache may answer.
        nextUser = iter(range(10, self.users))

        def load():
            while not stop.is_set():
                try:
                    statuses.append(self.publishAs(0, freeBusyFile("load", 3), timeout=10))
                    statuses.append(request(self.server.port, "GET", f"/calendar/{userName(1)}.vfb", timeout=10)[0])
                except OSError as e:
                    statuses.append(repr(e))

        self.assertEqual(self.publishAs(1, freeBusyFile("before", 3)), 201)
        thread = threading.Thread(target=load)
        thread.start()
        try:
            time.sleep(0.5)
            self.directory.stop()
            fresh = next(nextUser)
            status, body = request(
                self.server.port, "PUT", f"/pub/calendar/{userName(fresh)}.vfb", freeBusyFile("down", 3),
                {"Authorization": basicAuthorization(userName(fresh), userPassword(fresh))},
            )
            self.assertEqual(status, 503, body)
            status, _ = request(self.server.port, "GET", f"/calendar/{userName(next(nextUser))}.vfb")
            self.assertEqual(status, 503)
            time.sleep(0.5)
            self.directory.start()
            fresh = next(nextUser)
            deadline = time.monotonic() + 15
            while (status := self.publishAs(fresh, freeBusyFile("after", 3))) != 201:
                self.assertLess(time.monotonic(), deadline, f"no recovery: {status}")
                time.sleep(0.2)
            self.assertEqual(request(self.server.port, "GET", f"/calendar/{userName(fresh)}.vfb")[0], 200)
            time.sleep(0.5)
        finally:
            stop.set()
            thread.join(30)
        # The load's own requests may be answered from caches during the
        # outage; whatever they got, it was never anything but these.
        self.assertEqual(set(statuses) - {200, 201, 204, 503}, set())
        self.assertIn(statuses[-1], (200, 201, 204))
        self.assertNoInternalErrors()


def limitFileSize():
    # The server may write no file beyond 64 KB; SIGXFSZ would kill it, so
    # it is ignored and the write fails with EFBIG instead.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))


class DiskFullTests(RealServerMixin, SynchronousTestCase):
    """
    A server that may not write more (C{RLIMIT_FSIZE}).
    """

    def test_insufficientStorage(self):
        """
        An upload that does not fit is answered 507; the old file stays, and
        no temporary file is left behind.
        """
        self.startServers(preexec_fn=limitFileSize)
        old = freeBusyFile("old", 10)
        self.assertEqual(self.publishAs(0, old), 201)
        big = freeBusyFile("big", 2000)
        self.assertGreater(len(big), 64 * 1024)
        self.assertLess(len(big), 100000)  # Twisted keeps it in memory
        status, body = request(
            self.server.port, "PUT", f"/pub/calendar/{userName(0)}.vfb", big,
            {"Authorization": basicAuthorization(userName(0), userPassword(0))},
        )
        self.assertEqual(status, 507, body)
        self.assertEqual(self.published(0), old)
        self.assertEqual(os.listdir(self.root), [f"{userName(0)}.vfb"])
        self.assertEqual(versionOf(request(self.server.port, "GET", f"/calendar/{userName(0)}.vfb")[1]), "old")
        self.assertNoInternalErrors()


# --- Fuzzing -------------------------------------------------------------

METHODS = ["GET", "HEAD", "PUT", "DELETE", "OPTIONS", "PROPFIND", "PROPPATCH", "MKCOL", "LOCK", "UNLOCK",
           "MOVE", "COPY", "POST", "TRACE", "X-FUZZ"]
SEGMENT_ALPHABET = st.sampled_from(
    list("abcxyz019._-~") + ["..", ".", "%2e", "%2E%2e", "%2f", "%2F", "%5c", "%00", "%0d%0a", "%ff", "%c0%af",
                             "%25", "/", "//", "\\", "user000000.vfb", "vfb", "@", "%40", ";", "?", "#", " "]
)
SEGMENTS = st.lists(st.lists(SEGMENT_ALPHABET, max_size=6).map("".join), min_size=0, max_size=5)
PREFIXES = st.sampled_from(["/pub/calendar/", "/calendar/", "/", "/pub/", "//pub/calendar/", "/pub/calendar/../"])
HEADER_NAMES = st.sampled_from(
    ["Content-Type", "Content-Length", "If-Match", "If-None-Match", "If-Modified-Since", "Depth", "Destination",
     "Overwrite", "If", "Lock-Token", "Timeout", "Range", "Expect", "Transfer-Encoding", "Translate",
     "Content-Range", "Authorization", "X-Fuzz"]
)
HEADER_VALUES = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"),
                        max_size=40)
VALID = freeBusyFile("fuzz", 3).decode("ascii").split("\r\n")


@st.composite
def calendarBodies(draw):
    """
    A valid free/busy file, mangled: lines dropped, repeated, truncated or
    replaced, odd bytes and line ends.
    """
    lines = list(VALID)
    for _ in range(draw(st.integers(0, 4))):
        where = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["drop", "repeat", "cut", "junk", "nest"]))
        if action == "drop":
            del lines[where]
        elif action == "repeat":
            lines.insert(where, lines[where])
        elif action == "cut":
            lines[where] = lines[where][: draw(st.integers(0, len(lines[where])))]
        elif action == "junk":
            lines[where] = draw(st.text(max_size=30))
        else:
            lines.insert(where, draw(st.sampled_from(["BEGIN:VCALENDAR", "END:VFREEBUSY", "BEGIN:VEVENT",
                                                      "FREEBUSY:nonsense", "DTSTART:99999999T999999Z"])))
        if not lines:
            lines = [""]
    newline = draw(st.sampled_from(["\r\n", "\n", "\r", ""]))
    return newline.join(lines).encode(draw(st.sampled_from(["utf-8", "utf-16"])), "surrogatepass")


def rawExchange(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """
    Send C{data} as-is and read until the server closes the connection.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


FUZZ = settings(max_examples=int(os.environ.get("FBTWIST_FUZZ_EXAMPLES", "80")), deadline=None, database=None,
                suppress_health_check=list(HealthCheck), derandomize=False)


class FuzzTests(RealServerMixin, SynchronousTestCase):
    """
    Property-based fuzzing (hypothesis) of request paths, headers and
    iCalendar bodies against a running server.
    """

    users = 3

    def setUp(self):
        self.startServers()
        self.assertEqual(self.publishAs(0, freeBusyFile("seed", 3)), 201)
        self.outside = self._snapshot(self.base, skip=self.root)

    def _snapshot(self, top, skip=None):
        found = set()
        for dirpath, dirnames, filenames in os.walk(top):
            if skip and dirpath.startswith(skip):
                continue
            found.update(os.path.join(dirpath, n) for n in dirnames + filenames)
        return found - {os.path.join(self.base, "fbtwist.log")}

    def exchange(self, method: str, target: bytes, headers, body: bytes, authorized: bool) -> None:
        lines = [method.encode("ascii") + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
        if authorized:
            lines.append(b"Authorization: " + basicAuthorization(userName(0), userPassword(0)).encode("ascii"))
        for name, value in headers:
            lines.append(name.encode("ascii") + b": " + value.encode("latin-1"))
        if not any(name.lower() in ("content-length", "transfer-encoding") for name, _ in headers):
            lines.append(b"Content-Length: %d" % len(body))
        response = rawExchange(self.server.port, b"\r\n".join(lines) + b"\r\n\r\n" + body)
        self.assertTrue(self.server.running, "the server died")
        if response:
            statusLine = response.split(b"\r\n", 1)[0]
            self.assertTrue(statusLine.startswith(b"HTTP/1."), statusLine)
            status = int(statusLine.split()[1])
            self.assertLess(status, 500, (method, target, headers, response[:300]))
        for walked in self._snapshot(self.root):
            self.assertTrue(os.path.realpath(walked).startswith(self.root + os.sep), walked)
        self.assertEqual(self._snapshot(self.base, skip=self.root), self.outside)

    def test_paths(self):
        """
        Any request path, with any method, authenticated or not: never a
        500, never a write outside the tree.
        """

        @FUZZ
        @given(st.sampled_from(METHODS), PREFIXES, SEGMENTS, st.booleans(), st.sampled_from(["", "?x=1", "#f"]))
        def check(method, prefix, segments, authorized, suffix):
            target = (prefix + "/".join(segments) + suffix).encode("latin-1")
            self.exchange(method, target, [], freeBusyFile("p", 1) if method == "PUT" else b"", authorized)

        check()
        self.assertNoInternalErrors()

    def test_headers(self):
        """
        Any headers on a publish and a lookup: never a 500.
        """

        @FUZZ
        @given(st.sampled_from(["PUT", "GET", "HEAD", "PROPFIND"]), st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES),
                                                                          max_size=4), st.booleans())
        def check(method, headers, lookup):
            target = f"/calendar/{userName(0)}.vfb" if lookup else f"/pub/calendar/{userName(0)}.vfb"
            self.exchange(method, target.encode("ascii"), headers, freeBusyFile("h", 1), True)

        check()
        self.assertNoInternalErrors()

    def test_calendarBodies(self):
        """
        Any mangled iCalendar body: refused with 4xx or stored whole, never
        a 500; a stored file is served back exactly.
        """

        @FUZZ
        @given(calendarBodies())
        def check(body):
            status, _ = request(
                self.server.port, "PUT", f"/pub/calendar/{userName(0)}.vfb", body,
                {"Authorization": basicAuthorization(userName(0), userPassword(0))},
            )
            self.assertIn(status, (201, 204, 400, 415))
            if status in (201, 204):
                self.assertEqual(self.published(0), body)

        check()
        self.assertNoInternalErrors()
