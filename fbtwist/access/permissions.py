"""
Who may do what in the calendar tree: the one function every protocol and
every method asks.
"""

from enum import Enum
from typing import FrozenSet, Iterable, Iterator, Optional

from fbtwist.availability.publish import AVAILABILITY_SUFFIX
from fbtwist.errors import PermissionDenied

#: The file kinds a user may publish under their own uid: free/busy, a full
#: calendar, and their working hours (C{VAVAILABILITY}).
PUBLISHED_SUFFIXES = (".vfb", ".ics", AVAILABILITY_SUFFIX)


class Action(Enum):
    """
    What a request wants to do with a path.
    """

    LIST = "list"  # see that a resource exists and its properties
    READ = "read"  # read a file's content (also the source of a COPY)
    WRITE = "write"  # create, replace, delete, lock, unlock or proppatch a file; COPY/MOVE onto it
    MANAGE = "manage"  # change collections: MKCOL, DELETE, COPY, MOVE, LOCK or PROPPATCH them


def ownFileName(uid: str, name: str, rooms: Iterable[str] = ()):
    """
    @param rooms: The rooms C{uid} is a delegate of: their files are
        C{uid}'s to publish too.
    @return: The canonical spelling of C{name} when it is one of C{uid}'s
        own published files, or one of C{rooms}' (compared
        case-insensitively), else C{None}.
    """
    lowered = name.lower()
    for owner in (uid, *rooms):
        for suffix in PUBLISHED_SUFFIXES:
            if lowered == (owner + suffix).lower():
                return owner + suffix
    return None


def authorize(uid, isAdmin: bool, action: Action, path, isCollection: bool = False,
              anonymousReads: bool = False, rooms: Iterable[str] = ()) -> None:
    """
    Decide whether a user may do C{action} on C{path}.

    Administrators may do anything.  Anonymous users (C{uid} is C{None}) may
    do nothing here (they read through the lookup URLs), unless
    C{anonymousReads} lets them list and read (read-only anonymous FTP,
    C{--ftp-anonymous}).  A user may list the root collection and read,
    write and delete their own C{<uid>.vfb} (and C{<uid>.ics}, a full
    calendar, and C{<uid>.avail.ics}, their working hours) at the top of
    the tree, and the same files of the rooms they are a delegate of;
    nothing else.

    @param path: The store path (a tuple of names).
    @param isCollection: Whether C{path} is (or would be) a collection.
    @param anonymousReads: Whether an anonymous user may list and read.
    @param rooms: The uids of the rooms C{uid} is a delegate of (the
        directory's C{--room-delegate-attribute}).
    @raise PermissionDenied: With a short reason when the answer is no.
    """
    if isAdmin:
        return
    if uid is None:
        if anonymousReads and action in (Action.LIST, Action.READ):
            return
        raise PermissionDenied("log in to publish")
    if action is Action.LIST and path == ():
        return
    if action is Action.MANAGE or isCollection or len(path) != 1:
        raise PermissionDenied("only administrators may change collections")
    if ownFileName(uid, path[0], rooms) is None:
        # The working-hours file is left out: the sentence names the main files.
        own = " or ".join(uid + suffix for suffix in PUBLISHED_SUFFIXES if suffix != AVAILABILITY_SUFFIX)
        raise PermissionDenied(f"{uid} may only publish {own}")


def visibleMembers(uid, isAdmin: bool, members: Iterable, anonymousReads: bool = False,
                   rooms: Iterable[str] = ()) -> Iterator:
    """
    The members of a collection that a user may see (L{Action.LIST}): what
    a WebDAV PROPFIND and an FTP LIST show alike.  A user who is not an
    administrator sees their own files (and their rooms') only.

    @param members: The collection's members (each with C{path} and
        C{isCollection}), lazily.
    """
    for member in members:
        try:
            authorize(uid, isAdmin, Action.LIST, member.path, member.isCollection, anonymousReads, rooms)
        except PermissionDenied:
            continue
        yield member


def listableNames(uid, isAdmin: bool, collection, anonymousReads: bool = False,
                  rooms: Iterable[str] = ()) -> Optional[FrozenSet[str]]:
    """
    The names (in lower case) that a member of C{collection} must have for
    L{authorize} to let C{uid} list it: what a listing may skip without
    looking further at a member (a user's publisher lists the top folder
    of every user's file to see its own).  L{authorize} still decides for
    the members named so.

    @return: Those names, or C{None} when any name may be listed.
    """
    if isAdmin or (uid is None and anonymousReads):
        return None
    if uid is None or tuple(collection) != ():
        # Members of other collections than the top one are a user's never.
        return frozenset()
    return frozenset((owner + suffix).lower() for owner in (uid, *rooms) for suffix in PUBLISHED_SUFFIXES)
