"""
The scale-out deployment: two fbtwist processes over one shared calendar
tree behind HAProxy (Debian package C{haproxy}) on loopback, against one
slapd.  Real processes, bounded in time.
"""

import ftplib
import http.client
import io
import os
from concurrent.futures import ThreadPoolExecutor

from twisted.trial.unittest import SynchronousTestCase

from tests.processes import (
    FbtwistProcess,
    HAProxyProcess,
    UserDirectory,
    basicAuthorization,
    freeBusyFile,
    freePort,
    publish,
    request,
    userName,
    userPassword,
    versionOf,
)

LOCKINFO = (
    b'<?xml version="1.0" encoding="utf-8"?>'
    b'<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>'
    b'<D:locktype><D:write/></D:locktype><D:owner>node test</D:owner></D:lockinfo>'
)


class ScaleOutTests(SynchronousTestCase):
    """
    Two nodes, one tree, HAProxy round-robin in front.
    """

    def setUp(self):
        base = os.path.abspath(self.mktemp())
        os.makedirs(base)
        self.directory = UserDirectory(os.path.join(base, "ldap"), 10)
        self.directory.start()
        self.addCleanup(self.directory.stop)
        self.root = os.path.join(base, "tree")
        self.nodes = []
        self.ftpPorts = []
        for index in range(2):
            self.ftpPorts.append(freePort())
            node = FbtwistProcess(self.root, self.directory.searchURL,
                                  extraArgs=["--ftp", f"tcp:{self.ftpPorts[-1]}:interface=127.0.0.1"],
                                  logPath=os.path.join(base, f"node{index}.log")).start()
            self.addCleanup(node.stop)
            self.nodes.append(node)
        self.balancer = HAProxyProcess(os.path.join(base, "haproxy"), [n.port for n in self.nodes]).start()
        self.addCleanup(self.balancer.stop)
        self.ports = [self.balancer.port] + [n.port for n in self.nodes]

    def test_balancerReachesBothNodes(self):
        """
        Round-robin through HAProxy answers from both nodes: each node's log
        shows requests.
        """
        for _ in range(4):
            self.assertEqual(request(self.balancer.port, "GET", "/")[0], 200)
        for node in self.nodes:
            self.assertIn('"GET / HTTP/1.1" 200', node.log())

    def test_concurrentPublishesNeverTorn(self):
        """
        Many concurrent publishes of one user's file through the balancer
        and both nodes leave exactly one of the versions sent, whole.
        """
        versions = [freeBusyFile(f"v{i}", 2000 + i) for i in range(30)]

        def send(i):
            port = self.ports[i % len(self.ports)]
            return publish(port, userName(0), userPassword(0), versions[i])

        with ThreadPoolExecutor(10) as pool:
            statuses = list(pool.map(send, range(len(versions)), timeout=120))
        self.assertEqual(set(statuses) - {201, 204}, set())
        with open(os.path.join(self.root, userName(0) + ".vfb"), "rb") as f:
            self.assertIn(f.read(), versions)
        self.assertEqual([n for n in os.listdir(self.root) if not n.startswith(".")], [userName(0) + ".vfb"])
        labels = {f"v{i}" for i in range(len(versions))}
        for port in self.ports:
            status, body = request(port, "GET", f"/calendar/{userName(0)}.vfb")
            self.assertEqual(status, 200)
            self.assertIn(versionOf(body), labels)

    def test_lookupsSeeTheNewestFile(self):
        """
        A file published through one node is what a lookup through the
        other, or through the balancer, returns right after.
        """
        for round in range(6):
            body = freeBusyFile(f"round{round}", 5)
            writer, reader = self.nodes[round % 2], self.nodes[(round + 1) % 2]
            self.assertIn(publish(writer.port, userName(1), userPassword(1), body), (201, 204))
            for port in (reader.port, self.balancer.port, self.balancer.port):
                status, got = request(port, "GET", f"/calendar/{userName(1)}.vfb")
                self.assertEqual((status, versionOf(got)), (200, f"round{round}"))

    def test_lockThroughOneNodeHonouredByTheOther(self):
        """
        A WebDAV LOCK taken through node 1 or the balancer is honoured by
        node 2, over HTTP and FTP: without the token a PUT or DELETE is 423
        and an FTP STOR 550; with C{If: (<token>)} they succeed, and UNLOCK
        through node 2 frees the file.
        """
        login, password = userName(2), userPassword(2)
        auth = {"Authorization": basicAuthorization(login, password)}
        path = f"/pub/calendar/{login}.vfb"
        other = self.nodes[1]
        self.assertEqual(publish(self.nodes[0].port, login, password, freeBusyFile("old", 3)), 201)
        for locker in (self.nodes[0].port, self.balancer.port):
            status, body = lockResponse(locker, path, auth)
            self.assertEqual(status[0], 200, body)
            token = status[1]
            self.assertTrue(token.startswith("<") and token.endswith(">"), token)

            status, _ = request(other.port, "PUT", path, freeBusyFile("sneaky", 3),
                                {**auth, "Content-Type": "text/calendar"})
            self.assertEqual(status, 423)
            self.assertEqual(request(other.port, "DELETE", path, headers=auth)[0], 423)
            ftp = ftplib.FTP()
            ftp.connect("127.0.0.1", self.ftpPorts[1], timeout=15)
            try:
                ftp.login(login, password)
                with self.assertRaises(ftplib.error_perm) as raised:
                    ftp.storbinary(f"STOR {path}", io.BytesIO(freeBusyFile("ftp", 3)))
                self.assertTrue(str(raised.exception).startswith("550"), raised.exception)
            finally:
                ftp.close()
            with open(os.path.join(self.root, login + ".vfb"), "rb") as f:
                self.assertEqual(versionOf(f.read()), "old")

            status, _ = request(other.port, "PUT", path, freeBusyFile(f"locked-new-{locker}", 3),
                                {**auth, "Content-Type": "text/calendar", "If": f"({token})"})
            self.assertIn(status, (200, 201, 204))
            got = request(self.balancer.port, "GET", f"/calendar/{login}.vfb")
            self.assertEqual((got[0], versionOf(got[1])), (200, f"locked-new-{locker}"))
            if locker == self.balancer.port:
                # A DELETE with the token removes the file and its lock
                # (RFC 4918, 9.6.1), whichever node took the lock.
                self.assertEqual(request(other.port, "DELETE", path, headers={**auth, "If": f"({token})"})[0], 204)
                self.assertFalse(os.path.exists(os.path.join(self.root, login + ".vfb")))
            else:
                status, _ = request(other.port, "UNLOCK", path, headers={**auth, "Lock-Token": token})
                self.assertEqual(status, 204)
            self.assertEqual(publish(self.nodes[0].port, login, password, freeBusyFile("old", 3)),
                             201 if locker == self.balancer.port else 204)


def lockResponse(port, path, headers):
    """
    LOCK C{path} exclusively for writing: C{((status, Lock-Token), body)}.
    """
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        connection.request("LOCK", path, body=LOCKINFO,
                           headers={**headers, "Content-Type": "application/xml", "Timeout": "Second-600"})
        response = connection.getresponse()
        return (response.status, response.getheader("Lock-Token", "")), response.read()
    finally:
        connection.close()
