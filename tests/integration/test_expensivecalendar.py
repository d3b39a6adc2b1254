"""
Publishing a calendar too expensive to expand, on a real server: the
expansion runs in the reactor's thread pool (so other publishes are not
held up) and an FTP client's STOR takes the same path as a PUT.
"""


from twisted.internet import defer

from tests.helpers import basicAuth, httpClient, inline, outlookVFB, startServer, treeNames
from tests.unit.test_lookup import EVENTS, LookupTestCase


class RealServerTestCase(LookupTestCase):
    """
    L{LookupTestCase} on a whole fbtwist on loopback.
    """

    async def _setUp(self):
        self.server = await startServer(self, *self.serverArgs)
        self.http = httpClient(self)

    def setUp(self):
        return defer.Deferred.fromCoroutine(self._setUp())


BOMB = ("\r\n".join(
    ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN"]
    + [line for i in range(5) for line in [
        "BEGIN:VEVENT", f"UID:bomb-{i}", "DTSTAMP:20260101T000000Z", "DTSTART:20260101T090000Z",
        "DTEND:20260101T100000Z", "RRULE:FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", "SUMMARY:never", "END:VEVENT"]]
    + ["END:VCALENDAR", ""])).encode("ascii")


class ExpensiveCalendarTests(RealServerTestCase):
    """
    A calendar whose rules would take unbounded work to expand is refused
    at publish, quickly, without holding up other publishes.
    """

    @inline
    async def test_bombRefusedAtPublish(self):
        """
        A PUT of the bomb is 400 with a one-line reason within seconds, the
        old calendar stays, and .vfb publishes meanwhile are not held up.
        """
        import time

        self.publish("alice", EVENTS, suffix=".ics")
        began = time.monotonic()
        bombs = [self.http.put(self.server.url("/pub/calendar/alice.ics"), data=BOMB, headers=basicAuth("alice"))
                 for _ in range(3)]
        response = await self.http.put(self.server.url("/pub/calendar/bsmith.vfb"), data=outlookVFB(),
                                       headers=basicAuth("bsmith"))
        await response.content()
        self.assertEqual(response.code, 201)
        self.assertLess(time.monotonic() - began, 1.0)
        for pending in bombs:
            response = await pending
            body = await response.content()
            self.assertEqual(response.code, 400)
            self.assertIn(b"this calendar's rules are too expensive to expand", body)
        self.assertLess(time.monotonic() - began, 20.0)
        self.assertEqual(self.server.store.read(("alice.ics",)), EVENTS)

    @inline
    async def test_bombWrittenBehindOurBack(self):
        """
        The bomb written to the tree without a publish is expanded once,
        under the bound, on its first lookup; every lookup is 404 saying
        why, and later ones are answered at once from what was kept.
        """
        import time

        self.publish("alice", BOMB, suffix=".ics")
        began = time.monotonic()
        response, content = await self.get("/calendar/alice.vfb?period=P7D")
        self.assertEqual(response.code, 404)
        self.assertIn(b"too expensive to expand", content)
        self.assertLess(time.monotonic() - began, 15.0)
        self.assertIn(b"too expensive", self.server.store.derived(("alice.ics",)))
        for query in ["?period=P8D", "?period=P9D", ""]:
            began = time.monotonic()
            response, content = await self.get("/calendar/alice.vfb" + query)
            self.assertEqual(response.code, 404)
            self.assertLess(time.monotonic() - began, 0.5)
        self.assertNotIn(b"never", content)


class ExpensiveCalendarFTPTests(RealServerTestCase):
    """
    An FTP publish takes the same path as a PUT.
    """

    serverArgs = ("--ftp", "tcp:0:interface=127.0.0.1")

    @inline
    async def test_bombRefusedOverFTP(self):
        """
        STOR of the bomb is 550 with the reason and leaves nothing; STOR of
        an ordinary calendar keeps its busy time beside it.
        """
        import ftplib
        import io

        from twisted.internet.threads import deferToThread

        from tests.helpers import PASSWORDS, listeningPort

        port = (await listeningPort(self.server.service.getServiceNamed("ftp"))).getHost().port

        def store(body):
            client = ftplib.FTP()
            client.connect("127.0.0.1", port, timeout=20)
            try:
                client.login("alice", PASSWORDS["alice"])
                return client.storbinary("STOR /pub/calendar/alice.ics", io.BytesIO(body))
            except ftplib.Error as e:
                return str(e)
            finally:
                client.close()

        reply = await deferToThread(store, BOMB)
        self.assertTrue(reply.startswith("550"), reply)
        self.assertIn("too expensive to expand", reply)
        self.assertEqual(treeNames(self.server.store.root.path), [])
        reply = await deferToThread(store, EVENTS)
        self.assertTrue(reply.startswith("226"), reply)
        self.assertIn(self.server.store.etag(("alice.ics",))[1:-1].encode("ascii"),
                      self.server.store.derived(("alice.ics",)))
