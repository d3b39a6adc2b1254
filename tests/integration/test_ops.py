"""
The systemd unit: systemd itself accepts it, and it runs fbtwist the way the
README says (foreground twistd, a config file, a dedicated user, hardened).
"""

import os
import subprocess
import sys

from twisted.python.filepath import FilePath
from twisted.trial import unittest

from tests.helpers import ETC

UNIT = ETC.child("freebusy.service")
SYSTEMD_ANALYZE = "/usr/bin/systemd-analyze"


def unitSettings(text: str) -> dict:
    """
    The unit's C{Key=value} lines by section (repeated keys collected).
    """
    sections, section = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        section.setdefault(key, []).append(value)
    return sections


class SystemdUnitTests(unittest.SynchronousTestCase):
    """
    etc/freebusy.service.
    """

    def test_settings(self):
        """
        Type=simple, twistd in the foreground without a pid file and with the
        config file, a dedicated user, and the hardening options.
        """
        service = unitSettings(UNIT.getContent().decode("utf-8"))["Service"]
        self.assertEqual(service["Type"], ["simple"])
        (command,) = service["ExecStart"]
        self.assertRegex(command, r"^/\S+/twistd -n --pidfile= freebusy --config /etc/fbtwist/freebusy\.ini$")
        self.assertEqual(service["User"], ["fbtwist"])
        self.assertEqual(service["NoNewPrivileges"], ["yes"])
        self.assertEqual(service["ProtectSystem"], ["strict"])
        self.assertEqual(service["ReadWritePaths"], ["/var/lib/fbtwist"])
        self.assertEqual(service["KillSignal"], ["SIGTERM"])
        # systemd must wait longer than fbtwist's default shutdown grace.
        self.assertGreater(int(service["TimeoutStopSec"][0]), 10)

    def test_descriptorLimit(self):
        """
        The unit raises the descriptor limit well above the usual 1024, so
        that thousands of connections fit.
        """
        service = unitSettings(UNIT.getContent().decode("utf-8"))["Service"]
        self.assertGreaterEqual(int(service["LimitNOFILE"][0]), 16384)

    def test_systemdAcceptsIt(self):
        """
        systemd-analyze verify finds nothing wrong (with ExecStart pointing
        at this machine's twistd).
        """
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        text = UNIT.getContent().decode("utf-8").replace("/opt/fbtwist/bin/twistd", twistd)
        folder = FilePath(self.mktemp())
        folder.makedirs()
        unit = folder.child("fbtwist.service")
        unit.setContent(text.encode("utf-8"))
        unit.chmod(0o644)
        result = subprocess.run([SYSTEMD_ANALYZE, "verify", unit.path], capture_output=True, text=True, timeout=60)
        self.assertEqual((result.returncode, result.stdout + result.stderr), (0, ""))
