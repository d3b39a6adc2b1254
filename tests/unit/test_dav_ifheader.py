"""
Tests for L{fbtwist.web.dav.ifheader}: the WebDAV C{If} header.
"""

from twisted.trial.unittest import SynchronousTestCase

from fbtwist.web.dav.ifheader import Condition, ConditionList, ResourceState, evaluate, parseIf, submittedTokens
from fbtwist.web.responses import HTTPError

TOKEN = "opaquelocktoken:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"
ETAG = '"abc"'


def stateOf(states):
    return lambda tag: states.get(tag, ResourceState(None, frozenset()))


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


class EvaluateIfTests(SynchronousTestCase):
    """
    The header is true when any list is true; a list when all its
    conditions are.
    """

    def test_tokenMatches(self):
        """
        A state token matches when a lock with that token covers the resource.
        """
        locked = stateOf({None: ResourceState(ETAG, frozenset([TOKEN]))})
        self.assertTrue(evaluate(parseIf(f"(<{TOKEN}>)"), locked))
        self.assertFalse(evaluate(parseIf("(<opaquelocktoken:other>)"), locked))
        self.assertTrue(evaluate(parseIf(f"(<{TOKEN}> [{ETAG}])"), locked))
        self.assertFalse(evaluate(parseIf(f'(<{TOKEN}> ["bad"])'), locked))

    def test_notNoLock(self):
        """
        C{(Not <DAV:no-lock>)} is always true, C{(<DAV:no-lock>)} never.
        """
        unlocked = stateOf({})
        self.assertTrue(evaluate(parseIf("(Not <DAV:no-lock>)"), unlocked))
        self.assertFalse(evaluate(parseIf("(<DAV:no-lock>)"), unlocked))
        self.assertTrue(evaluate(parseIf("(<opaquelocktoken:x>) (Not <DAV:no-lock>)"), unlocked))

    def test_etagOfMissingResource(self):
        """
        No entity tag matches a resource that does not exist; its negation does.
        """
        self.assertFalse(evaluate(parseIf(f"([{ETAG}])"), stateOf({})))
        self.assertTrue(evaluate(parseIf(f"(Not [{ETAG}])"), stateOf({})))

    def test_weakTagMatchesStrong(self):
        """
        A weak form of the current entity tag matches it.
        """
        self.assertTrue(evaluate(parseIf(f"([W/{ETAG}])"), stateOf({None: ResourceState(ETAG, frozenset())})))

    def test_taggedListUsesItsResource(self):
        """
        A tagged list is evaluated against the resource its tag names.
        """
        states = stateOf({"http://h/coll/": ResourceState(None, frozenset([TOKEN]))})
        self.assertTrue(evaluate(parseIf(f"<http://h/coll/> (<{TOKEN}>)"), states))
        self.assertFalse(evaluate(parseIf(f"<http://h/other> (<{TOKEN}>)"), states))

    def test_submittedTokens(self):
        """
        Tokens outside C{Not} are submitted, wherever they are.
        """
        lists = parseIf(f"<http://h/a> (<{TOKEN}>) (Not <opaquelocktoken:n>) "
                        f"<http://h/b> ([{ETAG}] <opaquelocktoken:b>)")
        self.assertEqual(submittedTokens(lists), {TOKEN, "opaquelocktoken:b"})
