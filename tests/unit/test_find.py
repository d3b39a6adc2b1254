"""
C{GET /calendar/find} on a whole server in memory (L{tests.memory}) and the
demo directory: slots free for everyone (or a quorum), aligned on a zone's
wall clock, working hours across daylight-saving changes, people in other
zones, groups, rooms that fit, names nobody has, and bounded input.
"""

import json
from urllib.parse import urlencode

from twisted.trial import unittest

from tests.helpers import availability, basicAuth, freeBusy, inline
from tests.memory import startMemoryServer


class FindTestCase(unittest.TestCase):
    serverArgs = ("--default-tz", "Europe/Berlin")

    def setUp(self):
        self.server = startMemoryServer(self, *self.serverArgs)
        self.http = self.server.client()

    def publish(self, uid: str, *busy: str, suffix: str = ".vfb") -> None:
        self.server.store.write((uid + suffix,), freeBusy(*busy))

    async def find(self, code: int = 200, headers=None, **parameters):
        query = urlencode(parameters)
        response = await self.http.get(self.server.url("/calendar/find?" + query), headers=headers or {})
        body = await response.content()
        self.assertEqual(response.code, code, body)
        if code != 200:
            return body.decode("utf-8")
        self.assertEqual(response.headers.getRawHeaders(b"Content-Type"), [b"application/json; charset=utf-8"])
        return json.loads(body)

    @staticmethod
    def starts(answer) -> list:
        return [(slot["start"], slot["end"]) for slot in answer["slots"]]


class FindTests(FindTestCase):
    """
    The slots offered are free for everyone listed as free.
    """

    @inline
    async def test_everyoneFree(self):
        """
        Slots skip what anyone is busy with; free and busy name the people.
        """
        self.publish("alice", "20250331T080000Z/20250331T090000Z")
        self.publish("bsmith", "20250331T090000Z/20250331T093000Z")
        answer = await self.find(who="alice,betty", duration="PT30M", start="20250331T073000Z",
                                 end="20250331T110000Z", step="PT30M", limit="3")
        self.assertEqual(self.starts(answer), [("2025-03-31T07:30:00Z", "2025-03-31T08:00:00Z"),
                                               ("2025-03-31T09:30:00Z", "2025-03-31T10:00:00Z"),
                                               ("2025-03-31T10:00:00Z", "2025-03-31T10:30:00Z")])
        self.assertEqual(answer["slots"][0]["free"], ["alice", "betty"])
        self.assertEqual(answer["slots"][0]["busy"], [])
        self.assertEqual(answer["slots"][0]["rooms"], [])
        self.assertEqual(answer["unknown"], [])

    @inline
    async def test_quorum(self):
        """
        With quorum=1 a slot where one of two is busy is offered, listing
        who is busy.
        """
        self.publish("alice", "20250331T080000Z/20250331T090000Z")
        self.publish("bsmith")
        answer = await self.find(who="alice,bsmith", duration="PT1H", start="20250331T080000Z",
                                 end="20250331T090000Z", quorum="1")
        self.assertEqual(answer["slots"], [{"start": "2025-03-31T08:00:00Z", "end": "2025-03-31T09:00:00Z",
                                            "free": ["bsmith"], "busy": ["alice"], "rooms": []}])
        answer = await self.find(who="alice,bsmith", duration="PT1H", start="20250331T080000Z",
                                 end="20250331T090000Z")
        self.assertEqual(answer["slots"], [])

    @inline
    async def test_workingHoursAcrossDaylightSaving(self):
        """
        With workhours=1 the first slot of a Friday before the clocks change
        is 08:00 Berlin (07:00Z), of the Monday after 08:00 Berlin (06:00Z).
        """
        self.publish("alice")
        answer = await self.find(who="alice", duration="PT1H", start="20250328T000000Z",
                                 end="20250401T000000Z", workhours="1", step="PT1H", limit="20")
        starts = [start for start, _ in self.starts(answer)]
        self.assertEqual(starts[0], "2025-03-28T07:00:00Z")
        self.assertEqual(starts[9], "2025-03-28T16:00:00Z")
        self.assertEqual(starts[10], "2025-03-31T06:00:00Z")
        self.assertEqual(len(starts), 20)

    @inline
    async def test_peopleInOtherZones(self):
        """
        alice works 08:00-18:00 in Berlin, bsmith 09:00-17:00 in New York:
        on the Monday after the US clocks change (EDT), both work from
        13:00Z to 17:00Z.
        """
        self.publish("alice")
        self.publish("bsmith")
        self.server.store.write(("bsmith.avail.ics",), availability())
        answer = await self.find(who="alice,bsmith", duration="PT1H", start="20250310T000000Z",
                                 end="20250311T000000Z", workhours="1", step="PT1H", tz="UTC")
        self.assertEqual([start for start, _ in self.starts(answer)],
                         ["2025-03-10T13:00:00Z", "2025-03-10T14:00:00Z", "2025-03-10T15:00:00Z",
                          "2025-03-10T16:00:00Z"])

    @inline
    async def test_shortRangeAlignedInZone(self):
        """
        A range shorter than a day gives the slots on the zone's quarter
        hours; a slot ends by the range's end.
        """
        self.publish("alice")
        answer = await self.find(who="alice", duration="PT30M", start="20250331T070500Z",
                                 end="20250331T080000Z", tz="Asia/Kolkata")
        # Kolkata is UTC+05:30: its quarter hours are :00, :15, :30 and :45 in UTC too.
        self.assertEqual(self.starts(answer), [("2025-03-31T07:15:00Z", "2025-03-31T07:45:00Z"),
                                               ("2025-03-31T07:30:00Z", "2025-03-31T08:00:00Z")])

    @inline
    async def test_group(self):
        """
        group:<cn> stands for its members, each listed free or busy by uid.
        """
        for uid in ("alice", "bsmith", "carol"):
            self.publish(uid)
        self.publish("carol", "20250331T080000Z/20250331T083000Z")
        answer = await self.find(who="group:team", duration="PT30M", start="20250331T080000Z",
                                 end="20250331T090000Z", step="PT30M", quorum="2")
        self.assertEqual(answer["slots"][0]["free"], ["alice", "bsmith"])
        self.assertEqual(answer["slots"][0]["busy"], ["carol"])
        self.assertEqual(answer["slots"][1]["free"], ["alice", "bsmith", "carol"])

    @inline
    async def test_unknownNames(self):
        """
        A name nobody has, a member who published nothing and a group that
        does not exist are listed in unknown alike; the others are searched.
        """
        self.publish("alice")
        answer = await self.find(who="alice,nobody,dave,group:nothere", duration="PT30M",
                                 start="20250331T080000Z", end="20250331T083000Z")
        self.assertEqual(sorted(answer["unknown"]), ["dave", "group:nothere", "nobody"])
        self.assertEqual(answer["slots"][0]["free"], ["alice"])

    @inline
    async def test_signedInReaderToo(self):
        """
        A reader who logs in gets the same answer.
        """
        self.publish("alice")
        answer = await self.find(headers=basicAuth("bsmith"), who="alice", duration="PT30M",
                                 start="20250331T080000Z", end="20250331T083000Z")
        self.assertEqual(len(answer["slots"]), 1)


class FindBoundsTests(FindTestCase):
    """
    Bad or too large questions are a 400 with one sentence.
    """

    @inline
    async def test_badInput(self):
        """
        Missing who or duration, a bad duration, step, zone or quorum, a
        range too long: each a 400 saying so.
        """
        base = dict(who="alice", duration="PT30M", start="20250331T080000Z", end="20250331T090000Z")
        self.publish("alice")
        cases = [
            (dict(base, who=""), "give who"),
            ({k: v for k, v in base.items() if k != "duration"}, "give the duration"),
            (dict(base, duration="half an hour"), "is not a duration"),
            (dict(base, duration="PT2H"), "longer than the range"),
            (dict(base, step="PT1M"), "at least 5 minutes"),
            (dict(base, step="PT7M"), "must divide a day"),
            (dict(base, tz="Mars/Olympus"), "is not a time zone"),
            (dict(base, quorum="2"), "more than the people found"),
            (dict(base, quorum="x"), "whole number"),
            (dict(base, limit="1000"), "between 1 and 100"),
            (dict(base, end="20250701T000000Z"), "at most 62 days"),
            (dict(base, who=",".join(f"p{n}" for n in range(51))), "at most 50 people"),
            (dict(base, workhours="perhaps"), "workhours must be 1 or 0"),
        ]
        for parameters, reason in cases:
            text = await self.find(code=400, **parameters)
            self.assertIn(reason, text, parameters)

    @inline
    async def test_readOnly(self):
        """
        find answers GET only.
        """
        response = await self.http.post(self.server.url("/calendar/find?who=alice&duration=PT1H"))
        self.assertEqual(response.code, 405)
        await response.content()
