"""
L{fbtwist.web.dav.conditions.preconditionsOf}: a request's preconditions read
once, in the reactor's thread, as a L{fbtwist.access.values.Preconditions}
value the avatar evaluates later without the request (a PUT in the thread
pool, right before its commit).
"""

from twisted.internet.task import Clock
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from fbtwist.access.avatar import CalendarAvatar
from fbtwist.access.values import NO_PRECONDITIONS
from fbtwist.access.visibility import FreeBusyVisibility
from fbtwist.errors import PreconditionFailed
from fbtwist.store.tree import CalendarStore
from fbtwist.web.dav import conditions
from tests.helpers import outlookVFB


class _ClosableRequest:
    """
    A request that fails the test when read after C{close()}.
    """

    def __init__(self, headers):
        self.request = DummyRequest([b"alice.vfb"])
        for name, value in headers.items():
            self.request.requestHeaders.setRawHeaders(name, [value])
        self.closed = False

    def close(self):
        self.closed = True

    def __getattr__(self, name):
        if self.closed:
            raise AssertionError(f"request.{name} read after the preconditions were taken")
        return getattr(self.request, name)


class PreconditionValueTests(SynchronousTestCase):
    """
    Preconditions are checked from values, without the request.
    """

    def setUp(self):
        self.store = CalendarStore(FilePath(self.mktemp()))
        self.store.write(("alice.vfb",), outlookVFB())
        self.avatar = CalendarAvatar("alice", False, self.store, FreeBusyVisibility(self.store, None, Clock()))
        self.etag = self.store.etag(("alice.vfb",)).encode("ascii")

    def check(self, headers):
        """
        Take the preconditions of a request with C{headers}, close the
        request, then publish C{alice.vfb} under them as a PUT does.

        @return: The publish's Deferred.
        """
        request = _ClosableRequest(headers)
        stated = conditions.preconditionsOf(self.avatar, request)
        request.close()
        return self.avatar.publish(("alice.vfb",), outlookVFB(), stated)

    def test_holdingPreconditions(self):
        """
        Preconditions that hold pass, the request untouched after they were
        read.
        """
        self.successResultOf(self.check({b"If-Match": self.etag}))
        etag = self.store.etag(("alice.vfb",)).encode("ascii")
        self.successResultOf(self.check({b"If": b"([" + etag + b"])"}))
        self.successResultOf(self.check({}))

    def test_failingPreconditions(self):
        """
        Preconditions that do not hold refuse the publish, from the values
        alone.
        """
        for headers in ({b"If-Match": b'"other"'}, {b"If-None-Match": b"*"}, {b"If": b'(["other"])'}):
            self.failureResultOf(self.check(headers), PreconditionFailed)

    def test_values(self):
        """
        The values read: both entity-tag headers, the If header's lists,
        the store path of each resource tag (C{None} outside the tree) and
        the tokens submitted outside C{Not}.
        """
        request = DummyRequest([b"alice.vfb"])
        request.requestHeaders.setRawHeaders(b"If-Match", [b'"a"'])
        request.requestHeaders.setRawHeaders(b"If-None-Match", [b'"b"'])
        request.requestHeaders.setRawHeaders(b"If", [
            b"</pub/calendar/Alice.vfb> (<opaquelocktoken:t1>) (Not <opaquelocktoken:t2>) </elsewhere> ([\"e\"])"])
        stated = conditions.preconditionsOf(self.avatar, request)
        self.assertEqual((stated.ifMatch, stated.ifNoneMatch), (b'"a"', b'"b"'))
        self.assertEqual(len(stated.ifHeader), 3)
        self.assertEqual(stated.tagged, {"/pub/calendar/Alice.vfb": ("alice.vfb",), "/elsewhere": None})
        self.assertEqual(stated.tokens, {"opaquelocktoken:t1"})
        self.assertEqual(conditions.preconditionsOf(self.avatar, DummyRequest([b"alice.vfb"])), NO_PRECONDITIONS)
