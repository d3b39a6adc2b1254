"""
The memory of answers the workers share (L{fbtwist.access.sharedanswers})
across real processes: another process inheriting the memory reads and
writes it; a slot another process holds locked is not waited for.
"""

import os
import subprocess
import sys

from twisted.trial import unittest

from fbtwist.access.sharedanswers import SLOT, AnswerSlots, createMemory
from tests.unit.test_sharedanswers import record


class AnotherProcessTests(unittest.TestCase):
    """
    L{AnswerSlots} shared with another process.
    """

    def setUp(self):
        self.fd = createMemory(32)
        self.addCleanup(os.close, self.fd)
        self.slots = AnswerSlots(self.fd)
        self.addCleanup(self.slots.close)

    def test_anotherProcess(self):
        """Another process (a worker) inheriting the memory finds what this one wrote, and this one what it wrote."""
        self.slots.write(record())
        script = (
            "import os, sys\n"
            "from fbtwist.access.sharedanswers import AnswerSlots, Record\n"
            "slots = AnswerSlots(int(sys.argv[1]))\n"
            "found, _ = slots.find('alice')\n"
            "assert found is not None and found.answer[1].startswith(b'BEGIN'), found\n"
            "slots.write(found._replace(uid='bob', madeAt=11.0))\n"
        )
        subprocess.run([sys.executable, "-c", script, str(self.fd)], check=True, pass_fds=(self.fd,),
                       cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
        self.assertEqual(self.slots.find("bob")[0], record(uid="bob", madeAt=11.0))

    def test_lockedByAnother(self):
        """A slot another process is writing (its lock held) is not waited for: the record is not shared."""
        ref = self.slots.write(record())
        script = (
            "import fcntl, sys, time\n"
            "fd, offset = int(sys.argv[1]), int(sys.argv[2])\n"
            "fcntl.lockf(fd, fcntl.LOCK_EX, 4096, offset)\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n"
        )
        holder = subprocess.Popen([sys.executable, "-c", script, str(self.fd), str(ref.slot * SLOT)],
                                  pass_fds=(self.fd,), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.addCleanup(holder.wait)
        self.addCleanup(holder.stdin.close)
        self.assertEqual(holder.stdout.readline(), b"locked\n")
        self.assertIsNone(self.slots.write(record(madeAt=40.0)))
        self.assertEqual(self.slots.find("alice")[0].madeAt, 10.0)
