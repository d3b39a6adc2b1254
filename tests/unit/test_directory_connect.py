"""
Every way a connection to the directory can fail is an outage: the
directory raises L{DirectoryUnavailable} (503 with Retry-After over HTTP)
and backs off; nothing escapes as an unexpected error (a 500).  In memory:
a reactor whose name resolver finds nothing, connections that are refused
or never answered, and a whole fbtwist served through treq's StubTreq.
"""

from treq.testing import StubTreq
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.interfaces import IHostResolution, IReactorPluggableNameResolver
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

import tests.helpers  # noqa: F401 (ldaptor's import-time warnings)
from fbtwist.directory.ldapdirectory import RETRY_INITIAL, LDAPDirectory
from fbtwist.directory.ldapurl import parseLDAPURL
from fbtwist.directory.nameindex import NameIndexRefresher
from fbtwist.errors import DirectoryUnavailable
from tests.helpers import basicAuth, logEvents, serviceOptions

#: A name that the reactor below cannot resolve (none is ever looked up
#: for real).
UNRESOLVABLE = "ldap://ldap.example.invalid/ou=people,dc=example,dc=com?uid?one"


@implementer(IHostResolution)
class _Resolution:
    def __init__(self, name):
        self.name = name

    def cancel(self):
        pass


class _NoAddresses:
    """
    A name resolver that finds no address for any name, at once (as a
    resolver answers for a name that does not exist).
    """

    def __init__(self):
        self.asked = []

    def resolveHostName(self, receiver, hostName, portNumber=0, addressTypes=None, transportSemantics="TCP"):
        self.asked.append(hostName)
        resolution = _Resolution(hostName)
        receiver.resolutionBegan(resolution)
        receiver.resolutionComplete()
        return resolution


@implementer(IReactorPluggableNameResolver)
class ReactorWithoutNames(MemoryReactorClock):
    """
    A memory reactor whose name resolver finds nothing.
    """

    def __init__(self):
        super().__init__()
        self.nameResolver = _NoAddresses()

    def installNameResolver(self, resolver):
        previous, self.nameResolver = self.nameResolver, resolver
        return previous


class ConnectionFailureTests(SynchronousTestCase):
    """
    DNS failures, refused connections and connections never answered all
    fail as L{DirectoryUnavailable} and start the backoff.
    """

    def directory(self, url, reactor, **kw):
        return LDAPDirectory(parseLDAPURL(url), reactor, timeout=1.5, **kw)

    def assertOutage(self, d, directory):
        self.failureResultOf(d, DirectoryUnavailable)
        self.assertEqual(directory.retryDelay(), RETRY_INITIAL)

    def test_unresolvableName(self):
        """
        A host name that does not resolve is an outage, for lookups and
        logins alike, and the backoff starts.
        """
        reactor = ReactorWithoutNames()
        directory = self.directory(UNRESOLVABLE, reactor)
        self.assertOutage(directory.resolveName("alice"), directory)
        self.assertEqual(reactor.nameResolver.asked, ["ldap.example.invalid"])
        reactor.advance(RETRY_INITIAL)
        self.failureResultOf(directory.authenticate("alice", "pw"), DirectoryUnavailable)
        self.assertEqual(directory.retryDelay(), 2 * RETRY_INITIAL)

    def test_unresolvableNameOverTLS(self):
        """
        The same with LDAPS.
        """
        reactor = ReactorWithoutNames()
        directory = self.directory(UNRESOLVABLE.replace("ldap://", "ldaps://"), reactor)
        self.assertOutage(directory.resolveName("alice"), directory)

    def test_refused(self):
        """
        A refused connection is an outage.
        """
        reactor = MemoryReactorClock()
        directory = self.directory("ldap://127.0.0.1:9/dc=example?uid", reactor)
        d = directory.resolveName("alice")
        (host, port, factory, timeout, bindAddress) = reactor.tcpClients[0]
        factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))
        self.assertOutage(d, directory)

    def test_neverAnswered(self):
        """
        A connection attempt that gets no answer within the timeout is an
        outage (it is cancelled, which the endpoint reports in its own
        way).
        """
        reactor = MemoryReactorClock()
        directory = self.directory("ldap://127.0.0.1:9/dc=example?uid", reactor)
        d = directory.resolveName("alice")
        self.assertNoResult(d)
        reactor.advance(1.5)
        self.assertOutage(d, directory)

    def test_loggedOnce(self):
        """
        An outage is one warning naming the server and the cause; the
        attempts after each backoff delay that fail alike log at debug
        level only; no traceback.
        """
        seen = logEvents(self)
        reactor = ReactorWithoutNames()
        directory = self.directory(UNRESOLVABLE, reactor)
        for attempt in range(4):
            self.failureResultOf(directory.resolveName("alice"), DirectoryUnavailable)
            reactor.advance(directory.retryDelay())
        ours = [e for e in seen if e.get("log_namespace", "").startswith("fbtwist")]
        warnings = [e for e in ours if e["log_level"] >= LogLevel.warn]
        self.assertEqual(len(warnings), 1, warnings)
        self.assertEqual(warnings[0]["server"], "ldap://ldap.example.invalid:389")
        self.assertIn("DNSLookupError", warnings[0]["reason"])
        self.assertEqual(len([e for e in ours if "unavailable" in e.get("log_format", "")]), 4)
        self.assertFalse([e for e in seen if e.get("log_failure") is not None])

    def test_nameIndexBacksOff(self):
        """
        The name index is loaded again when the backoff delay ends, not
        after the refresh interval.
        """
        reactor = ReactorWithoutNames()
        directory = self.directory(UNRESOLVABLE, reactor)
        refresher = NameIndexRefresher(directory, 600, reactor)
        refresher.start()
        self.addCleanup(refresher.stop)
        reactor.advance(0)
        (retry,) = reactor.getDelayedCalls()
        self.assertEqual(retry.getTime() - reactor.seconds(), RETRY_INITIAL)
        reactor.advance(RETRY_INITIAL)
        self.assertEqual(reactor.nameResolver.asked, ["ldap.example.invalid"] * 2)


class UnresolvableOverHTTPTests(SynchronousTestCase):
    """
    A whole fbtwist whose directory's name does not resolve answers 503
    with Retry-After, for lookups and publishes.
    """

    def setUp(self):
        from fbtwist.tap import makeService

        self.reactor = ReactorWithoutNames()
        top = makeService(
            serviceOptions("--ftp", "none", "--root", self.mktemp(), "--name-index-refresh", "0",
                           "--ldap", UNRESOLVABLE),
            reactor=self.reactor,
        )
        self.http = StubTreq(top.site.resource)

    def assertUnavailable(self, d):
        response = self.successResultOf(d)
        self.assertEqual(response.code, 503)
        self.assertTrue(response.headers.getRawHeaders(b"Retry-After"))

    def test_lookup(self):
        """
        A lookup by name: 503 with Retry-After.
        """
        self.assertUnavailable(self.http.get("http://fbtwist.test/calendar/alice.vfb"))

    def test_publish(self):
        """
        A publish (its login needs the directory): 503 with Retry-After.
        """
        self.assertUnavailable(
            self.http.put("http://fbtwist.test/pub/calendar/alice.vfb", data=b"x", headers=basicAuth("alice", "pw"))
        )
