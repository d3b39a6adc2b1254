"""
The log formats under a real C{twistd -n freebusy}, and twistd's log file
as fbtwist's observer writes it (the log's lines and events are tested in
memory, in L{tests.unit.test_logs}).
"""

import json

from twisted.logger import LogLevel
from twisted.python.filepath import FilePath
from twisted.trial import unittest

from fbtwist.logs import useUnderTwistd
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


class TwistdLogFileTests(unittest.SynchronousTestCase):
    """
    twistd's C{--logfile}, as fbtwist's observer takes it over: lines
    written through the global reactor, the file rotated by SIGUSR1.
    """

    def test_underTwistdLogFile(self):
        """
        With twistd's --logfile, the JSON lines go to that file, which
        SIGUSR1 rotates.
        """
        from fbtwist import logs

        # Back to standard output, the destination without twistd's options.
        self.addCleanup(useUnderTwistd, {"logger": None, "logfile": "-"})
        path = FilePath(self.mktemp())
        useUnderTwistd({"logger": None, "logfile": path.path, "nodaemon": True})
        import signal

        self.addCleanup(signal.signal, signal.SIGUSR1, signal.getsignal(signal.SIGUSR1))
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)
        observer = logs.twistdJSONObserver()
        observer(dict(log_format="not logged", log_level=LogLevel.debug, log_time=0, log_namespace="t"))
        observer(dict(log_format="to the file", log_level=LogLevel.info, log_time=0, log_namespace="t"))
        observer.observer.close()
        self.assertEqual(json.loads(path.getContent())["message"], "to the file")
        # As with twistd's own observer, SIGUSR1 rotates the file.
        self.assertTrue(callable(signal.getsignal(signal.SIGUSR1)))
