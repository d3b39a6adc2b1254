"""
The WebDAV C{If} header (RFC 4918 section 10.4): its grammar::

    If = "If" ":" ( 1*No-tag-list | 1*Tagged-list )
    No-tag-list = List
    Tagged-list = Resource-Tag 1*List
    List = "(" 1*Condition ")"
    Condition = ["Not"] (State-token | "[" entity-tag "]")

An untagged list is about the request URI, a tagged one about the
resource its tag names.  The parsed lists are values of the domain
(L{fbtwist.access.values.ConditionList}), which evaluates them
(L{fbtwist.access.preconditions.ifHeaderHolds}).
"""

from typing import List, Optional

from twisted.web import http

from fbtwist.access.values import Condition, ConditionList
from fbtwist.web.responses import HTTPError


def _bad(reason: str) -> HTTPError:
    return HTTPError(http.BAD_REQUEST, "bad If header: " + reason)


def parseIf(header: str) -> List[ConditionList]:
    """
    @raise HTTPError: 400 when the header does not follow the grammar.
    """
    lists: List[ConditionList] = []
    tag: Optional[str] = None
    tagged: Optional[bool] = None
    i, n = 0, len(header)

    def skip(i):
        while i < n and header[i] in " \t\r\n":
            i += 1
        return i

    def angle(i):
        end = header.find(">", i + 1)
        if end < 0:
            raise _bad("unterminated <")
        return header[i + 1:end], end + 1

    i = skip(i)
    if i >= n:
        raise _bad("empty")
    while True:
        i = skip(i)
        if i >= n:
            break
        if header[i] == "<":
            if tagged is False:
                raise _bad("tagged and untagged lists mixed")
            tagged = True
            tag, i = angle(i)
            i = skip(i)
            if i >= n or header[i] != "(":
                raise _bad("a resource tag must be followed by a list")
            continue
        if header[i] != "(":
            raise _bad(f"unexpected {header[i]!r}")
        if tagged is None:
            tagged = False
        i += 1
        conditions = []
        while True:
            i = skip(i)
            if i >= n:
                raise _bad("unterminated list")
            if header[i] == ")":
                i += 1
                break
            negated = False
            if header.startswith("Not", i) or header.startswith("not", i):
                negated = True
                i = skip(i + 3)
                if i >= n:
                    raise _bad("Not at the end")
            if header[i] == "<":
                token, i = angle(i)
                if not token:
                    raise _bad("empty state token")
                conditions.append(Condition(negated, "token", token))
            elif header[i] == "[":
                i = skip(i + 1)
                start = i
                if header.startswith("W/", i):
                    i += 2
                if i >= n or header[i] != '"':
                    raise _bad("an entity tag must be quoted")
                end = header.find('"', i + 1)
                if end < 0:
                    raise _bad("unterminated entity tag")
                etag = header[start:end + 1]
                i = skip(end + 1)
                if i >= n or header[i] != "]":
                    raise _bad("unterminated [")
                i += 1
                conditions.append(Condition(negated, "etag", etag))
            else:
                raise _bad(f"unexpected {header[i]!r} in a list")
        if not conditions:
            raise _bad("empty list")
        lists.append(ConditionList(tag if tagged else None, tuple(conditions)))
    return lists
