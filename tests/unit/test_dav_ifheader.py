"""
Tests for L{fbtwist.web.dav.ifheader}: the grammar of the WebDAV C{If} header
(its evaluation is the domain's: L{tests.unit.test_preconditions}).
"""

from twisted.trial.unittest import SynchronousTestCase

from fbtwist.access.values import Condition, ConditionList
from fbtwist.web.dav.ifheader import parseIf
from fbtwist.web.responses import HTTPError

TOKEN = "opaquelocktoken:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"
ETAG = '"abc"'


class ParseIfTests(SynchronousTestCase):
    """
    The grammar of RFC 4918 section 10.4.
    """

    def test_untaggedList(self):
        """
        One untagged list with a token and an entity tag.
        """
        self.assertEqual(
            parseIf(f"(<{TOKEN}> [{ETAG}])"),
            [ConditionList(None, (Condition(False, "token", TOKEN), Condition(False, "etag", ETAG)))],
        )

    def test_notAndSeveralLists(self):
        """
        C{Not} negates the next condition; several lists are alternatives.
        """
        lists = parseIf(f"(<{TOKEN}>) (Not <DAV:no-lock>)")
        self.assertEqual(lists[1], ConditionList(None, (Condition(True, "token", "DAV:no-lock"),)))
        self.assertEqual(len(lists), 2)

    def test_taggedLists(self):
        """
        A resource tag applies to the lists after it, until the next tag.
        """
        lists = parseIf(f'<http://h/a> (<{TOKEN}>) ([W/"x"]) <http://h/b> (Not [{ETAG}])')
        self.assertEqual([each.tag for each in lists], ["http://h/a", "http://h/a", "http://h/b"])
        self.assertEqual(lists[1].conditions, (Condition(False, "etag", 'W/"x"'),))

    def test_malformed(self):
        """
        Anything off the grammar is a 400.
        """
        for header in ["", "(", "()", f"<{TOKEN}>", "(<a>", "([abc])", "(Not)", "(<a>) <http://h/> (<b>)",
                       "<http://h/> (<a>) (<b>) x", "([\"unterminated)"]:
            with self.assertRaises(HTTPError, msg=header) as caught:
                parseIf(header)
            self.assertEqual(caught.exception.code, 400)
