"""
The time outside working hours that several people share (the site's
hours) is expanded once per range, not once per person: a question about
twenty people (C{/calendar/find}, a CalDAV request) pays for it once.
"""

from datetime import timezone

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.python.filepath import FilePath
from twisted.trial import unittest

from fbtwist.access import visibility
from fbtwist.access.visibility import ANONYMOUS_VIEWER, Account, FreeBusyVisibility
from fbtwist.availability.model import unavailable
from fbtwist.availability.workhours import parseWorkingHours
from fbtwist.calendar.freebusy import BUSY_UNAVAILABLE, TimeRange
from fbtwist.store.tree import CalendarStore
from tests.unit.test_visibility import _MORNING, _VFB_2026


class SharedHoursTests(unittest.SynchronousTestCase):
    """
    People without hours of their own share the site's, expanded once.
    """

    def setUp(self):
        self.clock = Clock()
        store = CalendarStore(FilePath(self.mktemp()))
        for uid in ("alice", "judy"):
            store.write((uid + ".vfb",), _VFB_2026)
        self.hours = parseWorkingHours("Mon-Fri 07:00-08:00", timezone.utc)
        self.visibility = FreeBusyVisibility(store, None, self.clock, workingHours=self.hours)
        self.expanded = []

        def counted(model, start, end):
            self.expanded.append((start, end))
            return unavailable(model, start, end)

        self.patch(visibility, "unavailable", counted)

    def outside(self, uid, timeRange=_MORNING):
        d = defer.Deferred.fromCoroutine(
            self.visibility.freeBusyFor(ANONYMOUS_VIEWER, Account(uid), timeRange, workhours=True))
        return [(p.start.hour, p.end.hour) for p in self.successResultOf(d).freeBusy.periods
                if p.fbtype == BUSY_UNAVAILABLE]

    def test_expandedOncePerRange(self):
        """
        Two people asked about the same range get the same time outside the site's hours, expanded once;
        another range is expanded again.
        """
        self.assertEqual(self.outside("alice"), [(6, 7), (8, 9)])
        self.assertEqual(self.outside("judy"), [(6, 7), (8, 9)])
        self.assertEqual(self.expanded, [(_MORNING.start, _MORNING.end)])
        later = TimeRange(_MORNING.start.replace(hour=7), _MORNING.end)
        self.assertEqual(self.outside("alice", later), [(8, 9)])
        self.assertEqual(len(self.expanded), 2)
