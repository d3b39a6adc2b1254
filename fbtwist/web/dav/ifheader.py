"""
The WebDAV C{If} header (RFC 4918 section 10.4): parsing and evaluation::

    If = "If" ":" ( 1*No-tag-list | 1*Tagged-list )
    No-tag-list = List
    Tagged-list = Resource-Tag 1*List
    List = "(" 1*Condition ")"
    Condition = ["Not"] (State-token | "[" entity-tag "]")

The header is true when any one of its lists is true; a list is true when
all its conditions are; an untagged list is about the request URI, a tagged
one about the resource its tag names.
"""

from typing import Callable, List, NamedTuple, Optional, Set, Tuple

from twisted.web import http

from fbtwist.web.responses import HTTPError


class Condition(NamedTuple):
    """
    @ivar negated: Whether C{Not} precedes it.
    @ivar kind: C{"token"} (a state token) or C{"etag"}.
    @ivar value: The token (without C{<>}) or the entity tag (with quotes).
    """

    negated: bool
    kind: str
    value: str


class ConditionList(NamedTuple):
    """
    @ivar tag: The resource tag (a URL) or C{None} for the request URI.
    """

    tag: Optional[str]
    conditions: Tuple[Condition, ...]


class ResourceState(NamedTuple):
    """
    What a condition is matched against.

    @ivar etag: The resource's current entity tag, or C{None}.
    @ivar tokens: The lock tokens of the locks covering it.
    """

    etag: Optional[str]
    tokens: frozenset


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


def _matches(condition: Condition, state: ResourceState) -> bool:
    if condition.kind == "token":
        found = condition.value in state.tokens
    else:
        value = condition.value
        found = state.etag is not None and (value == state.etag or value == "W/" + state.etag)
    return found != condition.negated


def evaluate(lists: List[ConditionList], stateOf: Callable[[Optional[str]], ResourceState]) -> bool:
    """
    Whether the header is true.

    @param stateOf: Given a list's tag (C{None}: the request URI), the
        state of the resource it names.
    """
    states = {}
    for conditionList in lists:
        if conditionList.tag not in states:
            states[conditionList.tag] = stateOf(conditionList.tag)
        state = states[conditionList.tag]
        if all(_matches(c, state) for c in conditionList.conditions):
            return True
    return False


def submittedTokens(lists: List[ConditionList]) -> Set[str]:
    """
    The lock tokens the client submits: every state token the header names
    outside a C{Not}.
    """
    return {
        c.value for each in lists for c in each.conditions if c.kind == "token" and not c.negated
    }
