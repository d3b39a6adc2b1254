"""
A CalDAV client not written for this project, the PyPI C{caldav} library,
against a real C{twistd freebusy} process whose directory is a real slapd:
discovery, the principal, free/busy by outbox POST and the
C{free-busy-query} REPORT, end to end; and a room found by its principal
search and scheduled.
"""

import os
from datetime import datetime, timezone

import caldav
from caldav.lib.error import AuthorizationError
from icalendar import Calendar
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests.processes import FbtwistProcess
from tests.slapd import SlapdServer, hashPassword

BASE = "dc=example,dc=com"
PEOPLE = "ou=people," + BASE

LDIF = (
    f"dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n"
    f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n\n"
    f"dn: ou=groups,{BASE}\nobjectClass: organizationalUnit\nou: groups\n\n"
    f"dn: uid=alice,{PEOPLE}\nobjectClass: inetOrgPerson\nuid: alice\ncn: Alice Liddell\nsn: Liddell\n"
    f"displayName: Alice L.\nmail: alice@example.com\nuserPassword: {hashPassword('alice-pw')}\n\n"
    f"dn: uid=bsmith,{PEOPLE}\nobjectClass: inetOrgPerson\nuid: bsmith\ncn: Betty Smith\nsn: Smith\n"
    f"mail: betty@example.com\nuserPassword: {hashPassword('betty-pw')}\n\n"
    f"dn: cn=team,ou=groups,{BASE}\nobjectClass: groupOfNames\nobjectClass: extensibleObject\ncn: team\n"
    "mail: team@example.com\n"
    f"member: uid=alice,{PEOPLE}\nmember: uid=bsmith,{PEOPLE}\n\n"
    f"dn: ou=rooms,{BASE}\nobjectClass: organizationalUnit\nou: rooms\n\n"
    f"dn: uid=orion,ou=rooms,{BASE}\nobjectClass: room\nobjectClass: uidObject\nobjectClass: extensibleObject\n"
    "uid: orion\ncn: Orion\nmail: orion@example.com\n\n"
)

BETTY = (
    "BEGIN:VCALENDAR\r\nPRODID:-//test//EN\r\nVERSION:2.0\r\nMETHOD:PUBLISH\r\nBEGIN:VFREEBUSY\r\n"
    "ORGANIZER:betty@example.com\r\nDTSTAMP:20261201T000000Z\r\n"
    "DTSTART:20261201T000000Z\r\nDTEND:20261231T000000Z\r\n"
    "FREEBUSY;FBTYPE=BUSY-UNAVAILABLE:20261207T100000Z/20261207T113000Z\r\n"
    "END:VFREEBUSY\r\nEND:VCALENDAR\r\n"
)
ALICE = BETTY.replace("betty@", "alice@").replace(
    "FBTYPE=BUSY-UNAVAILABLE:20261207T100000Z/20261207T113000Z", "FBTYPE=BUSY:20261207T080000Z/20261207T090000Z")
ORION = BETTY.replace("ORGANIZER:betty@example.com\r\n", "").replace(
    "FBTYPE=BUSY-UNAVAILABLE:20261207T100000Z/20261207T113000Z", "FBTYPE=BUSY:20261207T140000Z/20261207T150000Z")

START = datetime(2026, 12, 7, tzinfo=timezone.utc)
END = datetime(2026, 12, 8, tzinfo=timezone.utc)


def periods(data) -> list:
    """
    The FREEBUSY values with their FBTYPE in an iCalendar text or object.
    """
    calendar = data if isinstance(data, Calendar) else Calendar.from_ical(data)
    found = []
    for component in calendar.walk("VFREEBUSY"):
        values = component.get("FREEBUSY", [])
        for value in values if isinstance(values, list) else [values]:
            found.append((value.to_ical().decode("ascii"), value.params.get("FBTYPE")))
    return found


class PythonCaldavTests(TestCase):
    """
    The caldav library's scheduling calls against a whole server.
    """

    timeout = 90

    async def setUp(self):
        self.slapd = SlapdServer(self.mktemp(), LDIF, tls=False)
        self.slapd.start()
        self.addCleanup(self.slapd.stop)
        url = f"ldap://127.0.0.1:{self.slapd.port}/{PEOPLE}?uid?one?(objectClass=inetOrgPerson)"
        root = os.path.abspath(self.mktemp())
        os.makedirs(root)
        for name, content in (("bsmith.vfb", BETTY), ("alice.vfb", ALICE), ("orion.vfb", ORION)):
            with open(os.path.join(root, name), "wb") as f:
                f.write(content.encode("ascii"))
        self.server = FbtwistProcess(root, ldapURL=url, extraArgs=["--group-base", f"ou=groups,{BASE}"],
                                     logPath=os.path.abspath(self.mktemp()) + ".out")
        await self.server.started(self)

    def client(self, password="alice-pw", path="/"):
        return caldav.DAVClient(url=self.server.url(path), username="alice", password=password)

    def test_endToEnd(self):
        """Discovery, principal, outbox free/busy and free-busy-query, as python caldav does them."""

        def run():
            with self.client() as client:
                principal = client.principal()
                outbox = principal.schedule_outbox()
                addresses = [str(a) for a in principal.calendar_user_address_set()]
                answer = principal.freebusy_request(
                    START, END, ["mailto:BETTY@example.com", "mailto:team@example.com", "mailto:no@example.com"])
                calendars = principal.calendars()
                freebusy = calendars[0].freebusy_request(START, END)
                return principal.url, outbox.url, addresses, answer, calendars, freebusy

        def check(result):
            principalURL, outboxURL, addresses, answer, calendars, freebusy = result
            self.assertEqual(str(principalURL), self.server.url("/caldav/principals/users/alice/"))
            self.assertEqual(str(outboxURL), self.server.url("/caldav/calendars/alice/outbox/"))
            self.assertEqual(addresses[0], "mailto:alice@example.com")
            self.assertEqual([str(c.url) for c in calendars], [self.server.url("/caldav/calendars/alice/calendar/")])
            errors = answer.pop("errors", {})
            self.assertEqual(list(errors), ["mailto:no@example.com"])
            self.assertTrue(str(errors["mailto:no@example.com"]).startswith("3.7"))
            self.assertEqual(periods(answer["mailto:BETTY@example.com"].icalendar_instance),
                             [("20261207T100000Z/20261207T113000Z", "BUSY-UNAVAILABLE")])
            self.assertEqual(periods(answer["mailto:team@example.com"].icalendar_instance),
                             [("20261207T080000Z/20261207T090000Z", "BUSY"),
                              ("20261207T100000Z/20261207T113000Z", "BUSY-UNAVAILABLE")])
            self.assertEqual(periods(freebusy.icalendar_instance), [("20261207T080000Z/20261207T090000Z", "BUSY")])

        return deferToThread(run).addCallback(check)

    def test_room(self):
        """
        A room found by the library's principal search is a ROOM with its
        mail address; it is scheduled by outbox free/busy and its calendar
        answers free-busy-query.
        """

        def run():
            with self.client(path="/caldav/principals/") as client:
                rooms = client.search_principals(name="Orion")
                address = rooms[0].get_vcal_address()
                answer = client.principal().freebusy_request(START, END, [address])
                freebusy = rooms[0].calendars()[0].freebusy_request(START, END)
                return rooms, address, answer, freebusy

        def check(result):
            rooms, address, answer, freebusy = result
            self.assertEqual([(str(r.url), r.name) for r in rooms],
                             [(self.server.url("/caldav/principals/rooms/orion/"), "Orion")])
            self.assertEqual((str(address), address.params["cutype"]), ("mailto:orion@example.com", "ROOM"))
            self.assertEqual(periods(answer["mailto:orion@example.com"].icalendar_instance),
                             [("20261207T140000Z/20261207T150000Z", "BUSY")])
            self.assertEqual(periods(freebusy.icalendar_instance), [("20261207T140000Z/20261207T150000Z", "BUSY")])

        return deferToThread(run).addCallback(check)

    def test_wrongPassword(self):
        """A wrong password is refused: the library raises, nothing is answered."""

        def run():
            with self.client("wrong") as client:
                client.principal()

        d = deferToThread(run)
        return self.assertFailure(d, AuthorizationError)
