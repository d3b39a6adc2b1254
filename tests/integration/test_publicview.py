"""
What anonymous readers get (L{fbtwist.calendar.publicview.publicView}), through every
door (the rendering itself is tested in L{tests.unit.test_publicview}):
every C{/calendar/} answer is valid RFC 5545 for two independent
strict parsers (vobject, and libical through C{tests/libicalcheck.py}) and
keeps the published periods; anonymous FTP's C{SIZE}, C{LIST} and C{RETR}
agree with it and with the lookups (curl, as a user would download).
"""

import io
import os

import vobject
from twisted.internet import defer
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial import unittest

from tests.helpers import httpClient, inline, outlookVFB, publicAnswer, startServer
from tests.integration.test_ftp import connect, inThread, startFTPServer
from tests.unit.test_publicview import TYPED, jcalAsText, textLines, vobjectErrors

#: The system Python, where Debian's python3-gi and gir1.2-ical-3.0 are.
SYSTEM_PYTHON = "/usr/bin/python3"
LIBICAL_CHECK = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "libicalcheck.py")

#: Kolab-style details a reader must never get.
DETAILED = outlookVFB().replace(b"FREEBUSY:", b"COMMENT:salary talk\r\nFREEBUSY;X-SUMMARY=Secret:")

EVENTS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:meeting\r\n"
    "DTSTAMP:20260101T000000Z\r\nDTSTART:20261124T090000Z\r\nDTEND:20261124T100000Z\r\n"
    "SUMMARY:Secret\r\nORGANIZER:mailto:boss@example.com\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
).encode("ascii")


async def libicalErrors(body: bytes) -> list:
    """
    What libical's parser and RFC 5545 / iTIP restriction checks say of
    C{body}: nothing when it is valid.
    """
    out, err, code = await getProcessOutputAndValue(SYSTEM_PYTHON, [LIBICAL_CHECK], env={}, stdinBytes=body)
    return [] if code == 0 else [f"libical ({code}): {(out + err).decode('utf-8', 'replace')}"]


async def strictErrors(body: bytes) -> list:
    return vobjectErrors(body) + await libicalErrors(body)


class StrictParserTests(unittest.TestCase):
    """
    Every /calendar/ answer, through vobject and libical.
    """

    async def _setUp(self):
        self.server = await startServer(self)
        self.http = httpClient(self)
        store = self.server.store
        store.write(("alice.vfb",), outlookVFB("alice@example.com"))
        store.write(("bsmith.vfb",), TYPED)
        store.write(("carol.vfb",), DETAILED)
        store.write(("dave.ics",), EVENTS)

    def setUp(self):
        return defer.Deferred.fromCoroutine(self._setUp())

    async def get(self, path):
        response = await self.http.get(self.server.url(path))
        body = await response.content()
        self.assertEqual((path, response.code), (path, 200), body)
        return body

    @inline
    async def test_everyAnswerValid(self):
        """
        Plain, bare-LF, detailed, typed and derived answers, ranges, both
        FBTYPE styles and groups are valid for vobject and libical; jCal
        answers are the same calendars as the text ones.
        """
        self.server.store.write(("admin.vfb",), outlookVFB(newline=b"\n"))
        queries = ["", "?start=20210105T073000Z&end=20210106T073000Z", "?start=20210105&period=P1D",
                   "?fbtype=explicit", "?simple=1", "?start=20261124&period=P1D&fbtype=explicit",
                   "?start=20300101&period=P1D"]
        paths = [f"/calendar/{name}.{suffix}{query}" for name in ["alice", "bsmith", "carol", "dave", "admin"]
                 for suffix in ["vfb", "ifb"] for query in queries]
        paths += [f"/calendar/group/team.vfb{query}" for query in queries]
        paths += ["/calendar/betty@example.com.vfb"]
        failures = {}
        for path in paths:
            body = await self.get(path)
            errors = await strictErrors(body)
            if errors:
                failures[path] = errors
            if "?" in path and "format" not in path:
                jcal = await self.get(path + "&format=application/calendar%2Bjson")
                if jcalAsText(jcal) != textLines(body):
                    failures[path + " jCal"] = jcalAsText(jcal)
        self.assertEqual(failures, {})

    @inline
    async def test_periodsAndTypesKept(self):
        """
        The answer keeps every published period and FBTYPE (as vobject
        reads them) and nothing of the details.
        """
        body = await self.get("/calendar/bsmith.vfb")
        component = vobject.readOne(body.decode("utf-8")).vfreebusy
        periods = sorted((p.value[0][0].strftime("%Y%m%dT%H%MZ"), p.value[0][1].strftime("%Y%m%dT%H%MZ"),
                          p.params.get("FBTYPE", ["BUSY"])[0]) for p in component.freebusy_list)
        self.assertEqual(periods, [
            ("20210105T0700Z", "20210105T0800Z", "BUSY"),
            ("20210105T1000Z", "20210105T1200Z", "BUSY"),
            ("20210105T1500Z", "20210105T1600Z", "BUSY-TENTATIVE"),
            ("20210106T0700Z", "20210106T0800Z", "FREE"),
            ("20210106T1500Z", "20210106T1600Z", "BUSY-UNAVAILABLE"),
        ])
        detailed = await self.get("/calendar/carol.vfb")
        self.assertNotIn(b"salary", detailed)
        self.assertNotIn(b"Secret", detailed)
        self.assertEqual(await strictErrors(detailed), [])

    @inline
    async def test_checkersRefuseOutlookFile(self):
        """
        The checkers are strict: Outlook's file as published (no UID) fails
        libical, and without DTSTAMP fails vobject.
        """
        self.assertNotEqual(await libicalErrors(outlookVFB()), [])
        self.assertNotEqual(vobjectErrors(outlookVFB().replace(b"DTSTAMP:20210103T235558Z\r\n", b"")), [])


class AnonymousFTPTests(unittest.TestCase):
    """
    Anonymous FTP serves the lookups' answer, and says its true size.
    """

    async def _setUp(self):
        self.server = await startFTPServer(self, "--ftp-anonymous")
        self.http = httpClient(self)
        store = self.server.store
        store.write(("alice.vfb",), DETAILED)
        store.write(("bsmith.vfb",), outlookVFB("betty@example.com"))
        store.write(("carol.ics",), EVENTS)
        store.write(("dave.vfb",), b"")

    def setUp(self):
        return defer.Deferred.fromCoroutine(self._setUp())

    async def lookup(self, name):
        response = await self.http.get(self.server.url(f"/calendar/{name}.vfb"))
        return await response.content()

    @inline
    async def test_curlDownloadsWhole(self):
        """
        curl downloads each public file whole (it stops at the SIZE it was
        told): the bytes are the lookup's answer.
        """
        for name in ["alice", "bsmith"]:
            url = f"ftp://anonymous:guest@127.0.0.1:{self.server.ftpPort}/pub/calendar/{name}.vfb"
            out, err, code = await getProcessOutputAndValue("curl", ["-sS", "--max-time", "20", url], env=os.environ)
            self.assertEqual((name, code, err), (name, 0, b""))
            self.assertEqual(out, await self.lookup(name))
            self.assertEqual(out, publicAnswer(self.server.store, name))

    @inline
    async def test_sizeListRetrAgree(self):
        """
        SIZE, the LIST sizes and RETR give the same length; placeholders and
        full calendars are neither listed nor served.
        """

        def session():
            with connect(self.server.ftpPort, "anonymous", "guest@example.com") as client:
                client.sendcmd("TYPE I")
                client.cwd("/pub/calendar")
                listing = []
                client.retrlines("LIST", listing.append)
                sizes = {line.split()[-1]: int(line.split()[4]) for line in listing}
                sent = {}
                for name in sizes:
                    received = io.BytesIO()
                    client.retrbinary(f"RETR {name}", received.write)
                    sent[name] = (client.size(name), len(received.getvalue()))
                refused = []
                for name in ["carol.ics", "dave.vfb"]:
                    for command in [f"SIZE {name}", f"RETR {name}"]:
                        try:
                            client.sendcmd(command)
                        except Exception as e:
                            refused.append(str(e)[:3])
                return sizes, sent, refused

        sizes, sent, refused = await inThread(session)
        self.assertEqual(sorted(sizes), ["alice.vfb", "bsmith.vfb"])
        self.assertEqual(sent, {name: (size, size) for name, size in sizes.items()})
        self.assertEqual(sizes["alice.vfb"], len(publicAnswer(self.server.store, "alice")))
        self.assertEqual(refused, ["550"] * 4)
