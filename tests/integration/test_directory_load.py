"""
L{fbtwist.directory.ldapdirectory} on slapd: logins the name index knows
bind without a search, with the answers of search-then-bind; and bursts of
logins and searches at a directory that answers one request at a time,
slowly, served without an outage (fbtwist queues them; a wait in fbtwist
is not the directory's time).
"""

from collections import deque

from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.protocols import portforward
from twisted.trial.unittest import TestCase

import tests.helpers  # noqa: F401 (ldaptor's import-time warnings)
from fbtwist.directory.ber import _messageEnd
from fbtwist.directory.filters import equalityFilter
from fbtwist.directory.ldapdirectory import LDAPDirectory
from fbtwist.directory.ldapurl import parseLDAPURL
from fbtwist.errors import WrongPassword
from tests.integration.test_directory_slapd import SlapdTestMixin
from tests.integration.test_nameindex import LimitedSlapd
from tests.names import BASE, LDIF, PEOPLE, _person


def _calls(seen, operation):
    return [e for e in seen if e.get("fbEvent") == "directory-call" and e["operation"] == operation]


class SlowDirectory:
    """
    A TCP proxy in front of a directory that passes on one request every
    C{delay} seconds, over all its connections together: a directory that
    works on one request at a time, slowly.  Answers come back at once.
    """

    def __init__(self, port: int, delay: float):
        self.delay = delay
        self._queue = deque()
        self._call = None
        self._stopped = False
        slow = self

        class Server(portforward.ProxyServer):
            def connectionMade(self):
                self.buffer = b""
                super().connectionMade()

            def dataReceived(self, data):
                self.buffer += data
                while True:
                    end = _messageEnd(self.buffer, 0)
                    if end is None:
                        return
                    message, self.buffer = self.buffer[:end], self.buffer[end:]
                    slow._submit(self, message)

        self.factory = portforward.ProxyFactory("127.0.0.1", port)
        self.factory.protocol = Server
        self.factory.noisy = False

    def _submit(self, server, message: bytes) -> None:
        self._queue.append((server, message))
        if self._call is None and not self._stopped:
            self._call = reactor.callLater(self.delay, self._next)

    def _next(self) -> None:
        server, message = self._queue.popleft()
        if server.peer is not None and server.peer.transport is not None:
            server.peer.transport.write(message)
        self._call = reactor.callLater(self.delay, self._next) if self._queue else None

    def stop(self) -> None:
        self._stopped = True
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None


class IndexedBindTests(SlapdTestMixin, TestCase):
    """
    Logins the name index knows, on slapd.
    """

    def setUp(self):
        self.slapd = LimitedSlapd(self.mktemp(), LDIF, sizeLimit=500)
        self.slapd.start()
        self.addCleanup(self.slapd.stop)

    async def makeDirectory(self, indexed=True, **kw):
        url = parseLDAPURL(f"ldap://127.0.0.1:{self.slapd.port}/{PEOPLE}?uid?one")
        directory = LDAPDirectory(url, reactor, timeout=2.0, **kw)
        self.addCleanup(directory.close)
        if indexed:
            await directory.loadNameIndex()
        return directory

    async def answer(self, directory, login, password):
        try:
            return await directory.authenticate(login, password)
        except WrongPassword as e:
            return ("wrong password", e.uid)
        except UnauthorizedLogin:
            return "refused"

    async def test_bindWithoutSearch(self):
        """
        A login the index knows, with its password, is one bind and no
        search.
        """
        directory = await self.makeDirectory()
        seen = self.events()
        self.assertEqual(await directory.authenticate("ALICE", "alice-pw"), "alice")
        self.assertEqual(await directory.authenticate("bob", "bob-pw"), "bob")
        self.assertEqual(_calls(seen, "search"), [])
        self.assertEqual(len(_calls(seen, "bind")), 2)

    async def test_sameAnswers(self):
        """
        With the index or without, every login (known, ambiguous, unknown,
        in any case, right or wrong password) gets the same answer.
        """
        indexed = await self.makeDirectory()
        searched = await self.makeDirectory(indexed=False)
        logins = ["alice", "Alice", "bob", "BOB", "twin", "robert", "Carol", "carol", "eve@example.com",
                  "evelyn", "nobody", "alice@example.com", "*", "pat"]
        passwords = ["alice-pw", "bob-pw", "wrong"]
        for login in logins:
            for password in passwords:
                self.assertEqual(
                    await self.answer(indexed, login, password), await self.answer(searched, login, password),
                    (login, password),
                )

    async def test_movedEntry(self):
        """
        An entry whose DN changed since the index was loaded is found by a
        search and bound; a deleted one is refused as unknown; a wrong
        password is one bind and a search (did the entry move?), not two
        binds (directories that lock accounts out count each).
        """
        directory = await self.makeDirectory()
        self.slapd.modify(
            f"dn: uid=alice,{PEOPLE}\nchangetype: modrdn\nnewrdn: cn=Alice Moved\ndeleteoldrdn: 0\n\n"
            f"dn: uid=bob,{PEOPLE}\nchangetype: delete\n"
        )
        seen = self.events()
        self.assertEqual(await directory.authenticate("alice", "alice-pw"), "alice")
        self.assertEqual(len(_calls(seen, "bind")), 2)
        self.assertEqual(await self.answer(directory, "bob", "bob-pw"), "refused")
        del seen[:]
        self.assertEqual(await self.answer(directory, "robert", "wrong"), ("wrong password", "robert"))
        self.assertEqual(len(_calls(seen, "bind")), 1)
        self.assertEqual(len(_calls(seen, "search")), 1)

    async def test_otherLoginAttributes(self):
        """
        Logins matched against other attributes than the uid are always
        searched: the index knows only uids.
        """
        directory = await self.makeDirectory(loginAttributes=("uid", "mail"))
        seen = self.events()
        self.assertEqual(await directory.authenticate("alice", "alice-pw"), "alice")
        self.assertEqual(len(_calls(seen, "search")), 1)


USERS = 100


class BurstTests(SlapdTestMixin, TestCase):
    """
    A hundred first logins at once at slapd behind L{SlowDirectory}
    (10 ms per request, all connections together: the last of a hundred
    requests sent at once is answered after a second, beyond the 0.4 s
    timeout).
    """

    def setUp(self):
        people = "".join(_person(f"uid=user{n}", f"user{n}", [f"user{n}@example.com"], f"pw{n}")
                         for n in range(USERS))
        ldif = (f"dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n"
                f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n\n" + people)
        self.slapd = LimitedSlapd(self.mktemp(), ldif, sizeLimit=500)
        self.slapd.start()
        self.addCleanup(self.slapd.stop)

    async def makeDirectory(self, **kw):
        slow = SlowDirectory(self.slapd.port, 0.01)
        self.addCleanup(slow.stop)
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(slow.factory)
        self.addCleanup(port.stopListening)
        url = parseLDAPURL(f"ldap://127.0.0.1:{port.getHost().port}/{PEOPLE}?uid?one")
        directory = LDAPDirectory(url, reactor, timeout=0.4, poolSize=1, **kw)
        self.addCleanup(directory.close)
        return directory

    async def burst(self, directory):
        answers = await defer.gatherResults(
            [defer.Deferred.fromCoroutine(self._login(directory, n)) for n in range(USERS)])
        self.assertEqual(answers, [f"user{n}" for n in range(USERS)])
        self.assertIsNone(directory._outage)

    async def _login(self, directory, n):
        try:
            return await directory.authenticate(f"user{n}", f"pw{n}")
        except Exception as e:
            return repr(e)

    async def test_indexedLogins(self):
        """
        With the name index loaded, a hundred first logins are a hundred
        binds, four at a time, all accepted: no search, no outage.
        """
        directory = await self.makeDirectory()
        await directory.loadNameIndex()
        seen = self.events()
        await self.burst(directory)
        self.assertEqual(_calls(seen, "search"), [])

    async def test_searchedLogins(self):
        """
        Without the index, a hundred logins search and bind, searches and
        binds each a few at a time: all accepted, no outage, though the
        last waited in fbtwist much longer than the directory's timeout.
        """
        directory = await self.makeDirectory()
        started = reactor.seconds()
        await self.burst(directory)
        self.assertGreater(reactor.seconds() - started, 1.0)

    async def test_searchesQueued(self):
        """
        Searches beyond the ones at the directory wait in fbtwist: forty
        at once, each answered, none timed out.
        """
        directory = await self.makeDirectory()
        found = await defer.gatherResults([
            defer.Deferred.fromCoroutine(directory.search(equalityFilter("uid", f"user{n}"), ["uid"]))
            for n in range(40)
        ])
        self.assertEqual([len(entries) for entries in found], [1] * 40)
        self.assertIsNone(directory._outage)

    async def test_fullQueueBusy(self):
        """
        A burst beyond the queue's size is answered busy for the excess,
        at once, and the directory is not taken for down.
        """
        directory = await self.makeDirectory(queueSize=10)
        answers = await defer.gatherResults(
            [defer.Deferred.fromCoroutine(self._login(directory, n)) for n in range(30)])
        busy = [a for a in answers if "DirectoryBusy" in a]
        self.assertEqual(len(busy), 30 - 10 - 4)
        self.assertEqual(answers.count("user0"), 1)
        self.assertEqual(len(busy) + sum(a.startswith("user") for a in answers), 30)
        self.assertIsNone(directory._outage)
        self.assertEqual(directory.retryDelay(), 0)
