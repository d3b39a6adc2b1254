"""
L{fbtwist.web.dav.conditions.Preconditions}: a request's preconditions read
once, in the reactor's thread, and checked later from the values alone (a
PUT checks them in the thread pool, right before its commit).
"""

from twisted.internet.task import Clock
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from fbtwist.access.avatar import CalendarAvatar
from fbtwist.access.visibility import FreeBusyVisibility
from fbtwist.store.tree import CalendarStore
from fbtwist.web.dav import conditions
from fbtwist.web.responses import HTTPError
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
        request, then check them as a PUT of C{alice.vfb} does.
        """
        request = _ClosableRequest(headers)
        stated = conditions.preconditionsOf(self.avatar, request)
        request.close()
        path = ("alice.vfb",)
        conditions.checkIfMatch(self.avatar, stated, path)
        conditions.checkWrite(self.avatar, stated, path, [(path, False, False)])

    def test_holdingPreconditions(self):
        """
        Preconditions that hold pass, the request untouched after they were
        read.
        """
        self.check({b"If-Match": self.etag})
        self.check({b"If": b"([" + self.etag + b"])"})
        self.check({})

    def test_failingPreconditions(self):
        """
        Preconditions that do not hold give 412, from the values alone.
        """
        for headers in ({b"If-Match": b'"other"'}, {b"If-None-Match": b"*"}, {b"If": b'(["other"])'}):
            error = self.assertRaises(HTTPError, self.check, headers)
            self.assertEqual(error.code, 412, headers)
