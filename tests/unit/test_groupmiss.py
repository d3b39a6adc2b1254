"""
Anonymous group lookups do not tell which groups exist or how large they
are: a group none of whose members published, a group larger than
C{--group-max-members} and a group that does not exist get the same 404,
after the same floor of time, as a person who never published.  A reader
who logged in is told that a group is too large.  In memory with a
L{Clock}, and over real HTTP against the demo directory (its group C{team}).
"""

from twisted.cred.checkers import ANONYMOUS
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.python.filepath import FilePath
from twisted.trial import unittest
from twisted.web.test.requesthelper import DummyRequest

from fbtwist.interfaces import IFreeBusyReader
from fbtwist.store.tree import CalendarStore
from fbtwist.web.lookup import LookupResource, LookupSettings
from tests.helpers import basicAuth, inline, outlookVFB
from tests.memory import startMemoryServer
from tests.unit.test_lookupmiss import withoutName

MISS = b"No free/busy times published for the group <name>.\n"


class _Directory:
    """
    Groups: C{team} (alice, who published, and judy), C{quiet} (judy and
    pat, who never published) and C{crowd} (more than the limit of 3).
    """

    groups = {"team": ["alice", "judy"], "quiet": ["judy", "pat"], "crowd": ["a", "b", "c", "d"]}

    def groupMembers(self, cn, base, limit):
        members = self.groups.get(cn)
        return defer.succeed(None if members is None else members[: limit + 1])


class GroupMissFloorTests(unittest.SynchronousTestCase):
    """
    Every kind of group miss waits for the floor, then answers alike.
    """

    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1000)
        store = CalendarStore(FilePath(self.mktemp()))
        store.write(("alice.vfb",), outlookVFB())
        self.resource = LookupResource(
            _Directory(), store, LookupSettings(groupBase="dc=example,dc=com", groupMaxMembers=3, missDelay=0.05),
            reactor=self.clock,
        )

    def readerFor(self, avatarId):
        """
        The reader avatar the lookup's realm gives C{avatarId}.
        """
        return self.successResultOf(self.resource.portal.realm.requestAvatar(avatarId, None, IFreeBusyReader))[1]

    def lookUp(self, cn, reader=None, args=None):
        request = DummyRequest([b"group", cn.encode("utf-8") + b".vfb"])
        request.args = args or {}
        request.started = self.clock.seconds()
        if reader is None:
            self.resource.render(request)
        else:
            self.resource.forReader(self.readerFor(reader)).render(request)
        return request

    def answered(self, cn):
        """
        Look the group C{cn} up anonymously; check that the answer waits for
        the floor (0.05 s plus at most 0.025 s of jitter) and return it.
        """
        request = self.lookUp(cn)
        self.clock.advance(0.049)
        self.assertFalse(request.finished, cn)
        self.clock.advance(0.026)
        self.assertTrue(request.finished, cn)
        return (request.responseCode,) + withoutName(
            cn, request.responseHeaders.getAllRawHeaders(), b"".join(request.written)
        )

    def test_quietLargeAndMissingAlike(self):
        """
        A group whose members never published, a group too large to merge
        and a name no group has: the same status, headers and text but for
        the name, none of them sooner than the floor.
        """
        quiet, crowd, missing = self.answered("quiet"), self.answered("crowd"), self.answered("nogroup")
        self.assertEqual(quiet, missing)
        self.assertEqual(crowd, missing)
        self.assertEqual(missing[0], 404)
        self.assertEqual(missing[2], MISS)

    def test_publishedAtOnce(self):
        """
        A group with a member who published is merged and not held back.
        """
        request = self.lookUp("team", args={b"start": [b"20210105"], b"end": [b"20210106"]})
        self.assertTrue(request.finished)
        self.assertEqual(request.responseCode or 200, 200)
        self.assertIn(b"FREEBUSY:20210105T070000Z/20210105T073000Z", b"".join(request.written))

    def test_tooLargeToldWhenLoggedIn(self):
        """
        A reader who logged in is told at once that the group is too large.
        """
        request = self.lookUp("crowd", reader="alice")
        self.assertTrue(request.finished)
        self.assertEqual(request.responseCode, 403)
        self.assertIn(b"more than 3 members", b"".join(request.written))

    def test_realmTellsWhoReads(self):
        """
        Through the one realm's reader avatars, an anonymous reader gets the
        miss for a group too large to merge and a reader who logged in the
        reason.
        """
        answers = {}
        for avatarId in (ANONYMOUS, "alice"):
            request = DummyRequest([b"group", b"crowd.vfb"])
            request.started = self.clock.seconds()
            self.resource.forReader(self.readerFor(avatarId)).render(request)
            self.clock.advance(0.075)
            answers[avatarId] = request.responseCode, b"".join(request.written)
        self.assertEqual(answers[ANONYMOUS], (404, MISS.replace(b"<name>", b"crowd")))
        self.assertEqual(answers["alice"][0], 403)


class _GroupOverHTTPTestCase(unittest.TestCase):
    """
    A whole server with the demo directory, whose group C{team} is alice,
    bsmith and carol.
    """

    serverArgs = ()

    def setUp(self):
        self.server = startMemoryServer(self, *self.serverArgs)
        self.http = self.server.client()

    async def answer(self, cn, headers=None, query=""):
        response = await self.http.get(self.server.url(f"/calendar/group/{cn}.vfb{query}"), headers=headers)
        body = await response.content()
        headers = [(k, v) for k, v in response.headers.getAllRawHeaders() if k.lower() != b"date"]
        return (response.code,) + withoutName(cn, headers, body)


class GroupMissOverHTTPTests(_GroupOverHTTPTestCase):
    """
    The same against a whole server and the demo directory.
    """

    @inline
    async def test_quietGroupAndStrangerAlike(self):
        """
        team (nobody published yet) and a made-up group get the same status,
        headers and body but for the name; once alice publishes, team is
        merged.
        """
        team = await self.answer("team")
        stranger = await self.answer("zzyzx")
        self.assertEqual(team, stranger)
        self.assertEqual(team[:1], (404,))
        self.assertEqual(team[2], MISS)
        self.server.store.write(("alice.vfb",), outlookVFB())
        code, _, body = await self.answer("team", query="?start=20210105&end=20210106")
        self.assertEqual(code, 200)
        self.assertIn(b"FREEBUSY:20210105T070000Z/20210105T073000Z", body)


class GroupLimitOverHTTPTests(_GroupOverHTTPTestCase):
    """
    A group over --group-max-members: the miss for anonymous readers (from
    a trusted network), the reason for a reader who logged in.
    """

    serverArgs = ("--group-max-members", "2", "--lookup-auth", "--trusted-networks", "127.0.0.0/8")

    @inline
    async def test_tooLarge(self):
        """
        team (3 members) answers an anonymous reader as a made-up group
        does, and tells alice, logged in, why it is refused.
        """
        self.server.store.write(("alice.vfb",), outlookVFB())
        team = await self.answer("team")
        self.assertEqual(team, await self.answer("zzyzx"))
        self.assertEqual(team[2], MISS)
        code, _, body = await self.answer("team", headers=basicAuth("alice"))
        self.assertEqual(code, 403)
        self.assertIn(b"more than 2 members", body)
        self.assertIn(b"--group-max-members", body)
