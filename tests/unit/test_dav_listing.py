"""
Tests for L{fbtwist.web.dav.listing}: the responses of the members of a
collection, laid out once per PROPFIND, say what the store holds (checked
with another XML parser than the server's) and are those the general
per-resource code writes.
"""

import os
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

from fbtwist.access.avatar import CalendarAvatar
from fbtwist.store.tree import CalendarStore
from fbtwist.web.dav import listing, propfind, urls
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
