"""
Tests for L{fbtwist.web.dav.listing}: the responses of the members of a
collection, laid out once per PROPFIND, say what the store holds (checked
with another XML parser than the server's) and are those the general
per-resource code writes.
"""

import os
import stat
import time
from email.utils import formatdate
from time import gmtime, strftime
from urllib.parse import unquote
from xml.dom import minidom

from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

from bench.propfindcost import BODIES as MEASURED_BODIES
from fbtwist.access.avatar import CalendarAvatar
from fbtwist.access.values import ResourceInfo
from fbtwist.store import files
from fbtwist.store.tree import CalendarStore
from fbtwist.web.dav import listing, properties, propfind, urls
from fbtwist.web.dav.davxml import MULTISTATUS_END, MULTISTATUS_START
from fbtwist.web.dav.properties import LIVE, PropertyContext
from tests.unit.test_dav_propfind import RecordingRequest

WIN32 = "{urn:schemas-microsoft-com:}Win32FileAttributes"
WIN32_XML = '<ns0:Win32FileAttributes xmlns:ns0="urn:schemas-microsoft-com:">00000020</ns0:Win32FileAttributes>'

#: Files of the folder listed, by name: what each holds.
FILES = {
    "plain.vfb": b"BEGIN:VCALENDAR\r\n",
    "with space.vfb": b"spaces",
    "100% sure.ics": b"percent",
    "caf\u00e9 \u2615 \U0001f4c5.vfb": b"utf-8",
    "a&b.vfb": b"ampersand",
    "x<y>z'\"q.txt": b"angle brackets and quotes",
    "semi;colon?hash#.vfb": b"reserved characters",
    "empty.vfb": b"",
}
#: A collection in the folder, with a file of its own.
COLLECTION = "sub dir &<%"

BODIES = {
    "allprop": b"",
    "propname": b'<D:propfind xmlns:D="DAV:"><D:propname/></D:propfind>',
    "outlook": b'<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/></D:prop></D:propfind>',
    "named": (
        b'<D:propfind xmlns:D="DAV:" xmlns:Z="urn:schemas-microsoft-com:" xmlns:X="urn:x%"><D:prop>'
        b"<D:getetag/><D:getcontentlength/><D:getlastmodified/><D:creationdate/><D:displayname/>"
        b"<D:getcontenttype/><D:resourcetype/><D:lockdiscovery/><Z:Win32FileAttributes/><X:nothing/><none/>"
        b"</D:prop></D:propfind>"
    ),
}


def oddFolder(testCase, lockFolder: bool = False):
    """
    A store whose C{folder} holds L{FILES} and L{COLLECTION}, with dead
    properties on a file and on the collection, one file locked (or, with
    C{lockFolder}, the folder and all in it), and an administrator's avatar
    of it.
    """
    store = CalendarStore(FilePath(testCase.mktemp()))
    folder = store.root.child("folder")
    folder.makedirs()
    for name, data in FILES.items():
        store.write(("folder", name), data)
    folder.child(COLLECTION).makedirs()
    store.write(("folder", COLLECTION, "inside.vfb"), b"inside")
    store.setDeadProperties(("folder", "a&b.vfb"), {WIN32: WIN32_XML})
    store.setDeadProperties(("folder", COLLECTION), {WIN32: WIN32_XML})
    avatar = CalendarAvatar("admin", True, store)
    if lockFolder:
        testCase.successResultOf(avatar.lock(("folder",), "shared", "infinity", "<D:owner>me</D:owner>", 600))
    else:
        testCase.successResultOf(avatar.lock(("folder", "with space.vfb"), "exclusive", "0", "", 600))
    return store, avatar


def textOf(node) -> str:
    return "".join(child.data for child in node.childNodes if child.nodeType == child.TEXT_NODE)


def propertiesOf(response):
    """
    (namespace, local name) to (status code, element) of every property of
    one parsed C{DAV:response}.
    """
    found = {}
    for propstat in response.getElementsByTagNameNS("DAV:", "propstat"):
        status = textOf(propstat.getElementsByTagNameNS("DAV:", "status")[0])
        code = int(status.split()[1])
        for prop in propstat.getElementsByTagNameNS("DAV:", "prop")[0].childNodes:
            if prop.nodeType == prop.ELEMENT_NODE:
                found[(prop.namespaceURI, prop.localName)] = (code, prop)
    return found


class OddNamesTests(SynchronousTestCase):
    """
    A Depth 1 PROPFIND of a folder whose names need escaping, parsed by
    C{xml.dom.minidom}, says of every member what the store holds.
    """

    def setUp(self):
        self.store, self.avatar = oddFolder(self)

    def propfind(self, body: bytes) -> bytes:
        clock = MemoryReactorClock()
        request = RecordingRequest(body, {b"Depth": b"1"}, site=Site(Resource(), reactor=clock))
        d = defer.Deferred.fromCoroutine(propfind.propfind(self.avatar, ("folder",), request))
        for _ in range(100):
            if d.called:
                break
            clock.advance(0)
        self.successResultOf(d)
        self.assertEqual(request.code, 207)
        return b"".join(request.writes)

    def membersOf(self, body: bytes):
        """
        The responses of the members, by the name their href ends with.
        """
        document = minidom.parseString(self.propfind(body))
        members = {}
        for response in document.getElementsByTagNameNS("DAV:", "response"):
            href = textOf(response.getElementsByTagNameNS("DAV:", "href")[0])
            self.assertTrue(href.startswith("/pub/calendar/folder/"), href)
            # Every character of the href is one a URL path may hold as is.
            self.assertRegex(href, r"^[A-Za-z0-9/%._~-]+$")
            rest = href[len("/pub/calendar/folder/"):]
            if not rest:
                continue
            isCollection = rest.endswith("/")
            name = unquote(rest.rstrip("/"), errors="strict")
            self.assertNotIn(name, members)
            members[name] = (isCollection, propertiesOf(response))
        self.assertEqual(sorted(members), sorted([*FILES, COLLECTION]))
        return members

    def test_allprop(self):
        """
        Every member's href names it; its length, dates, type, display name,
        ETag, lock and dead properties are the store's.
        """
        for name, (isCollection, props) in self.membersOf(BODIES["allprop"]).items():
            fsPath = os.path.join(self.store.root.path, "folder", name)
            st = os.stat(fsPath)
            self.assertEqual(isCollection, name == COLLECTION)
            self.assertTrue(all(code == 200 for code, _ in props.values()), name)
            resourcetype = props[("DAV:", "resourcetype")][1]
            self.assertEqual([child.localName for child in resourcetype.childNodes],
                             ["collection"] if isCollection else [])
            self.assertEqual(textOf(props[("DAV:", "getlastmodified")][1]), formatdate(st.st_mtime, usegmt=True))
            self.assertEqual(textOf(props[("DAV:", "creationdate")][1]),
                             strftime("%Y-%m-%dT%H:%M:%SZ", gmtime(min(st.st_ctime, st.st_mtime))))
            self.assertEqual(textOf(props[("DAV:", "displayname")][1]), name)
            hasWin32 = name in ("a&b.vfb", COLLECTION)
            self.assertEqual(("urn:schemas-microsoft-com:", "Win32FileAttributes") in props, hasWin32, name)
            if hasWin32:
                self.assertEqual(textOf(props[("urn:schemas-microsoft-com:", "Win32FileAttributes")][1]),
                                 "00000020")
            locks = props[("DAV:", "lockdiscovery")][1].getElementsByTagNameNS("DAV:", "activelock")
            self.assertEqual(len(locks), 1 if name == "with space.vfb" else 0, name)
            if isCollection:
                for key in ("getcontentlength", "getcontenttype", "getetag"):
                    self.assertNotIn(("DAV:", key), props)
                continue
            self.assertEqual(int(textOf(props[("DAV:", "getcontentlength")][1])), len(FILES[name]))
            self.assertEqual(textOf(props[("DAV:", "getetag")][1]), self.store.etag(("folder", name)))
            self.assertEqual(textOf(props[("DAV:", "getcontenttype")][1]),
                             "text/calendar" if name.endswith((".vfb", ".ics")) else "application/octet-stream")

    def test_named(self):
        """
        Asked for by name, a member's properties are found (200) or not
        (404) as it has them.
        """
        for name, (isCollection, props) in self.membersOf(BODIES["named"]).items():
            missing = {key for key, (code, _) in props.items() if code == 404}
            expected = {("urn:x%", "nothing"), (None, "none")}
            if isCollection:
                expected |= {("DAV:", "getetag"), ("DAV:", "getcontentlength"), ("DAV:", "getcontenttype")}
            if name not in ("a&b.vfb", COLLECTION):
                expected.add(("urn:schemas-microsoft-com:", "Win32FileAttributes"))
            self.assertEqual(missing, expected, name)
            self.assertEqual(len(props), 11, name)
            if not isCollection:
                self.assertEqual(textOf(props[("DAV:", "getetag")][1]), self.store.etag(("folder", name)))

    def test_propname(self):
        """
        C{DAV:propname} names each member's properties, empty.
        """
        for name, (isCollection, props) in self.membersOf(BODIES["propname"]).items():
            self.assertEqual(len(props), 9 - 3 * isCollection + (name in ("a&b.vfb", COLLECTION)), name)
            self.assertTrue(all(not element.childNodes for _, element in props.values()))


class SameAnswerTests(SynchronousTestCase):
    """
    The laid-out response of a member is the one the general code writes
    for that resource.
    """

    def setUp(self):
        self.store, self.avatar = oddFolder(self)

    def test_everyBody(self):
        """
        For every body, every member (files, a collection, one with dead
        properties, a locked one) is answered as by L{resourceResponse}.
        """
        self.assertSameAnswers()

    def test_lockedFolder(self):
        """
        Every member shows the lock of the whole folder, as
        L{resourceResponse} shows it.
        """
        self.store, self.avatar = oddFolder(self, lockFolder=True)
        self.assertSameAnswers()

    def assertSameAnswers(self):
        active = self.successResultOf(self.avatar.activeLocks())
        context = PropertyContext(self.avatar, active.locks, active.now)
        for name, body in BODIES.items():
            kind, keys = propfind.parseRequest(body)
            members = self.successResultOf(self.avatar.listDetailed(
                ("folder",), listing.needsETags(kind, keys), listing.needsDeadProperties(kind, keys)))
            responses = propfind.memberResponses(context, ("folder",), kind, keys)
            answered = 0
            for member in members:
                self.assertEqual(responses(member), propfind.resourceResponse(context, member[0], kind, keys),
                                 (name, member[0].name))
                answered += 1
            self.assertEqual(answered, len(FILES) + 1)

    def test_fileGone(self):
        """
        A file whose ETag could not be read (gone meanwhile) is answered
        by the general code: without its ETag.
        """
        context = PropertyContext(self.avatar, [], 0)
        kind, keys = propfind.parseRequest(BODIES["named"])
        info = self.store.stat(("folder", "plain.vfb"))
        os.remove(os.path.join(self.store.root.path, "folder", "plain.vfb"))
        answer = propfind.memberResponses(context, ("folder",), kind, keys)((info, None, {}))
        self.assertEqual(answer, propfind.resourceResponse(context, info, kind, keys))
        props = propertiesOf(minidom.parseString(MULTISTATUS_START + answer + MULTISTATUS_END).documentElement)
        self.assertEqual(props[("DAV:", "getetag")][0], 404)

    def test_quotedName(self):
        """
        A name is percent-encoded in an href as L{urls.href} encodes it.
        """
        for name in [*FILES, COLLECTION, "A-Z_a.z~0-9"]:
            self.assertEqual(urls.BASE + listing.quotedName(name), urls.href((name,), False))


class LiveDateTests(SynchronousTestCase):
    """
    The dates of a resource, formatted once per second, are those
    formatted from its exact times.
    """

    def test_dates(self):
        """
        C{DAV:getlastmodified} and C{DAV:creationdate} of times with and
        without fractions, near the next second, and before 1970.
        """
        from fbtwist.access.values import ResourceInfo

        for seconds in (0, 1.5, 1765000000.25, 1765000000.9999996, 1765000000.999999, 1765000001,
                        -1.5, -0.0000001, 253402300799.5):
            info = ResourceInfo(("f",), False, 0, seconds, seconds, 1)
            for _ in range(2):  # computed, then remembered
                self.assertEqual(LIVE["{DAV:}getlastmodified"].render(None, info),
                                 formatdate(seconds, usegmt=True), seconds)
                self.assertEqual(LIVE["{DAV:}creationdate"].render(None, info),
                                 strftime("%Y-%m-%dT%H:%M:%SZ", gmtime(seconds)), seconds)


class LayoutTests(SynchronousTestCase):
    """
    The responses filled into a layout (the values computed in
    L{listing.MemberResponses} itself, those the same for every member
    written in once) are byte for byte those the general code writes, for
    the bodies C{bench/propfindcost.py} measures.
    """

    def setUp(self):
        self.store, self.avatar = oddFolder(self)
        folder = os.path.join(self.store.root.path, "folder")
        # A file without its ETag attribute (written by another program).
        self.store.write(("folder", "no-attribute.vfb"), b"no attribute")
        os.removexattr(os.path.join(folder, "no-attribute.vfb"), files._ETAG_XATTR)
        # A dead display name, which wins over the live one.
        self.store.setDeadProperties(("folder", "plain.vfb"), {
            "{DAV:}displayname": "<D:displayname>Plain &amp; simple</D:displayname>"})
        os.mkdir(os.path.join(folder, "plain-collection"))
        # Times just below the next second, and before 1970.
        os.utime(os.path.join(folder, "empty.vfb"), ns=(0, 1_765_000_000_999_999_600))
        os.utime(os.path.join(folder, "a&b.vfb"), ns=(0, -1_500_000_000))
        for i in range(20):
            self.store.write(("folder", f"file{i:06d}.vfb"), b"x" * i)
            os.utime(os.path.join(folder, f"file{i:06d}.vfb"), ns=(0, 1_765_000_000_000_000_000 + i * 250_000_000))

    def answers(self, body: bytes, locks: bool):
        """
        Each member's response, as laid out and as the general code writes
        it, and the names of the members the layout left to the general code.
        """
        active = self.successResultOf(self.avatar.activeLocks())
        context = PropertyContext(self.avatar, active.locks if locks else [], active.now)
        kind, keys = propfind.parseRequest(body)
        members = self.successResultOf(self.avatar.listDetailed(
            ("folder",), listing.needsETags(kind, keys), listing.needsDeadProperties(kind, keys)))
        leftOver = []

        def general(context, info, dead):
            leftOver.append(info.name)
            return propfind.resourceResponse(context, info, kind, keys, dead)

        responses = listing.MemberResponses(context, ("folder",), kind, keys, general)
        found = [(responses(member), propfind.resourceResponse(context, member[0], kind, keys), member[0].name)
                 for member in members]
        return found, leftOver

    def test_measuredBodies(self):
        """
        For each body measured, with and without a lock on a member, every
        member (a file without ETag attribute, times near the next second
        and before 1970, names to escape, collections) is answered as by
        L{propfind.resourceResponse}; only those with dead properties (when
        the body may show them) are left to it.
        """
        self.assertEqual(sorted(MEASURED_BODIES), ["allprop", "bench", "outlook", "windows"])
        withDead = {"a&b.vfb", "plain.vfb", COLLECTION}
        for name, body in MEASURED_BODIES.items():
            for locks in (False, True):
                found, leftOver = self.answers(body.encode("utf-8"), locks)
                self.assertEqual(len(found), len(FILES) + 23)
                for laidOut, general, member in found:
                    self.assertEqual(laidOut, general, (name, locks, member))
                self.assertEqual(set(leftOver), set() if name in ("outlook", "bench") else withDead, (name, locks))

    def test_propertiesTwice(self):
        """
        A body naming properties twice (the entity tag too) is answered
        with each twice, as by L{propfind.resourceResponse}.
        """
        body = (b'<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/><D:resourcetype/><D:getlastmodified/>'
                b"<D:getetag/><D:resourcetype/><D:getlastmodified/><D:displayname/><D:displayname/>"
                b"</D:prop></D:propfind>")
        found, _ = self.answers(body, True)
        for laidOut, general, member in found:
            self.assertEqual(laidOut, general, member)
        self.assertEqual(dict((member, laidOut.count("<D:getetag>")) for laidOut, _, member in found)["empty.vfb"], 2)

    def test_sameForKind(self):
        """
        The properties said to be the same for every file and every
        collection (or for every one no lock covers) are.
        """
        context = PropertyContext(self.avatar, [], 0)
        fixed = [prop for prop in LIVE.values() if prop.sameForKind or prop.sameWithoutLocks]
        self.assertEqual(len(fixed), 3)
        for isCollection in (False, True):
            infos = [ResourceInfo(("folder", name), isCollection, size, seconds, seconds / 2, inode)
                     for name, size, seconds, inode in [("a", 0, 0.0, 1), ("b c&.vfb", 10, 1.7e9, 2),
                                                        ("x" * 200, 2**40, -5.5, 3)]]
            for prop in fixed:
                self.assertEqual(len({prop.render(context, info) for info in infos}), 1, prop)


class LiveDateCacheTests(SynchronousTestCase):
    """
    L{properties.httpDate} and L{properties.isoDate}, which remember each
    second formatted, give what formatting each time gives: on both sides
    of every second's end, whatever the local time zone, and once they
    started again.
    """

    #: Fractions of a second around the points where rounding to
    #: microseconds (formatdate) may make the next second.
    FRACTIONS = (0.0, 1e-9, 0.25, 0.5, 0.999998, 0.9999984, 0.9999985, 0.999999, 0.9999994, 0.9999995,
                 0.9999996, 0.9999999)

    def times(self):
        for second in (0, 1, -1, -2, 59, 86399, 951782399, 1765000000, 1765065599, 253402300798):
            for fraction in self.FRACTIONS:
                yield second + fraction

    def assertFormattedAsEachTime(self):
        for _ in range(2):  # computed, then remembered
            for seconds in self.times():
                self.assertEqual(properties.httpDate(seconds), formatdate(seconds, usegmt=True), seconds)
                self.assertEqual(properties.isoDate(seconds), strftime("%Y-%m-%dT%H:%M:%SZ", gmtime(seconds)),
                                 seconds)

    def test_secondBoundaries(self):
        """
        Times just before, at and after the end of a second, before and
        after 1970, at the end of a day, of a leap day and of year 9999.
        """
        self.assertFormattedAsEachTime()

    def test_secondsShared(self):
        """
        Times of one second, asked in any order, give that second's date;
        one a hair below the next second gives the next one's HTTP-date
        when formatdate rounds it up.
        """
        base = 1765000000
        for fraction in (0.5, 0.0, 0.9999995, 0.999999, 0.1, 0.9999999):
            self.assertEqual(properties.httpDate(base + fraction), formatdate(base + fraction, usegmt=True))
        self.assertEqual(properties.httpDate(base + 0.9999999), formatdate(base + 1, usegmt=True))
        self.assertEqual(properties.httpDate(base + 0.5), formatdate(base, usegmt=True))

    def test_timeZones(self):
        """
        The dates are in UTC whatever the local zone, before and after it
        changes (what one zone remembered holds in another).
        """
        before = os.environ.get("TZ")

        def restore():
            if before is None:
                os.environ.pop("TZ", None)
            else:
                os.environ["TZ"] = before
            time.tzset()

        self.addCleanup(restore)
        for zone in ("UTC", "America/New_York", "Asia/Kolkata", "Pacific/Chatham", "EST5EDT,M3.2.0,M11.1.0",
                     "IST-5:30"):
            os.environ["TZ"] = zone
            time.tzset()
            self.assertFormattedAsEachTime()

    def test_startedAgain(self):
        """
        Past the dates they hold, they forget them all and go on giving
        the same dates.
        """
        self.patch(properties, "DATES_HELD", 3)
        self.patch(properties, "_httpDates", {})
        self.patch(properties, "_isoDates", {})
        self.assertFormattedAsEachTime()
        self.assertLessEqual(len(properties._httpDates), 3)
        self.assertLessEqual(len(properties._isoDates), 3)


class InfoTests(SynchronousTestCase):
    """
    The L{ResourceInfo} the store makes of a member's status, without the
    namedtuple's constructor, is the one that constructor makes.
    """

    def test_sameInfo(self):
        """
        For a file and a directory, created before and after they were
        last modified: the same fields, the same type, its C{name}.
        """
        base = FilePath(self.mktemp())
        base.makedirs()
        base.child("f.vfb").setContent(b"12345")
        for name in ("f.vfb", ""):
            real = os.lstat(base.child(name).path if name else base.path)
            for changed, modified in ((real.st_ctime, real.st_mtime), (100.5, 200.25), (300.75, 200.25),
                                      (200.25, 200.25)):
                fields = list(real)
                fields[stat.ST_MTIME], fields[stat.ST_CTIME] = int(modified), int(changed)
                st = os.stat_result(fields, {"st_mtime": modified, "st_ctime": changed})
                info = files._info(("top", name or "dir"), st)
                expected = ResourceInfo(path=("top", name or "dir"), isCollection=stat.S_ISDIR(st.st_mode),
                                        size=st.st_size, modified=st.st_mtime,
                                        created=min(st.st_ctime, st.st_mtime), inode=st.st_ino)
                self.assertIs(type(info), ResourceInfo)
                self.assertEqual(info, expected)
                self.assertIs(info.isCollection, not name)
                self.assertEqual(info.name, name or "dir")
                self.assertEqual(info.created, min(changed, modified))


class ListingTests(SynchronousTestCase):
    """
    L{CalendarStore.listing} reads the members' dead properties without
    opening a property file for each member.
    """

    def setUp(self):
        self.store = CalendarStore(FilePath(self.mktemp()))
        for i in range(20):
            self.store.write((f"f{i:02d}.vfb",), b"x")
        for i in range(0, 20, 4):
            self.store.setDeadProperties((f"f{i:02d}.vfb",), {"p": f"<p>{i}</p>"})

    def listed(self):
        return {info.name: dead for info, _, dead in self.store.listing((), deadProperties=True)}

    def test_deadProperties(self):
        """
        Each member comes with its own dead properties, or none.
        """
        self.assertEqual(self.listed(), {f"f{i:02d}.vfb": ({"p": f"<p>{i}</p>"} if i % 4 == 0 else {})
                                         for i in range(20)})

    def test_onlyPropertyFilesRead(self):
        """
        Only the members that have dead properties have them read: the
        others cost no attempt to open a property file.
        """
        read = []
        deadProperties = self.store.deadProperties

        def reading(path, isCollection=None):
            read.append(path)
            return deadProperties(path, isCollection)

        self.patch(self.store, "deadProperties", reading)
        self.listed()
        self.assertEqual(sorted(read), [(f"f{i:02d}.vfb",) for i in range(0, 20, 4)])

    def test_manyWithProperties(self):
        """
        Past the number of names it holds, it looks for each member's
        properties, with the same answer.
        """
        expected = self.listed()
        self.patch(CalendarStore, "PROPERTY_NAMES_HELD", 2)
        self.assertIsNone(self.store._namesWithProperties(self.store.root.path))
        self.assertEqual(self.listed(), expected)

    def test_descriptorsClosed(self):
        """
        A listing left half-way (the client went away) closes what it
        opened of the folder, as a finished one does.
        """
        before = sorted(os.listdir("/proc/self/fd"))
        members = self.store.listing((), True, True)
        next(members)
        self.assertNotEqual(sorted(os.listdir("/proc/self/fd")), before)
        members.close()
        self.assertEqual(sorted(os.listdir("/proc/self/fd")), before)
        self.assertEqual(len(list(self.store.listing(()))), 20)
        self.assertEqual(sorted(os.listdir("/proc/self/fd")), before)


class UserListingTests(SynchronousTestCase):
    """
    A user who is no administrator lists only their own files (and their
    rooms'), however the names are spelled.
    """

    def test_ownFilesOnly(self):
        """
        Of the top folder, alice (delegate of the room orion) sees her own
        and orion's files, spelled in any case, and not bob's, nor other
        names, nor a collection named as her file.
        """
        store = CalendarStore(FilePath(self.mktemp()))
        for name in ["alice.vfb", "Alice.ICS", "alice.avail.ics", "orion.vfb", "bob.vfb", "alice.txt"]:
            store.write((name,), b"x")
        store.root.child("ALICE.vfb").makedirs()
        store.write(("ALICE.vfb", "alice.vfb"), b"x")
        avatar = CalendarAvatar("alice", False, store, rooms=("orion",))
        own = ["Alice.ICS", "alice.avail.ics", "alice.vfb", "orion.vfb"]
        listed = self.successResultOf(avatar.listDetailed((), True, True))
        self.assertEqual(sorted(info.name for info, _, _ in listed), own)
        self.assertEqual(sorted(info.name for info in self.successResultOf(avatar.list(()))), own)
