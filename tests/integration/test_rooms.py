"""
Rooms over FTP with a real client (ftplib), on a whole server on loopback
and the demo directory (carol is the delegate of orion); the rest of rooms
is tested in memory, in L{tests.unit.test_rooms}.
"""

from twisted.internet import defer
from twisted.trial import unittest

from tests.helpers import ADMIN_GROUP, freeBusy, inline
from tests.integration.test_ftp import connect, inThread, startFTPServer, storeReply


class RoomPublishingTests(unittest.TestCase):
    """
    A room's free/busy is published by its delegates over FTP.
    """

    async def _setUp(self):
        self.server = await startFTPServer(self, "--admin-group", ADMIN_GROUP)

    def setUp(self):
        return defer.Deferred.fromCoroutine(self._setUp())

    @inline
    async def test_delegateOverFTP(self):
        """
        carol may STOR orion.vfb over FTP; alice may not.
        """

        def session(login):
            client = connect(self.server.ftpPort, login)
            try:
                client.cwd("/pub/calendar")
                return storeReply(client, "STOR orion.vfb", freeBusy())
            finally:
                client.close()

        self.assertTrue((await inThread(session, "alice")).startswith("550"))
        self.assertTrue((await inThread(session, "carol")).startswith("226"))
        self.assertEqual(self.server.store.read(("orion.vfb",)), freeBusy())

