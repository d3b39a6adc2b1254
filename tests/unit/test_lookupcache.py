"""
Tests for L{fbtwist.web.lookupcache.NameCache}, the lookup names already resolved,
and for its use by L{fbtwist.web.lookup.LookupResource}.
"""

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from fbtwist.errors import DirectoryUnavailable
from fbtwist.web.lookup import LookupResource
from fbtwist.web.lookupcache import NameCache


class NameCacheTests(SynchronousTestCase):
    """
    Names are kept for a while, misses for less, and the cache is bounded.
    """

    def setUp(self):
        self.clock = Clock()
        self.cache = NameCache(ttl=60, negativeTTL=10, size=3, clock=self.clock.seconds)

    def test_missThenHit(self):
        """
        An unknown name misses; once put, it hits, case-insensitively.
        """
        self.assertEqual(self.cache.get("betty"), (False, None))
        self.cache.put("betty", "bsmith")
        self.assertEqual(self.cache.get("Betty"), (True, "bsmith"))

    def test_expiry(self):
        """
        A resolved name expires after C{ttl} seconds, a miss after
        C{negativeTTL}.
        """
        self.cache.put("betty", "bsmith")
        self.cache.put("nobody", None)
        self.clock.advance(9)
        self.assertEqual(self.cache.get("nobody"), (True, None))
        self.clock.advance(1)
        self.assertEqual(self.cache.get("nobody"), (False, None))
        self.assertEqual(self.cache.get("betty"), (True, "bsmith"))
        self.clock.advance(50)
        self.assertEqual(self.cache.get("betty"), (False, None))

    def test_bounded(self):
        """
        Beyond C{size} names, the oldest is forgotten.
        """
        for name in ("a", "b", "c", "d"):
            self.cache.put(name, name.upper())
        self.assertEqual(self.cache.get("a"), (False, None))
        self.assertEqual(self.cache.get("d"), (True, "D"))


class FakeDirectory:
    def __init__(self):
        self.asked = []
        self.answer = defer.succeed

    def resolveName(self, name):
        self.asked.append(name)
        return self.answer({"betty": "bsmith"}.get(name))


class ResolveTests(SynchronousTestCase):
    """
    L{LookupResource.resolve} asks the directory once per name and period.
    """

    def setUp(self):
        self.directory = FakeDirectory()
        self.resource = LookupResource(self.directory, store=None)

    def resolve(self, name):
        return self.successResultOf(defer.Deferred.fromCoroutine(self.resource.resolve(name)))

    def test_askedOnce(self):
        """
        The second lookup of a name, found or not, does not reach the
        directory.
        """
        self.assertEqual(self.resolve("betty"), "bsmith")
        self.assertEqual(self.resolve("betty"), "bsmith")
        self.assertIsNone(self.resolve("ghost"))
        self.assertIsNone(self.resolve("ghost"))
        self.assertEqual(self.directory.asked, ["betty", "ghost"])

    def test_outageNotCached(self):
        """
        A directory outage is not remembered: the next lookup asks again.
        """
        self.directory.answer = lambda uid: defer.fail(DirectoryUnavailable())
        self.failureResultOf(defer.Deferred.fromCoroutine(self.resource.resolve("betty")), DirectoryUnavailable)
        self.directory.answer = defer.succeed
        self.assertEqual(self.resolve("betty"), "bsmith")
        self.assertEqual(self.directory.asked, ["betty", "betty"])
