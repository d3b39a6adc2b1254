"""
An outbox request's attendees are answered together, not one after the
other: two attendees of another organisation whose server answers only
once both are asked for get their free/busy (asked in turn, the first
would wait for the second forever, and both would time out).
"""

from xml.etree.ElementTree import fromstring

from twisted.trial.unittest import TestCase
from twisted.web import resource, server

from tests.helpers import inline, rawRequest, startServer
from tests.unit.test_caldav import (
    BETTY_PERIODS,
    BETTY_VFB,
    OUTBOX,
    C,
    freeBusyPeriods,
    freeBusyRequest,
    parseResponse,
    request,
    withAuthorization,
)


class _Rendezvous(resource.Resource):
    """
    Another organisation's free/busy server that answers no request until
    C{expected} requests are waiting, then all of them.
    """

    isLeaf = True

    def __init__(self, expected: int):
        super().__init__()
        self.expected = expected
        self.waiting = []
        self.paths = []

    def render_GET(self, request):
        self.paths.append(request.path)
        self.waiting.append(request)
        if len(self.waiting) >= self.expected:
            for waiting in self.waiting:
                waiting.setHeader(b"Content-Type", b"text/calendar")
                waiting.write(BETTY_VFB)
                waiting.finish()
            self.waiting = []
        return server.NOT_DONE_YET


class ConcurrentAttendeesTests(TestCase):
    """
    The attendees of one outbox request are looked up concurrently.
    """

    timeout = 60

    @inline
    async def test_slowOriginAskedForBothAtOnce(self):
        """Two attendees whose server answers only when both are asked for both get 2.0 and its periods."""
        from twisted.internet import reactor

        origin = _Rendezvous(2)
        port = reactor.listenTCP(0, server.Site(origin), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        template = f"http://127.0.0.1:{port.getHost().port}/calendar/%NAME%.vfb"
        fbtwist = await startServer(self, "--federate", f"partner.example={template}",
                                    "--federation-allow-networks", "127.0.0.0/8", "--federation-timeout", "3")
        raw = request("POST", OUTBOX, freeBusyRequest(["mailto:betty@partner.example",
                                                       "mailto:bob@partner.example"]))
        status, headers, body = parseResponse(await rawRequest(fbtwist.port, withAuthorization(raw), timeout=30))
        self.assertEqual(status, 200)
        self.assertEqual(sorted(origin.paths), [b"/calendar/betty.vfb", b"/calendar/bob.vfb"])
        responses = fromstring(body).findall(C + "response")
        self.assertEqual([r.findtext(C + "request-status") for r in responses], ["2.0;Success"] * 2)
        for response in responses:
            data = response.findtext(C + "calendar-data").encode("utf-8")
            self.assertEqual(freeBusyPeriods(data), BETTY_PERIODS)
