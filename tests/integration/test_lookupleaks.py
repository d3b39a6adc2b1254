"""
Anonymous FTP answers a directory member who never published as it answers
a name nobody has, for a real FTP client (ftplib) against the demo
directory, where carol is a member who never published and zzyzx nobody
(the HTTP forms are tested in memory, in L{tests.unit.test_lookupleaks}).
"""

import ftplib

from twisted.trial import unittest

from tests.helpers import inline, outlookVFB
from tests.integration.test_ftp import connect, inThread, startFTPServer
from tests.unit.test_lookupleaks import MEMBER, STRANGER


class AnonymousFTPTests(unittest.TestCase):
    """
    Anonymous FTP (C{--ftp-anonymous}) answers a member with an empty
    placeholder file (nothing published, as the lookups see it) as it
    answers a name that has no file.
    """

    @inline
    async def test_placeholderAsMissing(self):
        """
        SIZE, MDTM, RETR, LIST, NLST and CWD of carol.vfb (empty) and
        zzyzx.vfb (absent) get the same replies but for the name; neither is
        listed; alice's published file still is.
        """
        server = await startFTPServer(self, "--ftp-anonymous")
        server.store.write(("carol.vfb",), b"")
        server.store.write(("alice.vfb",), outlookVFB())

        def replies(name):
            out = []
            with connect(server.ftpPort, "ftp", "guest@example.com") as client:
                client.cwd("/pub/calendar")
                out.append(client.nlst())
                for command in ("SIZE", "MDTM", "CWD"):
                    try:
                        out.append(client.sendcmd(f"{command} {name}.vfb"))
                    except ftplib.Error as e:
                        out.append(str(e))
                for command in ("RETR", "LIST", "NLST"):
                    lines = []
                    try:
                        out.append(client.retrlines(f"{command} {name}.vfb", lines.append))
                    except ftplib.Error as e:
                        out.append(str(e))
                    out.append(lines)
            return [repr(reply).replace(name, "<name>") for reply in out]

        carol, stranger = await inThread(replies, MEMBER), await inThread(replies, STRANGER)
        self.assertEqual(carol, stranger)
        self.assertEqual(stranger[0], repr(["alice.vfb"]))
        self.assertIn("550 /pub/calendar/<name>.vfb: no such file or directory", stranger[1])
