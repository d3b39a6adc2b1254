"""
WebDAV over HTTP in memory (L{tests.memory}) against the demo directory: the Windows and
Office sequences, properties, locks, preconditions, and every way a user
might try to write someone else's file.
"""

from xml.etree.ElementTree import fromstring

from twisted.trial import unittest

from fbtwist.store.locks import MAX_TIMEOUT
from tests.davhelpers import (
    WIN32_PROPPATCH,
    lockBody,
    propfindBody,
    recordEvents,
    startMemoryDAVServer,
)
from tests.helpers import inline, outlookVFB, statusOf
from tests.unit.test_dav_xml import BILLION_LAUGHS, EXTERNAL

MINIREDIR = {"User-Agent": "Microsoft-WebDAV-MiniRedir/10.0.19045", "Translate": "f"}
OFFICE = {"User-Agent": "Microsoft Office/15.0 (Windows NT 10.0; Microsoft Outlook 15.0.4420; Pro)"}
WIN32 = "{urn:schemas-microsoft-com:}"




def header(response, name):
    values = response.headers.getRawHeaders(name.encode("ascii"))
    return values[0].decode("latin-1") if values else None


def multistatus(body):
    """
    {href: {property key: (status code, element)}} of a 207 body.
    """
    result = {}
    for response in fromstring(body).findall("{DAV:}response"):
        href = response.find("{DAV:}href").text
        props = result.setdefault(href, {})
        for propstat in response.findall("{DAV:}propstat"):
            code = int(propstat.find("{DAV:}status").text.split()[1])
            for prop in propstat.find("{DAV:}prop"):
                props[prop.tag] = (code, prop)
    return result


class DAVTestCase(unittest.TestCase):
    def setUp(self):
        self.server, self.dav = startMemoryDAVServer(self)
        self.events = recordEvents(self)


class OptionsTests(DAVTestCase):
    """
    OPTIONS is answered without authentication, as Office needs it.
    """

    @inline
    async def test_anonymousOptions(self):
        """
        200, DAV: 1, 2, MS-Author-Via: DAV, an empty body and Allow with every DAV method.
        """
        for path in ["/pub/calendar/", "/pub/calendar", "/pub/calendar/alice.vfb"]:
            response, body = await self.dav.request("OPTIONS", path, login=None)
            self.assertEqual(response.code, 200)
            self.assertEqual(body, b"")
            self.assertEqual(header(response, "DAV"), "1, 2")
            self.assertEqual(header(response, "MS-Author-Via"), "DAV")
            allowed = {m.strip() for m in header(response, "Allow").split(",")}
            for method in ["GET", "HEAD", "PUT", "DELETE", "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE",
                           "LOCK", "UNLOCK", "OPTIONS"]:
                self.assertIn(method, allowed)

    @inline
    async def test_optionsOnTheWire(self):
        """
        The bytes on the wire: 200 (never 204) with Content-Length: 0.
        """
        raw = await self.server.rawRequest(b"OPTIONS /pub/calendar/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                           b"Connection: close\r\n\r\n")
        head = raw.split(b"\r\n\r\n")[0].lower().split(b"\r\n")
        self.assertEqual(head[0], b"http/1.1 200 ok")
        self.assertIn(b"content-length: 0", head)
        self.assertIn(b"dav: 1, 2", head)

    @inline
    async def test_otherMethodsNeedLogin(self):
        """
        PROPFIND without credentials is challenged.
        """
        response, _ = await self.dav.request("PROPFIND", "/pub/calendar/", login=None, headers={"Depth": "0"})
        self.assertEqual(response.code, 401)


class WindowsAndOfficeTests(DAVTestCase):
    """
    Replays of what Windows' WebClient and Office send (PROTOCOL.md).
    """

    @inline
    async def test_miniRedirCreateSequence(self):
        """
        PROPFIND 404, empty PUT 201, LOCK, PROPPATCH Win32* 207, HEAD, PUT
        with the token, PROPPATCH, UNLOCK 204; the file and its properties stay.
        """
        path = "/pub/calendar/alice.vfb"
        response, _ = await self.dav.request("PROPFIND", path, headers={**MINIREDIR, "Depth": "0"})
        self.assertEqual(response.code, 404)
        response, _ = await self.dav.request("PUT", path, body=b"", headers=MINIREDIR)
        self.assertEqual(response.code, 201)
        response, body = await self.dav.request(
            "LOCK", path, body=lockBody(owner="ALICE-PC\\alice"),
            headers={**MINIREDIR, "Timeout": "Second-3600", "Content-Type": "text/xml; charset=\"utf-8\""},
        )
        self.assertEqual(response.code, 200)
        token = header(response, "Lock-Token")
        self.assertTrue(token.startswith("<opaquelocktoken:") and token.endswith(">"), token)
        active = fromstring(body).find("{DAV:}lockdiscovery/{DAV:}activelock")
        self.assertEqual(active.find("{DAV:}locktoken/{DAV:}href").text, token[1:-1])
        self.assertEqual(active.find("{DAV:}timeout").text, f"Second-{min(3600, MAX_TIMEOUT)}")
        self.assertIsNotNone(active.find("{DAV:}lockscope/{DAV:}exclusive"))

        response, body = await self.dav.request("PROPPATCH", path, body=WIN32_PROPPATCH,
                                                headers={**MINIREDIR, "If": f"({token})"})
        self.assertEqual(response.code, 207)
        props = multistatus(body)[path]
        self.assertEqual(
            {k: v[0] for k, v in props.items()},
            {WIN32 + n: 200 for n in ["Win32CreationTime", "Win32LastAccessTime", "Win32LastModifiedTime",
                                       "Win32FileAttributes"]},
        )
        response, _ = await self.dav.request("HEAD", path, headers=MINIREDIR)
        self.assertEqual(response.code, 200)
        self.assertEqual(header(response, "Content-Length"), "0")

        vfb = outlookVFB("alice@example.com")
        response, _ = await self.dav.request("PUT", path, body=vfb, headers={**MINIREDIR, "If": f"({token})"})
        self.assertEqual(response.code, 204)
        response, _ = await self.dav.request("PROPPATCH", path, body=WIN32_PROPPATCH,
                                             headers={**MINIREDIR, "If": f"({token})"})
        self.assertEqual(response.code, 207)
        response, _ = await self.dav.request("UNLOCK", path, headers={**MINIREDIR, "Lock-Token": token})
        self.assertEqual(response.code, 204)

        self.assertEqual(self.server.store.read(("alice.vfb",)), vfb)
        response, body = await self.dav.request(
            "PROPFIND", path, body=propfindBody(WIN32 + "Win32FileAttributes", "{DAV:}lockdiscovery"),
            headers={"Depth": "0"},
        )
        props = multistatus(body)[path]
        self.assertEqual(props[WIN32 + "Win32FileAttributes"][1].text, "00000020")
        self.assertEqual(list(props["{DAV:}lockdiscovery"][1]), [])
        published = [e for e in self.events if e["fbEvent"] == "publish"]
        self.assertEqual([(e["uid"], e["protocol"], e["path"], e["size"]) for e in published],
                         [("alice", "http", "alice.vfb", 0), ("alice", "http", "alice.vfb", len(vfb))])

    @inline
    async def test_placeholderIsNotPublished(self):
        """
        An empty placeholder is looked up as nothing published (404).
        """
        response, _ = await self.dav.request("PUT", "/pub/calendar/alice.vfb", body=b"")
        self.assertEqual(response.code, 201)
        response, _ = await self.dav.request("GET", "/calendar/alice.vfb", login=None)
        self.assertEqual(response.code, 404)

    @inline
    async def test_officePropfind(self):
        """
        Office's Depth 1 PROPFIND of the folder: 207, XML, the folder as a
        collection and the user's own file as a plain resource.
        """
        await self.dav.request("PUT", "/pub/calendar/alice.vfb", body=outlookVFB())
        await self.dav.request("PUT", "/pub/calendar/bsmith.vfb", login="bsmith", body=outlookVFB())
        response, body = await self.dav.request(
            "PROPFIND", "/pub/calendar/", body=propfindBody("{DAV:}resourcetype"), headers={**OFFICE, "Depth": "1"},
        )
        self.assertEqual(response.code, 207)
        self.assertTrue(header(response, "Content-Type").startswith("application/xml"))
        result = multistatus(body)
        self.assertEqual(set(result), {"/pub/calendar/", "/pub/calendar/alice.vfb"})
        self.assertEqual([c.tag for c in result["/pub/calendar/"]["{DAV:}resourcetype"][1]], ["{DAV:}collection"])
        self.assertEqual(list(result["/pub/calendar/alice.vfb"]["{DAV:}resourcetype"][1]), [])

    @inline
    async def test_adminSeesEveryFile(self):
        """
        An administrator's Depth 1 PROPFIND lists every member, with live properties.
        """
        await self.dav.request("PUT", "/pub/calendar/alice.vfb", body=outlookVFB())
        await self.dav.request("PUT", "/pub/calendar/bsmith.vfb", login="bsmith", body=outlookVFB())
        response, body = await self.dav.request("PROPFIND", "/pub/calendar/", login="admin", headers={"Depth": "1"})
        result = multistatus(body)
        self.assertEqual(set(result), {"/pub/calendar/", "/pub/calendar/alice.vfb", "/pub/calendar/bsmith.vfb"})
        alice = result["/pub/calendar/alice.vfb"]
        self.assertEqual(alice["{DAV:}getcontentlength"][1].text, str(len(outlookVFB())))
        self.assertEqual(alice["{DAV:}getcontenttype"][1].text, "text/calendar")
        self.assertEqual(alice["{DAV:}getetag"][1].text, self.server.store.etag(("alice.vfb",)))
        for key in ["getlastmodified", "creationdate", "displayname", "supportedlock", "lockdiscovery"]:
            self.assertEqual(alice["{DAV:}" + key][0], 200)


class PropertyTests(DAVTestCase):
    """
    PROPFIND and PROPPATCH details.
    """

    async def publish(self):
        response, _ = await self.dav.request("PUT", "/pub/calendar/alice.vfb", body=outlookVFB())
        self.assertEqual(response.code, 201)

    @inline
    async def test_depthInfinityRefused(self):
        """
        Depth infinity (also by default) is 403 with DAV:propfind-finite-depth.
        """
        for headers in [{"Depth": "infinity"}, {}]:
            response, body = await self.dav.request("PROPFIND", "/pub/calendar/", headers=headers)
            self.assertEqual(response.code, 403)
            self.assertIsNotNone(fromstring(body).find("{DAV:}propfind-finite-depth"))

    @inline
    async def test_depthInfinityOnFileIsDepthZero(self):
        """
        On a file, Depth infinity (also by default) answers like Depth 0.
        """
        await self.publish()
        for headers in [{"Depth": "infinity"}, {}, {"Depth": "1"}]:
            response, body = await self.dav.request("PROPFIND", "/pub/calendar/alice.vfb", headers=headers)
            self.assertEqual(response.code, 207, headers)
            result = multistatus(body)
            self.assertEqual(list(result), ["/pub/calendar/alice.vfb"])
            self.assertEqual(result["/pub/calendar/alice.vfb"]["{DAV:}getcontentlength"][1].text,
                             str(len(outlookVFB())))

    @inline
    async def test_unknownPropertyIs404(self):
        """
        Unknown properties are listed with 404 inside the 207, known ones 200.
        """
        await self.publish()
        response, body = await self.dav.request(
            "PROPFIND", "/pub/calendar/alice.vfb", body=propfindBody("{DAV:}getetag", "{urn:x}nope", "bare"),
            headers={"Depth": "0"},
        )
        self.assertEqual(response.code, 207)
        props = multistatus(body)["/pub/calendar/alice.vfb"]
        self.assertEqual({k: v[0] for k, v in props.items()}, {"{DAV:}getetag": 200, "{urn:x}nope": 404, "bare": 404})

    @inline
    async def test_propname(self):
        """
        propname lists names without values, dead ones included.
        """
        await self.publish()
        await self.dav.request("PROPPATCH", "/pub/calendar/alice.vfb", body=WIN32_PROPPATCH)
        response, body = await self.dav.request(
            "PROPFIND", "/pub/calendar/alice.vfb", headers={"Depth": "0"},
            body=b'<D:propfind xmlns:D="DAV:"><D:propname/></D:propfind>',
        )
        props = multistatus(body)["/pub/calendar/alice.vfb"]
        self.assertIn("{DAV:}getetag", props)
        self.assertIn(WIN32 + "Win32FileAttributes", props)
        self.assertTrue(all(len(e) == 0 and not e.text for _, e in props.values()))

    @inline
    async def test_protectedPropertyAllOrNothing(self):
        """
        Setting a protected property is 403 cannot-modify-protected-property,
        the rest 424, and nothing is stored.
        """
        await self.publish()
        body = (b'<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:schemas-microsoft-com:"><D:set><D:prop>'
                b"<Z:Win32FileAttributes>1</Z:Win32FileAttributes><D:getetag>x</D:getetag>"
                b"</D:prop></D:set></D:propertyupdate>")
        response, answer = await self.dav.request("PROPPATCH", "/pub/calendar/alice.vfb", body=body)
        self.assertEqual(response.code, 207)
        root = fromstring(answer)
        statuses = {}
        for propstat in root.iter("{DAV:}propstat"):
            code = int(propstat.find("{DAV:}status").text.split()[1])
            for prop in propstat.find("{DAV:}prop"):
                statuses[prop.tag] = code
            if code == 403:
                self.assertIsNotNone(propstat.find("{DAV:}error/{DAV:}cannot-modify-protected-property"))
        self.assertEqual(statuses, {"{DAV:}getetag": 403, WIN32 + "Win32FileAttributes": 424})
        self.assertEqual(self.server.store.deadProperties(("alice.vfb",)), {})

    @inline
    async def test_removeProperty(self):
        """
        A removed property answers 404 afterwards.
        """
        await self.publish()
        await self.dav.request("PROPPATCH", "/pub/calendar/alice.vfb", body=WIN32_PROPPATCH)
        response, _ = await self.dav.request(
            "PROPPATCH", "/pub/calendar/alice.vfb",
            body=b'<D:propertyupdate xmlns:D="DAV:"><D:remove><D:prop><Z:Win32FileAttributes '
                 b'xmlns:Z="urn:schemas-microsoft-com:"/></D:prop></D:remove></D:propertyupdate>',
        )
        self.assertEqual(response.code, 207)
        self.assertNotIn(WIN32 + "Win32FileAttributes", self.server.store.deadProperties(("alice.vfb",)))

    @inline
    async def test_deadPropertiesBounded(self):
        """
        Properties cannot grow without bound: past the limit PROPPATCH is
        507 and the stored properties stay as they were.
        """
        from fbtwist.access.avatar import MAX_DEAD_PROPERTIES

        await self.publish()
        value = b"x" * (MAX_DEAD_PROPERTIES // 4)
        statuses = []
        for i in range(5):
            body = (b'<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><big%d xmlns="urn:x">%s</big%d>'
                    b"</D:prop></D:set></D:propertyupdate>" % (i, value, i))
            response, _ = await self.dav.request("PROPPATCH", "/pub/calendar/alice.vfb", body=body)
            statuses.append(response.code)
        self.assertEqual(statuses, [207, 207, 207, 507, 507])
        self.assertEqual(len(self.server.store.deadProperties(("alice.vfb",))), 3)

    @inline
    async def test_unsafeXMLRefused(self):
        """
        Entity bombs, external entities and malformed XML are 400 for every
        method with an XML body, and nothing is changed.
        """
        await self.publish()
        for method in ["PROPFIND", "PROPPATCH", "LOCK"]:
            for body in [BILLION_LAUGHS, EXTERNAL, b"<D:propfind xmlns:D='DAV:'>"]:
                response, _ = await self.dav.request(method, "/pub/calendar/alice.vfb", body=body,
                                                     headers={"Depth": "0"})
                self.assertEqual(response.code, 400, (method, body[:40]))
        self.assertEqual(self.server.store.deadProperties(("alice.vfb",)), {})

    @inline
    async def test_oversizedXMLRefused(self):
        """
        An XML body larger than the upload limit is 413 before it is read.
        """
        request = (b"PROPFIND /pub/calendar/ HTTP/1.1\r\nHost: 127.0.0.1\r\nDepth: 1\r\n"
                   b"Content-Type: text/xml\r\nContent-Length: %d\r\n\r\n<D:propfind" % (64 * 1024 * 1024))
        self.assertEqual(statusOf(await self.server.rawRequest(request)), 413)


class PreconditionTests(DAVTestCase):
    """
    If-Match / If-None-Match on PUT and DELETE.
    """

    @inline
    async def test_ifNoneMatchStar(self):
        """
        If-None-Match: * creates but never replaces.
        """
        path = "/pub/calendar/alice.vfb"
        response, _ = await self.dav.request("PUT", path, body=outlookVFB(), headers={"If-None-Match": "*"})
        self.assertEqual(response.code, 201)
        response, _ = await self.dav.request("PUT", path, body=outlookVFB("x@example.com"),
                                             headers={"If-None-Match": "*"})
        self.assertEqual(response.code, 412)
        self.assertEqual(self.server.store.read(("alice.vfb",)), outlookVFB())
        events = [e for e in self.events if e["fbEvent"] == "publish-rejected"]
        self.assertEqual(events[-1]["reason"], "precondition-failed")

    @inline
    async def test_ifMatch(self):
        """
        If-Match needs the current entity tag (or * and an existing file).
        """
        path = "/pub/calendar/alice.vfb"
        response, _ = await self.dav.request("PUT", path, body=outlookVFB(), headers={"If-Match": "*"})
        self.assertEqual(response.code, 412)
        await self.dav.request("PUT", path, body=outlookVFB())
        etag = self.server.store.etag(("alice.vfb",))
        response, _ = await self.dav.request("PUT", path, body=outlookVFB(), headers={"If-Match": '"stale"'})
        self.assertEqual(response.code, 412)
        response, _ = await self.dav.request("PUT", path, body=outlookVFB(), headers={"If-Match": etag})
        self.assertEqual(response.code, 204)
        response, _ = await self.dav.request("DELETE", path, headers={"If-Match": '"stale"'})
        self.assertEqual(response.code, 412)
        response, _ = await self.dav.request("DELETE", path, headers={"If-None-Match": etag})
        self.assertEqual(response.code, 412)
        response, _ = await self.dav.request("DELETE", path, headers={"If-Match": etag})
        self.assertEqual(response.code, 204)
        self.assertIsNone(self.server.store.stat(("alice.vfb",)))


class LockTests(DAVTestCase):
    """
    Locks held by someone else, unmapped locks, and locks shared by servers.
    """

    @inline
    async def test_lockedBySomeoneElse(self):
        """
        While an administrator holds a lock on alice's file, alice's PUT,
        PROPPATCH and DELETE are 423, even with the admin's token.
        """
        path = "/pub/calendar/alice.vfb"
        await self.dav.request("PUT", path, body=outlookVFB())
        response, _ = await self.dav.request("LOCK", path, login="admin", body=lockBody())
        self.assertEqual(response.code, 200)
        token = header(response, "Lock-Token")
        for headers in [{}, {"If": f"({token})"}]:
            response, body = await self.dav.request("PUT", path, body=outlookVFB("x@example.com"), headers=headers)
            self.assertEqual(response.code, 423)
            self.assertIsNotNone(fromstring(body).find("{DAV:}lock-token-submitted"))
            response, _ = await self.dav.request("PROPPATCH", path, body=WIN32_PROPPATCH, headers=headers)
            self.assertEqual(response.code, 423)
            response, _ = await self.dav.request("DELETE", path, headers=headers)
            self.assertEqual(response.code, 423)
        response, _ = await self.dav.request("LOCK", path, body=lockBody("shared"))
        self.assertEqual(response.code, 423)
        self.assertEqual(self.server.store.read(("alice.vfb",)), outlookVFB())
        self.assertEqual([e["reason"] for e in self.events if e["fbEvent"] == "publish-rejected"],
                         ["locked", "locked"])

    @inline
    async def test_tokensOnEveryChangingMethod(self):
        """
        A depth-0 lock on a collection protects its membership: MKCOL, PUT,
        COPY and MOVE into it, and DELETE from it are 423 without the token
        and succeed with it (also named by a tagged list).
        """
        coll = "/pub/calendar/c/"
        url = self.server.url(coll)
        await self.dav.request("MKCOL", coll, login="admin")
        await self.dav.request("PUT", "/pub/calendar/source", login="admin", body=b"S")
        response, _ = await self.dav.request("LOCK", coll, login="admin", body=lockBody(), headers={"Depth": "0"})
        token = header(response, "Lock-Token")
        attempts = [
            ("MKCOL", coll + "d/", {}, 201),
            ("PUT", coll + "f", {}, 201),
            ("COPY", "/pub/calendar/source", {"Destination": url + "g"}, 201),
            ("MOVE", "/pub/calendar/source", {"Destination": url + "h"}, 201),
            ("DELETE", coll + "f", {}, 204),
        ]
        for method, path, headers, success in attempts:
            response, _ = await self.dav.request(method, path, login="admin", body=b"F" if method == "PUT" else None,
                                                 headers=headers)
            self.assertEqual(response.code, 423, method)
            response, _ = await self.dav.request(method, path, login="admin", body=b"F" if method == "PUT" else None,
                                                 headers={**headers, "If": f"<{url}> ({token})"})
            self.assertEqual(response.code, success, method)
        self.assertEqual(sorted(c.name for c in self.server.store.children(("c",))), ["d", "g", "h"])

    @inline
    async def test_unmappedLockAndRefresh(self):
        """
        LOCK on an unmapped URL creates an empty locked file (201); a LOCK
        without a body refreshes; UNLOCK with a wrong token is 409.
        """
        path = "/pub/calendar/alice.vfb"
        response, _ = await self.dav.request("LOCK", path, body=lockBody(), headers={"Timeout": "Infinite"})
        self.assertEqual(response.code, 201)
        token = header(response, "Lock-Token")
        self.assertEqual(self.server.store.read(("alice.vfb",)), b"")
        response, body = await self.dav.request("LOCK", path, headers={"If": f"({token})", "Timeout": "Second-60"})
        self.assertEqual(response.code, 200)
        self.assertEqual(fromstring(body).find(".//{DAV:}timeout").text, "Second-60")
        response, _ = await self.dav.request("LOCK", path, headers={"If": "(<opaquelocktoken:nope>)"})
        self.assertEqual(response.code, 412)
        response, _ = await self.dav.request(
            "UNLOCK", path, headers={"Lock-Token": "<opaquelocktoken:00000000-0000-0000-0000-000000000000>"})
        self.assertEqual(response.code, 409)
        response, _ = await self.dav.request("UNLOCK", path, headers={"Lock-Token": token})
        self.assertEqual(response.code, 204)

    @inline
    async def test_twoServersShareLocks(self):
        """
        A lock taken through one server is honoured by a second server on
        the same tree, and survives the first one's restart.
        """
        path = "/pub/calendar/alice.vfb"
        await self.dav.request("PUT", path, body=outlookVFB())
        response, _ = await self.dav.request("LOCK", path, body=lockBody())
        token = header(response, "Lock-Token")
        await self.server.stop()
        other, otherDAV = startMemoryDAVServer(self, "--root", self.server.root.path)
        response, _ = await otherDAV.request("PUT", path, body=outlookVFB("x@example.com"))
        self.assertEqual(response.code, 423)
        response, _ = await otherDAV.request("PUT", path, body=outlookVFB("x@example.com"),
                                             headers={"If": f"({token})"})
        self.assertEqual(response.code, 204)


class CopyMoveTests(DAVTestCase):
    """
    COPY and MOVE status codes.
    """

    @inline
    async def test_statusCodes(self):
        """
        201 new, 204 replaced, 412 with Overwrite F, 409 without a parent,
        502 for another server.
        """
        base = self.server.url("/pub/calendar/")
        await self.dav.request("MKCOL", "/pub/calendar/c/", login="admin")
        await self.dav.request("PUT", "/pub/calendar/c/a", login="admin", body=b"A")
        await self.dav.request("PROPPATCH", "/pub/calendar/c/a", login="admin", body=WIN32_PROPPATCH)

        async def send(method, source, destination, **headers):
            response, _ = await self.dav.request(method, source, login="admin",
                                                 headers={"Destination": destination, **headers})
            return response.code

        self.assertEqual(await send("COPY", "/pub/calendar/c/a", base + "c/b"), 201)
        self.assertEqual(await send("COPY", "/pub/calendar/c/a", base + "c/b"), 204)
        self.assertEqual(await send("COPY", "/pub/calendar/c/a", base + "c/b", Overwrite="F"), 412)
        self.assertEqual(await send("COPY", "/pub/calendar/c/a", base + "missing/b"), 409)
        self.assertEqual(await send("COPY", "/pub/calendar/c/a", "http://elsewhere.example/pub/calendar/x"), 502)
        self.assertEqual(await send("MOVE", "/pub/calendar/c/", base + "d/"), 201)
        self.assertEqual(self.server.store.read(("d", "b")), b"A")
        self.assertIn(WIN32 + "Win32FileAttributes", self.server.store.deadProperties(("d", "b")))
        self.assertIsNone(self.server.store.stat(("c",)))
        published = [(e["path"], e["method"]) for e in self.events if e["fbEvent"] == "publish" and "method" in e]
        self.assertEqual(published, [("c/b", "COPY"), ("c/b", "COPY")])


class CrossUserTests(DAVTestCase):
    """
    A user may write only their own file: every method, every spelling.
    """

    ALIASES = [
        "/pub/calendar/bsmith.vfb",
        "//pub/calendar/bsmith.vfb",
        "/pub/calendar/./bsmith.vfb",
        "/pub/calendar//bsmith.vfb",
        "/pub/calendar/%62smith.vfb",
        "/pub/%63alendar/bsmith%2Evfb",
        "/pub/calendar/BSMITH.VFB",
    ]

    @inline
    async def test_everyMethodRefused(self):
        """
        PUT, DELETE, MOVE, COPY, PROPPATCH, LOCK, UNLOCK and MKCOL on bsmith's
        file (or onto it) by alice are 403, and the file is untouched.
        """
        original = outlookVFB("betty@example.com")
        response, _ = await self.dav.request("PUT", "/pub/calendar/bsmith.vfb", login="bsmith", body=original)
        self.assertEqual(response.code, 201)
        response, _ = await self.dav.request("PUT", "/pub/calendar/alice.vfb", body=outlookVFB())
        self.assertEqual(response.code, 201)
        own = self.server.url("/pub/calendar/alice.vfb")
        for path in self.ALIASES:
            target = self.server.url(path)
            attempts = [
                ("PUT", path, {}, outlookVFB("alice@example.com")),
                ("DELETE", path, {}, None),
                ("PROPPATCH", path, {}, WIN32_PROPPATCH),
                ("LOCK", path, {}, lockBody()),
                ("UNLOCK", path, {"Lock-Token": "<opaquelocktoken:00000000-0000-0000-0000-000000000000>"}, None),
                ("MOVE", path, {"Destination": own}, None),
                ("COPY", path, {"Destination": own}, None),
                ("MOVE", "/pub/calendar/alice.vfb", {"Destination": target}, None),
                ("COPY", "/pub/calendar/alice.vfb", {"Destination": target}, None),
                ("MKCOL", path[: -len("bsmith.vfb")] + "newcollection", {}, None),
                ("PROPFIND", path, {"Depth": "0"}, None),
                ("GET", path, {}, None),
            ]
            for method, where, headers, body in attempts:
                response, _ = await self.dav.request(method, where, body=body, headers=headers)
                self.assertEqual(response.code, 403, f"{method} {where} {headers}")
        self.assertEqual(self.server.store.read(("bsmith.vfb",)), original)
        self.assertEqual(self.server.store.read(("alice.vfb",)), outlookVFB())
        self.assertEqual(self.server.store.deadProperties(("bsmith.vfb",)), {})
        self.assertIsNone(self.server.store.stat(("newcollection",)))
        rejected = [e for e in self.events if e["fbEvent"] == "publish-rejected"]
        self.assertEqual({(e["uid"], e["reason"], e["protocol"]) for e in rejected}, {("alice", "forbidden", "http")})

    @inline
    async def test_collectionsAreAdminsOnly(self):
        """
        A user may not make, delete, copy or move collections, nor put files
        in them; an administrator may.
        """
        response, _ = await self.dav.request("MKCOL", "/pub/calendar/c/", login="admin")
        self.assertEqual(response.code, 201)
        for method, path, headers in [
            ("MKCOL", "/pub/calendar/d/", {}),
            ("DELETE", "/pub/calendar/c/", {}),
            ("PUT", "/pub/calendar/c/alice.vfb", {}),
            ("COPY", "/pub/calendar/c/", {"Destination": self.server.url("/pub/calendar/e/")}),
            ("MOVE", "/pub/calendar/c/", {"Destination": self.server.url("/pub/calendar/e/")}),
            ("LOCK", "/pub/calendar/c/", {}),
            ("PROPPATCH", "/pub/calendar/c/", {}),
        ]:
            body = lockBody() if method == "LOCK" else WIN32_PROPPATCH if method == "PROPPATCH" else None
            response, _ = await self.dav.request(method, path, body=body, headers=headers)
            self.assertEqual(response.code, 403, method)
        response, _ = await self.dav.request("DELETE", "/pub/calendar/c/", login="admin")
        self.assertEqual(response.code, 204)
