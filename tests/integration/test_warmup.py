"""
The name warm-up's child process, run for real on a tree on disk.
"""

import os

from twisted.internet import defer, reactor
from twisted.logger import globalLogPublisher
from twisted.trial import unittest

from fbtwist.store.warmup import NameWarmup


class ChildTests(unittest.TestCase):
    """
    L{NameWarmup} runs C{python -m fbtwist.store.warmnames} and reports
    what it looked up.
    """

    @defer.inlineCallbacks
    def test_runs(self):
        """
        The child looks up both names of each of 300 owners and ends well;
        the count is logged.
        """
        root = self.mktemp()
        os.makedirs(root)
        for n in range(300):
            with open(os.path.join(root, f"user{n:03d}.vfb"), "w") as f:
                f.write("x")
        events = []
        ended = defer.Deferred()

        def observe(event):
            events.append(event)
            if "count" in event and not ended.called:
                ended.callback(event)

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        service = NameWarmup(root, reactor, minimumFolderBytes=0)
        service.startService()
        self.addCleanup(service.stopService)
        event = yield ended
        self.assertEqual(event["count"], "600")
        self.assertEqual(service.exitCode, 0)

    def test_cannotList(self):
        """
        The child of a tree it cannot list ends with 1 and says why.
        """
        from fbtwist.store.warmnames import main

        self.assertEqual(main([os.path.join(self.mktemp(), "missing")]), 1)
