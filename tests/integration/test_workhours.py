"""
Working hours published over FTP with a real client (ftplib), under the
same rule and check as over HTTP (the rest of working hours is tested in
memory, in L{tests.unit.test_workhours}).
"""

from twisted.trial import unittest

from tests.helpers import availability, inline
from tests.integration.test_ftp import connect, inThread, startFTPServer, storeReply


class PublishOverFTPTests(unittest.TestCase):
    """
    FTP publishes working hours under the same rule and check.
    """

    @inline
    async def test_publishedOverFTP(self):
        """
        alice may STOR her alice.avail.ics (226), not an invalid one (550),
        nor bsmith's (550).
        """
        server = await startFTPServer(self)

        def session():
            client = connect(server.ftpPort, "alice")
            try:
                client.cwd("/pub/calendar")
                return [storeReply(client, "STOR alice.avail.ics", availability()),
                        storeReply(client, "STOR alice.avail.ics", b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"),
                        storeReply(client, "STOR bsmith.avail.ics", availability())]
            finally:
                client.close()

        replies = await inThread(session)
        self.assertTrue(replies[0].startswith("226"), replies)
        self.assertTrue(replies[1].startswith("550"), replies)
        self.assertTrue(replies[2].startswith("550"), replies)
        self.assertEqual(server.store.read(("alice.avail.ics",)), availability())
        self.assertIsNone(server.store.stat(("bsmith.avail.ics",)))

