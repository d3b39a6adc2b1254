"""
HTTP/WebDAV and FTP act on one tree under one set of rules: a WebDAV lock
holds against FTP, and what one protocol publishes the other serves.
"""

from twisted.internet import defer
from twisted.trial import unittest

from tests.davhelpers import DAVClient, lockBody
from tests.helpers import ADMIN_GROUP, inline, outlookVFB
from tests.integration.test_ftp import connect, inThread, startFTPServer, storeReply


class LocksAcrossProtocolsTests(unittest.TestCase):
    """
    FTP cannot present lock tokens, so it may not change what a WebDAV
    client has locked.
    """

    async def _setUp(self):
        self.server = await startFTPServer(self, "--admin-group", ADMIN_GROUP)
        self.dav = DAVClient(self, self.server)
        self.old = outlookVFB("old@example.com")
        self.server.store.write(("alice.vfb",), self.old)

    def setUp(self):
        return defer.Deferred.fromCoroutine(self._setUp())

    async def lock(self, path="/pub/calendar/alice.vfb"):
        response, _ = await self.dav.request("LOCK", path, body=lockBody(), headers={"Timeout": "Second-600"})
        self.assertIn(response.code, (200, 201))
        return response.headers.getRawHeaders(b"Lock-Token")[0].decode("ascii")

    def ftp(self, *commands, login="alice"):
        """
        Run (method, args) pairs on one ftplib session of C{login}; return
        the replies.
        """

        def session():
            client = connect(self.server.ftpPort, login)
            replies = []
            try:
                for name, *args in commands:
                    if name == "STOR":
                        replies.append(storeReply(client, f"STOR {args[0]}", args[1]))
                    else:
                        try:
                            replies.append(client.sendcmd(f"{name} {args[0]}"))
                        except Exception as e:
                            replies.append(str(e))
            finally:
                client.close()
            return replies

        return inThread(session)

    @inline
    async def test_lockedFileRefusedOverFTP(self):
        """
        While alice's WebDAV client holds a lock on alice.vfb, an FTP STOR or
        DELE by alice herself answers 550 and the file stays; after UNLOCK
        the STOR goes through.
        """
        token = await self.lock()
        new = outlookVFB("new@example.com")
        stor, dele = await self.ftp(("STOR", "/pub/calendar/alice.vfb", new), ("DELE", "/pub/calendar/alice.vfb"))
        self.assertTrue(stor.startswith("550"), stor)
        self.assertIn("locked", stor)
        self.assertTrue(dele.startswith("550"), dele)
        self.assertEqual(self.server.store.read(("alice.vfb",)), self.old)
        response, _ = await self.dav.request("UNLOCK", "/pub/calendar/alice.vfb", headers={"Lock-Token": token})
        self.assertEqual(response.code, 204)
        (stor,) = await self.ftp(("STOR", "/pub/calendar/alice.vfb", new))
        self.assertTrue(stor.startswith("226"), stor)
        self.assertEqual(self.server.store.read(("alice.vfb",)), new)

    @inline
    async def test_lockOnCollectionRefusesNewFile(self):
        """
        A Depth infinity lock on the folder (taken by an administrator)
        keeps FTP from adding a new file to it.
        """
        response, _ = await self.dav.request(
            "LOCK", "/pub/calendar/", login="admin", body=lockBody(),
            headers={"Timeout": "Second-600", "Depth": "infinity"}
        )
        self.assertIn(response.code, (200, 201))
        (stor,) = await self.ftp(("STOR", "/pub/calendar/bsmith.vfb", outlookVFB()), login="bsmith")
        self.assertTrue(stor.startswith("550"), stor)
        self.assertIn("locked", stor)
        self.assertIsNone(self.server.store.stat(("bsmith.vfb",)))
