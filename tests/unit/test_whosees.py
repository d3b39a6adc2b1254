"""
Who may see me (L{fbtwist.access.settings}): each person's choice of who
sees their free/busy times and at which detail, applied by the one
visibility decision to every door, and the C{/settings} page that sets it
(with working hours), all against a whole server in memory with the demo
directory (its group C{team}: alice, bsmith, carol; dave is not in it).
"""

import json
import re
from urllib.parse import urlencode

from twisted.cred.credentials import Anonymous
from twisted.protocols.ftp import IFTPShell
from twisted.trial import unittest

from fbtwist.access.settings import (
    Audience,
    SettingsStore,
    Shown,
    SitePolicy,
    VisibilitySettings,
)
from fbtwist.errors import DirectoryUnavailable
from tests.helpers import basicAuth, inline, outlookVFB
from tests.unit.test_lookupmiss import withoutName

#: alice's free/busy: busy (no FBTYPE) and out of office on 5 January 2021.
ALICE_VFB = outlookVFB(busy="20210105T070000Z/20210105T073000Z").replace(
    b"FREEBUSY:20210105T070000Z/20210105T073000Z",
    b"FREEBUSY:20210105T070000Z/20210105T073000Z\r\nFREEBUSY;FBTYPE=BUSY-UNAVAILABLE:20210105T090000Z/20210105T100000Z")
RANGE = "?start=20210105&end=20210106"

#: Each level of the choice, who of the viewers sees alice: anonymous,
#: dave (signed in, not in team), bsmith (in team), alice herself.
LEVELS = {
    "everyone": (VisibilitySettings(Audience.EVERYONE, Shown.FULL), {None: True, "dave": True, "bsmith": True}),
    "signed-in": (VisibilitySettings(Audience.SIGNED_IN, Shown.FULL), {None: False, "dave": True, "bsmith": True}),
    "groups": (VisibilitySettings(Audience.GROUPS, Shown.FULL, ("team",)),
               {None: False, "dave": False, "bsmith": True}),
    "nobody": (VisibilitySettings(Audience.NOBODY, Shown.FULL), {None: False, "dave": False, "bsmith": False}),
}


class _ServerTestCase(unittest.TestCase):
    serverArgs = ("--lookup-auth", "--trusted-networks", "10.0.0.0/8")

    def setUp(self):
        from tests.memory import startMemoryServer

        self.server = startMemoryServer(self, *self.serverArgs)
        self.http = self.server.client()
        self.server.store.write(("alice.vfb",), ALICE_VFB)
        self.settings = SettingsStore(self.server.store)

    def choose(self, settings, uid="alice"):
        self.settings.save(uid, settings)

    async def get(self, path, viewer=None):
        headers = basicAuth(viewer) if viewer else None
        response = await self.http.get(self.server.url(path), headers=headers)
        body = await response.content()
        return response, body


class LookupLevelsTests(_ServerTestCase):
    """
    Each level, at /calendar/<name>.vfb: those who may see get the file,
    everyone else exactly the answer about a name nobody has.
    """

    #: Anonymous readers are let in from everywhere but must not be asked
    #: for a login: lookups are anonymous unless a login is sent.
    serverArgs = ("--lookup-auth", "--trusted-networks", "127.0.0.0/8")

    async def answer(self, name, viewer):
        response, body = await self.get(f"/calendar/{name}.vfb{RANGE}", viewer)
        headers = [(k, v) for k, v in response.headers.getAllRawHeaders() if k.lower() != b"date"]
        return (response.code,) + withoutName(name, headers, body)

    @inline
    async def test_eachLevel(self):
        """Every level shows alice to exactly its viewers; hidden answers equal nobody's, ETag and all."""
        for level, (settings, sees) in LEVELS.items():
            self.choose(settings)
            for viewer, visible in sees.items():
                got = await self.answer("alice", viewer)
                if visible:
                    self.assertEqual(got[0], 200, (level, viewer))
                    self.assertIn(b"FREEBUSY", got[2])
                else:
                    self.assertEqual(got, await self.answer("zzyzx", viewer), (level, viewer))
                    self.assertEqual(got[0], 404, (level, viewer))
            own = await self.answer("alice", "alice")
            self.assertEqual(own[0], 200, level)

    @inline
    async def test_hiddenTakesTheFloor(self):
        """A hidden person is answered no sooner than the floor under a name nobody has."""
        self.choose(LEVELS["nobody"][0])
        started = self.server.network.seconds()
        await self.answer("alice", None)
        self.assertGreaterEqual(self.server.network.seconds() - started, 0.05)

    @inline
    async def test_lookupReadsTheChoiceOnce(self):
        """A lookup and an outbox answer look at the owner's choice once (one stat), for who sees and the detail."""
        import os

        self.choose(VisibilitySettings(Audience.EVERYONE, Shown.BUSY))
        await self.get(f"/calendar/alice.vfb{RANGE}")
        folder = self.server.store.metadataDirectory("visibility", create=False).path
        calls, original = [], os.stat

        def counting(path, *args, **kwargs):
            if str(path).startswith(folder):
                calls.append(path)
            return original(path, *args, **kwargs)

        self.patch(os, "stat", counting)
        response, body = await self.get(f"/calendar/alice.vfb{RANGE}")
        self.assertEqual(response.code, 200)
        self.assertNotIn(b"BUSY-UNAVAILABLE", body)
        self.assertEqual(len(calls), 1, calls)
        del calls[:]
        _, body = await FTPAndCalDAVTests.outbox(self, "bsmith", "alice@example.com")
        self.assertIn("2.0;Success", body)
        self.assertNotIn("BUSY-UNAVAILABLE", body)
        self.assertEqual(len(calls), 1, calls)

    @inline
    async def test_detailBusyOnly(self):
        """Busy only shows the out-of-office time as BUSY, under another entity tag; full keeps it."""
        full, fullBody = await self.get(f"/calendar/alice.vfb{RANGE}")
        self.assertIn(b"FBTYPE=BUSY-UNAVAILABLE", fullBody)
        self.choose(VisibilitySettings(Audience.EVERYONE, Shown.BUSY))
        busy, busyBody = await self.get(f"/calendar/alice.vfb{RANGE}")
        self.assertEqual(busy.code, 200)
        self.assertNotIn(b"BUSY-UNAVAILABLE", busyBody)
        self.assertIn(b"20210105T090000Z/20210105T100000Z", busyBody)
        self.assertNotEqual(full.headers.getRawHeaders(b"etag"), busy.headers.getRawHeaders(b"etag"))

    @inline
    async def test_corruptFileIsSiteDefault(self):
        """A damaged settings file counts as no choice (the site's default), with one warning."""
        from twisted.logger import globalLogPublisher

        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        self.choose(LEVELS["nobody"][0])
        folder = self.server.store.metadataDirectory("visibility")
        folder.child("alice.json").setContent(b"{not json")
        for _ in range(3):
            response, _ = await self.get(f"/calendar/alice.vfb{RANGE}")
            self.assertEqual(response.code, 200)
        warnings = [e for e in events if "visibility settings" in e.get("log_format", "")]
        self.assertEqual(len(warnings), 1)


class GroupLookupTests(_ServerTestCase):
    """
    /calendar/group/team.vfb: a hidden member contributes nothing, and the
    answer does not tell which members are hidden.
    """

    serverArgs = ("--lookup-auth", "--trusted-networks", "127.0.0.0/8")

    @inline
    async def test_hiddenMemberContributesNothing(self):
        """With alice hidden, team answers dave as if alice never published; bsmith still sees her."""
        bsmithVFB = outlookVFB(busy="20210105T120000Z/20210105T130000Z")
        self.server.store.write(("bsmith.vfb",), bsmithVFB)
        self.choose(LEVELS["groups"][0])
        _, seenByBsmith = await self.get(f"/calendar/group/team.vfb{RANGE}", "bsmith")
        self.assertIn(b"20210105T070000Z", seenByBsmith)
        hidden, hiddenBody = await self.get(f"/calendar/group/team.vfb{RANGE}", "dave")
        self.assertNotIn(b"20210105T070000Z", hiddenBody)
        self.assertIn(b"20210105T120000Z", hiddenBody)
        # As if alice had never published: the same bytes and entity tag.
        self.server.store.write(("alice.vfb",), b"")
        never, neverBody = await self.get(f"/calendar/group/team.vfb{RANGE}", "dave")
        self.assertEqual(hiddenBody, neverBody)
        self.assertEqual(hidden.headers.getRawHeaders(b"etag"), never.headers.getRawHeaders(b"etag"))

    @inline
    async def test_allHiddenIsAMiss(self):
        """A group whose only published member is hidden answers as a group nobody has."""
        self.choose(LEVELS["nobody"][0])
        hidden, hiddenBody = await self.get(f"/calendar/group/team.vfb{RANGE}")
        missing, missingBody = await self.get(f"/calendar/group/zzyzx.vfb{RANGE}")
        self.assertEqual(hidden.code, 404)
        self.assertEqual(hiddenBody.replace(b"team", b"zzyzx"), missingBody)


class PageAndFindTests(_ServerTestCase):
    """
    The people page and /calendar/find follow the choice.
    """

    serverArgs = ("--lookup-auth", "--trusted-networks", "127.0.0.0/8")

    @inline
    async def test_pageShowsOnlyVisible(self):
        """The page shows alice's busy time to those who may see it and 'nothing published' to others."""
        self.choose(LEVELS["signed-in"][0])
        _, anonymous = await self.get("/calendar/?who=alice&week=2021-01-04")
        _, signedIn = await self.get("/calendar/?who=alice&week=2021-01-04", "dave")
        _, nobody = await self.get("/calendar/?who=zzyzx&week=2021-01-04")
        self.assertNotIn(b"Tue 5 Jan 07:00", anonymous)
        self.assertIn(b"Tue 5 Jan 07:00", signedIn)
        section = re.compile(rb'<section class="person">.*</section>', re.S)
        self.assertEqual(section.search(anonymous).group(0).replace(b"alice", b"X"),
                         section.search(nobody).group(0).replace(b"zzyzx", b"X"))
        self.assertIn(b'href="/settings"', anonymous)

    @inline
    async def test_findPutsHiddenIntoUnknown(self):
        """Hidden people go into "unknown" of /calendar/find, as names nobody has do."""
        query = "/calendar/find?who=alice,bsmith&duration=PT30M&start=20210105T060000Z&end=20210105T120000Z"
        self.choose(LEVELS["groups"][0])
        _, forDave = await self.get(query, "dave")
        _, forBsmith = await self.get(query, "bsmith")
        self.assertIn("alice", json.loads(forDave)["unknown"])
        self.assertNotIn("alice", json.loads(forBsmith).get("unknown", []))


class EveryProtocolTests(_ServerTestCase):
    """
    Each level against each door a viewer reads through: the page, a
    group, /calendar/find and the CalDAV outbox (anonymous FTP below).
    """

    serverArgs = ("--lookup-auth", "--trusted-networks", "127.0.0.0/8")

    def setUp(self):
        super().setUp()
        # bsmith published too: a group with a hidden alice still answers.
        self.server.store.write(("bsmith.vfb",), outlookVFB(busy="20210105T120000Z/20210105T130000Z"))

    async def matrix(self, sees):
        """
        For every level and viewer, assert C{sees(viewer)} (C{True}: alice
        seen) equals the level's rule.
        """
        for level, (settings, rule) in LEVELS.items():
            self.choose(settings)
            for viewer, visible in rule.items():
                self.assertEqual(await sees(viewer), visible, (level, viewer))

    @inline
    async def test_page(self):
        """The people page draws alice's busy time for exactly the level's viewers."""
        async def sees(viewer):
            _, body = await self.get("/calendar/?who=alice&week=2021-01-04", viewer)
            return b"Tue 5 Jan 07:00" in body
        await self.matrix(sees)

    @inline
    async def test_group(self):
        """The group team holds alice's busy time for exactly the level's viewers."""
        async def sees(viewer):
            _, body = await self.get(f"/calendar/group/team.vfb{RANGE}", viewer)
            self.assertIn(b"20210105T120000Z", body)
            return b"20210105T070000Z" in body
        await self.matrix(sees)

    @inline
    async def test_find(self):
        """/calendar/find counts alice for exactly the level's viewers, else lists her as unknown."""
        query = "/calendar/find?who=alice,bsmith&duration=PT30M&start=20210105T060000Z&end=20210105T120000Z"

        async def sees(viewer):
            _, body = await self.get(query, viewer)
            return "alice" not in json.loads(body).get("unknown", [])
        await self.matrix(sees)

    @inline
    async def test_outbox(self):
        """The CalDAV outbox answers alice 2.0 to exactly the level's signed-in viewers, else 3.8."""
        for level, (settings, rule) in LEVELS.items():
            self.choose(settings)
            for viewer in ("dave", "bsmith"):
                _, body = await FTPAndCalDAVTests.outbox(self, viewer, "alice@example.com")
                self.assertIn("2.0;Success" if rule[viewer] else "3.8;No authority", body, (level, viewer))


class FTPAndCalDAVTests(_ServerTestCase):
    """
    Anonymous FTP and the CalDAV outbox follow the choice.
    """

    serverArgs = ("--ftp-anonymous",)

    def anonymousShell(self):
        d = self.server.service.portal.login(Anonymous(), None, IFTPShell)
        return self.successResultOf(d)[1]

    def test_anonymousFTP(self):
        """Anonymous FTP lists and reads alice's file for everyone, not for signed-in or stricter."""
        for level, (settings, sees) in LEVELS.items():
            self.choose(settings)
            names = [name for name, _ in self.successResultOf(self.anonymousShell().list(["pub", "calendar"]))]
            self.assertEqual("alice.vfb" in names, sees[None], level)
            reading = self.anonymousShell().openForReading(["pub", "calendar", "alice.vfb"])
            if sees[None]:
                self.assertIn(b"FREEBUSY", self.successResultOf(reading).data)
            else:
                self.assertEqual(self.failureResultOf(reading).value.code, "550")

    async def outbox(self, login, attendee):
        address = {"bsmith": "betty@example.com", "dave": "dave@example.org"}[login]
        body = "\r\n".join([
            "BEGIN:VCALENDAR", "PRODID:-//test//EN", "VERSION:2.0", "METHOD:REQUEST", "BEGIN:VFREEBUSY",
            "UID:whosees-1", "DTSTAMP:20210101T000000Z", "DTSTART:20210105T000000Z", "DTEND:20210106T000000Z",
            f"ORGANIZER:mailto:{address}", f"ATTENDEE:mailto:{attendee}", "END:VFREEBUSY",
            "END:VCALENDAR", ""]).encode("utf-8")
        headers = basicAuth(login)
        headers.update({b"Content-Type": [b"text/calendar"], b"Originator": [f"mailto:{address}".encode()],
                        b"Recipient": [f"mailto:{attendee}".encode()]})
        response = await self.http.post(self.server.url(f"/caldav/calendars/{login}/outbox/"), data=body,
                                        headers=headers)
        return response.code, (await response.content()).decode("utf-8")

    @inline
    async def test_outbox(self):
        """The outbox answers a hidden person 3.8 as it does one who never published; one who may see gets 2.0."""
        self.choose(LEVELS["groups"][0])
        code, forBsmith = await self.outbox("bsmith", "alice@example.com")
        self.assertEqual(code, 200)
        self.assertIn("2.0;Success", forBsmith)
        _, forDave = await self.outbox("dave", "alice@example.com")
        self.assertIn("3.8;No authority", forDave)
        _, neverPublished = await self.outbox("dave", "carol@example.com")
        self.assertEqual(re.sub("alice|carol", "X", forDave), re.sub("alice|carol", "X", neverPublished))


class DirectoryDownTests(unittest.SynchronousTestCase):
    """
    A viewer's groups come from the directory; when it cannot answer, the
    person stays hidden (no error).
    """

    def test_failsClosed(self):
        """A directory outage while deciding a group level hides the person, without an error."""
        from twisted.internet import defer
        from twisted.internet.task import Clock

        from fbtwist.access.settings import GroupMembership, WhoSees
        from fbtwist.access.visibility import Viewer

        class Down:
            def groupMembers(self, cn, base, limit):
                return defer.fail(DirectoryUnavailable("down"))

        class Store:
            def metadataDirectory(self, name, create=True):
                from twisted.python.filepath import FilePath

                return FilePath(self.root).child("." + name)

        store = Store()
        store.root = self.mktemp()
        settings = SettingsStore(store)
        settings.save("alice", VisibilitySettings(Audience.GROUPS, Shown.FULL, ("team",)))
        whoSees = WhoSees(settings, SitePolicy(), GroupMembership(Down(), "dc=example,dc=com", Clock()))
        self.assertIsNone(whoSees.mayViewNow(Viewer("bsmith"), "alice"))
        mayView = defer.Deferred.fromCoroutine(whoSees.mayView(Viewer("bsmith"), "alice"))
        self.assertFalse(self.successResultOf(mayView))


class SitePolicyTests(unittest.SynchronousTestCase):
    """
    The site's default and its rule against loosening.
    """

    def test_forbidLoosening(self):
        """With loosening forbidden, a looser choice is refused and, stored before, held to the default."""
        policy = SitePolicy(VisibilitySettings(Audience.SIGNED_IN, Shown.BUSY), forbidLoosening=True)
        loose = VisibilitySettings(Audience.EVERYONE, Shown.FULL)
        self.assertIsNotNone(policy.refusal(loose))
        self.assertIsNone(policy.refusal(VisibilitySettings(Audience.GROUPS, Shown.BUSY, ("team",))))
        self.assertEqual(policy.effective(loose), VisibilitySettings(Audience.SIGNED_IN, Shown.BUSY))
        self.assertEqual(policy.effective(None), policy.default)
        self.assertIsNone(SitePolicy(forbidLoosening=False).refusal(loose))


class SettingsPageTests(_ServerTestCase):
    """
    /settings: signed in through the one portal, forms checked against
    cross-site requests, the choice and the working hours saved.
    """

    serverArgs = ("--lookup-auth", "--trusted-networks", "127.0.0.0/8")

    async def page(self, login="alice"):
        response, body = await self.get("/settings", login)
        self.assertEqual(response.code, 200)
        token = re.search(rb'name="token" value="([^"]+)"', body).group(1).decode()
        return body, token

    async def post(self, fields, login="alice", headers=None):
        allHeaders = basicAuth(login)
        allHeaders[b"Content-Type"] = [b"application/x-www-form-urlencoded"]
        allHeaders.update(headers or {})
        response = await self.http.post(self.server.url("/settings"), data=urlencode(fields).encode("ascii"),
                                        headers=allHeaders, allow_redirects=False)
        return response, await response.content()

    @inline
    async def test_needsLogin(self):
        """Without a login the page is refused (401), never shown to anonymous readers."""
        response, _ = await self.get("/settings")
        self.assertEqual(response.code, 401)

    @inline
    async def test_chooseWhoSeesMe(self):
        """Posting the visibility form saves the choice, which the lookups then follow."""
        _, token = await self.page()
        response, _ = await self.post({"action": "visibility", "token": token, "who": "groups",
                                       "groups": "team", "detail": "busy"})
        self.assertEqual(response.code, 303)
        self.assertEqual(self.settings.get("alice"), VisibilitySettings(Audience.GROUPS, Shown.BUSY, ("team",)))
        dave, _ = await self.get(f"/calendar/alice.vfb{RANGE}", "dave")
        self.assertEqual(dave.code, 404)
        body, _ = await self.page()
        self.assertIn(b'value="groups" id="who-groups" checked="checked"', body)

    @inline
    async def test_forgeryRefused(self):
        """A post without the page's token, with another user's, or from another site's page is refused (403)."""
        _, token = await self.page("bsmith")
        fields = {"action": "visibility", "who": "nobody", "detail": "busy"}
        for extra, headers in (({}, None), ({"token": token}, None),
                               ({"token": (await self.page())[1]}, {b"Origin": [b"https://evil.example"]}),
                               ({"token": (await self.page())[1]}, {b"Sec-Fetch-Site": [b"cross-site"]})):
            response, body = await self.post(dict(fields, **extra), headers=headers)
            self.assertEqual(response.code, 403, (extra, headers))
        self.assertIsNone(self.settings.get("alice"))

    @inline
    async def test_originNull(self):
        """An Origin of null is refused unless Sec-Fetch-Site vouches for our own page (as Chromium sends it)."""
        fields = {"action": "visibility", "who": "nobody", "detail": "busy"}
        response, _ = await self.post(dict(fields, token=(await self.page())[1]), headers={b"Origin": [b"null"]})
        self.assertEqual(response.code, 403)
        response, _ = await self.post(dict(fields, token=(await self.page())[1]),
                                      headers={b"Origin": [b"null"], b"Sec-Fetch-Site": [b"same-origin"]})
        self.assertEqual(response.code, 303)

    @inline
    async def test_badChoicesInWords(self):
        """An unknown level, a group level without groups and a loosening the site forbids are refused in words."""
        _, token = await self.page()
        response, body = await self.post({"action": "visibility", "token": token, "who": "martians",
                                          "detail": "busy"})
        self.assertEqual(response.code, 400)
        self.assertIn(b"choose who may see you", body)
        response, body = await self.post({"action": "visibility", "token": token, "who": "groups",
                                          "detail": "busy"})
        self.assertEqual(response.code, 400)
        self.assertIn(b"at least one group", body)
        response, body = await self.post({"action": "visibility", "token": token, "who": "groups",
                                          "groups": "team, zzyzx", "detail": "busy"})
        self.assertEqual(response.code, 400)
        self.assertIn(b"the directory has no group 'zzyzx'", body)
        self.assertIsNone(self.settings.get("alice"))

    @inline
    async def test_workingHours(self):
        """The hours form publishes alice.avail.ics, read back as her working hours; bad windows are refused."""
        _, token = await self.page()
        fields = {"action": "hours", "token": token, "tz": "Europe/Berlin", "mon": "08:00-12:00, 13:00-17:00",
                  "tue": "09:00-17:00"}
        response, _ = await self.post(fields)
        self.assertEqual(response.code, 303)
        data = self.server.store.read(("alice.avail.ics",))
        self.assertIn(b"BEGIN:VAVAILABILITY", data)
        self.assertIn(b"Europe/Berlin", data)
        body, _ = await self.page()
        self.assertIn(b'value="08:00-12:00, 13:00-17:00"', body)
        self.assertIn(b'value="Europe/Berlin"', body)
        response, body = await self.post(dict(fields, mon="12:00-08:00"))
        self.assertEqual(response.code, 400)
        self.assertIn(b"Not saved", body)
        for zone in ("Mars/Olympus", "Europe", "../../etc/passwd", "x" * 5000):
            response, body = await self.post(dict(fields, tz=zone))
            self.assertEqual(response.code, 400, zone)
            self.assertIn(b"not a time zone", body)
        response, _ = await self.post({"action": "site-hours", "token": token})
        self.assertEqual(response.code, 303)
        self.assertFalse(self.server.store.stat(("alice.avail.ics",)))


class ForbidLooseningPageTests(SettingsPageTests.__base__):
    """
    With --visibility signed-in --visibility-fixed, the page refuses a
    looser choice.
    """

    serverArgs = ("--visibility", "signed-in", "--visibility-detail", "busy", "--visibility-fixed")

    @inline
    async def test_looserRefused(self):
        """Everyone is refused in words; the default holds for anonymous lookups."""
        response, body = await self.get("/settings", "alice")
        token = re.search(rb'name="token" value="([^"]+)"', body).group(1).decode()
        headers = basicAuth("alice")
        headers[b"Content-Type"] = [b"application/x-www-form-urlencoded"]
        response = await self.http.post(
            self.server.url("/settings"),
            data=urlencode({"action": "visibility", "token": token, "who": "everyone", "detail": "busy"}).encode(),
            headers=headers, allow_redirects=False)
        self.assertEqual(response.code, 400)
        self.assertIn(b"at most to: signed-in", await response.content())
        anonymous, _ = await self.get(f"/calendar/alice.vfb{RANGE}")
        self.assertEqual(anonymous.code, 404)


class OneRealmTests(_ServerTestCase):
    """
    /settings and /feeds log in through the one portal and its realm.
    """

    serverArgs = ()

    def test_pagesAreTheRealmsAvatars(self):
        """The one realm makes the settings and feeds pages' avatars, for the uid that logged in."""
        from fbtwist.web.feeds import FeedsPage, IFeedsPage
        from fbtwist.web.settingspage import ISettingsPage, SettingsPage

        realm = self.server.service.portal.realm
        for interface, kind in ((ISettingsPage, SettingsPage), (IFeedsPage, FeedsPage)):
            _, avatar, _ = self.successResultOf(self.server.network.run(realm.requestAvatar("carol", None, interface)))
            self.assertIsInstance(avatar, kind)
            self.assertEqual(avatar.uid, "carol")


class _Tree:
    """
    The part of a store a L{SettingsStore} uses: the tree's hidden folders.
    """

    def __init__(self, root):
        self.root = root

    def metadataDirectory(self, name, create=True):
        from twisted.python.filepath import FilePath

        folder = FilePath(self.root).child("." + name)
        if create:
            folder.makedirs(ignoreExistingDirectory=True)
        return folder


class SharedFolderTests(unittest.SynchronousTestCase):
    """
    Two servers (two L{SettingsStore}s) on one tree: each remembers choices
    while the folder is unchanged, and sees the other's changes.
    """

    def setUp(self):
        import os

        root = self.mktemp()
        os.makedirs(root)
        self.tree = _Tree(root)
        #: The wall clock both servers read, well after the folder's time
        #: unless a test says otherwise.
        self.now = 4_000_000_000.0
        self.first = SettingsStore(self.tree, clock=lambda: self.now)
        self.second = SettingsStore(self.tree, clock=lambda: self.now)
        self.folder = self.tree.metadataDirectory("visibility", create=False)

    def countStats(self):
        """
        Count the C{os.stat} calls from now on (of the folder and of files).
        """
        import os

        calls = []
        original = os.stat

        def counting(path, *args, **kwargs):
            calls.append(path)
            return original(path, *args, **kwargs)

        self.patch(os, "stat", counting)
        return calls

    def test_oneStatWhileUnchanged(self):
        """A choice is read once; later questions cost one stat of the folder, none of the file."""
        self.first.save("alice", VisibilitySettings(Audience.NOBODY, Shown.BUSY))
        self.assertEqual(self.first.get("alice").who, Audience.NOBODY)
        self.assertIsNone(self.first.get("bsmith"))
        calls = self.countStats()
        for _ in range(3):
            self.assertEqual(self.first.get("alice").who, Audience.NOBODY)
            self.assertIsNone(self.first.get("bsmith"))
        self.assertEqual(calls, [self.folder.path] * 6)

    def test_otherServersChangeSeen(self):
        """A choice saved by another server sharing the tree is seen at this server's next question."""
        from tests.unit.test_folderwatch import changing

        path = self.folder.path
        self.assertIsNone(self.first.get("alice"))  # remembered: no folder yet
        changing(path, lambda: self.second.save("alice", VisibilitySettings(Audience.SIGNED_IN, Shown.FULL)))
        self.assertEqual(self.first.get("alice").who, Audience.SIGNED_IN)
        changing(path, lambda: self.second.save("alice", VisibilitySettings(Audience.NOBODY, Shown.FULL)))
        self.assertEqual(self.first.get("alice").who, Audience.NOBODY)
        changing(path, self.folder.child("alice.json").remove)
        self.assertIsNone(self.first.get("alice"))

    def test_changeWithinOneTickSeen(self):
        """While the folder's time is recent, each file is looked at: two changes within one tick are both seen."""
        import os

        self.second.save("alice", VisibilitySettings(Audience.SIGNED_IN, Shown.FULL))
        stamp = os.stat(self.folder.path)
        self.now = stamp.st_mtime + 0.5
        self.assertEqual(self.first.get("alice").who, Audience.SIGNED_IN)
        self.second.save("alice", VisibilitySettings(Audience.NOBODY, Shown.FULL))
        # As if both changes fell within one tick of the filesystem's clock.
        os.utime(self.folder.path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
        self.assertEqual(self.first.get("alice").who, Audience.NOBODY)


class TwoServersTests(unittest.TestCase):
    """
    Two servers on one tree: a choice saved by one is followed by the
    other's next lookup, whether the choices' folder changed just now or
    long enough ago that its version is trusted and choices remembered.
    """

    def setUp(self):
        from tests.memory import startMemoryServer

        self.first = startMemoryServer(self)
        self.second = startMemoryServer(self, "--root", self.first.root.path)
        self.first.store.write(("alice.vfb",), ALICE_VFB)
        self.http = self.first.client()
        #: The second server's own store of choices.
        self.choices = self.second.service.portal.realm.visibility.whoSees.settings

    def age(self, seconds: float) -> None:
        """
        Make the choices' folder look last changed C{seconds} ago.
        """
        import os
        import time

        folder = self.first.store.metadataDirectory("visibility", create=False).path
        then = time.time() - seconds
        os.utime(folder, (then, then))

    async def code(self) -> int:
        response = await self.http.get(self.first.url(f"/calendar/alice.vfb{RANGE}"))
        await response.content()
        return response.code

    @inline
    async def test_otherServersChoiceFollowed(self):
        """Each choice the second server saves decides the first server's next lookup."""
        self.assertEqual(self.first.store.root, self.second.store.root)
        codes = [await self.code()]
        # Each change long enough ago that the folder's version is trusted.
        for level, ago in (("nobody", 60), ("everyone", 50), ("signed-in", 40)):
            self.choices.save("alice", LEVELS[level][0])
            self.age(ago)
            codes += [await self.code(), await self.code()]
        # A change just now: the folder is not trusted, the file is read.
        self.choices.save("alice", LEVELS["everyone"][0])
        codes.append(await self.code())
        self.assertEqual(codes, [200, 404, 404, 200, 200, 404, 404, 200])
