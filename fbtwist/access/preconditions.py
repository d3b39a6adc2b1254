"""
Whether a change may be made: the preconditions a client states
(L{fbtwist.access.values.Preconditions}: entity tags, a WebDAV C{If}
header, lock tokens) evaluated against the tree's state and its locks.

The protocols read the preconditions from the wire; the avatar evaluates
them here, with the state it looked up right before the change.  These
functions take that state as values and functions, so they neither know a
protocol nor touch the tree themselves.
"""

from typing import Callable, Iterable, List, Optional, Sequence, Tuple

from fbtwist.access.values import Condition, ConditionList, Lock, Preconditions, StorePath
from fbtwist.errors import LockedBy, PreconditionFailed

#: A change a lock may protect: (store path, recursive, membership), as
#: L{fbtwist.store.locks.LockStore.affecting} takes them.
Change = Tuple[StorePath, bool, bool]


def etagMatches(header: bytes, etag: Optional[str], weak: bool = False) -> bool:
    """
    Whether an C{If-Match} / C{If-None-Match} list matches C{etag} (C{None}:
    no current entity).  C{*} matches any existing entity.

    @param weak: Use the weak comparison (C{If-None-Match} on a read).
    """
    if etag is None:
        return False
    tags = [t.strip() for t in header.decode("latin-1").split(",")]
    if "*" in tags:
        return True
    if weak:
        tags = [t[2:] if t.startswith("W/") else t for t in tags]
    return etag in tags


def checkEntityTags(preconditions: Preconditions, exists: bool, etag: Optional[str]) -> None:
    """
    C{If-Match} and C{If-None-Match} (C{*} included) against the current
    version of a file.

    @param exists: Whether anything is at the path.
    @param etag: Its entity tag (C{None} for a collection or nothing).
    @raise PreconditionFailed: When they do not hold.
    """
    ifMatch, ifNoneMatch = preconditions.ifMatch, preconditions.ifNoneMatch
    if ifMatch is not None:
        if not exists or not (ifMatch.strip() == b"*" or etagMatches(ifMatch, etag)):
            raise PreconditionFailed("If-Match does not match the current version")
    if ifNoneMatch is not None and exists:
        if ifNoneMatch.strip() == b"*" or etagMatches(ifNoneMatch, etag):
            raise PreconditionFailed("If-None-Match matches the current version")


def _matches(condition: Condition, etag: Optional[str], tokens: frozenset) -> bool:
    if condition.kind == "token":
        found = condition.value in tokens
    else:
        value = condition.value
        found = etag is not None and (value == etag or value == "W/" + etag)
    return found != condition.negated


def ifHeaderHolds(lists: Sequence[ConditionList],
                  stateOf: Callable[[Optional[str]], Tuple[Optional[str], frozenset]]) -> bool:
    """
    Whether a WebDAV C{If} header is true: any one of its lists is, a list
    when all its conditions are (RFC 4918 section 10.4).

    @param stateOf: Given a list's tag (C{None}: the resource changed), the
        entity tag of the resource it names (or C{None}) and the tokens of
        the locks covering it.
    """
    states = {}
    for conditionList in lists:
        if conditionList.tag not in states:
            states[conditionList.tag] = stateOf(conditionList.tag)
        etag, tokens = states[conditionList.tag]
        if all(_matches(c, etag, tokens) for c in conditionList.conditions):
            return True
    return False


def checkIfHeader(preconditions: Preconditions, path: StorePath, inForce: Iterable[Lock],
                  etagOf: Callable[[StorePath], Optional[str]]) -> None:
    """
    Evaluate the C{If} header of C{preconditions} (when there is one) for a
    change of C{path}.

    @param inForce: The locks in force.
    @param etagOf: The entity tag of the file at a path, or C{None}.
    @raise PreconditionFailed: When it is false.
    """
    lists = preconditions.ifHeader
    if lists is None:
        return
    inForce = list(inForce)

    def stateOf(tag):
        target = path if tag is None else preconditions.tagged.get(tag)
        if target is None:
            return None, frozenset()
        return etagOf(target), frozenset(lock.token for lock in inForce if lock.covers(target))

    if not ifHeaderHolds(lists, stateOf):
        raise PreconditionFailed("the If header does not hold")


def submittedTokens(lists: Optional[Iterable[ConditionList]]) -> frozenset:
    """
    The lock tokens a WebDAV C{If} header submits: every state token it
    names outside a C{Not}.
    """
    return frozenset(
        c.value for each in lists or () for c in each.conditions if c.kind == "token" and not c.negated
    )


def checkLocks(preconditions: Preconditions, uid: Optional[str], changes: Iterable[Change],
               affecting: Callable[[StorePath, bool, bool], List[Lock]],
               isCollection: Callable[[StorePath], bool]) -> None:
    """
    Refuse a change that a lock stands in the way of: one whose token
    C{preconditions} does not submit, or that another user took.

    @param changes: What the change touches (L{Change}s).
    @param affecting: The locks a change of a path needs the tokens of
        (L{fbtwist.store.locks.LockStore.affecting}).
    @param isCollection: Whether a path is a collection (to name a lock's
        root).
    @raise LockedBy: Naming the first lock in the way.
    """
    for path, recursive, membership in changes:
        for lock in affecting(path, recursive, membership):
            if lock.token in preconditions.tokens and lock.principal == uid:
                continue
            raise LockedBy(f"{'/'.join(path) or '/'} is locked by a WebDAV client", lock, isCollection(lock.path))
