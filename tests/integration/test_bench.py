"""
Tests for the benchmark's own parts (bench/compare.py): the ratio columns,
the million-user set-up (streamed LDIF, hard-linked files) and its one-off
measurements against a real slapd and fbtwist.
"""

import os
import shutil
import tempfile

from twisted.trial import unittest

from bench import compare
from tests.processes import PEOPLE, FbtwistProcess, userName, userPassword
from tests.slapd import _bindResultCode


def row(server, workload="(a) lookup GET", rps=100.0, p99=10.0):
    return dict(users=100, workload=workload, server=server, rps=rps, p50=1.0, p99=p99, rss=0, errors=0)


class RatioTests(unittest.SynchronousTestCase):
    def test_throughput(self):
        """fbtwist's rate is divided by the peer's."""
        self.assertEqual(compare.ratio(row("fbtwist", rps=50.0), row("wsgidav", rps=200.0)), "0.25×")

    def test_mixedLoad(self):
        """For the mixed load the ratio is the peer's p99 over fbtwist's."""
        workload = "(d) mixed 0.1 PUT/s + 1 GET/s"
        self.assertEqual(compare.ratio(row("fbtwist x2", workload, p99=4.0), row("apache", workload, p99=10.0)),
                         "p99 2.50×")

    def test_noRatio(self):
        """A peer's own row, a peer that did not take part or measured nothing gets a dash."""
        self.assertEqual(compare.ratio(row("apache"), row("wsgidav")), "–")
        self.assertEqual(compare.ratio(row("fbtwist"), None), "–")
        self.assertEqual(compare.ratio(row("fbtwist"), row("wsgidav", rps=float("nan"))), "–")
        self.assertEqual(compare.ratio(row("fbtwist"), row("wsgidav", rps=0.0)), "–")

    def test_tableHasBothPeers(self):
        """The table has a column per peer and says that WsgiDAV does not check LDAP."""
        args = compare.parseArguments(["--quick"])
        args.wsgidav_python = None
        results = compare.Results()
        results.rows = [row("fbtwist", rps=50.0), row("apache", rps=100.0), row("wsgidav", rps=25.0)]
        table = compare.markdown(args, results, {}, *[compare.datetime.datetime(2026, 1, 1)] * 2, "")
        self.assertIn("| fbtwist ÷ Apache | fbtwist ÷ WsgiDAV |", table)
        self.assertIn("| 0 | 0.50× | 2.00× |", table)
        args.wsgidav_python = "/nonexistent/python"
        table = compare.markdown(args, results, {}, *[compare.datetime.datetime(2026, 1, 1)] * 2, "")
        self.assertIn("**WsgiDAV does not check LDAP**", table)


class TargetsTests(unittest.SynchronousTestCase):
    def test_millionPropfindIsJudgedByGrowth(self):
        """The million-file PROPFIND is judged by how much memory grows, not by the name index already held."""
        million = dict(users=1000000, propfind={
            "fbtwist": dict(status=207, rss=353 * 2**20, rssBefore=350 * 2**20),
            "fbtwist x2": dict(status=207, rss=600 * 2**20, rssBefore=350 * 2**20)})
        lines = compare.targets([], million)
        self.assertIn("| PROPFIND Depth 1 of 1,000,000 files streamed, memory flat (peak RSS grows < 32 MB), "
                      "fbtwist | status 207, 350 MB before, 353 MB at the peak (+3 MB) | yes |", lines)
        self.assertIn("| PROPFIND Depth 1 of 1,000,000 files streamed, memory flat (peak RSS grows < 32 MB), "
                      "fbtwist x2 | status 207, 350 MB before, 600 MB at the peak (+250 MB) | **no** |", lines)

    def test_issueTargets(self):
        """
        Publishes and lookups are judged per mode against their own factor of
        Apache (and publishes with --workers 2 against WsgiDAV), with the
        server CPU per publish; what was not measured says so.
        """
        rows = [
            row("apache", "(b) publish PUT", rps=1000.0), row("wsgidav", "(b) publish PUT", rps=600.0),
            dict(row("fbtwist", "(b) publish PUT", rps=600.0), cpu=0.5),
            dict(row("fbtwist x2", "(b) publish PUT", rps=1100.0), cpu=0.7),
            row("apache", rps=1000.0), row("fbtwist", rps=499.0), row("fbtwist x2", rps=750.0),
        ]
        lines = compare.targets(rows)
        for expected in (
            "| publishes ≥ 0.6× Apache, one process, 100 users | 0.60× (fbtwist: 600.0 vs apache: 1,000.0 req/s) "
            "| yes |",
            "| publishes ≥ 1.0× Apache, `--workers 2`, 100 users | 1.10× (fbtwist x2: 1,100.0 vs apache: 1,000.0 "
            "req/s) | yes |",
            "| publishes ≥ 2× WsgiDAV, `--workers 2`, 100 users | 1.83× (fbtwist x2: 1,100.0 vs wsgidav: 600.0 "
            "req/s) | **no** |",
            "| CPU per publish ≤ 0.5 ms, fbtwist, 100 users | 0.50 ms (server CPU of all its processes ÷ publishes) "
            "| yes |",
            "| CPU per publish ≤ 0.5 ms, fbtwist x2, 100 users | 0.70 ms (server CPU of all its processes ÷ "
            "publishes) | **no** |",
            "| lookups ≥ 0.5× Apache, one process, 100 users | 0.50× (fbtwist: 499.0 vs apache: 1,000.0 req/s) "
            "| **no** |",
            "| lookups ≥ 0.75× Apache, `--workers 2`, 100 users | 0.75× (fbtwist x2: 750.0 vs apache: 1,000.0 "
            "req/s) | yes |",
            "| PROPFIND Depth 1 ≥ 0.6× Apache, one process | not measured in this run | – |",
            "| a million users: burst of first logins, name index, names' memory, rates, PROPFIND | not run "
            "(`bench/run --million`) | – |",
        ):
            self.assertIn(expected, lines)

    def test_versionsAsMeasured(self):
        """
        The versions listed are those taken during the run (WsgiDAV's
        virtualenv may be gone by the end); fbtwist's is the tree's.
        """
        import fbtwist

        self.assertTrue(compare.fbtwistVersion().startswith(fbtwist.__version__))
        args = compare.parseArguments(["--quick"])
        args.wsgidav_python = "/nonexistent/python"
        results = compare.Results()
        results.versions = {"fbtwist": "9.9", "WsgiDAV": "WsgiDAV 4.4.0 on cheroot 10.0.1"}
        table = compare.markdown(args, results, {}, *[compare.datetime.datetime(2026, 1, 1)] * 2, "")
        self.assertIn("- WsgiDAV: WsgiDAV 4.4.0 on cheroot 10.0.1\n", table)
        self.assertIn("- fbtwist: 9.9\n", table)

    def test_slowRate(self):
        """A rate below one request a second keeps two significant digits."""
        self.assertEqual(compare.formatNumber(1 / 30.2), "0.033")
        self.assertEqual(compare.formatNumber(1234.5), "1,234.5")


class TreeFilesystemTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.procfs = self.mktemp()
        os.makedirs(os.path.join(self.procfs, "jbd2", "vdb-8"))
        for device, options in (("vda", "rw\ndiscard\ndelalloc\n"), ("vdb", "rw\nnodiscard\n")):
            os.makedirs(os.path.join(self.procfs, "ext4", device))
            with open(os.path.join(self.procfs, "ext4", device, "options"), "w") as f:
                f.write(options)
        self.mountinfo = ("22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard\n"
                          "30 22 0:26 / /srv rw shared:5 - tmpfs tmpfs rw\n"
                          "31 30 254:16 / /srv/calendars rw shared:6 - ext4 /dev/vdb rw\n")
        # Paths of the table above, not of this machine: found by their
        # mount points (no device of theirs in the table).
        self.patch(os, "stat", lambda path: os.stat_result((0,) * 10))
        self.patch(os.path, "realpath", lambda path: path)

    def describe(self, path):
        return compare.treeFilesystem(path, self.mountinfo, self.procfs)

    def test_journalless(self):
        """An ext4 filesystem without a journal is said to be one, and its discard."""
        text = self.describe("/tmp")
        self.assertTrue(text.startswith("ext4 (/dev/vda on /), **without a journal**"), text)
        self.assertTrue(text.endswith(", mounted with `discard`"), text)

    def test_innermostMount(self):
        """The mount nearest the path counts: here an ext4 with a journal, no discard."""
        self.assertEqual(self.describe("/srv/calendars/pub"), "ext4 (/dev/vdb on /srv/calendars), with a journal")
        self.assertEqual(self.describe("/srv/other"), "tmpfs (tmpfs on /srv)")
        # Only a whole segment of the path names a mount point.
        self.assertEqual(self.describe("/srv/calendarsX")[:5], "tmpfs")

    def test_unreadable(self):
        """Without a mount table nothing is claimed."""
        self.assertEqual(compare.treeFilesystem("/tmp", "", self.procfs), "?")


class NameIndexLogTests(unittest.SynchronousTestCase):
    def test_parse(self):
        """Each worker's "name index loaded" line gives its entries, names and seconds."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("2026-12-06T08:16:17+0000 [fbtwist.directory.LDAPDirectory#info] name index loaded from "
                    "ldap://127.0.0.1:36901: 100000 entries, 200000 names in 5.68s (400 pages)\n"
                    "something else\n"
                    "2026-12-06T08:16:18+0000 [fbtwist.directory.LDAPDirectory#info] name index loaded from "
                    "ldap://127.0.0.1:36901: 100000 entries, 200000 names in 4.71s (400 pages)\n")
        self.assertEqual(compare.nameIndexLoads(path), [
            dict(entries=100000, names=200000, seconds=5.68), dict(entries=100000, names=200000, seconds=4.71),
        ])


class LinkFilesTests(unittest.SynchronousTestCase):
    def test_links(self):
        """Names share one written file per LINKS_PER_INODE, all with the same content."""
        self.patch(compare, "LINKS_PER_INODE", 2)
        folder = self.mktemp()
        names = [f"f{i}.vfb" for i in range(5)]
        self.assertEqual(compare.linkFiles(folder, iter(names), b"BEGIN:VCALENDAR\r\n"), 5)
        inodes = [os.stat(os.path.join(folder, name)).st_ino for name in names]
        self.assertEqual(len(set(inodes)), 3)
        self.assertEqual(inodes[0], inodes[1])
        for name in names:
            with open(os.path.join(folder, name), "rb") as f:
                self.assertEqual(f.read(), b"BEGIN:VCALENDAR\r\n")


class LookEveryoneUpTests(unittest.SynchronousTestCase):
    """
    L{compare.lookEveryoneUp} asks for every user's file, on a server that
    closes kept-alive connections too (WsgiDAV's cheroot does).
    """

    def serve(self, closing):
        import http.server
        import itertools
        import threading

        asked, count = [], itertools.count()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                asked.append(self.path)
                answer, body = closing(next(count)), b"x" * 100
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                if answer == "say":
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
                if answer:
                    self.close_connection = True

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        return server.server_address[1], asked

    def test_everyUser(self):
        """Every user is asked for once a pass, each answer counted."""
        port, asked = self.serve(lambda n: None)
        walked = compare.lookEveryoneUp(port, 50, connections=4, passes=2)
        self.assertEqual((walked["answered"], walked["reopened"]), (100, 0))
        self.assertEqual(sorted(asked), sorted([f"/calendar/{userName(n)}.vfb" for n in range(50)] * 2))

    def test_warmPasses(self):
        """Passes over all users before the lookup rounds: each of fbtwist's workers most of them; not the peers."""
        self.assertEqual([compare.warmPasses(name) for name in ("fbtwist", "fbtwist x2", "fbtwist x4", "apache",
                                                                "wsgidav")], [1, 5, 11, 0, 0])

    def test_serverCloses(self):
        """
        A connection the server closes, saying so or not, is opened again
        and the user it was to ask for asked on the new one.
        """
        port, asked = self.serve(lambda n: "say" if n % 7 == 3 else "silently" if n % 5 == 4 else None)
        walked = compare.lookEveryoneUp(port, 60, connections=4)
        self.assertEqual(walked["answered"], 60)
        self.assertGreater(walked["reopened"], 0)
        self.assertEqual(sorted(set(asked)), sorted(f"/calendar/{userName(n)}.vfb" for n in range(60)))


class MillionPartsTests(unittest.SynchronousTestCase):
    """
    The million-user run's parts, on a few users: a real slapd loaded from
    the streamed LDIF and a real fbtwist.
    """

    def setUp(self):
        self.base = tempfile.mkdtemp(prefix="fbtwist-test-bench-")
        self.addCleanup(shutil.rmtree, self.base, True)
        self.directory = compare.StreamedUserDirectory(os.path.join(self.base, "ldap"), 40)
        self.directory.start()
        self.addCleanup(self.directory.stop)

    def test_streamedDirectory(self):
        """The streamed LDIF loads with slapadd -q, its users bind, and the times are kept."""
        self.assertEqual(_bindResultCode(self.directory.host, self.directory.port,
                                         f"uid={userName(39)},{PEOPLE}", userPassword(39), 5), 0)
        self.assertNotEqual(_bindResultCode(self.directory.host, self.directory.port,
                                            f"uid={userName(39)},{PEOPLE}", "wrong", 5), 0)
        self.assertEqual(sorted(self.directory.timings), ["ldif", "ldifBytes", "slapadd"])
        self.assertFalse(os.path.exists(os.path.join(self.directory.basedir, "data.ldif")))

    def test_firstLoginsAndPropfind(self):
        """Each user of a burst publishes once; a streamed PROPFIND counts the whole answer."""
        tree = os.path.join(self.base, "tree")
        body = compare.calendarBody()
        compare.linkFiles(tree, (userName(i) + ".vfb" for i in range(40)), body)
        compare.linkFiles(os.path.join(tree, "folder"), (f"file{i}.vfb" for i in range(30)), body)
        server = FbtwistProcess(tree, self.directory.searchURL,
                                extraArgs=["--admin-group", compare.ADMIN_GROUP]).start(60)
        self.addCleanup(server.stop)
        compare.waitForLogLines(server.logPath, "name index loaded", 1, 60)
        burst = compare.firstLogins(server.port, list(range(1, 31)), body, connections=8)
        self.assertEqual((burst["count"], burst["errors"], burst["statuses"]), (30, 0, {204: 30}))
        answer = compare.streamedPropfind(server.port, "/pub/calendar/folder/", server.pid)
        self.assertEqual(answer["status"], 207)
        self.assertGreater(answer["bytes"], 30 * 100)
        self.assertGreater(answer["rss"], 0)

    def test_workersShareIndex(self):
        """With --workers 2 the name index is built once, both workers map its file, logins bind."""
        tree = os.path.join(self.base, "tree")
        body = compare.calendarBody()
        compare.linkFiles(tree, (userName(i) + ".vfb" for i in range(40)), body)
        folder = os.path.join(self.base, "names")
        server = FbtwistProcess(tree, self.directory.searchURL,
                                extraArgs=["--workers", "2", "--name-index-dir", folder]).start(60)
        self.addCleanup(server.stop)
        compare.waitForLogLines(server.logPath, "name index loaded", 1, 60)
        compare.waitForLogLines(server.logPath, "name index mapped", 2, 60)
        self.assertEqual(len(compare.nameIndexLoads(server.logPath)), 1)
        self.assertEqual(len(os.listdir(folder)), 1)
        self.assertGreater(compare.processTreePSS(server.pid), 0)
        burst = compare.firstLogins(server.port, list(range(1, 21)), body, connections=8)
        self.assertEqual((burst["count"], burst["errors"]), (20, 0))


class DurableFloorTests(unittest.SynchronousTestCase):
    """
    bench/durablefloor.py replaces files as a durable publish does.
    """

    def test_replaces(self):
        """Every replaced file holds the new body, no temporary file is left, and the costs are printed."""
        import contextlib
        import io

        from bench import durablefloor

        folder = self.mktemp()
        durablefloor.makeFolder(folder, 5, b"old")
        self.assertEqual(sorted(os.listdir(folder)), [f"user{n}.vfb" for n in range(5)])
        result = durablefloor.replaceDurably(folder, 5, 10, 3, b"new")
        self.assertEqual(sorted(os.listdir(folder)), [f"user{n}.vfb" for n in range(5)])
        for name in os.listdir(folder):
            with open(os.path.join(folder, name), "rb") as f:
                self.assertEqual(f.read(), b"new")
        self.assertEqual(set(result), {"user", "system", "wall"})
        self.assertTrue(all(value >= 0 for value in result.values()))
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            durablefloor.main(["--files", "4", "--count", "6", "--folder", self.mktemp()])
        self.assertRegex(out.getvalue(), r"^durable replace \(4 files, 2000 bytes, folder fsync per 8\): "
                                         r"CPU \d+\.\d{3} ms \(user \d+\.\d{3}, system \d+\.\d{3}\), wall ")

    def test_refusesZeroCount(self):
        """A count of 0 is refused with a usage error."""
        import contextlib
        import io

        from bench import durablefloor

        err = io.StringIO()
        with self.assertRaises(SystemExit), contextlib.redirect_stderr(err):
            durablefloor.main(["--count", "0"])
        self.assertIn("--count", err.getvalue())


class GilShareTests(unittest.SynchronousTestCase):
    """
    bench/gilshare.py tells a thread's waits for the interpreter lock from
    its other states, in stacks as py-spy records them (the lines below
    are shortened from a real recording of a publishing server).
    """

    REACTOR = "thread (8099): MainThread;0x7f1dcbe4524a (libc.so.6);ReactorBase.run (twisted/internet/base.py:686)"
    STORE = "thread (8120): fbtwist-store-1;0x7f1dcbf278ec (libc.so.6);_Workers._work (fbtwist/store/pool.py:135)"

    def lines(self):
        return [
            # Back from fsync, waiting for the lock.
            self.STORE + ";Upload._writeOut (fbtwist/store/uploads.py:116);os_fsync (libpython3.11.so.1.0);"
                         "pthread_cond_timedwait (libc.so.6);0x7f1dcbea3f16 (libc.so.6) 6",
            # In fsync itself.
            self.STORE + ";Upload._writeOut (fbtwist/store/uploads.py:116);os_fsync (libpython3.11.so.1.0);"
                         "fsync (libc.so.6) 3",
            # The lock's mutex on the way back.
            self.STORE + ";Upload._writeWhole (fbtwist/store/uploads.py:138);os_fstat (libpython3.11.so.1.0);"
                         "pthread_mutex_lock (libc.so.6);0x7f1dcbea412b (libc.so.6) 1",
            # An empty queue: idle.
            self.STORE.replace(":135", ":130") + ";_queue_SimpleQueue_get_impl (_queuemodule.c:253);"
                                                 "PyThread_acquire_lock_timed (libpython3.11.so.1.0);"
                                                 "0x7f1dcbeaed90 (libc.so.6);0x7f1dcbea3f16 (libc.so.6) 2",
            # Polling with nothing to do.
            self.REACTOR + ";EPollReactor.doPoll (twisted/internet/epollreactor.py:227);"
                           "select_epoll_poll_impl (selectmodule.c:1598);epoll_wait (libc.so.6) 1",
            # Back from recv, waiting for the lock.
            self.REACTOR + ";Connection.doRead (twisted/internet/tcp.py:278);sock_call_ex (socketmodule.c:923);"
                           "pthread_cond_timedwait (libc.so.6);0x7f1dcbea3f16 (libc.so.6) 2",
            # Letting it go to a waiting thread before a send.
            self.REACTOR + ";untilConcludes (twisted/python/util.py:760);sock_send_impl (socketmodule.c:4040);"
                           "pthread_cond_signal (libc.so.6) 1",
            # Python.
            self.REACTOR + ";validatePublish (fbtwist/availability/publish.py:35);"
                           "_read (fbtwist/calendar/vfb.py:302) 4",
            # Not a stack.
            "",
            "garbage",
        ]

    def test_classify(self):
        """Each stack gets the state its innermost telling frame gives."""
        from bench import gilshare

        states = [gilshare.classify(line.rpartition(" ")[0].split(";")[1:]) for line in self.lines()[:8]]
        self.assertEqual(states, [
            gilshare.LOCK_WAIT, gilshare.SYSTEM_CALL, gilshare.LOCK_WAIT, gilshare.IDLE,
            gilshare.IDLE, gilshare.LOCK_WAIT, gilshare.LOCK_HANDOVER, gilshare.RUNNING,
        ])

    def test_shares(self):
        """The samples are counted by state for each kind of thread, the pool's threads together."""
        from bench import gilshare

        found = gilshare.shares(self.lines())
        self.assertEqual(sorted(found), ["fbtwist-store", "reactor"])
        self.assertEqual(found["fbtwist-store"]["samples"], 12)
        self.assertAlmostEqual(found["fbtwist-store"][gilshare.LOCK_WAIT], 7 / 12)
        self.assertAlmostEqual(found["fbtwist-store"][gilshare.SYSTEM_CALL], 3 / 12)
        self.assertAlmostEqual(found["fbtwist-store"][gilshare.IDLE], 2 / 12)
        self.assertEqual(found["reactor"]["samples"], 8)
        self.assertAlmostEqual(found["reactor"][gilshare.RUNNING], 4 / 8)
        self.assertAlmostEqual(found["reactor"][gilshare.LOCK_HANDOVER], 1 / 8)
        self.assertEqual(gilshare.report(found), (
            "  reactor (8 samples): running 50 %, system call 0 %, waiting for the lock 25 %, "
            "handing the lock over 12 %, idle 12 %",
            "  fbtwist-store (12 samples): running 0 %, system call 25 %, waiting for the lock 58 %, "
            "handing the lock over 0 %, idle 17 %",
        ))

    def test_mainWithoutThreads(self):
        """A recording without thread names (no --threads) is refused with the reason."""
        from bench import gilshare

        path = self.mktemp()
        with open(path, "w") as f:
            f.write("0x7f4dc584524a (libc.so.6);ReactorBase.run (twisted/internet/base.py:686) 3\n")
        with self.assertRaises(SystemExit) as caught:
            gilshare.main([path])
        self.assertIn("--threads", str(caught.exception))
