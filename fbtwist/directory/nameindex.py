"""
Lookup names (C{/calendar/<name>.vfb}) resolved without asking the
directory: an in-memory index of every user's names, loaded from the
directory in the background and refreshed periodically.

The matching rule lives here once (L{NameIndexBuilder}): the index over
all users and L{fbtwist.directory.ldapdirectory.LDAPDirectory.resolveName}, which applies
it to the few entries one search finds, give the same answers for the same
directory contents:

  1. a uid, compared case-insensitively, when exactly one entry has it;
  2. otherwise a mail address: the whole address for a name with C{@}, the
     local part for one without, over every mail attribute, when exactly
     one entry has it; several entries make the name ambiguous: nobody.

The index is a snapshot: users added, renamed or removed since the last
load are seen by the next one.  A name not in the index is still resolved
in the directory, so new users are found at once; a name the directory no
longer has keeps answering until the next load.
"""

import sys
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from ldaptor.protocols.ldap import ldaperrors
from twisted.internet import defer
from twisted.logger import Logger

from fbtwist.errors import DirectoryUnavailable

#: Marks a key that several entries share.
_AMBIGUOUS = object()
#: At most this many DN templates (L{NameIndexBuilder}); an entry whose DN
#: would need another is kept whole.
_MAX_TEMPLATES = 1024


def _splitDN(dn: str, uid: str):
    """
    C{dn} as C{(prefix, suffix)} around C{uid} when its first RDN is
    C{name=uid} written plainly (C{uid=alice,ou=people,...}), else C{None}.
    """
    rdn, comma, rest = dn.partition(",")
    prefix = rdn[:len(rdn) - len(uid)]
    if not rdn.endswith(uid) or not prefix.endswith("=") or "\\" in rdn or "+" in rdn or "=" in prefix[:-1]:
        return None
    return prefix, comma + rest


class NameIndex:
    """
    Lower-cased lookup names to the uid they resolve to (C{None}: an
    ambiguous name, which resolves to nobody).
    """

    def __init__(self, names: Dict[str, Optional[str]], entries: int,
                 logins: Optional[Dict[str, object]] = None, templates: Sequence[Tuple[str, str]] = ()):
        self._names = names
        self._logins = logins if logins is not None else {}
        self._templates = list(templates)
        #: How many directory entries the index was built from.
        self.entries = entries

    def login(self, name: str) -> Optional[Tuple[str, str]]:
        """
        The entry a login names by its uid, for a bind without a search.

        @return: C{(uid, dn)} when exactly one entry had C{name} as its uid
            (compared case-insensitively) and the index knows its DN, else
            C{None} (the directory must be searched).
        """
        key = name.lower()
        dn = self._logins.get(key)
        if dn is None:
            return None
        uid = self._names[key]
        if isinstance(dn, int):
            prefix, suffix = self._templates[dn]
            dn = prefix + uid + suffix
        return uid, dn

    def get(self, name: str) -> Tuple[bool, Optional[str]]:
        """
        @return: C{(True, uid)} (C{uid} may be C{None}: nobody) when the
            index knows C{name}, else C{(False, None)}.
        """
        key = name.lower()
        names = self._names
        if key in names:
            return True, names[key]
        return False, None

    def __len__(self) -> int:
        return len(self._names)

    def names(self) -> List[str]:
        """
        Every (lower-cased) name the index knows, the very key objects it
        holds.
        """
        return list(self._names)


class NameIndexBuilder:
    """
    Builds a L{NameIndex} from directory entries, added one at a time (as
    the pages of a search arrive).
    """

    def __init__(self):
        self._byUid: Dict[str, object] = {}
        self._byMail: Dict[str, object] = {}
        # Lower-cased uid -> its entry's DN: an index into _templates when
        # the DN is a template's prefix + uid + suffix (most are: one
        # small int instead of a string per user), else the DN itself.
        self._dns: Dict[str, object] = {}
        self._templates: Dict[Tuple[str, str], int] = {}
        self.entries = 0

    def add(self, uid: Optional[str], addresses: Iterable[str], dn: Optional[str] = None) -> None:
        """
        Add one entry: its uid (the first value of the URL's attribute;
        C{None} when it has none), the values of its mail attributes and
        its DN (C{None}: not known, its login is searched).
        """
        self.entries += 1
        if uid:
            uid = sys.intern(uid)
            key = sys.intern(uid.lower())
            _claim(self._byUid, key, uid)
            if dn is not None:
                self._dns[key] = self._dnReference(dn, uid)
        keys = set()
        for address in addresses:
            lowered = address.lower()
            keys.add(lowered.split("@", 1)[0])
            if "@" in lowered:
                keys.add(lowered)
        for key in keys:
            _claim(self._byMail, sys.intern(key), uid)

    def _dnReference(self, dn: str, uid: str):
        parts = _splitDN(dn, uid)
        if parts is None:
            return dn
        template = self._templates.get(parts)
        if template is None:
            if len(self._templates) >= _MAX_TEMPLATES:
                return dn
            template = self._templates[parts] = len(self._templates)
        return template

    def build(self) -> NameIndex:
        """
        @return: The index of the entries added so far.
        """
        names: Dict[str, Optional[str]] = {}
        for key, uid in self._byMail.items():
            names[key] = None if uid is _AMBIGUOUS else uid
        for key, uid in self._byUid.items():
            if uid is not _AMBIGUOUS:
                names[key] = uid
            elif key not in names:
                names[key] = None
        logins = {key: dn for key, dn in self._dns.items() if self._byUid[key] is not _AMBIGUOUS}
        templates = sorted(self._templates, key=self._templates.__getitem__)
        return NameIndex(names, self.entries, logins, templates)


def _claim(keys: dict, key: str, uid) -> None:
    keys[key] = uid if key not in keys else _AMBIGUOUS


def indexOf(records: Iterable[tuple]) -> NameIndex:
    """
    @param records: C{(uid, addresses)} or C{(uid, addresses, dn)} per
        directory entry.
    @return: The L{NameIndex} of C{records}.
    """
    builder = NameIndexBuilder()
    for record in records:
        builder.add(*record)
    return builder.build()


class NameIndexRefresher:
    """
    Keeps C{directory.nameIndex} loaded: a first load when started, another
    every C{interval} seconds after each success.  A failed load keeps the
    old index and is tried again when the directory's backoff delay ends
    (or after C{interval} when the directory answered with an error).
    Failures are logged once per change of reason, not once per attempt.

    @param directory: Has C{loadNameIndex()} (a Deferred firing once the
        new index is in place) and C{retryDelay()} (seconds until the
        directory may be tried again).
    @param clock: Times the loads.
    """

    log = Logger()

    def __init__(self, directory, interval: float, clock):
        self.directory = directory
        self.interval = interval
        self.clock = clock
        self._call = None
        self._loading = None
        self._running = False
        self._failure: Optional[str] = None
        self.loaded = False

    def start(self) -> None:
        self._running = True
        self._schedule(0)

    def stop(self) -> None:
        """
        Stop refreshing; a load in progress is abandoned.
        """
        self._running = False
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        if self._loading is not None:
            self._loading.cancel()

    def whenLoadEnds(self) -> defer.Deferred:
        """
        A Deferred firing with C{None} once the load in progress has ended
        (loaded, failed or abandoned, and the next one scheduled); at once
        when none is in progress.
        """
        if self._loading is None:
            return defer.succeed(None)
        ended = defer.Deferred()

        def end(result):
            ended.callback(None)
            return result

        self._loading.addBoth(end)
        return ended

    def _schedule(self, delay: float) -> None:
        if self._running:
            self._call = self.clock.callLater(delay, self._load)

    def _load(self) -> None:
        self._call = None
        self._loading = self.directory.loadNameIndex()
        self._loading.addCallbacks(self._loaded, self._failedLoad)

    def _loaded(self, _) -> None:
        self._loading = None
        self._failure = None
        self.loaded = True
        self._schedule(self.interval)

    def _failedLoad(self, failure) -> None:
        self._loading = None
        if not self._running:
            return
        delay = self.directory.retryDelay() or self.interval
        if not failure.check(DirectoryUnavailable, ldaperrors.LDAPException):
            self.log.failure("loading the name index failed unexpectedly", failure)
        reason = failure.getErrorMessage() or failure.type.__name__
        log = self.log.debug if reason == self._failure else self.log.warn
        self._failure = reason
        if self.loaded:
            message = ("the name index was not refreshed ({reason}); keeping the one loaded before, "
                       "next attempt in {delay:g}s")
        else:
            message = ("the name index could not be loaded ({reason}); lookups search the directory until it is, "
                       "next attempt in {delay:g}s")
        log(message, reason=reason, delay=delay)
        self._schedule(delay)
