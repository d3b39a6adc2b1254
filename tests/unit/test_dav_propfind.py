"""
Tests for L{fbtwist.web.dav.propfind}: a Depth 1 PROPFIND of a large
collection is written incrementally, in bounded batches, and stops while
the transport asks it to pause.
"""

import io
from xml.etree.ElementTree import fromstring

from twisted.internet import defer
from twisted.internet.task import Cooperator
from twisted.internet.testing import MemoryReactorClock
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

from fbtwist.access.avatar import CalendarAvatar
from fbtwist.store.tree import CalendarStore
from fbtwist.web.dav import propfind

FILES = 2000


class RecordingRequest:
    """
    Just enough of a request for PROPFIND, recording each write.
    """

    def __init__(self, body: bytes = b"", headers=None, site=None):
        self.site = site
        self.content = io.BytesIO(body)
        self.requestHeaders = dict(headers or {})
        self.responseHeaders = {}
        self.code = None
        self.writes = []
        self.producer = None
        self.producers = 0
        self.finished = False
        self.clientGone = False

    def getHeader(self, name):
        return self.requestHeaders.get(name)

    def setHeader(self, name, value):
        self.responseHeaders[name] = value

    def setResponseCode(self, code, message=None):
        self.code = code

    def write(self, data):
        self.writes.append(data)

    def registerProducer(self, producer, streaming):
        self.producer = producer
        self.producers += 1
        self.streaming = streaming

    def unregisterProducer(self):
        self.producer = None

    def loseConnection(self):
        self.clientGone = True


def storeWithFiles(testCase, count):
    store = CalendarStore(FilePath(testCase.mktemp()))
    for i in range(count):
        with open(store.root.child(f"user{i:05d}.vfb").path, "wb") as f:
            f.write(b"x" * (i % 7))
    return store


class StreamedPropfindTests(TestCase):
    """
    A whole Depth 1 PROPFIND through the cooperator of its site's reactor
    (a memory clock, advanced by hand).
    """

    def test_incrementalWrites(self):
        """
        Thousands of members come out in many writes of at most one batch
        each, and together they are one valid multistatus.
        """
        store = storeWithFiles(self, FILES)
        avatar = CalendarAvatar("admin", True, store)
        clock = MemoryReactorClock()
        request = RecordingRequest(b"", {b"Depth": b"1"}, site=Site(Resource(), reactor=clock))
        d = defer.Deferred.fromCoroutine(propfind.propfind(avatar, (), request))
        for _ in range(FILES):
            if d.called:
                break
            clock.advance(0)

        def check(_):
            self.assertEqual(request.code, 207)
            self.assertEqual(request.producers, 1)
            self.assertTrue(request.streaming)
            self.assertIsNone(request.producer, "the producer was not unregistered")
            self.assertNotIn(b"Content-Length", request.responseHeaders)
            self.assertGreaterEqual(len(request.writes), FILES // propfind.BATCH_SIZE)
            largest = max(len(w) for w in request.writes)
            total = sum(len(w) for w in request.writes)
            # One batch's worth at most: a small fraction of the whole body.
            self.assertLess(largest, total / 20)
            root = fromstring(b"".join(request.writes))
            self.assertEqual(len(root.findall("{DAV:}response")), FILES + 1)

        check(self.successResultOf(d))


class ManualScheduler:
    """
    A cooperator's scheduler that runs one tick only when told.
    """

    class Call:
        def __init__(self, f):
            self.f, self.cancelled = f, False

        def cancel(self):
            self.cancelled = True

    def __init__(self):
        self.pending = []

    def __call__(self, f):
        call = self.Call(f)
        self.pending.append(call)
        return call

    def tick(self, times=1):
        for _ in range(times):
            calls, self.pending = self.pending, []
            for call in calls:
                if not call.cancelled:
                    call.f()


def oneStepCooperator():
    scheduler = ManualScheduler()
    return scheduler, Cooperator(scheduler=scheduler, terminationPredicateFactory=lambda: (lambda: True))


class BackpressureTests(SynchronousTestCase):
    """
    The transport's pause stops the writes until it resumes.
    """

    def test_pauseAndResume(self):
        """
        While paused no batch is written; after resuming the rest comes.
        """
        scheduler, cooperator = oneStepCooperator()
        request = RecordingRequest()
        members = iter(range(1000))
        d = defer.Deferred.fromCoroutine(
            propfind.streamMembers(request, members, lambda i: f"<r>{i}</r>", cooperate=cooperator.cooperate)
        )
        scheduler.tick()
        self.assertEqual(len(request.writes), 1)
        request.producer.pauseProducing()
        for _ in range(5):
            scheduler.tick()
        self.assertEqual(len(request.writes), 1)
        request.producer.resumeProducing()
        for _ in range(20):
            scheduler.tick()
        self.assertEqual(len(request.writes), 1000 // propfind.BATCH_SIZE)
        self.assertTrue(self.successResultOf(d))
        self.assertIsNone(request.producer)

    def test_stopped(self):
        """
        When the client goes away the members are no longer read.
        """
        scheduler, cooperator = oneStepCooperator()
        request = RecordingRequest()
        consumed = []

        def members():
            for i in range(1000):
                consumed.append(i)
                yield i

        d = defer.Deferred.fromCoroutine(
            propfind.streamMembers(request, members(), str, cooperate=cooperator.cooperate)
        )
        scheduler.tick()
        request.producer.stopProducing()
        for _ in range(20):
            scheduler.tick()
        self.assertFalse(self.successResultOf(d))
        self.assertLessEqual(len(consumed), 2 * propfind.BATCH_SIZE)
