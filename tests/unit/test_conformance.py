"""
The conformance mixins of L{tests.conformance} run against fbtwist's
implementations: the calendar store and the FTP shell.
"""

from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from fbtwist.access.avatar import CalendarAvatar
from fbtwist.ftp.shell import ftpAvatarFactory
from fbtwist.store.tree import CalendarStore
from tests.conformance import CalendarStoreConformanceMixin, FTPShellConformanceMixin
from tests.helpers import outlookVFB


class CalendarStoreConformanceTests(CalendarStoreConformanceMixin, SynchronousTestCase):
    """
    L{CalendarStore} in a temporary directory is an L{ICalendarStore}.
    """

    def makeStore(self):
        return CalendarStore(FilePath(self.mktemp()))


class CalendarFTPShellConformanceTests(FTPShellConformanceMixin, SynchronousTestCase):
    """
    L{CalendarFTPShell}, as alice publishing in /pub/calendar, is an
    L{IFTPShell}.
    """

    writable = ["pub", "calendar"]
    name = "alice.vfb"
    content = outlookVFB("alice@example.com")

    def makeShell(self):
        store = CalendarStore(FilePath(self.mktemp()))
        return ftpAvatarFactory(1 << 20)(CalendarAvatar("alice", False, store))
