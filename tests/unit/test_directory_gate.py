"""
L{fbtwist.directory.gate}: searches and binds bounded per kind, waiting in
fbtwist first come first served, a full queue or a long wait answered as
busy; and the name index's DNs, which let a known login bind without a
search.
"""

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

import tests.helpers  # noqa: F401 (ldaptor's import-time warnings)
from fbtwist.directory.gate import DirectoryBusy, DirectoryGate
from fbtwist.directory.nameindex import indexOf
from fbtwist.errors import DirectoryUnavailable


class GateTests(SynchronousTestCase):
    """
    The gate on its own, timed by a fake clock.
    """

    def setUp(self):
        self.clock = Clock()
        self.gate = DirectoryGate({"search": 2, "bind": 1}, queueSize=3, queueTimeout=5, clock=self.clock)

    def test_limit(self):
        """
        Up to the limit, a slot is held at once; the next one waits until
        one is released.
        """
        self.successResultOf(self.gate.acquire("search"))
        self.successResultOf(self.gate.acquire("search"))
        third = self.gate.acquire("search")
        self.assertNoResult(third)
        self.gate.release("search")
        self.successResultOf(third)
        self.assertEqual(self.gate.active("search"), 2)

    def test_firstComeFirstServed(self):
        """
        Waiters get released slots in the order they came.
        """
        self.gate.acquire("search")
        self.gate.acquire("search")
        order = []
        for n in range(3):
            self.gate.acquire("search").addCallback(lambda _, n=n: order.append(n))
        for _ in range(3):
            self.gate.release("search")
        self.assertEqual(order, [0, 1, 2])

    def test_kindsIndependent(self):
        """
        Searches filling their slots and queue do not hold up a bind, nor
        a waiting bind a search.
        """
        self.gate.acquire("search")
        self.gate.acquire("search")
        waiting = self.gate.acquire("search")
        self.successResultOf(self.gate.acquire("bind"))
        bindWaiting = self.gate.acquire("bind")
        self.gate.release("search")
        self.successResultOf(waiting)
        self.assertNoResult(bindWaiting)
        self.gate.release("bind")
        self.successResultOf(bindWaiting)

    def test_fullQueue(self):
        """
        With C{queueSize} waiting (all kinds together), one more fails at
        once as busy, a kind of L{DirectoryUnavailable} (a 503).
        """
        for _ in range(2):
            self.gate.acquire("search")
        self.gate.acquire("bind")
        for _ in range(2):
            self.gate.acquire("search")
        self.gate.acquire("bind")
        failure = self.failureResultOf(self.gate.acquire("search"), DirectoryBusy)
        self.assertIsInstance(failure.value, DirectoryUnavailable)
        self.assertIn("busy", failure.value.reason)

    def test_waitBounded(self):
        """
        A waiter not served within C{queueTimeout} fails as busy and leaves
        the queue; the slot released later goes to the next waiter.
        """
        self.gate.acquire("bind")
        first = self.gate.acquire("bind")
        self.clock.advance(1)
        second = self.gate.acquire("bind")
        self.clock.advance(4)
        self.failureResultOf(first, DirectoryBusy)
        self.assertNoResult(second)
        self.assertEqual(self.gate.waiting(), 1)
        self.gate.release("bind")
        self.successResultOf(second)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_cancel(self):
        """
        A cancelled waiter leaves the queue and its timer is stopped.
        """
        self.gate.acquire("bind")
        waiting = self.gate.acquire("bind")
        waiting.cancel()
        self.failureResultOf(waiting, defer.CancelledError)
        self.assertEqual(self.gate.waiting(), 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.gate.release("bind")
        self.assertEqual(self.gate.active("bind"), 0)

    def test_slot(self):
        """
        C{slot} holds a slot for its block, and gives it back when the
        block raises.
        """

        async def use():
            async with self.gate.slot("bind"):
                self.assertEqual(self.gate.active("bind"), 1)
                raise ValueError("x")

        self.failureResultOf(defer.Deferred.fromCoroutine(use()), ValueError)
        self.assertEqual(self.gate.active("bind"), 0)


class IndexedLoginTests(SynchronousTestCase):
    """
    The DN a name index keeps per uid, for a bind without a search.
    """

    def test_dn(self):
        """
        A uid (in any case) gives its entry's uid and DN, however the DN is
        written; other names give nothing.
        """
        index = indexOf([
            ("Alice", ["alice@example.com"], "uid=Alice,ou=people,dc=example,dc=com"),
            ("bob", [], "cn=Bob Builder,ou=people,dc=example,dc=com"),
            ("a,b", [], "uid=a\\,b,ou=people,dc=example,dc=com"),
            ("carol", [], "UID=carol,ou=other,dc=example,dc=com"),
        ])
        self.assertEqual(index.login("alice"), ("Alice", "uid=Alice,ou=people,dc=example,dc=com"))
        self.assertEqual(index.login("BOB"), ("bob", "cn=Bob Builder,ou=people,dc=example,dc=com"))
        self.assertEqual(index.login("A,B"), ("a,b", "uid=a\\,b,ou=people,dc=example,dc=com"))
        self.assertEqual(index.login("carol"), ("carol", "UID=carol,ou=other,dc=example,dc=com"))
        self.assertIsNone(index.login("alice@example.com"))
        self.assertIsNone(index.login("nobody"))

    def test_templates(self):
        """
        DNs of one shape are kept as one template, not one string per user.
        """
        index = indexOf([(f"u{n}", [], f"uid=u{n},ou=people,dc=example,dc=com") for n in range(100)])
        self.assertEqual(len(index._templates), 1)
        self.assertEqual(index.login("U42"), ("u42", "uid=u42,ou=people,dc=example,dc=com"))

    def test_sharedUidNotKnown(self):
        """
        A uid two entries share names no entry to bind: the login is
        searched (and the directory finds it ambiguous).  A uid that is
        another entry's mail local part is still the uid's.
        """
        index = indexOf([
            ("twin", ["twin@example.com"], "cn=Twin One,dc=example"),
            ("Twin", [], "cn=Twin Two,dc=example"),
            ("pat", [], "uid=pat,dc=example"),
            ("pat2", ["pat@example.com"], "uid=pat2,dc=example"),
        ])
        self.assertIsNone(index.login("twin"))
        self.assertEqual(index.login("pat"), ("pat", "uid=pat,dc=example"))

    def test_withoutDN(self):
        """
        Records without a DN give no login (the index as built before).
        """
        index = indexOf([("alice", ["alice@example.com"])])
        self.assertEqual(index.get("alice"), (True, "alice"))
        self.assertIsNone(index.login("alice"))


class RawEntriesTests(SynchronousTestCase):
    """
    L{DirectoryClient.rawEntries}: a name index load's entries as bytes.
    """

    def test_raw(self):
        """
        Search entries go to C{rawEntries} as bytes, in order, split
        anywhere; the result that ends the search still reaches its
        handler, after them.
        """
        from ldaptor.protocols import pureldap
        from twisted.internet.testing import StringTransport

        from fbtwist.directory.client import DirectoryClient

        client = DirectoryClient()
        client.makeConnection(StringTransport())
        seen = []
        client.rawEntries = lambda dn, attributes: seen.append((dn, attributes))
        request = pureldap.LDAPSearchRequest(baseObject="dc=x", filter=pureldap.LDAPFilter_present("uid"))

        def handler(response):
            seen.append(type(response).__name__)
            return isinstance(response, pureldap.LDAPSearchResultDone)

        client.send_multiResponse(request, handler)
        # ldaptor numbers requests across clients: the one in flight.
        (messageID,) = client.onwire
        wire = b"".join(
            pureldap.LDAPMessage(
                pureldap.LDAPSearchResultEntry(objectName=f"uid=u{n},dc=x", attributes=[("uid", [f"u{n}"])]),
                id=messageID,
            ).toWire()
            for n in range(3)
        ) + pureldap.LDAPMessage(pureldap.LDAPSearchResultDone(resultCode=0), id=messageID).toWire()
        for i in range(0, len(wire), 7):
            client.dataReceived(wire[i:i + 7])
        self.assertEqual(seen, [(f"uid=u{n},dc=x".encode(), [(b"uid", [f"u{n}".encode()])]) for n in range(3)]
                         + ["LDAPSearchResultDone"])

    def test_malformed(self):
        """
        Bytes that cannot be an LDAP message among raw entries fail the
        search in flight with L{MalformedMessage} (a sentence saying why)
        and close the connection; nothing after them is read.
        """
        from ldaptor.protocols import pureldap
        from twisted.internet.testing import StringTransport

        from fbtwist.directory.ber import MalformedMessage
        from fbtwist.directory.client import DirectoryClient

        client = DirectoryClient()
        transport = StringTransport()
        client.makeConnection(transport)
        seen = []
        client.rawEntries = lambda dn, attributes: seen.append(dn)
        request = pureldap.LDAPSearchRequest(baseObject="dc=x", filter=pureldap.LDAPFilter_present("uid"))
        d = client.send_multiResponse(request, lambda response: True)
        (messageID,) = client.onwire
        entry = pureldap.LDAPMessage(
            pureldap.LDAPSearchResultEntry(objectName="uid=u,dc=x", attributes=[("uid", ["u"])]), id=messageID,
        ).toWire()
        # A message claiming 2 GB: not waited for.
        client.dataReceived(entry + b"\x30\x84\x7f\xff\xff\xff" + entry)
        self.assertEqual(seen, [b"uid=u,dc=x"])
        self.assertTrue(transport.disconnecting)
        client.dataReceived(entry)
        self.assertEqual(seen, [b"uid=u,dc=x"])
        client.connectionLost(None)
        failure = self.failureResultOf(d, MalformedMessage)
        self.assertIn("2147483647 bytes", failure.getErrorMessage())
