"""
A server that crashes again and again mid-upload does not fill the disk with
temporary files: a real fbtwist process (C{twistd -n freebusy}) killed with
C{SIGKILL} while FTP uploads are open, then started again on the same tree.
"""

import time

from twisted.trial.unittest import SynchronousTestCase

from tests.helpers import treeNames
from tests.integration.test_reliability import RealServerMixin
from tests.processes import userName


class CrashLoopTests(RealServerMixin, SynchronousTestCase):
    """
    C{kill -9} of the server with uploads under way, then a restart, three
    times over.
    """

    users = 3

    def temporaries(self):
        return [name for name in treeNames(self.root) if name.endswith(".tmp")]

    def test_restartRemovesKilledUploads(self):
        """
        Each kill leaves the open uploads' temporary files; the restarted
        server removes them at once, so they never pile up.
        """
        self.startServers(ftp=True)
        for round in range(3):
            connections = []
            for i in range(2):
                client = self.ftpLogin(i)
                client.voidcmd("TYPE I")
                data = client.transfercmd(f"STOR /pub/calendar/{userName(i)}.vfb")
                data.sendall(b"BEGIN:VCALENDAR\r\n" * 100)
                connections.append((client, data))
            deadline = time.monotonic() + 15
            while len(self.temporaries()) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            self.server.kill()
            for client, data in connections:
                data.close()
                client.close()
            self.assertEqual(len(self.temporaries()), 2, f"round {round}")
            self.server.start()
            self.assertEqual(self.temporaries(), [], f"round {round}")
