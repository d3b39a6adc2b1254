"""
Every anonymous way of asking about a name over HTTP answers a directory
member who never published as it answers a name nobody has: the lookup
URL's forms (C{.ifb}, a whole address, C{%40}), HEAD, conditional and range
requests, the page's HTML and JSON.  In memory (L{tests.memory}) against the
demo directory, where carol is a member who never published and zzyzx
nobody (anonymous FTP: L{tests.integration.test_lookupleaks}).
"""

import json
from urllib.parse import unquote

from twisted.trial import unittest

from tests.helpers import inline
from tests.memory import startMemoryServer
from tests.unit.test_lookupmiss import withoutName

MEMBER, STRANGER = "carol", "zzyzx"


class AnonymousAnswersTests(unittest.TestCase):
    """
    Each request, for carol and for zzyzx, gets the same answer but for the
    name.
    """

    def setUp(self):
        self.server = startMemoryServer(self)
        self.http = self.server.client()

    async def answer(self, method, path, headers=None):
        response = await self.http.request(method, self.server.url(path), headers=headers)
        body = await response.content()
        return response.code, response.headers, body

    async def assertAlike(self, method, template, headers=None, name=lambda n: n, pair=(MEMBER, STRANGER)):
        """
        Ask C{template} (with C{{name}} in it) for carol and for zzyzx (or
        the names in C{pair}) and check that the answers differ in the name
        only.

        @return: The status, headers and body of the stranger's answer,
            the name replaced by C{<name>}.
        """
        answers = []
        for who in pair:
            code, headers_, body = await self.answer(method, template.format(name=name(who)), headers)
            raw = [(k, v) for k, v in headers_.getAllRawHeaders() if k.lower() != b"date"]
            # What the server saw, percent-decoded.
            answers.append((code,) + withoutName(unquote(name(who)), raw, body))
        self.assertEqual(answers[0], answers[1], template)
        return answers[1]

    @inline
    async def test_lookupForms(self):
        """
        .vfb, .ifb, any case, a whole address and one with %40, a foreign
        domain: one 404 for both.
        """
        for template, name in [
            ("/calendar/{name}.vfb", str),
            ("/calendar/{name}.ifb", str),
            ("/calendar/{name}.VFB", str.upper),
            ("/calendar/{name}.vfb", lambda n: n + "@example.com"),
            ("/calendar/{name}.ifb", lambda n: n + "%40example.com"),
            ("/calendar/{name}.vfb", lambda n: n + "@example.org"),
        ]:
            code, _, body = await self.assertAlike("GET", template, name=name)
            self.assertEqual(code, 404)
            self.assertEqual(body, b"No free/busy times published for <name>.\n")

    @inline
    async def test_parametersHeadAndConditions(self):
        """
        Range parameters, jCal, HEAD, If-None-Match (also *),
        If-Modified-Since and Range: one answer for both.
        """
        for method, template, headers in [
            ("GET", "/calendar/{name}.vfb?start=20210105&end=20210106", None),
            ("GET", "/calendar/{name}.vfb?format=application/calendar%2Bjson", None),
            ("HEAD", "/calendar/{name}.vfb", None),
            ("GET", "/calendar/{name}.vfb", {b"If-None-Match": [b"*"]}),
            ("GET", "/calendar/{name}.vfb", {b"If-None-Match": [b'"abc"']}),
            ("GET", "/calendar/{name}.vfb", {b"If-Modified-Since": [b"Sat, 01 Jan 2000 00:00:00 GMT"]}),
            ("GET", "/calendar/{name}.vfb", {b"Range": [b"bytes=0-10"]}),
        ]:
            code, _, _ = await self.assertAlike(method, template, headers)
            self.assertEqual((method, template, code), (method, template, 404))
        for template, status in [("/calendar/{name}.vfb?start=yesterday", 400),
                                 ("/calendar/{name}.vfb?format=text/html", 406)]:
            code, _, _ = await self.assertAlike("GET", template)
            self.assertEqual((template, code), (template, status))

    @inline
    async def test_groupForms(self):
        """
        The demo's group team (nobody published) and a made-up group: one
        answer for .ifb, HEAD, If-None-Match and a range too.
        """
        for method, template, headers in [
            ("GET", "/calendar/group/{name}.ifb", None),
            ("HEAD", "/calendar/group/{name}.vfb", None),
            ("GET", "/calendar/group/{name}.vfb", {b"If-None-Match": [b"*"]}),
            ("GET", "/calendar/group/{name}.vfb?start=20210105&period=P1D", None),
        ]:
            code, _, _ = await self.assertAlike(method, template, headers, pair=("team", STRANGER))
            self.assertEqual((method, template, code), (method, template, 404))

    @inline
    async def test_page(self):
        """
        The page, as HTML and as JSON, shows both as not found.
        """
        code, _, body = await self.assertAlike("GET", "/calendar/?who={name}&week=2021-01-04")
        self.assertEqual(code, 200)
        self.assertIn(b"Nobody by this name has published", body)
        code, _, body = await self.assertAlike("GET", "/calendar/?who={name}&week=2021-01-04",
                                               {b"Accept": [b"application/json"]})
        self.assertEqual(code, 200)
        self.assertEqual(json.loads(body)["people"], [{"name": "<name>", "found": False, "busy": []}])

