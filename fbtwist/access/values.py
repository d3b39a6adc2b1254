"""
The values the avatar's operations take and give: store paths and what the
tree says about a resource, WebDAV locks and their scopes, depths and
timeouts, and the preconditions a changing operation is asked under.  The
store defines most of them; protocol code names them from here, so that it
depends on the avatar's API alone, never on the store.
"""

from typing import List, Mapping, NamedTuple, Optional, Tuple

from fbtwist.store.locks import EXCLUSIVE, INFINITY, SHARED, Lock, parseTimeout
from fbtwist.store.paths import FileSnapshot, ResourceInfo, StorePath, validateName

__all__ = [
    "EXCLUSIVE",
    "INFINITY",
    "NO_PRECONDITIONS",
    "SHARED",
    "ActiveLocks",
    "Condition",
    "ConditionList",
    "FileSnapshot",
    "Lock",
    "LockGranted",
    "Preconditions",
    "ResourceInfo",
    "StorePath",
    "parseTimeout",
    "validateName",
]


class Condition(NamedTuple):
    """
    One condition of a WebDAV C{If} header list.

    @ivar negated: Whether C{Not} precedes it.
    @ivar kind: C{"token"} (a state token) or C{"etag"}.
    @ivar value: The token (without C{<>}) or the entity tag (with quotes).
    """

    negated: bool
    kind: str
    value: str


class ConditionList(NamedTuple):
    """
    One list of a WebDAV C{If} header: true when all its conditions are.

    @ivar tag: The resource tag (a URL) or C{None} for the resource the
        operation is about.
    """

    tag: Optional[str]
    conditions: Tuple[Condition, ...]


class Preconditions(NamedTuple):
    """
    What a client states must hold for a change to be made, as values: the
    protocol reads them from the wire (in the reactor's thread) and the
    avatar evaluates them against the tree and its locks
    (L{fbtwist.access.preconditions}), right before the change and under
    the lock store's mutex where it can, so that they hold when it is made.

    @ivar ifMatch: An C{If-Match} list of entity tags (or C{*}), or
        C{None}; with C{ifNoneMatch}, about a file's content: asked by the
        operations that replace or remove it (publish, delete).
    @ivar ifNoneMatch: An C{If-None-Match} list, or C{None}.
    @ivar ifHeader: The lists of a WebDAV C{If} header, or C{None}: true
        when any one list is.
    @ivar tagged: The store path each resource tag of C{ifHeader} names
        (C{None}: outside the tree, which has no state).
    @ivar tokens: The lock tokens the client holds: a lock whose token is
        here, taken by this user, does not stand in the way.  None (the
        default, as over FTP): every lock does.
    """

    ifMatch: Optional[bytes] = None
    ifNoneMatch: Optional[bytes] = None
    ifHeader: Optional[Tuple[ConditionList, ...]] = None
    tagged: Mapping[str, Optional[StorePath]] = {}
    tokens: frozenset = frozenset()


#: No precondition and no lock token: the change is made unless a lock
#: protects what it changes (FTP, which cannot present tokens).
NO_PRECONDITIONS = Preconditions()


class ActiveLocks(NamedTuple):
    """
    The locks in force, for showing them (WebDAV's C{DAV:lockdiscovery}).

    @ivar locks: The L{Lock}s.
    @ivar now: The lock clock's time, to tell how long each has left.
    """

    locks: List[Lock]
    now: float


class LockGranted(NamedTuple):
    """
    A lock taken or refreshed.

    @ivar lock: The L{Lock}.
    @ivar created: Whether taking it created an empty file first (a lock of
        an unmapped name).
    @ivar now: The lock clock's time when it was granted.
    """

    lock: Lock
    created: bool
    now: float
