"""
Tests for L{fbtwist.cache.LRUCache}, the one bounded map.
"""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from fbtwist.cache import LRUCache


class LRUCacheTests(SynchronousTestCase):
    """
    Eviction, weights and expiry of L{LRUCache}.
    """

    def test_leastRecentlyUsedGoesFirst(self):
        """
        Beyond C{maxSize} entries the least recently used one is dropped; a
        C{get} makes an entry recently used.
        """
        cache = LRUCache(2)
        cache.put("a", 1)
        cache.put("b", 2)
        self.assertEqual(cache.get("a"), 1)
        cache.put("c", 3)
        self.assertEqual((cache.get("a"), cache.get("b"), cache.get("c")), (1, None, 3))
        self.assertEqual(len(cache), 2)

    def test_replace(self):
        """
        Putting a key again replaces its value without growing the cache.
        """
        cache = LRUCache(2)
        cache.put("a", 1)
        cache.put("a", 2)
        self.assertEqual((cache.get("a"), len(cache), cache.size), (2, 1, 1))

    def test_weights(self):
        """
        With C{weigh}, the total weight is bounded, not the count, and a
        value heavier than the whole cache is not kept.
        """
        cache = LRUCache(10, weigh=len)
        for key, value in [("a", b"aaaa"), ("b", b"bbbb"), ("c", b"cccc")]:
            cache.put(key, value)
        self.assertEqual((sorted(cache), cache.size), (["b", "c"], 8))
        cache.put("big", b"x" * 11)
        self.assertNotIn("big", cache)
        self.assertEqual(cache.pop("b"), b"bbbb")
        self.assertEqual(cache.size, 4)

    def test_expiry(self):
        """
        An entry put with C{expires} is a miss from that time on, and gone.
        """
        clock = Clock()
        cache = LRUCache(5, clock=clock.seconds)
        cache.put("a", 1, expires=10)
        cache.put("b", 2)
        clock.advance(9.9)
        self.assertEqual(cache.get("a"), 1)
        clock.advance(0.1)
        self.assertIsNone(cache.get("a"))
        self.assertEqual(cache.get("a", "default"), "default")
        self.assertNotIn("a", cache)
        self.assertEqual(cache.get("b"), 2)

    def test_popOldest(self):
        """
        C{popOldest} drops and returns the least recently used entry.
        """
        cache = LRUCache(5)
        cache.put("a", 1)
        cache.put("b", 2)
        cache.get("a")
        self.assertEqual(cache.popOldest(), ("b", 2))
        self.assertEqual(cache.popOldest(), ("a", 1))
        self.assertRaises(KeyError, cache.popOldest)
        self.assertEqual(cache.size, 0)
