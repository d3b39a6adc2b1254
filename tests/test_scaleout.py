"""
The scale-out deployment: two fbtwist processes over one shared calendar
tree behind HAProxy (Debian package C{haproxy}) on loopback, against one
slapd.  Real processes, bounded in time.
"""

import os
from concurrent.futures import ThreadPoolExecutor

from twisted.trial.unittest import SynchronousTestCase

from tests.processes import (
    FbtwistProcess,
    HAProxyProcess,
    UserDirectory,
    freeBusyFile,
    publish,
    request,
    userName,
    userPassword,
    versionOf,
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
        for index in range(2):
            node = FbtwistProcess(self.root, self.directory.searchURL,
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
