"""
What a real HTTP client (curl) sees of the limits on a connection, on a
whole fbtwist over loopback (the connection's limits themselves are tested
in memory, in L{tests.unit.test_httpconnection}).
"""

from twisted.python.filepath import FilePath
from twisted.trial import unittest

from tests.helpers import inline, startServer


class RealServerTests(unittest.TestCase):
    """
    The limits on a whole fbtwist over loopback, for curl.
    """

    @inline
    async def test_curlWrongPassword(self):
        """
        curl uploading with Expect: 100-continue and a wrong password gets
        401 at once (it would wait a second for a 100 that never comes, or
        send the body, if the server read on).
        """
        from twisted.internet import utils

        server = await startServer(self)
        upload = FilePath(self.mktemp())
        upload.setContent(b"x" * 500000)
        out, err, code = await utils.getProcessOutputAndValue(
            "/usr/bin/curl",
            ["-s", "-o", "/dev/null", "-w", "%{http_code} %{time_total} %{size_upload}",
             "-H", "Expect: 100-continue", "-u", "alice:wrong", "-T", upload.path,
             server.url("/pub/calendar/alice.vfb")],
        )
        status, seconds, uploaded = out.decode().split()
        self.assertEqual(status, "401", err)
        self.assertLess(float(seconds), 0.9)
        self.assertEqual(float(uploaded), 0)
