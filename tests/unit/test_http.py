"""
End-to-end tests of publishing and looking up over HTTP in memory
(L{tests.memory}), against the embedded demo directory.
"""

from twisted.trial import unittest

from tests.helpers import basicAuth, inline, outlookVFB, publicAnswer, statusOf
from tests.memory import startMemoryServer


class PublishAndLookupTests(unittest.TestCase):
    """
    A user publishes with PUT and Basic auth; anyone looks up by uid or mail
    local part.
    """

    def setUp(self):
        self.server = startMemoryServer(self)
        self.http = self.server.client()

    async def put(self, path, body, login="alice", password=None, headers=None):
        h = basicAuth(login, password) if login else {}
        h.update(headers or {})
        response = await self.http.put(self.server.url(path), data=body, headers=h)
        return response, await response.content()

    async def get(self, path, headers=None, method="GET"):
        response = await self.http.request(method, self.server.url(path), headers=headers or {})
        return response, await response.content()

    @inline
    async def test_publishCreatesThenReplaces(self):
        """
        The first PUT answers 201, the next 204, and the file holds the last
        body.
        """
        response, _ = await self.put("/pub/calendar/alice.vfb", outlookVFB("alice@example.com"))
        self.assertEqual(response.code, 201)
        second = outlookVFB("alice@example.com", busy="20210106T070000Z/PT1H")
        response, _ = await self.put("/pub/calendar/alice.vfb", second)
        self.assertEqual(response.code, 204)
        self.assertEqual(self.server.store.read(("alice.vfb",)), second)

    @inline
    async def test_lookupByUid(self):
        """
        /calendar/<uid>.vfb serves the published times with calendar headers.
        """
        body = outlookVFB("alice@example.com", newline=b"\n")
        await self.put("/pub/calendar/alice.vfb", body)
        response, content = await self.get("/calendar/alice.vfb")
        self.assertEqual(response.code, 200)
        self.assertEqual(content, publicAnswer(self.server.store, "alice"))
        self.assertEqual(response.headers.getRawHeaders(b"Content-Type"), [b"text/calendar; charset=utf-8"])
        self.assertTrue(response.headers.getRawHeaders(b"ETag")[0].startswith(b'"'))
        self.assertTrue(response.headers.hasHeader(b"Last-Modified"))

    @inline
    async def test_lookupByMailLocalPart(self):
        """
        bsmith's mail is betty@example.com: Outlook asks for betty.vfb and gets
        bsmith's file.
        """
        body = outlookVFB("betty@example.com")
        response, _ = await self.put("/pub/calendar/bsmith.vfb", body, login="bsmith")
        self.assertEqual(response.code, 201)
        response, content = await self.get("/calendar/betty.vfb")
        self.assertEqual((response.code, content), (200, publicAnswer(self.server.store, "bsmith")))
        response, content = await self.get("/calendar/BETTY.vfb")
        self.assertEqual((response.code, content), (200, publicAnswer(self.server.store, "bsmith")))

    @inline
    async def test_lookupHead(self):
        """
        HEAD answers like GET without a body.
        """
        await self.put("/pub/calendar/alice.vfb", outlookVFB())
        response, content = await self.get("/calendar/alice.vfb", method="HEAD")
        self.assertEqual((response.code, content), (200, b""))

    @inline
    async def test_conditionalLookup(self):
        """
        If-None-Match with the current ETag, or If-Modified-Since with the
        Last-Modified date, answers 304; a stale ETag gets the file.
        """
        await self.put("/pub/calendar/alice.vfb", outlookVFB())
        response, _ = await self.get("/calendar/alice.vfb")
        etag = response.headers.getRawHeaders(b"ETag")[0]
        modified = response.headers.getRawHeaders(b"Last-Modified")[0]
        response, content = await self.get("/calendar/alice.vfb", {b"If-None-Match": [etag]})
        self.assertEqual((response.code, content), (304, b""))
        response, content = await self.get("/calendar/alice.vfb", {b"If-Modified-Since": [modified]})
        self.assertEqual(response.code, 304)
        response, content = await self.get("/calendar/alice.vfb", {b"If-None-Match": [b'"stale"']})
        self.assertEqual(response.code, 200)

    @inline
    async def test_conditionalDateInvalid(self):
        """
        An If-Modified-Since that is not a date is ignored (RFC 9110,
        13.1.3), whatever Twisted's date parser makes of it: the file.
        """
        await self.put("/pub/calendar/alice.vfb", outlookVFB())
        for path in ("/calendar/alice.vfb", "/pub/calendar/alice.vfb"):
            _, whole = await self.get(path, basicAuth("alice"))
            for value in (b";", b"; length=3", b"tomorrow", b"Sun, 99 Foo 2026 25:61:00 GMT"):
                response, content = await self.get(path, {b"If-Modified-Since": [value], **basicAuth("alice")})
                self.assertEqual((response.code, content), (200, whole), (value, path))

    @inline
    async def test_lookupUnknown(self):
        """
        Nobody by that name, or nothing published, is 404 with a short text.
        """
        response, content = await self.get("/calendar/nobody.vfb")
        self.assertEqual(response.code, 404)
        self.assertEqual(content, b"No free/busy times published for nobody.\n")
        response, content = await self.get("/calendar/carol.vfb")
        self.assertEqual(response.code, 404)
        self.assertEqual(content, b"No free/busy times published for carol.\n")
        response, _ = await self.get("/calendar/alice.txt")
        self.assertEqual(response.code, 404)

    @inline
    async def test_ownerReadsBack(self):
        """
        The owner may GET their own file under /pub/calendar, not another's.
        """
        body = outlookVFB()
        await self.put("/pub/calendar/alice.vfb", body)
        response, content = await self.get("/pub/calendar/alice.vfb", basicAuth("alice"))
        self.assertEqual((response.code, content), (200, body))
        response, _ = await self.get("/pub/calendar/alice.vfb", basicAuth("carol"))
        self.assertEqual(response.code, 403)

    @inline
    async def test_crossUserPublishForbidden(self):
        """
        bsmith may not write alice.vfb (403) and alice's file is untouched.
        """
        body = outlookVFB()
        await self.put("/pub/calendar/alice.vfb", body)
        response, content = await self.put("/pub/calendar/alice.vfb", outlookVFB("x@y"), login="bsmith")
        self.assertEqual(response.code, 403)
        self.assertIn(b"bsmith", content)
        self.assertEqual(self.server.store.read(("alice.vfb",)), body)

    @inline
    async def test_ownNameCaseInsensitive(self):
        """
        Alice.vfb is alice's own file, stored under the canonical name.
        """
        response, _ = await self.put("/pub/calendar/Alice.vfb", outlookVFB())
        self.assertEqual(response.code, 201)
        self.assertIsNotNone(self.server.store.stat(("alice.vfb",)))

    @inline
    async def test_unauthenticated(self):
        """
        No credentials or a wrong password: 401 with a Basic challenge.
        """
        for login, password in [(None, None), ("alice", "nope"), ("nobody", "x")]:
            response, _ = await self.put("/pub/calendar/alice.vfb", outlookVFB(), login=login, password=password)
            self.assertEqual(response.code, 401)
            challenge = response.headers.getRawHeaders(b"WWW-Authenticate")[0]
            self.assertTrue(challenge.startswith(b'Basic realm="'))
        self.assertIsNone(self.server.store.stat(("alice.vfb",)))

    @inline
    async def test_emptyPasswordRefused(self):
        """
        An empty password (an unauthenticated bind) is 401.
        """
        response, _ = await self.put("/pub/calendar/alice.vfb", outlookVFB(), password="")
        self.assertEqual(response.code, 401)

    @inline
    async def test_filterInjectionLogins(self):
        """
        Logins with LDAP filter syntax match nobody, even with a real
        password.
        """
        for login in ["*", "a*", "*)(uid=*", "alice)(|(uid=*", "al\\2a", "alice\x00"]:
            response, _ = await self.put("/pub/calendar/alice.vfb", outlookVFB(), login=login, password="wonderland")
            self.assertEqual(response.code, 401, login)

    @inline
    async def test_utf8Password(self):
        """
        A non-ASCII password sent as UTF-8 works.
        """
        response, _ = await self.put("/pub/calendar/dave.vfb", outlookVFB(), login="dave")
        self.assertEqual(response.code, 201)

    @inline
    async def test_invalidCalendarKeepsOldFile(self):
        """
        Garbage, a calendar without VFREEBUSY and an unparseable period are
        400 with a one-line reason; the previous file stays.
        """
        body = outlookVFB()
        await self.put("/pub/calendar/alice.vfb", body)
        bad = [
            b"garbage\n",
            b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
            outlookVFB(busy="yesterday/tomorrow"),
            b"\xff\xfe not utf-8",
        ]
        for data in bad:
            response, content = await self.put("/pub/calendar/alice.vfb", data)
            self.assertEqual(response.code, 400, data)
            self.assertEqual(content.count(b"\n"), 1)
        self.assertEqual(self.server.store.read(("alice.vfb",)), body)

    @inline
    async def test_wrongMediaType(self):
        """
        A multipart or form body is 415, for a .vfb and a full .ics calendar.
        """
        for mediaType in [b"multipart/form-data; boundary=x", b"application/x-www-form-urlencoded", b"image/png"]:
            for name in ("alice.vfb", "alice.ics"):
                response, _ = await self.put("/pub/calendar/" + name, outlookVFB(),
                                             headers={b"Content-Type": [mediaType]})
                self.assertEqual(response.code, 415)
        response, _ = await self.put("/pub/calendar/alice.vfb", outlookVFB(),
                                     headers={b"Content-Type": [b"text/calendar; charset=utf-8"]})
        self.assertEqual(response.code, 201)

    @inline
    async def test_emptyPlaceholder(self):
        """
        An empty PUT by the owner is a placeholder; a lookup of it is 404.
        """
        response, _ = await self.put("/pub/calendar/alice.vfb", b"")
        self.assertEqual(response.code, 201)
        response, _ = await self.get("/calendar/alice.vfb")
        self.assertEqual(response.code, 404)

    @inline
    async def test_otherMethodsNotAllowed(self):
        """
        Methods the tree does not offer are 405 with Allow.
        """
        response, _ = await self.get("/pub/calendar/alice.vfb", basicAuth("alice"), method="PATCH")
        self.assertEqual(response.code, 405)
        self.assertIn(b"PUT", response.headers.getRawHeaders(b"Allow")[0])
        response, _ = await self.get("/calendar/alice.vfb", method="POST")
        self.assertEqual(response.code, 405)
        self.assertEqual(response.headers.getRawHeaders(b"Allow"), [b"GET, HEAD"])

    @inline
    async def test_optionsWithoutAuthentication(self):
        """
        OPTIONS needs no credentials and says DAV to Office.
        """
        response = await self.server.rawRequest(
            b"OPTIONS /pub/calendar/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        head = response.split(b"\r\n\r\n")[0].lower()
        self.assertEqual(statusOf(response), 200)
        self.assertIn(b"\r\nms-author-via: dav", head)
        self.assertIn(b"\r\ncontent-length: 0", head)
        self.assertIn(b"\r\nallow: ", head)


class UploadLimitTests(unittest.TestCase):
    """
    Bodies larger than --max-upload are refused with 413 before they are
    read or authenticated, and the old file stays.
    """

    def setUp(self):
        self.server = startMemoryServer(self, "--max-upload", "4K")

    def request(self, head: bytes, body: bytes = b"") -> bytes:
        return self.server.rawRequest(head + b"\r\n" + body)

    @inline
    async def test_declaredLengthTooLarge(self):
        """
        A Content-Length over the limit is 413 at once, with no 100 Continue,
        even without credentials.
        """
        head = (b"PUT /pub/calendar/alice.vfb HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n"
                b"Expect: 100-continue\r\n")
        response = await self.request(head)
        self.assertEqual(statusOf(response), 413)
        self.assertNotIn(b"100 Continue", response)

    @inline
    async def test_chunkedTooLarge(self):
        """
        A chunked body is cut off with 413 once it passes the limit.
        """
        chunk = b"x" * 1000
        body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(10)) + b"0\r\n\r\n"
        head = b"PUT /pub/calendar/alice.vfb HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n" + b"\r\n".join(
            [b"Authorization: " + basicAuth("alice")[b"Authorization"][0]]) + b"\r\n"
        response = await self.request(head, body)
        self.assertEqual(statusOf(response), 413)
        self.assertIsNone(self.server.store.stat(("alice.vfb",)))

    @inline
    async def test_smallBodyWholeInOneRead(self):
        """
        An oversized body that arrives whole with its headers is still
        refused, and nothing is rendered.
        """
        body = outlookVFB() * 20
        head = (b"PUT /pub/calendar/alice.vfb HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n" % len(body)
                + b"Authorization: " + basicAuth("alice")[b"Authorization"][0] + b"\r\n")
        response = await self.request(head, body)
        self.assertEqual(statusOf(response), 413)
        self.assertEqual(response.count(b"HTTP/1.1"), 1)
        self.assertIsNone(self.server.store.stat(("alice.vfb",)))

    @inline
    async def test_underTheLimit(self):
        """
        A body under the limit is published.
        """
        body = outlookVFB()
        head = (b"PUT /pub/calendar/alice.vfb HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                b"Content-Length: %d\r\n" % len(body)
                + b"Authorization: " + basicAuth("alice")[b"Authorization"][0] + b"\r\n")
        response = await self.request(head, body)
        self.assertEqual(statusOf(response), 201)


class TraversalTests(unittest.TestCase):
    """
    Names that try to leave the tree, or are not plain names, are refused.
    """

    def setUp(self):
        self.server = startMemoryServer(self)
        outside = self.server.root.parent().child("outside.vfb")
        outside.setContent(b"secret")
        self.outside = outside

    async def send(self, method: bytes, target: bytes, login="alice", body=b""):
        head = b"%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n" % (method, target, len(body))
        if login:
            head += b"Authorization: " + basicAuth(login)[b"Authorization"][0] + b"\r\n"
        return await self.server.rawRequest(head + b"\r\n" + body)

    @inline
    async def test_publishTraversal(self):
        """
        PUT to .., %2e%2e, %2f, backslashes, absolute paths and NUL never
        writes outside the tree.
        """
        targets = [
            b"/pub/calendar/../outside.vfb",
            b"/pub/calendar/%2e%2e/outside.vfb",
            b"/pub/calendar/..%2Foutside.vfb",
            b"/pub/calendar/..%5Coutside.vfb",
            b"/pub/calendar/%2Ftmp%2Foutside.vfb",
            b"/pub/calendar/alice.vfb%00",
            b"/pub/calendar/.alice.vfb",
            b"/pub/calendar/%2e%2e%2f%2e%2e%2foutside.vfb",
            b"http://x/pub/calendar/../../outside.vfb",
        ]
        for target in targets:
            response = await self.send(b"PUT", target, body=outlookVFB())
            self.assertIn(statusOf(response), (400, 403, 404), target)
        self.assertEqual(self.outside.getContent(), b"secret")
        self.assertEqual([c.name for c in self.server.store.children(())], [])

    @inline
    async def test_lookupTraversal(self):
        """
        Lookups with traversal never read outside the tree.
        """
        for target in [b"/calendar/../outside.vfb", b"/calendar/%2e%2e%2foutside.vfb", b"/calendar/..%5coutside.vfb",
                       b"/calendar/%00.vfb", b"/calendar/a/b.vfb"]:
            response = await self.send(b"GET", target, login=None)
            self.assertIn(statusOf(response), (400, 404), target)
            self.assertNotIn(b"secret", response)

    @inline
    async def test_symlinkOutside(self):
        """
        A symbolic link in the tree that points outside is neither read nor
        written through.
        """
        self.outside.linkTo(self.server.root.child("alice.vfb"))
        response = await self.send(b"PUT", b"/pub/calendar/alice.vfb", body=outlookVFB())
        self.assertEqual(statusOf(response), 403)
        response = await self.send(b"GET", b"/calendar/alice.vfb", login=None)
        self.assertIn(statusOf(response), (403, 404))
        self.assertNotIn(b"secret", response)
        self.assertEqual(self.outside.getContent(), b"secret")


class DirectoryDownTests(unittest.TestCase):
    """
    A directory that cannot be reached is 503 with Retry-After, never 401
    or 500.
    """

    def setUp(self):
        # A port nobody listens on: connections are refused.
        self.server = startMemoryServer(
            self, "--ldap", "ldap://127.0.0.1:389/ou=people,dc=example,dc=com", "--ldap-timeout", "2"
        )
        self.http = self.server.client()

    @inline
    async def test_publish503(self):
        """
        Publishing while the directory is down: 503 with Retry-After.
        """
        response = await self.http.put(self.server.url("/pub/calendar/alice.vfb"), data=outlookVFB(),
                                       headers=basicAuth("alice"))
        self.assertEqual(response.code, 503)
        self.assertTrue(response.headers.hasHeader(b"Retry-After"))
        await response.content()

    @inline
    async def test_lookup503(self):
        """
        Looking up while the directory is down: 503 with Retry-After.
        """
        response = await self.http.get(self.server.url("/calendar/alice.vfb"))
        self.assertEqual(response.code, 503)
        self.assertTrue(response.headers.hasHeader(b"Retry-After"))
        await response.content()
