"""
The interfaces between fbtwist's roles: the calendar tree, the directory and
the avatar that protocol code acts through.
"""

from zope.interface import Attribute, Interface


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

    def snapshot(path):
        """
        @return: A L{fbtwist.store.paths.FileSnapshot} of the file at C{path} (its
            info, entity tag and bytes, read together), or C{None} when
            there is no file.
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


class ICalendarAvatar(Interface):
    """
    A user (or the anonymous reader) acting on the calendar tree.  Both the
    web and the FTP avatar wrap one of these, so both protocols ask the same
    permission function (L{fbtwist.access.permissions.authorize}).
    """

    uid = Attribute("The user's uid, or C{None} for anonymous.")
    isAdmin = Attribute("Whether the user may manage the whole tree.")
    store = Attribute("The L{ICalendarStore}.")
