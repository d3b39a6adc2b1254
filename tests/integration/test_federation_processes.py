"""
Two organisations, each a real C{twistd freebusy} with its own slapd, on
loopback: server A answers lookups of B's users (C{--federate}), ranges and
jCal included, from one fetch (B's access log), then stale while B is
stopped, then 503.
"""

import http.client
import json
import os
import re
import time
from datetime import date, timedelta
from urllib.parse import urlencode

from twisted.trial.unittest import SynchronousTestCase

from tests.processes import (
    PEOPLE,
    SUFFIX,
    FbtwistProcess,
    UserDirectory,
    basicAuthorization,
    freeBusyFile,
    publish,
    request,
    userName,
    userPassword,
    usersLDIF,
)
from tests.slapd import SlapdServer

#: How long A reuses B's answer, and serves it stale after (seconds).
TTL = 3.0
MAX_STALE = 2.0


class TwoOrganisationsTests(SynchronousTestCase):
    """
    A (users at example.com, federating partner.example) and B (the partner).
    """

    def startOrganisation(self, name: str, *args: str, contacts: str = "") -> FbtwistProcess:
        base = os.path.join(self.base, name)
        os.makedirs(base)
        if contacts:
            directory = ContactDirectory(os.path.join(base, "ldap"), contacts)
        else:
            directory = UserDirectory(os.path.join(base, "ldap"), 3)
        directory.start()
        self.addCleanup(directory.stop)
        server = FbtwistProcess(os.path.join(base, "tree"), directory.searchURL, extraArgs=args,
                                logPath=os.path.join(base, "fbtwist.log"))
        server.start()
        self.addCleanup(server.stop)
        return server

    def setUp(self):
        self.base = os.path.abspath(self.mktemp())
        os.makedirs(self.base)
        self.accessLog = os.path.join(self.base, "b-access.log")
        self.b = self.startOrganisation("b", "--access-log", self.accessLog, "--shutdown-grace", "1",
                                        "--federation-allow-networks", "127.0.0.0/8")
        self.assertEqual(publish(self.b.port, userName(1), userPassword(1), freeBusyFile("b", periods=3)), 201)

    def startA(self) -> None:
        template = f"http://127.0.0.1:{self.b.port}/calendar/%NAME%@example.com.vfb"
        groups = f"http://127.0.0.1:{self.b.port}/calendar/group/%NAME%.vfb"
        self.a = self.startOrganisation(
            "a", "--federate", f"partner.example={template}", "--federate-group", f"partner.example={groups}",
            "--federation-allow-networks", "127.0.0.0/8",
            "--federation-ttl", str(TTL), "--federation-max-stale", str(MAX_STALE))

    def lookup(self, path: str):
        return request(self.a.port, "GET", path)

    def lookupWithHeaders(self, path: str):
        """
        A GET of C{path} at A: the response (its headers read) and body.
        """
        connection = http.client.HTTPConnection("127.0.0.1", self.a.port, timeout=15)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response, response.read()
        finally:
            connection.close()

    def test_lookupsStaleAnd503(self):
        """
        A answers for B's user and group like local ones, from one fetch, then stale with B stopped, then 503.
        """
        self.startA()
        started = time.monotonic()
        name = userName(1) + "@partner.example"
        status, body = self.lookup(f"/calendar/{name}.vfb")
        # B's answer arrived by now: fresh until at most TTL from here.
        fetched = time.monotonic()
        self.assertEqual(status, 200, body)
        self.assertEqual(body.count(b"\nFREEBUSY"), 3)
        status, body = self.lookup(
            f"/calendar/{userName(1)}%40partner.example.ifb?start=20210201T000000Z&end=20210201T003000Z")
        self.assertEqual(status, 200, body)
        self.assertIn(b"FREEBUSY:20210201T000000Z/20210201T003000Z", body)
        self.assertNotIn(b"20210201T010000Z", body)
        status, body = self.lookup(f"/calendar/{name}.vfb?format=application/calendar%2Bjson")
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)[0], "vcalendar")
        status, _ = self.lookup(f"/calendar/{userName(2)}@partner.example.vfb")
        self.assertEqual(status, 404)
        # B's group admins (user000000 alone), over B's window from today.
        day = (date.today() + timedelta(days=3)).strftime("%Y%m%d")
        soon = freeBusyFile("b").replace(b"20210201T000000Z/PT30M", f"{day}T080000Z/PT90M".encode("ascii"))
        self.assertEqual(publish(self.b.port, userName(0), userPassword(0), soon), 201)
        status, body = self.lookup(
            f"/calendar/group/admins@partner.example.vfb?start={day}T000000Z&end={day}T090000Z"
            "&format=application/calendar%2Bjson")
        self.assertEqual(status, 200, body)
        iso = f"{day[:4]}-{day[4:6]}-{day[6:]}"
        self.assertIn(f'["{iso}T08:00:00Z","{iso}T09:00:00Z"]', body.decode("utf-8"))
        for _ in range(5):
            self.assertEqual(self.lookup(f"/calendar/{name}.vfb")[0], 200)
        self.assertLess(time.monotonic() - started, TTL, "the lookups took longer than the TTL: rerun")

        self.b.stop()
        with open(self.accessLog, encoding="utf-8") as f:
            fetches = [line for line in f if f"/calendar/{userName(1)}@example.com.vfb" in line]
        self.assertEqual(len(fetches), 1, fetches)

        time.sleep(max(0.0, fetched + TTL + 0.2 - time.monotonic()))
        response, body = self.lookupWithHeaders(f"/calendar/{name}.vfb")
        self.assertEqual(response.status, 200, body)
        self.assertEqual(response.getheader("X-Fbtwist-Stale"), "1")
        self.assertEqual(response.getheader("Warning"), '110 - "Response is Stale"')
        self.assertEqual(body.count(b"FREEBUSY;"), 0)
        self.assertIn(b"FREEBUSY:20210201T000000Z/20210201T003000Z", body)

        time.sleep(MAX_STALE + 0.2)
        response, body = self.lookupWithHeaders(f"/calendar/{name}.vfb")
        self.assertEqual(response.status, 503, body)
        self.assertTrue(response.getheader("Retry-After"))

    def test_feedThroughFederation(self):
        """
        A feed B's user registered (served by a local HTTP server) is merged into B's answer, and so into A's.
        """
        day = (date.today() + timedelta(days=4)).strftime("%Y%m%d")
        feed = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:x\r\n"
                f"DTSTAMP:20260101T000000Z\r\nDTSTART:{day}T100000Z\r\nDTEND:{day}T113000Z\r\n"
                "SUMMARY:Secret merger talks\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n").encode("ascii")
        origin = FeedServer(feed)
        self.addCleanup(origin.stop)
        headers = {"Authorization": basicAuthorization(userName(1), userPassword(1)),
                   "Content-Type": "application/x-www-form-urlencoded"}
        # The form's token, from the page, as a browser sends it.
        _, page = request(self.b.port, "GET", "/feeds", headers=headers)
        token = re.search(rb'name="token" value="([^"]+)"', page).group(1).decode("ascii")
        form = urlencode({"action": "add", "url": origin.url("/secret-token/cal.ics"), "token": token}).encode("ascii")
        status, body = request(self.b.port, "POST", "/feeds", form, headers)
        self.assertEqual(status, 303, body)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            _, page = request(self.b.port, "GET", "/feeds", headers=headers)
            if b"busy periods" in page:
                break
            time.sleep(0.1)
        self.assertIn(b"1 busy periods", page)
        self.startA()
        status, body = self.lookup(f"/calendar/{userName(1)}@partner.example.vfb?start={day}T000000Z&end={day}T235959Z")
        self.assertEqual(status, 200, body)
        self.assertIn(f"FREEBUSY:{day}T100000Z/{day}T113000Z".encode("ascii"), body)
        self.assertNotIn(b"Secret", body)
        self.assertNotIn(b"secret-token", self.b.log().encode("utf-8"))

    def test_calFBURLContact(self):
        """
        With --federation-calfburl, A finds a contact's free/busy URL in its directory (calFBURL) and serves it.
        """
        url = f"http://127.0.0.1:{self.b.port}/calendar/{userName(1)}@example.com.vfb"
        contact = (f"dn: cn=Zed Partner,{PEOPLE}\nobjectClass: inetOrgPerson\nobjectClass: calEntry\n"
                   f"cn: Zed Partner\nsn: Partner\nmail: zed@elsewhere.example\ncalFBURL: {url}\n")
        self.a = self.startOrganisation("a", "--federation-calfburl", "--federation-allow-networks", "127.0.0.0/8",
                                        contacts=contact)
        status, body = self.lookup("/calendar/zed@elsewhere.example.vfb")
        self.assertEqual(status, 200, body)
        self.assertEqual(body.count(b"\nFREEBUSY"), 3)
        status, _ = self.lookup("/calendar/nobody@elsewhere.example.vfb")
        self.assertEqual(status, 404)


#: RFC 2739's attribute and class, with OIDs of OpenLDAP's experimental arc
#: (OpenLDAP ships no schema for them).
CALENTRY_SCHEMA = """
attributetype ( 1.3.6.1.4.1.4203.666.11.1 NAME 'calFBURL' DESC 'RFC 2739 free/busy URL'
    EQUALITY caseIgnoreIA5Match SUBSTR caseIgnoreIA5SubstringsMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 )
objectclass ( 1.3.6.1.4.1.4203.666.11.2 NAME 'calEntry' SUP top AUXILIARY MAY ( calFBURL ) )
"""


class ContactDirectory(UserDirectory):
    """
    L{UserDirectory}'s three users, RFC 2739's C{calEntry} schema and
    C{contacts} (LDIF).
    """

    def __init__(self, basedir: str, contacts: str):
        SlapdServer.__init__(self, basedir, usersLDIF(3) + "\n" + contacts, tls=False, suffix=SUFFIX)
        self.count = 3

    def _config(self, installed, databaseDir):
        return super()._config(installed, databaseDir).replace("\npidfile", CALENTRY_SCHEMA + "pidfile", 1)


class FeedServer:
    """
    A calendar feed on a free loopback port, served from a thread by the
    standard library's HTTP server.
    """

    def __init__(self, body: bytes):
        import http.server
        import threading

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/calendar")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)
