"""
The log formats under a real C{twistd -n freebusy} (the log's lines and
events are tested in memory, in L{tests.unit.test_logs}).
"""

import json

from twisted.trial import unittest

from tests.helpers import basicAuth, httpClient, inline, outlookVFB
from tests.processes import startTwistd
from tests.unit.test_logs import COMBINED, WRONG_PASSWORD


class TwistdLogTests(unittest.TestCase):
    """
    The log formats under a real C{twistd -n freebusy}.
    """

    async def publishTwice(self, server):
        http = httpClient(self)
        for password in (WRONG_PASSWORD, "wonderland"):
            response = await http.put(
                server.url("/pub/calendar/alice.vfb"), data=outlookVFB(), headers=basicAuth("alice", password),
            )
            await response.content()

    @inline
    async def test_json(self):
        """
        --log-format json: every line twistd writes is one JSON object; the
        access and publish events carry their fields; no password.
        """
        server = await startTwistd(self, "--log-format", "json")
        await self.publishTwice(server)
        server.signal()
        await server.exited()
        output = server.log()
        records = [json.loads(line) for line in output.splitlines()]
        access = [r for r in records if r.get("fbEvent") == "http-request"]
        self.assertEqual([(r["method"], r["status"], r["user"]) for r in access],
                         [("PUT", 401, "alice"), ("PUT", 201, "alice")])
        self.assertTrue(COMBINED.match(access[0]["message"]))
        (published,) = [r for r in records if r.get("fbEvent") == "publish"]
        self.assertEqual((published["uid"], published["protocol"]), ("alice", "http"))
        self.assertIn("Server Shut Down.", [r["message"] for r in records])
        for secret in (WRONG_PASSWORD, "wonderland", "Authorization"):
            self.assertNotIn(secret, output)

    @inline
    async def test_combined(self):
        """
        By default twistd's log shows the access lines in combined format
        after its usual prefix.
        """
        server = await startTwistd(self)
        await self.publishTwice(server)
        server.signal()
        await server.exited()
        output = server.log()
        lines = [line.split("[fbtwist.access#info] ", 1)[1]
                 for line in output.splitlines() if "[fbtwist.access#" in line]
        self.assertEqual([COMBINED.match(line).group("status") for line in lines], ["401", "201"])
        for secret in (WRONG_PASSWORD, "wonderland", "Authorization"):
            self.assertNotIn(secret, output)

