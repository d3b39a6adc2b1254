"""
L{fbtwist.access.visibility}: the one decision of what a viewer may see of
a person's, a group's or a published file's free/busy times, in memory with
a L{Clock}.
"""

from datetime import datetime, timezone

from twisted.cred.checkers import ANONYMOUS, AllowAnonymousAccess
from twisted.cred.portal import Portal
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.python.filepath import FilePath
from twisted.trial import unittest
from twisted.web.test.requesthelper import DummyRequest
from zope.interface.verify import verifyObject

from fbtwist.access.avatar import CalendarAvatar
from fbtwist.access.realm import FreeBusyRealm
from fbtwist.access.visibility import (
    ANONYMOUS_VIEWER,
    HIDDEN,
    Account,
    Detail,
    FreeBusyVisibility,
    Group,
    Mask,
    Person,
    PublishedFile,
    Viewer,
    Visible,
)
from fbtwist.availability.workhours import parseWorkingHours
from fbtwist.calendar.freebusy import TimeRange
from fbtwist.directory.nameindex import NameIndex
from fbtwist.errors import PermissionDenied
from fbtwist.interfaces import IFreeBusyReader
from fbtwist.store.tree import CalendarStore
from fbtwist.web.lookup import LookupResource, LookupSettings
from tests.helpers import outlookVFB

#: The busy period of L{outlookVFB}.
BUSY_START = datetime(2021, 1, 5, 7, 0, tzinfo=timezone.utc)
BUSY_END = datetime(2021, 1, 5, 7, 30, tzinfo=timezone.utc)


class _Directory:
    """
    alice (published), judy (never published), garbage (an unreadable
    file), empty (a placeholder); pat only through a directory search;
    groups C{team} (alice, judy), C{quiet} (judy, pat) and C{crowd}
    (larger than the limit of 3).
    """

    nameIndex = NameIndex({"alice": "alice", "judy": "judy", "garbage": "garbage", "empty": "empty"}, 4)
    groups = {"team": ["alice", "judy"], "quiet": ["judy", "pat"], "crowd": ["a", "b", "c", "d"]}

    def resolveName(self, name):
        return defer.succeed({"pat": "pat"}.get(name))

    def groupMembers(self, cn, base, limit):
        members = self.groups.get(cn)
        return defer.succeed(None if members is None else members[: limit + 1])


#: A free/busy file busy 07:00-07:30 UTC on Tuesday 6 January 2026 (the
#: site's working hours count from 2024).
_VFB_2026 = outlookVFB(busy="20260106T070000Z/20260106T073000Z").replace(
    b"DTSTART:20201227T230000Z", b"DTSTART:20251227T230000Z").replace(
    b"DTEND:20210228T230000Z", b"DTEND:20260228T230000Z")

#: Working hours 07:00-07:10 UTC on Tuesdays only, published as a file.
_EARLY_HOURS = b"""BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//test//hours//EN\r
BEGIN:VAVAILABILITY\r
UID:early\r
DTSTAMP:20210101T000000Z\r
BEGIN:AVAILABLE\r
UID:early-tuesdays\r
DTSTAMP:20210101T000000Z\r
DTSTART:20260106T070000Z\r
DTEND:20260106T071000Z\r
RRULE:FREQ=WEEKLY;BYDAY=TU\r
END:AVAILABLE\r
END:VAVAILABILITY\r
END:VCALENDAR\r
"""

#: 06:00 to 09:00 UTC on the day of L{_VFB_2026}'s busy period.
_MORNING = TimeRange(datetime(2026, 1, 6, 6, 0, tzinfo=timezone.utc),
                     datetime(2026, 1, 6, 9, 0, tzinfo=timezone.utc))


class WorkingHoursTests(unittest.SynchronousTestCase):
    """
    Working hours are part of the visibility decision: per person, groups
    member by member, the entity tag naming the hours' version.
    """

    def setUp(self):
        self.clock = Clock()
        self.store = CalendarStore(FilePath(self.mktemp()))
        self.store.write(("alice.vfb",), _VFB_2026)
        self.store.write(("judy.vfb",), _VFB_2026)
        self.visibility = FreeBusyVisibility(
            self.store, _Directory(), self.clock, groupBase="dc=example,dc=com",
            workingHours=parseWorkingHours("Mon-Fri 07:00-08:00", timezone.utc),
        )

    def ask(self, target, workhours=True, visibility=None):
        d = defer.Deferred.fromCoroutine((visibility or self.visibility).freeBusyFor(
            ANONYMOUS_VIEWER, target, _MORNING, Detail.BUSY, workhours=workhours))
        self.clock.advance(0.1)
        return self.successResultOf(d)

    def spans(self, answer):
        return [(p.start.hour, p.start.minute, p.end.hour, p.end.minute, p.fbtype)
                for p in answer.freeBusy.periods]

    def test_siteHoursAddedWhenAsked(self):
        """
        With workhours the time outside the site's hours is BUSY-UNAVAILABLE,
        the published periods kept; without, the answer is as published.
        """
        self.assertEqual(self.spans(self.ask(Person("alice"))), [
            (6, 0, 7, 0, "BUSY-UNAVAILABLE"), (7, 0, 7, 30, "BUSY"), (8, 0, 9, 0, "BUSY-UNAVAILABLE")])
        self.assertEqual(self.spans(self.ask(Person("alice"), workhours=False)), [(7, 0, 7, 30, "BUSY")])

    def test_shortcutAgrees(self):
        """
        freeBusyForNow gives the same answer, working hours and entity tag
        included, as freeBusyFor.
        """
        now = self.visibility.freeBusyForNow(ANONYMOUS_VIEWER, Person("alice"), _MORNING, Detail.BUSY, True)
        self.assertEqual(now, self.ask(Person("alice")))

    def test_personsOwnHoursAndTheirVersion(self):
        """
        A published <login>.avail.ics replaces the site's hours for that
        person only, and changes the entity tag of their answers.
        """
        before = self.ask(Person("alice"))
        self.store.write(("alice.avail.ics",), _EARLY_HOURS)
        after = self.ask(Person("alice"))
        self.assertEqual(self.spans(after), [
            (6, 0, 7, 0, "BUSY-UNAVAILABLE"), (7, 0, 7, 30, "BUSY"), (7, 10, 9, 0, "BUSY-UNAVAILABLE")])
        self.assertNotEqual(before.etag, after.etag)
        self.assertEqual(self.spans(self.ask(Person("judy"))), self.spans(before))

    def test_groupMemberByMember(self):
        """
        A group's answer marks each member's own working hours before
        merging, and its entity tag follows a member's hours.
        """
        before = self.ask(Group("team"))
        self.store.write(("alice.avail.ics",), _EARLY_HOURS)
        after = self.ask(Group("team"))
        free = TimeRange(datetime(2026, 1, 6, 7, 30, tzinfo=timezone.utc),
                         datetime(2026, 1, 6, 8, 0, tzinfo=timezone.utc))

        def busyDuring(answer):
            return any(p.start < free.end and p.end > free.start for p in answer.freeBusy.busy())

        # Both at the site's 07:00-08:00: 07:30-08:00 is free for both.
        self.assertEqual(len(before.freeBusy.busy()), 3)
        self.assertFalse(busyDuring(before))
        # alice's own hours end at 07:10: then she is not.
        self.assertTrue(busyDuring(after))
        self.assertNotEqual(before.etag, after.etag)

    def test_siteAppliesToEveryAnswer(self):
        """
        With applyWorkingHours held by the visibility, every answer about a
        person marks the hours, asked for or not.
        """
        visibility = FreeBusyVisibility(
            self.store, _Directory(), self.clock,
            workingHours=parseWorkingHours("Mon-Fri 07:00-08:00", timezone.utc), applyWorkingHours=True,
        )
        self.assertEqual(self.spans(self.ask(Person("alice"), workhours=False, visibility=visibility)),
                         self.spans(self.ask(Person("alice"))))

    def test_accountByUid(self):
        """
        An Account (a uid the directory already gave) is answered without
        resolving a name; nothing published is HIDDEN.
        """
        self.assertEqual(self.spans(self.ask(Account("alice"), workhours=False)), [(7, 0, 7, 30, "BUSY")])
        self.assertIs(self.ask(Account("nobody")), HIDDEN)


class FreeBusyForTests(unittest.SynchronousTestCase):
    """
    L{FreeBusyVisibility.freeBusyFor} and its shortcut.
    """

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1000)
        self.store = CalendarStore(FilePath(self.mktemp()))
        self.store.write(("alice.vfb",), outlookVFB())
        self.store.write(("garbage.vfb",), b"not a calendar")
        self.store.write(("empty.vfb",), b"")
        self.visibility = FreeBusyVisibility(
            self.store, _Directory(), self.clock, missDelay=0.05, groupBase="dc=example,dc=com", groupMaxMembers=3,
        )

    def ask(self, target, viewer=ANONYMOUS_VIEWER, timeRange=None):
        """
        Ask now, then let the floor pass; return the answer (or failure)
        and whether it was there before the floor.
        """
        d = defer.Deferred.fromCoroutine(self.visibility.freeBusyFor(viewer, target, timeRange, Detail.BUSY))
        early = d.called
        self.clock.advance(0.1)
        return early, d

    def test_publishedVisibleToEveryone(self):
        """
        An anonymous and a signed-in viewer see the same busy periods of a
        person who published, at once, named by the uid.
        """
        answers = []
        for viewer in (ANONYMOUS_VIEWER, Viewer("bob")):
            early, d = self.ask(Person("alice"), viewer)
            self.assertTrue(early)
            answers.append(self.successResultOf(d))
        self.assertEqual(answers[0], answers[1])
        self.assertIsInstance(answers[0], Visible)
        self.assertEqual(answers[0].owner, "alice")
        self.assertEqual([(p.start, p.end) for p in answers[0].freeBusy.busy()], [(BUSY_START, BUSY_END)])

    def test_rangeClips(self):
        """
        A range clips the periods and sets the window to it.
        """
        timeRange = TimeRange(datetime(2021, 1, 5, 7, 15, tzinfo=timezone.utc), BUSY_END)
        _, d = self.ask(Person("alice"), timeRange=timeRange)
        fb = self.successResultOf(d).freeBusy
        self.assertEqual((fb.start, fb.end), timeRange)
        self.assertEqual([(p.start, p.end) for p in fb.busy()], [timeRange])

    def test_clippedOncePerVersion(self):
        """
        A file clipped to a range is clipped once for repeated questions
        (each answer a list of its own), and again once it is published anew.
        """
        from fbtwist.calendar import freebusy

        clips = []
        original = freebusy.clipPeriods

        def counting(*args):
            clips.append(args)
            return original(*args)

        self.patch(freebusy, "clipPeriods", counting)
        timeRange = TimeRange(datetime(2021, 1, 5, 7, 15, tzinfo=timezone.utc), BUSY_END)
        first = self.successResultOf(self.ask(Person("alice"), timeRange=timeRange)[1]).freeBusy
        first.periods.clear()
        second = self.successResultOf(self.ask(Person("alice"), timeRange=timeRange)[1]).freeBusy
        self.assertEqual([(p.start, p.end) for p in second.busy()], [timeRange])
        self.assertEqual(len(clips), 1)
        self.store.write(("alice.vfb",), outlookVFB(busy="20210105T072000Z/20210105T072500Z"))
        third = self.successResultOf(self.ask(Person("alice"), timeRange=timeRange)[1]).freeBusy
        self.assertEqual([(p.start, p.end) for p in third.busy()],
                         [(datetime(2021, 1, 5, 7, 20, tzinfo=timezone.utc),
                           datetime(2021, 1, 5, 7, 25, tzinfo=timezone.utc))])
        self.assertEqual(len(clips), 2)

    def test_hiddenLooksLikeNeverPublished(self):
        """
        A name nobody has, a member who never published, a placeholder and
        an unreadable file all get L{HIDDEN}, and only after the floor.
        """
        for name in ("nobody", "judy", "pat", "empty", "garbage"):
            early, d = self.ask(Person(name))
            self.assertFalse(early, name)
            self.assertIs(self.successResultOf(d), HIDDEN, name)

    def test_groupMerged(self):
        """
        A group is its members' busy times merged, over the default window
        when no range is asked for, named C{group-<cn>}.
        """
        _, d = self.ask(Group("team"))
        answer = self.successResultOf(d)
        self.assertEqual(answer.owner, "group-team")
        self.assertEqual(answer.freeBusy.start, datetime(1970, 1, 1, tzinfo=timezone.utc))

    def test_groupMissesAlike(self):
        """
        A group nobody in which published, one that does not exist and one
        too large get L{HIDDEN} after the floor for anonymous viewers.
        """
        for cn in ("quiet", "nosuch", "crowd"):
            early, d = self.ask(Group(cn))
            self.assertFalse(early, cn)
            self.assertIs(self.successResultOf(d), HIDDEN, cn)

    def test_groupTooLargeToldToSignedIn(self):
        """
        Only a viewer who signed in is told that a group is too large.
        """
        _, d = self.ask(Group("crowd"), Viewer("bob"))
        self.assertIn("more than 3 members", self.failureResultOf(d, PermissionDenied).value.reason)

    def test_shortcut(self):
        """
        L{FreeBusyVisibility.freeBusyForNow} gives L{freeBusyFor}'s answer
        for a known name's free/busy file, and nothing (ask again, and wait)
        for a name only the directory knows or a miss.
        """
        _, d = self.ask(Person("alice"))
        self.assertEqual(self.visibility.freeBusyForNow(ANONYMOUS_VIEWER, Person("alice")), self.successResultOf(d))
        for name in ("pat", "judy", "nobody"):
            self.assertIsNone(self.visibility.freeBusyForNow(ANONYMOUS_VIEWER, Person(name)), name)

    def test_publishedFile(self):
        """
        A free/busy file in the tree is visible at once, named by its file
        name; a full calendar, a placeholder, an unreadable or a missing
        file is L{HIDDEN}, at once.
        """
        self.store.write(("alice.ics",), b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n")
        answer = self.visibility.freeBusyForNow(ANONYMOUS_VIEWER, PublishedFile(("alice.vfb",)))
        self.assertEqual(answer.owner, "alice")
        self.assertEqual(len(answer.freeBusy.busy()), 1)
        for name in ("alice.ics", "empty.vfb", "garbage.vfb", "nobody.vfb"):
            self.assertIs(self.visibility.freeBusyForNow(ANONYMOUS_VIEWER, PublishedFile((name,))), HIDDEN, name)


class MaskTests(unittest.SynchronousTestCase):
    """
    A L{Mask} passes through the decision to a published full calendar, for
    the viewer who organizes the meeting only.
    """

    #: judy's calendar: alice's meeting, and judy's own lunch.
    JUDY_ICS = (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
                b"BEGIN:VEVENT\r\nUID:meeting\r\nDTSTAMP:20260101T000000Z\r\nORGANIZER:mailto:alice@example.com\r\n"
                b"DTSTART:20260106T090000Z\r\nDTEND:20260106T100000Z\r\nEND:VEVENT\r\n"
                b"BEGIN:VEVENT\r\nUID:lunch\r\nDTSTAMP:20260101T000000Z\r\n"
                b"DTSTART:20260106T120000Z\r\nDTEND:20260106T130000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    WINDOW = TimeRange(datetime(2026, 1, 6, tzinfo=timezone.utc), datetime(2026, 1, 7, tzinfo=timezone.utc))

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(datetime(2026, 1, 5, tzinfo=timezone.utc).timestamp())
        self.store = CalendarStore(FilePath(self.mktemp()))
        self.store.write(("judy.ics",), self.JUDY_ICS)
        self.store.write(("alice.vfb",), _VFB_2026)
        directory = _Directory()
        directory.nameIndex = NameIndex({"alice": "alice", "judy": "judy", "alice@example.com": "alice",
                                         "bob": "bob", "bob@example.com": "bob"}, 3)
        self.visibility = FreeBusyVisibility(self.store, directory, self.clock)

    def hours(self, viewer: str, mask=None, who="judy"):
        d = defer.Deferred.fromCoroutine(self.visibility.freeBusyFor(
            Viewer(viewer), Person(who), self.WINDOW, mask=mask))
        answer = self.successResultOf(d)
        return [p.start.hour for p in answer.freeBusy.busy()], answer.etag

    def test_organizerMasksTheMeeting(self):
        """The organizer's mask leaves the meeting out of an attendee's time, with its own entity tag."""
        whole, tag = self.hours("alice")
        self.assertEqual(whole, [9, 12])
        masked, maskedTag = self.hours("alice", Mask("meeting", "alice", frozenset(["Alice@Example.com"])))
        self.assertEqual(masked, [12])
        self.assertNotEqual(maskedTag, tag)
        self.assertEqual(self.hours("alice"), (whole, tag))

    def test_onlyTheOrganizersMask(self):
        """
        A mask claimed for someone else, with someone else's address, or
        naming an event the viewer does not organize, changes nothing; a
        free/busy file has no events to mask.
        """
        self.assertEqual(self.hours("bob", Mask("meeting", "alice", frozenset(["alice@example.com"])))[0], [9, 12])
        self.assertEqual(self.hours("bob", Mask("meeting", "bob", frozenset(["alice@example.com",
                                                                             "bob@example.com"])))[0], [9, 12])
        self.assertEqual(self.hours("alice", Mask("lunch", "alice", frozenset(["alice@example.com"])))[0], [9, 12])
        self.assertEqual(self.hours("judy", Mask("lunch", "judy", frozenset()))[0], [9])
        self.assertEqual(self.hours("alice", Mask("x", "alice", frozenset()), who="alice")[0], [7])


class AvatarFreeBusyTests(unittest.SynchronousTestCase):
    """
    The avatar asks the visibility decision as its own viewer.
    """

    def test_fileMustBeListable(self):
        """
        A published file is asked about only where the avatar may list:
        the anonymous reader without anonymous reads may not.
        """
        store = CalendarStore(FilePath(self.mktemp()))
        store.write(("alice.vfb",), outlookVFB())
        visibility = FreeBusyVisibility(store, None, Clock())
        avatar = CalendarAvatar(None, False, store, visibility)
        self.assertRaises(PermissionDenied, avatar.freeBusyForNow, PublishedFile(("alice.vfb",)))
        avatar.anonymousReads = True
        self.assertEqual(avatar.freeBusyForNow(PublishedFile(("alice.vfb",))).owner, "alice")


class _NoAdminQueries(_Directory):
    """
    A directory that fails the test when asked about group membership.
    """

    def isMember(self, uid, group):
        raise AssertionError("a reader avatar asked the directory about " + uid)


class _CountingRealm(FreeBusyRealm):
    """
    The realm, counting the avatars it gives.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.asked = []

    def requestAvatar(self, avatarId, mind, *interfaces):
        self.asked.append((avatarId, interfaces))
        return super().requestAvatar(avatarId, mind, *interfaces)


class ReaderThroughPortalTests(unittest.SynchronousTestCase):
    """
    Lookups and the page read as an L{IFreeBusyReader} the one realm gives.
    """

    def setUp(self):
        self.clock = Clock()
        self.store = CalendarStore(FilePath(self.mktemp()))
        self.store.write(("alice.vfb",), outlookVFB())
        self.realm = _CountingRealm(self.store, _NoAdminQueries(), adminGroup="cn=admins",
                                    visibility=FreeBusyVisibility(self.store, _NoAdminQueries(), self.clock))

    def test_readerAvatars(self):
        """
        The realm gives anonymous and signed-in readers a read-only
        L{IFreeBusyReader}, without asking the directory whether they are
        administrators.
        """
        for avatarId, uid in ((ANONYMOUS, None), ("bob", "bob")):
            interface, reader, logout = self.successResultOf(
                self.realm.requestAvatar(avatarId, None, IFreeBusyReader))
            self.assertIs(interface, IFreeBusyReader)
            self.assertTrue(verifyObject(IFreeBusyReader, reader))
            self.assertEqual(reader.uid, uid)
            self.assertFalse(hasattr(reader, "store"))
            self.assertIs(reader.visibility, self.realm.visibility)

    def test_lookupLogsInOnce(self):
        """
        A lookup resource given the portal reads through it: the anonymous
        reader is logged in once, and answers every anonymous lookup.
        """
        portal = Portal(self.realm, [AllowAnonymousAccess()])
        lookup = LookupResource(None, self.store, LookupSettings(), reactor=self.clock, portal=portal)
        for _ in range(2):
            request = DummyRequest([b"alice.vfb"])
            lookup.render(request)
            self.assertEqual((request.finished, request.responseCode), (1, None))
        self.assertEqual(self.realm.asked, [(ANONYMOUS, (IFreeBusyReader,))])
        self.assertIs(lookup.visibility, self.realm.visibility)
