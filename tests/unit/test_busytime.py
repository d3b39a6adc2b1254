"""
Tests for L{fbtwist.calendar.busytime}: the busy time of full calendars derived at
publish and kept beside them, in memory (no sockets, no threads).
"""

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from twisted.internet.testing import MemoryReactorClock
from twisted.python.filepath import FilePath
from twisted.trial import unittest

from fbtwist.calendar import derive
from fbtwist.calendar.busytime import BusyTime, Derivation
from fbtwist.calendar.freebusy import TimeRange
from fbtwist.errors import NotFound
from fbtwist.store.tree import CalendarStore
from tests.helpers import treeNames
from tests.unit.test_ical_derive import BOMB, calendar

UTC = timezone.utc
WEEKLY = calendar("DTSTART:20261102T090000Z\r\nDTEND:20261102T100000Z\r\nRRULE:FREQ=WEEKLY\r\nSUMMARY:Secret")


class BusyTimeTests(unittest.SynchronousTestCase):
    """
    Publishes derive and keep; lookups read what is kept.
    """

    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.reactor.advance(datetime(2026, 11, 10, 12, tzinfo=UTC).timestamp())
        self.store = CalendarStore(FilePath(self.mktemp()))
        # A limit of rule steps well above what the ordinary calendars here
        # take and far below the default, so that the bomb is refused
        # quickly (the default's own bound: tests.unit.test_ical_derive).
        self.busyTime = BusyTime.install(self.store, self.reactor, ZoneInfo("UTC"), ruleIterations=20_000)

    def publish(self, name: str, data: bytes, inPieces: bool = False):
        upload = self.store.openUpload((name,))
        if inPieces:  # as FTP does: written first, committed without data
            upload.write(data)
            return upload.commitAsync(b"")
        return upload.commitAsync(data)

    def kept(self, name: str) -> Derivation:
        return Derivation.fromBytes(self.store.derived((name,)))

    def lookUp(self, name: str, start, end):
        snapshot = self.store.snapshot((name,))
        d = self.busyTime.freeBusy((name,), snapshot.etag, snapshot.data, TimeRange(start, end))
        return self.successResultOf(d)

    def test_installedOnce(self):
        """
        Every lookup resource of one store shares its one busy time.
        """
        self.assertIs(BusyTime.install(self.store, self.reactor, ZoneInfo("UTC")), self.busyTime)

    def test_publishKeeps(self):
        """
        A publish of a full calendar, in one piece or in pieces, keeps its
        busy time from 31 days back to 366 ahead beside it; a free/busy
        file gets nothing.
        """
        for inPieces in (False, True):
            self.successResultOf(self.publish("alice.ics", WEEKLY, inPieces))
            kept = self.kept("alice.ics")
            self.assertEqual(kept.etag, self.store.etag(("alice.ics",)))
            self.assertEqual((kept.start, kept.end), (datetime(2026, 10, 10, tzinfo=UTC),
                                                      datetime(2027, 11, 11, tzinfo=UTC)))
            self.assertEqual(kept.periods[0].start, datetime(2026, 11, 2, 9, tzinfo=UTC))
            self.assertEqual(len(kept.periods), 54)
            self.assertNotIn(b"Secret", self.store.derived(("alice.ics",)))
        self.successResultOf(self.publish("alice.vfb", b""))
        self.assertIsNone(self.store.derived(("alice.vfb",)))

    def test_tooExpensiveRefused(self):
        """
        A publish of the bomb fails with the one-line reason; the old
        version and what was kept of it stay, and no temporary file is left.
        """
        self.successResultOf(self.publish("alice.ics", WEEKLY))
        before = self.store.derived(("alice.ics",))
        failure = self.failureResultOf(self.publish("alice.ics", BOMB, inPieces=True), derive.TooExpensive)
        self.assertEqual(failure.value.reason, "this calendar's rules are too expensive to expand")
        self.assertEqual(self.store.read(("alice.ics",)), WEEKLY)
        self.assertEqual(self.store.derived(("alice.ics",)), before)
        self.assertEqual(treeNames(self.store.root.path), [".derived.alice.ics.json", "alice.ics"])

    def test_lookupReadsKept(self):
        """
        A lookup is answered from what was kept, clipped to its range.
        """
        self.successResultOf(self.publish("alice.ics", WEEKLY))
        fb = self.lookUp("alice.ics", datetime(2026, 11, 9, tzinfo=UTC), datetime(2026, 11, 16, tzinfo=UTC))
        self.assertEqual([(p.start, p.end) for p in fb.periods],
                         [(datetime(2026, 11, 9, 9, tzinfo=UTC), datetime(2026, 11, 9, 10, tzinfo=UTC))])
        self.assertEqual((fb.start, fb.end), (datetime(2026, 11, 9, tzinfo=UTC), datetime(2026, 11, 16, tzinfo=UTC)))

    def test_horizonMovesDaily(self):
        """
        Kept periods a day old are derived again on their next lookup, which
        is answered from the old ones; the lookups after it see the new
        horizon, kept in the tree.
        """
        self.successResultOf(self.publish("alice.ics", WEEKLY))
        self.reactor.advance(timedelta(days=3).total_seconds())
        late = (datetime(2027, 11, 1, tzinfo=UTC), datetime(2027, 11, 30, tzinfo=UTC))
        fb = self.lookUp("alice.ics", *late)
        self.assertEqual(fb.end, datetime(2027, 11, 11, tzinfo=UTC))
        self.assertEqual(self.kept("alice.ics").end, datetime(2027, 11, 14, tzinfo=UTC))
        fb = self.lookUp("alice.ics", *late)
        self.assertEqual(fb.end, datetime(2027, 11, 14, tzinfo=UTC))
        self.assertEqual(fb.periods[-1].start, datetime(2027, 11, 8, 9, tzinfo=UTC))

    def test_writtenBehindOurBack(self):
        """
        A calendar with nothing kept is derived on its first lookup and kept;
        one too expensive is refused to readers without its reason's details.
        """
        self.store.write(("alice.ics",), WEEKLY)
        self.store.write(("bob.ics",), BOMB)
        fb = self.lookUp("alice.ics", datetime(2026, 11, 9, tzinfo=UTC), datetime(2026, 11, 10, tzinfo=UTC))
        self.assertEqual(len(fb.periods), 1)
        self.assertEqual(self.kept("alice.ics").etag, self.store.etag(("alice.ics",)))
        snapshot = self.store.snapshot(("bob.ics",))
        d = self.busyTime.freeBusy(("bob.ics",), snapshot.etag, snapshot.data,
                                   TimeRange(datetime(2026, 11, 9, tzinfo=UTC), datetime(2026, 11, 10, tzinfo=UTC)))
        self.assertEqual(self.failureResultOf(d, NotFound).value.reason, derive.TOO_EXPENSIVE)
        self.assertEqual(self.kept("bob.ics").refused, derive.TOO_EXPENSIVE)


#: A weekly meeting alice organizes and a one-off review on Tuesday.
MEETINGS = calendar("UID:weekly\r\nORGANIZER:mailto:alice@example.com\r\nDTSTART:20261102T090000Z\r\n"
                    "DTEND:20261102T100000Z\r\nRRULE:FREQ=WEEKLY",
                    "UID:review\r\nDTSTART:20261110T090000Z\r\nDTEND:20261110T100000Z")
WEEK = (datetime(2026, 11, 9, tzinfo=UTC), datetime(2026, 11, 16, tzinfo=UTC))
ALICE_MASKS_WEEKLY = derive.EventMask("weekly", frozenset(["alice@example.com"]))


class MaskTests(unittest.SynchronousTestCase):
    """
    A lookup with a mask is answered from the same kept derivation, without
    the masked events; the lookups without one are not touched.
    """

    setUp = BusyTimeTests.setUp
    publish = BusyTimeTests.publish
    kept = BusyTimeTests.kept
    lookUp = BusyTimeTests.lookUp

    def starts(self, fb):
        return [p.start for p in fb.periods]

    def lookUpMasked(self, name: str, mask, busyTime=None):
        snapshot = self.store.snapshot((name,))
        return self.successResultOf((busyTime or self.busyTime).freeBusy(
            (name,), snapshot.etag, snapshot.data, TimeRange(*WEEK), mask))

    def test_maskedFromKept(self):
        """
        The kept derivation holds each event's periods; a masked lookup
        leaves the meeting out, and the next lookup without a mask still
        sees it, from the same kept file.
        """
        self.successResultOf(self.publish("alice.ics", MEETINGS))
        kept = self.store.derived(("alice.ics",))
        self.assertEqual({e.uid for e in self.kept("alice.ics").events}, {"weekly", "review"})
        self.assertEqual(self.starts(self.lookUpMasked("alice.ics", ALICE_MASKS_WEEKLY)),
                         [datetime(2026, 11, 10, 9, tzinfo=UTC)])
        self.assertEqual(self.starts(self.lookUp("alice.ics", *WEEK)),
                         [datetime(2026, 11, 9, 9, tzinfo=UTC), datetime(2026, 11, 10, 9, tzinfo=UTC)])
        self.assertEqual(self.store.derived(("alice.ics",)), kept)

    def test_maskNeedsTheOrganizer(self):
        """A mask naming someone else as organizer, or another UID, leaves the busy time whole."""
        self.successResultOf(self.publish("alice.ics", MEETINGS))
        for mask in (ALICE_MASKS_WEEKLY._replace(organizers=frozenset(["carol@example.com"])),
                     ALICE_MASKS_WEEKLY._replace(uid="other"), ALICE_MASKS_WEEKLY._replace(uid="review")):
            self.assertEqual(len(self.lookUpMasked("alice.ics", mask).periods), 2, mask)
        own = ALICE_MASKS_WEEKLY._replace(uid="review", unorganized=True)
        self.assertEqual(self.starts(self.lookUpMasked("alice.ics", own)), [datetime(2026, 11, 9, 9, tzinfo=UTC)])

    def test_keptWithoutEvents(self):
        """
        Periods kept without the events (by an older version) still answer
        lookups without a mask; the first masked lookup derives them again,
        and keeps them with the events.
        """
        self.successResultOf(self.publish("alice.ics", MEETINGS))
        old = self.kept("alice.ics")._replace(events=None)
        self.store.setDerived(("alice.ics",), old.toBytes())
        self.assertNotIn(b'"events"', self.store.derived(("alice.ics",)))
        restarted = BusyTime(self.store, self.reactor, ZoneInfo("UTC"))
        snapshot = self.store.snapshot(("alice.ics",))
        fb = self.successResultOf(restarted.freeBusy(("alice.ics",), snapshot.etag, snapshot.data, TimeRange(*WEEK)))
        self.assertEqual(len(fb.periods), 2)
        self.assertNotIn(b'"events"', self.store.derived(("alice.ics",)))
        fb = self.lookUpMasked("alice.ics", ALICE_MASKS_WEEKLY, restarted)
        self.assertEqual(self.starts(fb), [datetime(2026, 11, 10, 9, tzinfo=UTC)])
        self.assertIn(b'"events"', self.store.derived(("alice.ics",)))


class ExpandLimitOptionTests(unittest.SynchronousTestCase):
    """
    --expand-limit sets the work an expansion may take.
    """

    def test_option(self):
        """
        The option reaches the lookup settings (500,000 by default); a value
        out of range is a usage error naming it.
        """
        from twisted.python.usage import UsageError

        from fbtwist.directory.ldapurl import parseLDAPURL
        from fbtwist.web.lookup import LookupSettings
        from tests.helpers import serviceOptions

        url = parseLDAPURL("ldap://h/ou=people,dc=example,dc=com")
        self.assertEqual(LookupSettings.fromConfig(serviceOptions().config, url).expandLimit, 500_000)
        self.assertEqual(LookupSettings.fromConfig(serviceOptions("--expand-limit", "2000").config, url).expandLimit,
                         2000)
        error = self.assertRaises(UsageError, serviceOptions, "--expand-limit", "5")
        self.assertIn("expand-limit", str(error))
