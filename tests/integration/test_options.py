"""
C{twistd freebusy} and its packaging for real: the plugin under a real
twistd and in an installed wheel, the reactor's real thread pool, and a
server process's memory settled after start-up (the options and the service
tree are tested in memory, in L{tests.unit.test_options}).
"""

import os
import subprocess
import sys
import threading

from twisted.python.filepath import FilePath
from twisted.trial import unittest

import fbtwist
from fbtwist.tap import threadRunner
from tests.helpers import TOP


class ThreadRunnerTests(unittest.TestCase):
    """
    L{fbtwist.tap.threadRunner}: the store's slow steps go to a thread
    pool of their own.
    """

    def test_threadPool(self):
        """
        With the real reactor the function runs in a thread of its pool and
        the Deferred fires with its result in the reactor thread.
        """
        from twisted.internet import reactor

        d = threadRunner(reactor)(lambda x: (x, threading.current_thread()), 7)

        def check(result):
            value, thread = result
            self.assertEqual(value, 7)
            self.assertIsNot(thread, threading.main_thread())
            self.assertIs(threading.current_thread(), threading.main_thread())

        return d.addCallback(check)


class PluginTests(unittest.TestCase):
    """
    The twistd plugin runs under twistd and installs correctly.
    """

    def runCommand(self, args, env=None):
        return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)

    def test_twistdHelp(self):
        """
        `twistd freebusy --help` lists the options.
        """
        result = self.runCommand([sys.executable, "-m", "twisted", "freebusy", "--help"],
                           env=dict(os.environ, PYTHONPATH=TOP.path))
        self.assertEqual(result.returncode, 0, result.stderr)
        for option in ("--http", "--ftp", "--root", "--ldap", "--bind-dn", "--max-upload", "--config"):
            self.assertIn(option, result.stdout)

    def test_installedWheel(self):
        """
        A regular (non-editable) install carries the plugin and the demo
        directory: twistd finds freebusy there.
        """
        target = FilePath(self.mktemp())
        build = self.runCommand([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                           "--no-build-isolation", "--no-cache-dir", "--target", target.path, TOP.path])
        self.assertEqual(build.returncode, 0, build.stderr)
        self.assertTrue(target.descendant(["twisted", "plugins", "fbtwist_plugin.py"]).exists())
        self.assertFalse(target.descendant(["twisted", "plugins", "__init__.py"]).exists())
        self.assertTrue(target.descendant(["fbtwist", "data", "demo.ldif"]).isfile())
        distInfo = target.child(f"fbtwist-{fbtwist.__version__}.dist-info")
        self.assertIn("fbtwist-admin = fbtwist.admin:run", distInfo.child("entry_points.txt").getContent().decode())
        env = dict(os.environ, PYTHONPATH=target.path)
        check = self.runCommand([sys.executable, "-c",
                           "import fbtwist, fbtwist.config as c; print(fbtwist.__file__); print(c.DEMO_LDIF.isfile())"],
                          env=env)
        self.assertIn(target.path, check.stdout)
        self.assertIn("True", check.stdout)
        result = self.runCommand([sys.executable, "-m", "twisted", "freebusy", "--help"], env=env)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("--max-upload", result.stdout)


class SettleMemoryTests(unittest.TestCase):
    """
    L{fbtwist.tap.settleMemory}, run once a server process has started.
    """

    def test_startupObjectsFrozen(self):
        """
        What was built to start is out of the garbage collector's reach: a
        full collection afterwards has next to nothing to walk.  (In a child
        process: freezing the test runner's objects would keep them.)
        """
        script = (
            "import gc, time\n"
            "import fbtwist.tap, fbtwist.web.lookup, fbtwist.web.dav.resource\n"
            "fbtwist.tap.settleMemory()\n"
            "print(gc.get_freeze_count(), sum(gc.get_count()), len(gc.get_objects()))\n"
        )
        out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True,
                             cwd=TOP.path, timeout=60).stdout
        frozen, pending, tracked = (int(n) for n in out.split())
        self.assertGreater(frozen, 10_000)
        self.assertLess(tracked, 1_000)

