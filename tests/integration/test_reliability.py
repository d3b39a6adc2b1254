"""
The reliability and security suite: a real fbtwist process (C{twistd -n
freebusy}) against a real slapd, attacked from outside.  Every test is
bounded in time; C{FBTWIST_LOAD_SECONDS} sets the length of the concurrent
load test (60 by default), C{FBTWIST_FUZZ_EXAMPLES} the examples of each
fuzzing test (80 by default).
"""

import ftplib
import io
import json
import os
import random
import resource
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from xml.sax.saxutils import escape, quoteattr

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.helpers import treeNames
from tests.processes import (
    FbtwistProcess,
    UserDirectory,
    basicAuthorization,
    freeBusyFile,
    freePort,
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

    def startServers(self, preexec_fn=None, extraArgs=(), ftp=False):
        """
        Start slapd and fbtwist; with C{ftp}, fbtwist also listens for FTP
        on C{self.ftpPort} and logs JSON lines (so that L{assertNoInternalErrors}
        sees every event's level and failure).
        """
        if ftp:
            self.ftpPort = freePort()
            extraArgs = list(extraArgs) + [
                "--ftp", f"tcp:{self.ftpPort}:interface=127.0.0.1", "--log-format", "json",
                "--ftp-max-connections-per-address", "1000",
            ]
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

    def ftpLogin(self, index: int = 0) -> ftplib.FTP:
        """
        A real FTP control connection, logged in as user C{index}.
        """
        client = ftplib.FTP()
        client.connect("127.0.0.1", self.ftpPort, timeout=10)
        try:
            client.login(userName(index), userPassword(index))
        except BaseException:
            client.close()
            raise
        return client

    def assertNoInternalErrors(self):
        """
        The server's log shows no internal error: no "internal error" or
        "Unhandled Error" text, no traceback, and (for JSON lines) no event
        carrying a failure or logged at the critical level.
        """
        bad = []
        for line in self.server.log().splitlines():
            if any(text in line for text in ("internal error", "Unhandled Error", "Traceback (most recent")):
                bad.append(line)
            elif line.startswith("{"):
                record = json.loads(line)
                if "traceback" in record or record.get("level") == "critical":
                    bad.append(line)
        self.assertEqual(bad[:3], [])


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
        # The name index is built by a child process at start: its memory
        # is not the server's.
        deadline = time.monotonic() + 60
        while "name index loaded" not in self.server.log():
            self.assertLess(time.monotonic(), deadline, "no name index")
            time.sleep(0.1)
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
            # Every user's name is in the name index: a name it does not
            # hold (a user added since it was loaded?) needs the directory.
            status, _ = request(self.server.port, "GET", f"/calendar/new-{userName(next(nextUser))}.vfb")
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


def publishedNames(root: str) -> list:
    """
    What is in the top of the tree but the lock store's directory: files,
    and any temporary file a failed upload left behind (in the staging
    folder too, see L{tests.helpers.treeNames}).
    """
    return [n for n in treeNames(root) if n != ".davlocks"]


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
        self.assertEqual(publishedNames(self.root), [f"{userName(0)}.vfb"])
        self.assertEqual(versionOf(request(self.server.port, "GET", f"/calendar/{userName(0)}.vfb")[1]), "old")
        self.assertNoInternalErrors()

    def test_ftpInsufficientStorage(self):
        """
        An FTP STOR that does not fit is answered 452; the old file stays,
        no temporary file is left behind, and the session goes on.
        """
        self.startServers(preexec_fn=limitFileSize, ftp=True)
        old = freeBusyFile("old", 10)
        self.assertEqual(self.publishAs(0, old), 201)
        big = freeBusyFile("big", 3000)
        self.assertGreater(len(big), 64 * 1024)
        client = self.ftpLogin(0)
        try:
            client.voidcmd("TYPE I")
            data = client.transfercmd(f"STOR /pub/calendar/{userName(0)}.vfb")
            try:
                data.sendall(big)
            except OSError:
                pass  # the server may stop reading once the write failed
            finally:
                data.close()
            with self.assertRaises(ftplib.error_temp) as raised:
                client.voidresp()
            self.assertTrue(str(raised.exception).startswith("452"), raised.exception)
            self.assertEqual(client.sendcmd("NOOP")[:3], "200")
        finally:
            client.close()
        self.assertEqual(self.published(0), old)
        self.assertEqual(publishedNames(self.root), [f"{userName(0)}.vfb"])
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


XML_NAMESPACES = st.sampled_from(
    ["DAV:", "", "dav:", "DAV", "http://example.com/ns/", "urn:fuzz", "http://apache.org/dav/props/",
     "urn:ietf:params:xml:ns:caldav", "http://www.w3.org/2001/XInclude", "\u00e9\u4e2d:\U0001f600", "x" * 2000]
)
XML_NAMES = st.sampled_from(
    ["propfind", "prop", "allprop", "propname", "include", "propertyupdate", "set", "remove", "lockinfo",
     "lockscope", "exclusive", "shared", "locktype", "write", "owner", "href", "getetag", "displayname",
     "resourcetype", "getcontentlength", "getlastmodified", "lockdiscovery", "supportedlock", "collection",
     "x", "a-b", "_z", "\u00e9t\u00e9", "n" * 300]
)
XML_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)
ATTRIBUTE_VALUES = st.one_of(XML_TEXT, st.integers(0, 300_000).map(lambda n: "A" * n))


def renderElement(name, namespace, prefixed, attributes, children):
    tag = f"p:{name}" if prefixed else name
    declaration = f" xmlns:p={quoteattr(namespace)}" if prefixed else f" xmlns={quoteattr(namespace)}"
    attributes = "".join(f" a{i}={quoteattr(value)}" for i, value in enumerate(attributes))
    return f"<{tag}{declaration}{attributes}>{''.join(children)}</{tag}>"


XML_TREES = st.recursive(
    XML_TEXT.map(escape),
    lambda children: st.builds(renderElement, XML_NAMES, XML_NAMESPACES, st.booleans(),
                               st.lists(ATTRIBUTE_VALUES, max_size=2), st.lists(children, max_size=4)),
    max_leaves=20,
).map(lambda tree: '<?xml version="1.0" encoding="utf-8"?>' + tree)

#: Text that a file outside the tree holds (L{XMLFuzzTests}); no answer
#: and no file in the tree may ever show it.
CANARY = "fbtwist-canary-4f1d"
#: Well-formed DAV bodies, one per method fuzzed, that hostile parts are put in.
PROPFIND_BODY = '<D:propfind xmlns:D="DAV:"><D:prop><D:displayname>{inner}</D:displayname></D:prop></D:propfind>'
PROPPATCH_BODY = ('<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:fuzz"><D:set><D:prop><Z:note>{inner}</Z:note>'
                  '</D:prop></D:set></D:propertyupdate>')
LOCK_BODY = ('<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/>'
             '</D:locktype><D:owner>{inner}</D:owner></D:lockinfo>')


@st.composite
def hostileXML(draw, canaryPath: str, listenerPort: int):
    """
    A DAV body carrying an attack: entity expansion (billion laughs,
    quadratic blow-up), external entities and DTDs (a local file, a loopback
    URL), parameter entities, XInclude, deep nesting, a lying encoding.
    """
    template = draw(st.sampled_from([PROPFIND_BODY, PROPPATCH_BODY, LOCK_BODY]))
    outside = f"file://{canaryPath}"
    url = f"http://127.0.0.1:{listenerPort}/fuzz.dtd"
    kind = draw(st.sampled_from(["laughs", "quadratic", "file", "url", "dtd", "parameter", "xinclude", "nest",
                                 "encoding", "truncated"]))
    if kind == "laughs":
        entities = ['<!ENTITY l0 "lol">'] + [f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10)]
        return f'<!DOCTYPE d [{"".join(entities)}]>' + template.format(inner="&l9;")
    if kind == "quadratic":
        return f'<!DOCTYPE d [<!ENTITY a "{"a" * 50000}">]>' + template.format(inner="&a;" * 2000)
    if kind == "file":
        return f'<!DOCTYPE d [<!ENTITY x SYSTEM "{outside}">]>' + template.format(inner="&x;")
    if kind == "url":
        return f'<!DOCTYPE d [<!ENTITY x SYSTEM "{url}">]>' + template.format(inner="&x;")
    if kind == "dtd":
        return f'<!DOCTYPE d SYSTEM "{url}">' + template.format(inner="x")
    if kind == "parameter":
        return (f'<!DOCTYPE d [<!ENTITY % p SYSTEM "{url}"> %p; <!ENTITY % f SYSTEM "{outside}">]>'
                + template.format(inner="x"))
    if kind == "xinclude":
        return template.format(inner=f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{outside}" '
                                     f'parse="text"/>')
    if kind == "nest":
        depth = draw(st.integers(100, 100_000))
        return template.format(inner="<a>" * depth + "</a>" * depth)
    if kind == "encoding":
        return ('<?xml version="1.0" encoding="' + draw(st.sampled_from(["utf-16", "ebcdic", "x-fuzz", "utf-7"]))
                + '"?>' + template.format(inner="\u00e9"))
    body = template.format(inner=draw(XML_TEXT.map(escape)))
    return body[: draw(st.integers(0, len(body) - 1))]


def rawExchange(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """
    Send C{data} as-is and read until the server closes the connection.
    """
    chunks = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except (BrokenPipeError, ConnectionResetError):
            # The server may answer (413, 400) and close before a large body
            # is all sent; what it answered, if anything arrived, is checked.
            pass
    return b"".join(chunks)


FUZZ = settings(max_examples=int(os.environ.get("FBTWIST_FUZZ_EXAMPLES", "80")), deadline=None, database=None,
                suppress_health_check=list(HealthCheck), derandomize=False)


class FuzzTests(RealServerMixin, SynchronousTestCase):
    """
    Property-based fuzzing (hypothesis) of request paths, headers, XML
    bodies, iCalendar bodies and FTP commands against a running server.
    """

    users = 3

    def setUp(self):
        self.startServers(ftp=True)
        self.assertEqual(self.publishAs(0, freeBusyFile("seed", 3)), 201)
        self.outside = self._snapshot(self.base, skip=self.root)

    def _snapshot(self, top, skip=None):
        found = set()
        for dirpath, dirnames, filenames in os.walk(top):
            if skip and dirpath.startswith(skip):
                continue
            found.update(os.path.join(dirpath, n) for n in dirnames + filenames)
        return found - {os.path.join(self.base, "fbtwist.log"), os.path.join(self.base, "canary.txt")}

    def exchange(self, method: str, target: bytes, headers, body: bytes, authorized: bool) -> None:
        lines = [method.encode("ascii") + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
        if authorized:
            lines.append(b"Authorization: " + basicAuthorization(userName(0), userPassword(0)).encode("ascii"))
        for name, value in headers:
            lines.append(name.encode("ascii") + b": " + value.encode("latin-1"))
        if not any(name.lower() in ("content-length", "transfer-encoding") for name, _ in headers):
            lines.append(b"Content-Length: %d" % len(body))
        response = rawExchange(self.server.port, b"\r\n".join(lines) + b"\r\n\r\n" + body)
        self.checkAnswer(method, target, headers, response)
        return response

    def checkAnswer(self, method, target, headers, response: bytes) -> None:
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

    def test_xmlBodies(self):
        """
        Any XML body on PROPFIND, PROPPATCH and LOCK — random trees in
        random namespaces with huge attributes, broken XML, entity bombs,
        external entities and DTDs, XInclude, deep nesting: never a 500,
        never a read of a file outside the tree or of a URL, never a write
        outside the tree.
        """
        canaryPath = os.path.join(self.base, "canary.txt")
        with open(canaryPath, "w") as f:
            f.write(CANARY)
        listener = socket.socket()
        self.addCleanup(listener.close)
        listener.bind(("127.0.0.1", 0))
        listener.listen(5)
        listener.setblocking(False)
        bodies = st.one_of(XML_TREES, hostileXML(canaryPath, listener.getsockname()[1]),
                           st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
        targets = st.sampled_from(["/pub/calendar/", f"/pub/calendar/{userName(0)}.vfb", "/calendar/",
                                   f"/calendar/{userName(0)}.vfb", "/"])
        contentTypes = st.sampled_from([[("Content-Type", "application/xml")], [("Content-Type", "text/xml")],
                                        [("Content-Type", "text/plain")], []])

        @FUZZ
        @given(st.sampled_from(["PROPFIND", "PROPPATCH", "LOCK"]), targets, bodies, contentTypes,
               st.sampled_from([[], [("Depth", "0")], [("Depth", "1")], [("Depth", "infinity")]]))
        def check(method, target, body, contentType, depth):
            response = self.exchange(method, target.encode("ascii"), contentType + depth,
                                     body.encode("utf-8", "surrogatepass"), True)
            self.assertNotIn(CANARY.encode("ascii"), response)
            if method == "LOCK" and response.startswith(b"HTTP/1.1 200"):
                token = [line.split(b":", 1)[1].strip() for line in response.split(b"\r\n")
                         if line.lower().startswith(b"lock-token:")]
                self.assertEqual(len(token), 1, response[:300])
                status, _ = request(self.server.port, "UNLOCK", target, headers={
                    "Authorization": basicAuthorization(userName(0), userPassword(0)),
                    "Lock-Token": token[0].decode("ascii")})
                self.assertEqual(status, 204)

        check()
        with self.assertRaises(BlockingIOError):
            listener.accept()
        for walked in self._snapshot(self.root):
            if os.path.isfile(walked):
                with open(walked, "rb") as f:
                    self.assertNotIn(CANARY.encode("ascii"), f.read(), walked)
        self.assertEqual(request(self.server.port, "GET", f"/calendar/{userName(0)}.vfb")[0], 200)
        self.assertNoInternalErrors()

    def test_ftpCommands(self):
        """
        Any FTP commands with any arguments (path traversal attempts among
        them), over a real control connection after a real login, with
        real data connections for transfers: no internal error, never a
        write outside the tree, and the server keeps answering.
        """
        names = st.sampled_from(
            ["USER", "PASS", "ACCT", "CWD", "CDUP", "SMNT", "REIN", "QUIT", "PORT", "PASV", "EPRT", "EPSV",
             "TYPE", "STRU", "MODE", "RETR", "STOR", "STOU", "APPE", "ALLO", "REST", "RNFR", "RNTO", "ABOR",
             "DELE", "RMD", "MKD", "PWD", "LIST", "NLST", "MLSD", "MLST", "SITE", "SYST", "STAT", "HELP",
             "NOOP", "FEAT", "OPTS", "SIZE", "MDTM", "AUTH", "PBSZ", "PROT", "CCC", "XPWD", "XCUP", "XMKD",
             "XRMD", "X-FUZZ", "retr", "Stor", ""]
        )
        pieces = st.sampled_from(
            ["..", ".", "/", "//", "\\", "~", "*", "?", "%2e%2e", "pub", "calendar", "etc", "passwd",
             f"{userName(0)}.vfb", f"{userName(1)}.vfb", "x.vfb", ".locks", ".tmp", "\x00", " ", "-la",
             "\u00e9", "\U0001f600", "a" * 300, "127,0,0,1,0,22", "|1|127.0.0.1|22|", "A", "I", "E", "UTF8 ON",
             "CHMOD 777", "0", "-1", "99999999999999999999"]
        )
        arguments = st.lists(pieces, max_size=6).map("".join)
        commands = st.lists(st.tuples(names, arguments), min_size=1, max_size=6)
        transfers = {"RETR", "STOR", "STOU", "APPE", "LIST", "NLST", "MLSD", "retr", "Stor"}

        @FUZZ
        @given(commands)
        def check(steps):
            received = []
            client = self.ftpLogin(0)
            try:
                for name, argument in steps:
                    line = f"{name} {argument}".rstrip() if argument else name
                    try:
                        if name in transfers:
                            client.voidcmd("TYPE I")
                            if name.upper() in ("STOR", "STOU", "APPE"):
                                client.storbinary(line, io.BytesIO(freeBusyFile("ftp", 1)))
                            else:
                                client.retrbinary(line, received.append)
                        else:
                            client.sendcmd(line)
                    except (ftplib.error_perm, ftplib.error_temp, ftplib.error_reply) as e:
                        self.assertRegex(str(e), r"^[1-5][0-9][0-9]")
                        self.assertNotIn("local error", str(e), line)
                    if name.upper() == "QUIT":
                        break
            except (EOFError, OSError):
                pass  # the server may end a session (QUIT, REIN, timeouts, too many errors)
            finally:
                client.close()
            self.assertNotIn(b"root:x:0:0:", b"".join(received))
            self.assertTrue(self.server.running, "the server died")
            for walked in self._snapshot(self.root):
                self.assertTrue(os.path.realpath(walked).startswith(self.root + os.sep), walked)
            self.assertEqual(self._snapshot(self.base, skip=self.root), self.outside)

        check()
        client = self.ftpLogin(1)
        try:
            self.assertEqual(client.sendcmd("NOOP")[:3], "200")
        finally:
            client.close()
        self.assertEqual(versionOf(request(self.server.port, "GET", f"/calendar/{userName(0)}.vfb")[1]), "seed")
        self.assertNoInternalErrors()
