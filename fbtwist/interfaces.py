"""
The interfaces between fbtwist's roles: the calendar tree, the directory and
the avatar that protocol code acts through.
"""

from typing import NamedTuple, Tuple

from zope.interface import Attribute, Interface


class PrincipalRecord(NamedTuple):
    """
    What the directory tells of a user, a group or a room, for CalDAV
    principals.

    @ivar kind: C{"user"}, C{"group"} or C{"room"}.
    @ivar name: The user's or the room's uid, or the group's C{cn}.
    @ivar displayName: C{displayName}, else C{cn}, else C{name}.
    @ivar addresses: Mail addresses, from every mail attribute, in order.
    """

    kind: str
    name: str
    displayName: str
    addresses: Tuple[str, ...] = ()


USER = "user"
GROUP = "group"
#: A room (or other bookable resource) of the directory's rooms.
ROOM = "room"


class IUpload(Interface):
    """
    A new version of one file, invisible to readers until committed.
    """

    path = Attribute("The store path being written.")
    size = Attribute("How many bytes have been written so far.")

    def write(data):
        """
        Append C{data} (bytes).
        """

    def contents():
        """
        @return: Everything written so far.
        """

    def commit():
        """
        Replace the old version atomically.

        @return: C{True} when the file did not exist before.
        """

    def commitAsync(data=b"", check=None):
        """
        Append C{data} and commit, the slow steps (writing, fsync) away from
        the reactor; C{check()} runs just before the new version appears
        and may raise to keep the old one.

        @return: A Deferred firing with C{True} when the file did not exist
            before.
        """

    def abort():
        """
        Discard the new version, leaving the old one untouched.
        """


class ICalendarStore(Interface):
    """
    The calendar tree: collections and files addressed by tuples of names.
    """

    def stat(path):
        """
        @return: A L{fbtwist.store.paths.ResourceInfo}, or C{None} when nothing is
            at C{path}.
        """

    def etag(path):
        """
        @return: The strong entity tag of the file's content.
        """

    def read(path):
        """
        @return: The file's bytes.
        """

    def snapshot(path, whole=True):
        """
        @return: A L{fbtwist.store.paths.FileSnapshot} of the file at C{path} (its
            info, entity tag and bytes, read together), or C{None} when
            there is no file.
        @param whole: C{False}: when something was kept with the file
            (L{keep}), only that and the info (C{etag} and C{data} C{None}).
        """

    def hasOneName(path):
        """
        @return: Whether the file at C{path} is a regular file reached by
            that name only (no symbolic link, no other hard link).
        """

    def filesState(*names):
        """
        @return: The state of the files C{names} at the top of the tree,
            which any change of them through any name changes (inode, size,
            times, links; C{()} for a missing one), or C{None} when one
            cannot be told.
        """

    def filesStateSince(before, *names):
        """
        @return: The state of the files C{names} now (even right after a
            change), when it differs from their state C{before} (from
            L{filesState}) only in what setting an attribute changes (their
            change times), else C{None}.
        """

    def watchTop(changed, everything):
        """
        Watch the files at the top of the tree for changes made on this
        machine (L{fbtwist.store.changes.FolderChanges}): its C{drain()}
        calls C{changed(name, attributesOnly)} for each name changed since
        (C{attributesOnly}: only its attributes were told changed),
        C{everything()} when it cannot tell.

        @return: The watch, or C{None} when changes cannot be watched (the
            tree is on a filesystem other machines write to, or the kernel
            refuses).
        """

    def keep(snapshot, kept):
        """
        Keep C{kept} (bytes a reader made of C{snapshot}'s content) with
        that version of the file, as a cache: later snapshots of the same
        version give it back (C{FileSnapshot.kept}); nothing fails when it
        cannot be kept.
        """

    def openUpload(path):
        """
        @return: An L{IUpload} for a new version of the file at C{path}.
        """

    def write(path, data):
        """
        Replace the file at C{path} with C{data} atomically.
        """

    def delete(path):
        """
        Remove the file or collection at C{path}.
        """

    def makeCollection(path):
        """
        Create a collection.
        """

    def children(path):
        """
        @return: An iterator of L{fbtwist.store.paths.ResourceInfo}.
        """

    def listing(path, etags=False, deadProperties=False, wanted=None, named=None):
        """
        @return: An iterator of C{(ResourceInfo, entity tag or None, dead
            properties)} of the members of the collection C{path}.
        """

    def deadProperties(path, isCollection=None):
        """
        @return: The properties clients stored on the resource: a dict of
            C{"{namespace}name"} to the property's XML element as text.
        """

    def setDeadProperties(path, properties):
        """
        Replace the resource's dead properties atomically.
        """

    def copy(source, destination, recursive=True):
        """
        Copy a file or collection, dead properties included, to a
        destination that does not exist.
        """

    def move(source, destination):
        """
        Rename a file or collection, dead properties included, to a
        destination that does not exist.
        """

    def metadataDirectory(name):
        """
        @return: A L{twisted.python.filepath.FilePath} of a hidden directory in the tree for state
            every server sharing the tree must see (e.g. WebDAV locks).
        """


class IDirectory(Interface):
    """
    The user directory (LDAP).  Every method returns a L{twisted.internet.defer.Deferred} that fails
    with L{fbtwist.errors.DirectoryUnavailable} when the directory cannot be
    asked.
    """

    def authenticate(login, password):
        """
        Check a login and password.

        @return: A Deferred firing with the user's canonical uid, or failing
            with L{twisted.cred.error.UnauthorizedLogin}: with its subclass
            L{fbtwist.errors.WrongPassword} when the login names an entry
            but the password is wrong.
        """

    def resolveName(name):
        """
        Find whose free/busy file a lookup name means: a uid, a mail local
        part, or a full mail address.

        @return: A Deferred firing with the uid, or C{None}.
        """

    def isMember(uid, groupDN):
        """
        @return: A Deferred firing with whether C{uid} belongs to the group.
        """

    def groupMembers(cn, base, limit):
        """
        The members of a group, for group free/busy lookups.

        @param cn: The group's C{cn}.
        @param base: Where the groups are (searched below).
        @param limit: How many members are wanted at most.
        @return: A Deferred firing with the members' uids (at most
            C{limit + 1}: more than C{limit} means the group is too large),
            or C{None} when there is no such group.
        """

    def findRooms():
        """
        Every room (and other bookable resource) the directory lists.

        @return: A Deferred firing with L{fbtwist.availability.rooms.Room}s,
            sorted by uid (none when rooms are not configured).
        """

    def delegatedRooms(uid):
        """
        The rooms whose free/busy C{uid} may publish (as their delegate).

        @return: A Deferred firing with the rooms' uids.
        """


class IPrincipalDirectory(Interface):
    """
    Users, groups and rooms as CalDAV principals (what scheduling clients
    show and search).  Every method returns a Deferred, failing with
    L{fbtwist.errors.DirectoryUnavailable} when the directory cannot be asked.
    """

    def principal(kind, name, groupBase):
        """
        @param kind: L{USER} or L{ROOM} (C{name} a uid), or L{GROUP}
            (C{name} a C{cn} below C{groupBase}).
        @return: A Deferred firing with a L{PrincipalRecord}, or C{None}.
        """

    def principalByAddress(address, groupBase):
        """
        The one user, else the one room, else the one group (when
        C{groupBase} is given), holding the mail address C{address}
        (compared without case).

        @return: A Deferred firing with a L{PrincipalRecord}, or C{None}.
        """

    def searchPrincipals(text, groupBase, limit, kinds=None):
        """
        Users, rooms (and groups, when C{groupBase} is given) whose display
        name, C{cn}, uid or a mail address starts with C{text}, at most
        C{limit} of them, within the directory's timeout.

        @param kinds: Only principals of these kinds (L{USER}, L{GROUP},
            L{ROOM}); C{None}: all.

        @return: A Deferred firing with a list of L{PrincipalRecord}s.
        """


class IFreeBusyReader(Interface):
    """
    Someone (a user, or the anonymous reader) reading others' free/busy
    times: what the realm gives the lookups and the page, and what every
    avatar can do.  Both operations ask the one decision of what a viewer
    may see (L{fbtwist.access.visibility.FreeBusyVisibility}).
    """

    uid = Attribute("The reader's uid, or C{None} for anonymous.")

    def freeBusyFor(target, timeRange=None, detail=None, started=None, workhours=False):
        """
        What this reader may see of C{target}'s free/busy times (a
        L{fbtwist.access.visibility.Person}, C{Group}, C{Account} or
        C{PublishedFile}); with C{workhours}, the time outside each person's
        working hours marked too.

        @return: A coroutine with a C{Visible}, or C{HIDDEN} (never
            published, not visible and no such name look alike).
        """

    def freeBusyForNow(target, timeRange=None, detail=None, workhours=False):
        """
        L{freeBusyFor}'s answer when it is known without waiting, else
        C{None}.
        """

    def plainNow(target, whole=True):
        """
        When the whole answer about C{target} (no range, no working hours)
        is one published free/busy file shown at one detail and that is
        known without waiting: a C{PlainSource} naming them (with what was
        kept with that version of the file), else C{None}.  With C{whole}
        C{False}, a file something was kept with is not read (the source's
        C{published.data} is C{None}): ask again with C{True} for its
        answer.
        """

    def visibleFrom(source):
        """
        The C{Visible} answer of a L{plainNow} source, or C{HIDDEN} when
        its file cannot be read as free/busy times.
        """

    def rememberedAnswer(target):
        """
        The plain answer about C{target} remembered in memory, for the
        anonymous reader, while nothing it was made of changed.

        @return: C{(answer, None)} (its entity tag, body and time), or
            C{(None, ticket)}: give the ticket to L{rememberAnswer} with
            the answer made now, or C{(None, None)}.
        """

    def rememberAnswer(ticket, answer):
        """
        Remember C{answer} (entity tag, body, time), made for the ticket of
        L{rememberedAnswer}.
        """

    def keepAnswer(source, kept):
        """
        Keep C{kept}, made of a L{plainNow} source's answer, with that
        version of its file (a cache: see C{ICalendarStore.keep}).
        """


class ICalendarAvatar(IFreeBusyReader):
    """
    A user (or the anonymous reader) acting on the calendar tree.  Both the
    web and the FTP avatar wrap one of these, so both protocols ask the same
    permission function (L{fbtwist.access.permissions.authorize}).

    Its operations return Deferreds.  Every change takes the client's
    preconditions as a value (C{fbtwist.access.values.Preconditions}:
    entity tags, a parsed WebDAV C{If} header, lock tokens; FTP gives
    none), which the avatar evaluates right before making it, so that no
    protocol sees the locks' store; a lock in the way fails it with
    L{fbtwist.errors.LockedBy}, a precondition that does not hold with
    L{fbtwist.errors.PreconditionFailed}.
    """

    uid = Attribute("The user's uid, or C{None} for anonymous.")
    isAdmin = Attribute("Whether the user may manage the whole tree.")

    def path(segments):
        """
        Validate a client's path segments as a store path (the user's own
        file names spelled the canonical way).

        @raise fbtwist.errors.InvalidName: For invalid names.
        """

    def authorize(action, path, isCollection=False):
        """
        @raise fbtwist.errors.PermissionDenied: When this user may not do
            C{action} (an L{fbtwist.access.permissions.Action}) on C{path}.
        """

    def stat(path):
        """
        @return: A Deferred firing with the C{ResourceInfo} at C{path}, or
            C{None}.
        """

    def read(path):
        """
        @return: A Deferred firing with the bytes of the file at C{path}.
        """

    def snapshot(path):
        """
        @return: A Deferred firing with a C{FileSnapshot} (bytes, ETag and
            time of one version), or C{None}.
        """

    def list(path):
        """
        @return: A Deferred firing with an iterator of the C{ResourceInfo}s
            of the members of the collection C{path} this user may see.
        """

    def listDetailed(path, etags=False, deadProperties=False):
        """
        @return: A Deferred firing with an iterator of C{(ResourceInfo,
            entity tag or None, dead properties)} of the members of the
            collection C{path} this user may see.
        """

    def listedETag(info):
        """
        The entity tag of a file this user listed, at once.
        """

    def listedDeadProperties(info):
        """
        The dead properties of a resource this user listed, at once.
        """

    def activeLocks():
        """
        @return: A Deferred firing with the C{ActiveLocks} in force.
        """

    def publish(path, body, preconditions):
        """
        Publish C{body} at C{path} atomically, if C{preconditions} (a
        C{fbtwist.access.values.Preconditions}) hold right before it appears.

        @return: A Deferred firing with C{True} when the file was created.
        """

    def openUpload(path, preconditions):
        """
        @return: A Deferred firing with an L{IUpload} of C{path}, to commit
            with L{commitUpload}.
        """

    def commitUpload(upload, preconditions):
        """
        Commit an upload from L{openUpload} as L{publish} does.
        """

    def checkChange(path, preconditions):
        """
        @return: A Deferred failing as a change of C{path} would be refused
            (a lock, the C{If} header), else firing with C{None}.
        """

    def delete(path, preconditions):
        """
        Remove a file or a collection with everything in it, and the locks
        rooted in it.

        @return: A Deferred.
        """

    def makeCollection(path, preconditions):
        """
        @return: A Deferred.
        """

    def copy(source, destination, preconditions, overwrite=True, recursive=True):
        """
        @return: A Deferred firing with whether C{destination} was replaced.
        """

    def move(source, destination, preconditions, overwrite=True):
        """
        @return: A Deferred firing with whether C{destination} was replaced.
        """

    def authorizeMove(source, destination, keepSource):
        """
        @raise fbtwist.errors.PermissionDenied: When this user may not COPY
            (C{keepSource}) or MOVE C{source} onto C{destination}.
        """

    def patchProperties(path, updates, preconditions):
        """
        Set (to serialized XML) or remove (C{None}) dead properties, all or
        nothing.

        @return: A Deferred.
        """

    def lock(path, scope, depth, owner, timeout, preconditions):
        """
        @return: A Deferred firing with a C{LockGranted}.
        """

    def refreshLock(path, timeout, preconditions):
        """
        @return: A Deferred firing with a C{LockGranted}, or C{None} when
            C{preconditions} submit the token of no lock of this user's
            covering C{path}.
        """

    def unlock(path, token, preconditions):
        """
        @return: A Deferred firing with whether the lock C{token} covering
            C{path} was removed.
        """
