"""
Running out of file descriptors is one domain error: answered 503 with
C{Retry-After} and logged once a while (the store and a server process
with a real, lowered descriptor limit: L{tests.integration.test_descriptors}).
"""

import errno
import os

from twisted.logger import globalLogPublisher
from twisted.trial import unittest

from fbtwist.errors import OutOfDescriptors, descriptorError
from fbtwist.logs import RareWarning
from fbtwist.web.responses import httpErrorFor


class MappingTests(unittest.SynchronousTestCase):
    """
    EMFILE and ENFILE are one domain error, which HTTP answers 503.
    """

    def setUp(self):
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def test_descriptorError(self):
        """
        EMFILE and ENFILE become L{OutOfDescriptors}; other errors do not.
        """
        for number in (errno.EMFILE, errno.ENFILE):
            self.assertIsInstance(descriptorError(OSError(number, os.strerror(number))), OutOfDescriptors)
        self.assertIsNone(descriptorError(OSError(errno.EACCES, "no")))
        self.assertIsNone(descriptorError(ValueError()))

    def test_http503(self):
        """
        The HTTP table answers both the domain error and a raw EMFILE with
        503 and Retry-After.
        """
        for error in (OutOfDescriptors(), OSError(errno.EMFILE, "Too many open files")):
            answer = httpErrorFor(error)
            self.assertEqual(answer.code, 503)
            self.assertIn(b"Retry-After", dict(answer.headers))
            self.assertNotIn("descriptor", answer.reason)

    def test_warnedOnce(self):
        """
        The warning is logged once per interval, saying how many times it
        happened since the last one.
        """
        now = [0.0]
        warning = RareWarning("out {count}", 60.0, clock=lambda: now[0], fbEvent="x")
        for _ in range(5):
            warning.warn()
        now[0] = 61.0
        warning.warn()
        texts = [(e["count"], e["fbEvent"]) for e in self.events if e.get("log_format") == "out {count}"]
        self.assertEqual(texts, [(1, "x"), (5, "x")])
