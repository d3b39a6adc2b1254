"""
The page's "find a time" form, in memory (L{tests.memory}): the times a
week offers for everyone asked for, listed and drawn on a week grid of
their own, rendered on the server (no inline script or style).
"""

from twisted.trial import unittest

from tests.helpers import freeBusy, inline
from tests.memory import startMemoryServer


class FindOnThePageTests(unittest.TestCase):
    """
    C{/calendar/?who=...&find=PT1H} shows the suggestions.
    """

    def setUp(self):
        self.server = startMemoryServer(self, "--default-tz", "Europe/Berlin")
        self.http = self.server.client()
        self.server.store.write(("alice.vfb",), freeBusy("20250331T060000Z/20250331T140000Z"))
        self.server.store.write(("bsmith.vfb",), freeBusy("20250401T060000Z/20250404T160000Z"))

    async def page(self, query: str, code: int = 200):
        response = await self.http.get(self.server.url("/calendar/?" + query),
                                       headers={b"Accept": [b"text/html"]})
        body = (await response.content()).decode("utf-8")
        self.assertEqual(response.code, code, body)
        return response, body

    @inline
    async def test_formOnlyWithPeople(self):
        """
        The form is there once people are asked for, and keeps them.
        """
        _, body = await self.page("")
        self.assertNotIn('class="find"', body)
        _, body = await self.page("who=alice,betty&week=2025-03-31")
        self.assertIn('<form method="get" action="/calendar/" class="find">', body)
        self.assertIn('<input type="hidden" name="who" value="alice, betty" />', body)
        self.assertIn('<select id="find" name="find"><option value="PT30M">', body)
        self.assertNotIn("suggestions", body)

    @inline
    async def test_suggestionsListedAndDrawn(self):
        """
        Within working hours (08:00-18:00 Berlin) alice is free on Monday
        from 16:00 only, bsmith on Friday from 18:00 only: Monday 16:00-17:00
        and 17:00-18:00 are the week's times for both; they are listed and
        drawn as blocks.
        """
        response, body = await self.page("who=alice,betty&week=2025-03-31&find=PT1H&workhours=1")
        self.assertIn("<h2>Free for everyone (1 hour)</h2>", body)
        self.assertIn("<ol><li>Mon 31 Mar 16:00 to 17:00</li><li>Mon 31 Mar 17:00 to 18:00</li></ol>", body)
        self.assertEqual(body.count("block suggestion"), 2)
        self.assertIn('<option value="PT1H" selected="selected">', body)
        self.assertIn('name="workhours" value="1" checked="checked"', body)
        self.assertIn("find=PT1H&amp;workhours=1", body)
        self.assertNotIn("style=", body)
        self.assertNotIn("<script>", body)
        self.assertIn(b"script-src 'self'", response.headers.getRawHeaders(b"Content-Security-Policy")[0])

    @inline
    async def test_noTime(self):
        """
        A week with no time for everyone says so (alice's Monday now ends
        at 16:30, and two hours no longer fit before 18:00).
        """
        self.server.store.write(("alice.vfb",), freeBusy("20250331T060000Z/20250331T143000Z"))
        _, body = await self.page("who=alice,betty&week=2025-03-31&find=PT2H&workhours=1")
        self.assertIn("No time this week suits everyone.", body)

    @inline
    async def test_badLength(self):
        """
        A length the form does not offer is a 400.
        """
        _, body = await self.page("who=alice&find=PT7M", code=400)
        self.assertIn("find must be one of PT30M, PT1H, PT90M, PT2H", body)
