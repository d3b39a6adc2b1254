"""
Tests for L{fbtwist.web.responses}: running a request's work, at once or as a
coroutine, and answering its errors.
"""

from twisted.internet import defer
from twisted.logger import globalLogPublisher
from twisted.trial import unittest
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest

from fbtwist.errors import NotFound
from fbtwist.web.responses import HTTPError, renderAsync, renderSoon


class RenderTests(unittest.SynchronousTestCase):
    """
    L{renderSoon} and L{renderAsync}.
    """

    def setUp(self):
        self.request = DummyRequest([b"x"])
        self.failures = []

        def observer(event):
            if event.get("log_failure") is not None:
                self.failures.append(event)

        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)

    def test_answeredAtOnce(self):
        """
        Work that answers at once has its request finished right away.
        """
        self.assertEqual(renderSoon(self.request, lambda request: request.write(b"now")), NOT_DONE_YET)
        self.assertEqual((self.request.written, self.request.finished), ([b"now"], 1))

    def test_errorAtOnce(self):
        """
        A domain error raised at once is answered from the error table.
        """
        def work(request):
            raise NotFound("nobody here")

        renderSoon(self.request, work)
        self.assertEqual(self.request.responseCode, 404)
        self.assertEqual(b"".join(self.request.written), b"nobody here.\n")
        self.assertEqual(self.request.finished, 1)

    def test_later(self):
        """
        Work that returns a coroutine is finished when the coroutine is.
        """
        waiting = defer.Deferred()

        async def finish(request):
            request.write(await waiting)

        renderSoon(self.request, finish)
        self.assertEqual(self.request.finished, 0)
        waiting.callback(b"later")
        self.assertEqual((self.request.written, self.request.finished), ([b"later"], 1))

    def test_bugAnswered500(self):
        """
        Anything else is a bug: answered 500, and logged.
        """
        def work(request):
            raise ZeroDivisionError()

        renderSoon(self.request, work)
        self.assertEqual(self.request.responseCode, 500)
        self.assertEqual(len(self.failures), 1)
        self.flushLoggedErrors(ZeroDivisionError)

    def test_goneClientExpectedError(self):
        """
        An error answer for a client that went away is not logged: it is an
        answer, not a failure.
        """
        waiting = defer.Deferred()

        async def work():
            await waiting
            raise HTTPError(400, "bad If header")

        renderAsync(self.request, work())
        self.request.clientGone = True
        waiting.callback(None)
        self.assertEqual(self.failures, [])
        self.assertEqual(self.request.written, [])

    def test_goneClientBug(self):
        """
        A bug is logged even when nobody reads the answer.
        """
        waiting = defer.Deferred()

        async def work():
            await waiting
            raise ZeroDivisionError()

        renderAsync(self.request, work())
        self.request.clientGone = True
        waiting.callback(None)
        self.assertEqual(len(self.failures), 1)
        self.flushLoggedErrors(ZeroDivisionError)


class NotAllowedTests(unittest.SynchronousTestCase):
    """
    The one 405 answer, shared by the tree, the lookups and the fixed folders.
    """

    def test_everyResourceAnswersTheSame(self):
        """
        The publishing tree, a lookup and C{/pub/} answer a method they do not
        take with 405, an C{Allow} header and a one-line reason.
        """
        from fbtwist.web.dav.resource import CalendarTreeResource
        from fbtwist.web.lookup import LookupResource
        from fbtwist.web.site import ReadOnlyFolder

        # The lookup refuses the method before it reads any of its state.
        resources = [CalendarTreeResource(avatar=None), ReadOnlyFolder(), LookupResource.__new__(LookupResource)]
        for resource in resources:
            request = DummyRequest([b"x"])
            request.method = b"BREW"
            self.assertEqual(resource.render(request), NOT_DONE_YET, resource)
            self.assertEqual(request.responseCode, 405, resource)
            self.assertIn(b"GET", request.responseHeaders.getRawHeaders(b"Allow")[0].split(b", "), resource)
            self.assertEqual(request.responseHeaders.getRawHeaders(b"Content-Type"),
                             [b"text/plain; charset=utf-8"], resource)
            self.assertEqual(len(b"".join(request.written).splitlines()), 1, resource)
