"""
The scale-out deployment on a real distributed filesystem: two fbtwist
nodes, each in a network namespace of its own (a machine of its own, as far
as the network goes), each with its own FUSE mount of one GlusterFS volume,
behind HAProxy, against one slapd.

The balancer's namespace is joined to each node's by a veth pair on a
private subnet that exists only between those namespaces; HAProxy there
publishes the nodes on its loopback and relays LDAP to slapd beside it.
The test reaches each namespace from a thread that entered it
(L{tests.netns}).  Real processes, bounded in time; root only.
"""

import ftplib
import io
import os
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from twisted.trial.unittest import SynchronousTestCase

from tests.gluster import GlusterVolume
from tests.helpers import treeNames
from tests.integration.test_scaleout import lockResponse
from tests.netns import Namespace, link
from tests.processes import (
    PEOPLE,
    FbtwistProcess,
    UserDirectory,
    basicAuthorization,
    freeBusyFile,
    publish,
    request,
    stopProcess,
    userName,
    userPassword,
    versionOf,
    waitForPort,
)

#: Ports inside the namespaces, each of which is a machine of its own.
HTTP, FTP, LDAP, STATS = 80, 21, 389, 9999

BALANCER_CONFIG = """\
global
    maxconn 512
    stats socket ipv4@127.0.0.1:{stats}
defaults
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout check 5s
frontend web
    mode http
    option http-server-close
    bind 127.0.0.1:{http}
    default_backend nodes
backend nodes
    mode http
    balance roundrobin
    option httpchk GET /healthz
    option redispatch
    retries 3
{servers}
frontend directory
    mode tcp
{directoryBinds}
    default_backend slapd
backend slapd
    mode tcp
    server slapd 127.0.0.1:{slapd}
"""


class GlusterScaleOutTests(SynchronousTestCase):
    """
    Two nodes in two namespaces, each on its own GlusterFS mount of one
    volume, HAProxy round-robin in front.
    """

    def setUp(self):
        base = os.path.abspath(self.mktemp())
        os.makedirs(base)
        self.base = base
        tag = f"fbt{os.getpid()}"
        volume = GlusterVolume(self, base, tag).start()
        self.mounts = [volume.mount(os.path.join(base, f"mnt-{n}")) for n in "ab"]
        self.front = self.namespace(f"{tag}-lb")
        self.hosts = [self.namespace(f"{tag}-{n}") for n in "ab"]
        links = [link(self.front, host, f"10.250.{i}") for i, host in enumerate(self.hosts, 1)]

        self.directory = UserDirectory(os.path.join(base, "ldap"), 10)
        self.addCleanup(self.directory.stop)
        self.front.call(self.directory.start)
        self.balancerLog = os.path.join(base, "haproxy.log")
        self.startBalancer([hostAddress for _, hostAddress in links], [frontAddress for frontAddress, _ in links])

        self.nodes = []
        for index, (host, (frontAddress, _)) in enumerate(zip(self.hosts, links)):
            node = FbtwistProcess(
                self.mounts[index], f"ldap://{frontAddress}:{LDAP}/{PEOPLE}?uid?one",
                extraArgs=["--ftp", f"tcp:{FTP}:interface=0.0.0.0"],
                logPath=os.path.join(base, f"node-{'ab'[index]}.log"), port=HTTP,
            )
            # Reached through the namespace's veth, not only its loopback.
            node.args[node.args.index(f"tcp:{HTTP}:interface=127.0.0.1")] = f"tcp:{HTTP}:interface=0.0.0.0"
            self.addCleanup(node.kill)
            host.call(node.start)
            self.nodes.append(node)
        self.waitFor(lambda: self.nodesUp() == {"node-a", "node-b"}, "HAProxy sees both nodes up")

    def namespace(self, name):
        namespace = Namespace(name)
        self.addCleanup(namespace.delete)
        return namespace.create()

    def startBalancer(self, nodeAddresses, directoryAddresses):
        config = os.path.join(self.base, "haproxy.cfg")
        with open(config, "w") as f:
            f.write(BALANCER_CONFIG.format(
                http=HTTP, slapd=self.directory.port, stats=STATS,
                servers="\n".join(f"    server node-{'ab'[i]} {address}:{HTTP} check inter 1s fall 2 rise 1"
                                  for i, address in enumerate(nodeAddresses)),
                directoryBinds="\n".join(f"    bind {address}:{LDAP}" for address in directoryAddresses),
            ))

        def start():
            with open(self.balancerLog, "ab") as log:
                process = subprocess.Popen(["haproxy", "-db", "-f", config], stdin=subprocess.DEVNULL,
                                           stdout=log, stderr=subprocess.STDOUT)
            self.addCleanup(stopProcess, process)
            waitForPort(HTTP, 10, process)

        self.front.call(start)

    def nodesUp(self):
        """
        The nodes HAProxy's health checks (C{GET /healthz}) find up, from
        its statistics socket.
        """

        def ask():
            with socket.create_connection(("127.0.0.1", STATS), timeout=5) as stats:
                stats.sendall(b"show stat\n")
                answer = b""
                while chunk := stats.recv(65536):
                    answer += chunk
                return answer

        lines = self.front.call(ask).decode("ascii", "replace").splitlines()
        # CSV: proxy, server, ..., the 18th column is the status.
        rows = [line.split(",") for line in lines if line.startswith("nodes,node-")]
        return {row[1] for row in rows if row[17] == "UP"}

    def viaBalancer(self, function, *args, **kwargs):
        """
        Call C{function} (L{request}, L{publish}) with HAProxy's port, from
        the balancer's namespace.
        """
        return self.front.call(function, HTTP, *args, **kwargs)

    def viaNode(self, index, function, *args, **kwargs):
        """
        Call C{function} with node C{index}'s port, from its namespace.
        """
        return self.hosts[index].call(function, HTTP, *args, **kwargs)

    def fileThrough(self, mount, login):
        """
        A user's file as one mount (one GlusterFS client) reads it.
        """
        with open(os.path.join(mount, login + ".vfb"), "rb") as f:
            return f.read()

    def temporaries(self, mount, login):
        """
        The temporary files of uploads of C{login}'s file, as C{mount}
        lists them (in the tree's staging folder or beside the file).
        """
        return sorted(name for name in treeNames(mount)
                      if os.path.basename(name).startswith(f".{login}.vfb.") and name.endswith(".tmp"))

    def waitFor(self, condition, what, timeout=15.0):
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                self.fail(f"{what}: not after {timeout} s")
            time.sleep(0.05)

    def test_publishesLookupsAndLocksAcrossNodes(self):
        """
        Through the balancer and each node: requests reach both nodes; a
        file published through one node is what the other and the balancer
        return right after; concurrent publishes leave one whole version,
        the same through both mounts; a WebDAV LOCK taken through one node
        is honoured by the other over HTTP (423) and FTP (550), and its
        token lets the other write and UNLOCK.
        """
        for _ in range(4):
            self.assertEqual(self.viaBalancer(request, "GET", "/")[0], 200)
        for node in self.nodes:
            self.assertIn('"GET / HTTP/1.1" 200', node.log())

        for round in range(4):
            body = freeBusyFile(f"round{round}", 5)
            writer, reader = round % 2, (round + 1) % 2
            self.assertIn(self.viaNode(writer, publish, userName(1), userPassword(1), body), (201, 204))
            for status, got in (self.viaNode(reader, request, "GET", f"/calendar/{userName(1)}.vfb"),
                                self.viaBalancer(request, "GET", f"/calendar/{userName(1)}.vfb")):
                self.assertEqual((status, versionOf(got)), (200, f"round{round}"))

        versions = [freeBusyFile(f"v{i}", 200 + i) for i in range(18)]

        def send(i):
            via = (self.viaBalancer, lambda *a: self.viaNode(0, *a), lambda *a: self.viaNode(1, *a))[i % 3]
            return via(publish, userName(0), userPassword(0), versions[i])

        with ThreadPoolExecutor(6) as pool:
            statuses = list(pool.map(send, range(len(versions)), timeout=60))
        self.assertEqual(set(statuses) - {201, 204}, set())
        content = self.fileThrough(self.mounts[0], userName(0))
        self.assertIn(content, versions)
        self.assertEqual(self.fileThrough(self.mounts[1], userName(0)), content)
        self.assertEqual(self.temporaries(self.mounts[1], userName(0)), [])
        for index in range(2):
            status, got = self.viaNode(index, request, "GET", f"/calendar/{userName(0)}.vfb")
            self.assertEqual((status, versionOf(got)), (200, versionOf(content)))

        login, password = userName(2), userPassword(2)
        auth = {"Authorization": basicAuthorization(login, password)}
        path = f"/pub/calendar/{login}.vfb"
        self.assertEqual(self.viaNode(0, publish, login, password, freeBusyFile("old", 3)), 201)
        (status, token), body = self.viaNode(0, lockResponse, path, auth)
        self.assertEqual(status, 200, body)
        self.assertEqual(self.viaNode(1, request, "PUT", path, freeBusyFile("sneaky", 3),
                                      {**auth, "Content-Type": "text/calendar"})[0], 423)
        self.assertEqual(self.viaNode(1, request, "DELETE", path, headers=auth)[0], 423)

        def store():
            ftp = ftplib.FTP()
            ftp.connect("127.0.0.1", FTP, timeout=15)
            try:
                ftp.login(login, password)
                ftp.storbinary(f"STOR {path}", io.BytesIO(freeBusyFile("ftp", 3)))
            finally:
                ftp.close()

        with self.assertRaises(ftplib.error_perm) as raised:
            self.hosts[1].call(store)
        self.assertTrue(str(raised.exception).startswith("550"), raised.exception)
        self.assertEqual(versionOf(self.fileThrough(self.mounts[1], login)), "old")

        self.assertIn(self.viaNode(1, request, "PUT", path, freeBusyFile("locked-new", 3),
                                   {**auth, "Content-Type": "text/calendar", "If": f"({token})"})[0], (200, 204))
        got = self.viaBalancer(request, "GET", f"/calendar/{login}.vfb")
        self.assertEqual((got[0], versionOf(got[1])), (200, "locked-new"))
        self.assertEqual(self.viaNode(1, request, "UNLOCK", path, headers={**auth, "Lock-Token": token})[0], 204)
        self.assertEqual(self.viaNode(0, publish, login, password, freeBusyFile("after", 3)), 204)

    def test_lookupsWhileTheOtherNodePublishes(self):
        """
        Lookups through node b while node a publishes the same file again
        and again all answer 200 with a whole version: a name that led to a
        file node a has just replaced (C{ESTALE} through GlusterFS) is
        looked up again, never answered 500.
        """
        login, password = userName(6), userPassword(6)
        self.assertEqual(self.viaNode(0, publish, login, password, freeBusyFile("p0", 30)), 201)
        # Each writer publishes 40 times, and on until the readers have
        # looked up 150 times between them, however fast either side is on
        # a busy machine: the lookups all happen while publishes go on.
        looked = []

        def publishes(first):
            statuses, i = [], first
            while i < first + 40 or (len(looked) < 150 and i < first + 400):
                statuses.append(self.viaNode(0, publish, login, password, freeBusyFile(f"p{i}", 30)))
                i += 1
            return statuses

        def lookups():
            answers = []
            while not all(writer.done() for writer in writers):
                status, body = request(HTTP, "GET", f"/calendar/{login}.vfb")
                answers.append((status, versionOf(body) is not None))
                looked.append(None)
            return answers

        with ThreadPoolExecutor(6) as pool:
            writers = [pool.submit(publishes, 1000 * n) for n in range(3)]
            readers = [pool.submit(self.hosts[1].call, lookups) for _ in range(3)]
            statuses = [status for writer in writers for status in writer.result(timeout=120)]
            answers = [answer for reader in readers for answer in reader.result(timeout=120)]
        self.assertEqual(set(statuses), {204})
        self.assertGreater(len(answers), 100)
        self.assertEqual({answer for answer in answers if answer != (200, True)}, set())

    def test_nodeKilledMidPublish(self):
        """
        Node a killed (C{SIGKILL}) while an FTP upload to it is under way:
        node b serves every request through the balancer, the file stays
        its old version, whole; restarted, node a removes its dead upload's
        temporary file at once but leaves node b's upload in progress alone
        (its C{flock}, taken through the other mount, holds), and that
        upload then completes.
        """
        killed, living = userName(3), userName(4)
        for index, login in ((0, killed), (1, living)):
            self.assertEqual(self.viaNode(index, publish, login, userPassword(int(login[4:])),
                                          freeBusyFile("old", 40)), 201)
        newKilled, newLiving = freeBusyFile("new", 40), freeBusyFile("new", 40)

        def beginUpload(login, data):
            ftp = ftplib.FTP()
            ftp.connect("127.0.0.1", FTP, timeout=15)
            ftp.login(login, userPassword(int(login[4:])))
            ftp.voidcmd("TYPE I")
            connection = ftp.transfercmd(f"STOR /pub/calendar/{login}.vfb")
            connection.sendall(data)
            return ftp, connection

        ftpA, dataA = self.hosts[0].call(beginUpload, killed, newKilled[:len(newKilled) // 2])
        self.addCleanup(ftpA.close)
        self.addCleanup(dataA.close)
        ftpB, dataB = self.hosts[1].call(beginUpload, living, newLiving[:len(newLiving) // 2])
        self.addCleanup(ftpB.close)
        self.addCleanup(dataB.close)
        self.waitFor(lambda: self.temporaries(self.mounts[1], killed) and self.temporaries(self.mounts[0], living),
                     "both uploads' temporary files through the other mount")
        deadUpload = self.temporaries(self.mounts[0], killed)

        self.nodes[0].kill()
        for _ in range(6):
            status, got = self.viaBalancer(request, "GET", f"/calendar/{killed}.vfb")
            self.assertEqual((status, versionOf(got)), (200, "old"))
        self.assertEqual(self.fileThrough(self.mounts[1], killed), freeBusyFile("old", 40))
        self.assertEqual(self.viaBalancer(publish, userName(5), userPassword(5), freeBusyFile("while", 3)), 201)
        self.assertEqual(self.temporaries(self.mounts[1], killed), deadUpload)

        self.hosts[0].call(self.nodes[0].start)
        self.assertEqual(self.temporaries(self.mounts[0], killed), [])
        self.assertEqual(len(self.temporaries(self.mounts[0], living)), 1)

        dataB.sendall(newLiving[len(newLiving) // 2:])
        dataB.close()
        self.assertTrue(ftpB.voidresp().startswith("226"))
        self.assertEqual(self.fileThrough(self.mounts[0], living), newLiving)
        self.assertEqual(self.temporaries(self.mounts[0], living), [])
        self.assertEqual(self.fileThrough(self.mounts[0], killed), freeBusyFile("old", 40))
        for index in range(2):
            status, got = self.viaNode(index, request, "GET", f"/calendar/{killed}.vfb")
            self.assertEqual((status, versionOf(got)), (200, "old"))



class GlusterLockRaceTests(SynchronousTestCase):
    """
    The lock store over two FUSE mounts of one GlusterFS volume, as two
    nodes see it.
    """

    def test_lockWaitsForPublishThroughTheOtherMount(self):
        """
        A publish through one mount that found no lock and has not renamed
        yet holds up a lock of its file taken through the other mount until
        its new version is in place; a publish through the first mount
        afterwards finds the lock.
        """
        import threading

        from twisted.python.filepath import FilePath

        from fbtwist.errors import Locked
        from fbtwist.store.locks import LOCK_DIRECTORY, LockStore, WallClock
        from fbtwist.store.tree import CalendarStore

        base = os.path.abspath(self.mktemp())
        os.makedirs(base)
        volume = GlusterVolume(self, base, f"fbl{os.getpid()}").start()
        stores = [CalendarStore(FilePath(volume.mount(os.path.join(base, f"mnt-{n}")))) for n in "ab"]
        locks = [LockStore(store.metadataDirectory(LOCK_DIRECTORY), WallClock) for store in stores]
        stores[0].write(("a.vfb",), b"old")
        inCheck, release, outcome = threading.Event(), threading.Event(), []

        def check():
            inCheck.set()
            release.wait(30)

        def publish():
            d = stores[0].openUpload(("a.vfb",)).commitAsync(b"new", check, exclusive=locks[0].exclusive)
            d.addBoth(outcome.append)

        publisher = threading.Thread(target=publish)
        publisher.start()
        self.assertTrue(inCheck.wait(30))
        granted = []
        locker = threading.Thread(target=lambda: granted.append(
            locks[1].create(("a.vfb",), "exclusive", "0", "", "bob", 60)))
        locker.start()
        locker.join(1.0)
        self.assertEqual((granted, stores[1].read(("a.vfb",))), ([], b"old"))
        release.set()
        publisher.join(30)
        locker.join(30)
        self.assertEqual((outcome, len(granted)), ([False], 1))
        self.assertEqual(stores[1].read(("a.vfb",)), b"new")

        def refuse():
            if locks[0].affecting(("a.vfb",), membership=True):
                raise Locked("locked")

        later = []
        stores[0].openUpload(("a.vfb",)).commitAsync(b"later", refuse, exclusive=locks[0].exclusive).addBoth(
            later.append)
        self.assertIsInstance(later[0].value, Locked)
        self.assertEqual(stores[0].read(("a.vfb",)), b"new")
