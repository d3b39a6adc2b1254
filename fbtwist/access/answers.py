"""
Anonymous lookups' answers remembered in memory (C{--answer-memory}).

Nearly every request a free/busy server answers is an anonymous lookup of
one person's published file, and most are of a file unchanged since the
last lookup of it.  Checking on disk that it is unchanged (the file's
C{stat}, the answer kept with it, the person's other file) and deciding
again what the anonymous reader may see costs more than all the rest of
the request.  So each serving process remembers, by the owner's uid, the
answer it made (its entity tag, body and time: what the lookup sends), for
as long as nothing it was made of can have changed:

  - the owner's files at the top of the tree, C{<uid>.vfb} and
    C{<uid>.ics}: the kernel tells each change made on this machine
    (L{fbtwist.store.changes}), read before every answer given from
    memory, so an answer is never given after a change its client could
    know of; the tree on a filesystem other machines write to is not
    watched, and then nothing is remembered;
  - another organisation's answer (C{--federate}): the fresh fetch result
    it was made of, still the one in the federation's cache (a new fetch,
    or the old one expired, and it is made again);
  - everyone's choices of who sees them (C{.visibility/}) and their feeds
    (C{.feeds/}): the version of each folder (L{FolderMemo.folderVersion},
    looked at once per turn of the reactor, as the choices themselves);
    when either changed, everything remembered goes; while either has just
    changed (its version not promised), nothing is answered from memory.

Only the answer of a file reached by its name alone is held (not a
symbolic link, not a file with other hard links: a change made through
another name, in another folder, is not told), and none for longer than
L{RememberedAnswers.maxAge}, a bound on any change the kernel could not
tell, unless the owner's files are then found unchanged: their inode,
size, times and links (C{state}), taken before the answer was made, the
same again (a change through any name changes their times), when it is held
as long again; else it is made anew.  At a million people each looked up
every minute, a tenth of the lookups would otherwise be made anew from the
files (each answer once every ten minutes), for a look at two files' times.

The name asked for is resolved to the uid at every lookup, as before; what
is remembered is only ever the answer of a published free/busy file shown
to the anonymous reader (L{FreeBusyVisibility.plainNow}) or of another
organisation's fresh answer, never a merged, stale, working-hours or
time-dependent one.  At most C{maxBytes} of answers are held, the oldest
going first (an answer asked for is not moved: a hit touches nothing but
its own entry, which at 100,000 people in memory is most of its cost).
Only the reactor's thread uses it.
"""

from collections import OrderedDict
from typing import Callable, Hashable, NamedTuple, Optional, Tuple

from twisted.python import threadable

#: What an answer held costs besides its body: the head of its quick
#: answer, the tuples, its entity tag and time, the key, the entry, the
#: name's uid (100,000 answers of 2,733 bytes took 370 MB).
ENTRY_OVERHEAD = 1024

#: The names of a person's files whose change changes their answer.
_SUFFIXES = (".vfb", ".ics")

#: How many names' uids are held at least (L{RememberedAnswers.rememberUid}):
#: as many as a quarter of C{maxBytes} holds when that is more (L{NAME_WEIGHT}
#: each, counted with the answers), so that a memory large enough for
#: everyone's answers also holds everyone's names.
NAMES_HELD = 1024

#: What a name's uid held costs: the name, the uid, the dictionary's entry.
NAME_WEIGHT = 192

#: What L{RememberedAnswers.uidOf} gives for a name the name index does not
#: have (a name of another organisation's, say).
NOT_INDEXED = object()

#: The first part of the key of another organisation's address.
_REMOTE = "@remote"


class Ticket(NamedTuple):
    """
    What L{RememberedAnswers.put} needs of the L{RememberedAnswers.get}
    that found nothing held.

    @ivar key: The person's key (a uid, or the remote key of an address).
    @ivar generation: What had been forgotten when it was given.
    @ivar token: What the answer is made of besides files (a token of
        another organisation's fresh fetch result in the federation's
        cache), or C{None}.
    """

    key: Hashable
    generation: int
    token: object
    #: The owner's files' state (L{RememberedAnswers} C{state}) before the
    #: answer was made, or C{None}.
    state: Optional[Hashable] = None

    @property
    def remote(self) -> bool:
        """
        Whether it is for another organisation's address.
        """
        return isinstance(self.key, tuple)


class RememberedAnswers:
    """
    Answers by owner uid (see the module).

    @param watch: Opens the watch of the tree's top folder, as
        C{watch(changed, everything)} (L{fbtwist.store.tree.CalendarStore.watchTop}),
        once, when first needed; C{None} from it: nothing is remembered.
    @param versions: Gives the versions of what every answer depends on
        besides its owner's files (a hashable value, or C{None} while it
        cannot be promised).
    @param maxBytes: The most the answers' bodies (and L{ENTRY_OVERHEAD}
        each) may hold.
    @param clock: Tells the time in seconds (for L{maxAge}).
    @param state: Gives the state of a uid's files (a hashable value that
        any change of them changes), or C{None} when it cannot be told;
        without it an answer is never held past L{maxAge}.  Called as
        C{state(uid, before)}: C{before}, when not C{None}, is the state
        an answer held was made at (what changes the watch cannot tell
        need not be looked at again).
    @param stateSince: Gives the state of a uid's files now when it
        differs from a state C{before} only in what setting an attribute
        changes, else C{None}: called as C{stateSince(uid, before)}, when
        the watch tells that only the attributes of a file of the uid's
        changed (see L{_changed}).  Without it, such a change is a change.
    @param inReactorThread: Tells whether the caller is in the reactor's
        thread (elsewhere nothing is remembered nor given).
    @ivar maxAge: The longest an answer is held, in seconds: a bound on
        what a change the kernel cannot tell (one made through a name
        outside the folder) could leave.
    """

    maxAge = 600.0

    def __init__(self, watch: Callable, versions: Callable[[], Optional[Hashable]], maxBytes: int,
                 clock: Callable[[], float], inReactorThread: Callable[[], bool] = threadable.isInIOThread,
                 state: Optional[Callable[[str], Optional[Hashable]]] = None,
                 stateSince: Optional[Callable[[str, Hashable], Optional[Hashable]]] = None):
        self._watch = watch
        self._state = state
        self._stateSince = stateSince
        self._versions = versions
        self.maxBytes = maxBytes
        self._clock = clock
        self._inReactorThread = inReactorThread
        #: The watch once opened; C{False} when it could not be, or ended.
        self._changes = None
        self._forgetEverything()
        #: The versions the answers held were made at.
        self._seenVersions: Optional[Hashable] = None
        #: Counts what was forgotten: an answer made while it moved is not
        #: held (it may be of the old files).
        self._generation = 0
        #: Names' uids as the name index L{_uidsIndex} gives them.
        self._uids: dict = {}
        self._uidsIndex = None
        #: Answers given from memory, and answers asked for but not held.
        self.hits = 0
        self.misses = 0
        #: Answers held past L{maxAge} as their files were unchanged (also
        #: counted as hits).
        self.renewed = 0

    def _forgetEverything(self) -> None:
        #: Held answers by key: (token, answer, expires, weight, state), the
        #: oldest first.
        self._held: "OrderedDict[Hashable, tuple]" = OrderedDict()
        self._size = 0

    def get(self, uid: str) -> Tuple[Optional[tuple], Optional[Ticket]]:
        """
        The answer held for C{uid}'s files when nothing it was made of has
        changed since.

        @return: C{(answer, None)} for one held; else C{(None, ticket)},
            the ticket to give L{put} with the answer made now, or C{(None,
            None)} when none may be held now.
        """
        if not self._ready():
            return None, None
        # Not moved to the end when asked for (the oldest goes first): a
        # hit touches nothing but the entry.
        held = self._held.get(uid)
        if held is not None:
            if held[2] > self._clock():
                self.hits += 1
                return held[1], None
            # Held as long as it may be unlooked at: still of the files as
            # they are?
            state = self._stateOf(uid, held[4])
            if state is not None and state == held[4]:
                self._held[uid] = held[:2] + (self._clock() + self.maxAge,) + held[3:]
                self.renewed += 1
                self.hits += 1
                return held[1], None
            self._drop(uid)
        else:
            state = self._stateOf(uid)
        self.misses += 1
        return None, Ticket(uid, self._generation, None, state)

    def getRemote(self, address: str, stillFresh: Callable[[object], bool],
                  freshNow: Callable[[str], object]) -> Tuple[Optional[tuple], Optional[Ticket]]:
        """
        As L{get}, for another organisation's C{address} (as asked for),
        whose answer is made of a fresh fetch result in the federation's
        cache: an answer held is given back while C{stillFresh(token)} says
        that what it was made of is still that fresh result (which counts
        it as a hit of the cache:
        L{fbtwist.remote.source.FederatedFreeBusy.stillFresh}); else the
        ticket's token is C{freshNow(address)}, the fresh result's token
        now (L{fbtwist.remote.source.FederatedFreeBusy.freshNow}), and
        nothing may be remembered when there is none.

        A hit asks nothing of the federation but C{stillFresh}: with 500
        addresses looked up in turn, asking the cache for the fresh result
        first and comparing made a cached federated lookup cost a sixth
        more than a local one.
        """
        if not self._ready():
            return None, None
        key = (_REMOTE, address)
        held = self._held.get(key)
        if held is not None:
            # Checked in this order: the cache counts a hit only when the
            # answer is given.
            if held[2] > self._clock() and stillFresh(held[0]):
                self.hits += 1
                return held[1], None
            self._drop(key)
        token = freshNow(address)
        if token is None:
            return None, None
        self.misses += 1
        return None, Ticket(key, self._generation, token)

    def _ready(self) -> bool:
        """
        Whether answers may be given and held now (in the reactor's thread,
        the tree watched), every change told since the last call taken
        into account.
        """
        if not self._inReactorThread():
            return False
        changes = self._changes
        if changes is None:
            changes = self._changes = self._watch(self._changed, self.forgetAll) or False
        if changes is False:
            return False
        if not changes.drain():
            self._changes = False
            return False
        versions = self._versions()
        if versions is None:
            return False
        if versions != self._seenVersions:
            self.forgetAll()
            self._seenVersions = versions
        return True

    def _stateOf(self, uid: str, before: Optional[Hashable] = None) -> Optional[Hashable]:
        # A person's files' state.
        if self._state is None:
            return None
        return self._state(uid, before)

    def put(self, ticket: Ticket, answer: tuple) -> None:
        """
        Hold C{answer} (entity tag, body bytes, time) for the ticket's
        person (from L{get} or L{getRemote}), unless something was
        forgotten since the ticket was given (the answer may be of what
        changed).
        """
        if ticket.generation != self._generation or not self._changes:
            return
        weight = len(answer[1]) + ENTRY_OVERHEAD
        room = self.maxBytes - len(self._uids) * NAME_WEIGHT
        if weight > room:
            # (Names fill a quarter of the memory at most.)
            return
        self._drop(ticket.key)
        self._held[ticket.key] = (ticket.token, answer, self._clock() + self.maxAge, weight, ticket.state)
        self._size += weight
        while self._size > room:
            _, held = self._held.popitem(last=False)
            self._size -= held[3]

    def _drop(self, key: Hashable) -> None:
        held = self._held.pop(key, None)
        if held is not None:
            self._size -= held[3]

    @property
    def namesHeld(self) -> int:
        """
        How many names' uids are held at most (L{NAMES_HELD}).
        """
        return max(NAMES_HELD, self.maxBytes // (4 * NAME_WEIGHT))

    def uidOf(self, name: str, index):
        """
        The uid L{rememberUid} was told C{index} gives C{name} (or
        L{NOT_INDEXED}), or C{None}.
        """
        return self._uids.get(name) if index is self._uidsIndex and index is not None else None

    def rememberUid(self, name: str, index, uid) -> None:
        """
        Remember that the name index C{index} (an index loaded, which never
        changes: a new one replaces it) gives C{name} the uid C{uid}, or
        does not have it (L{NOT_INDEXED}): at most L{NAMES_HELD} names, or
        as many as a quarter of C{maxBytes} holds, all forgotten with
        another index or once that many are held.
        """
        if index is not self._uidsIndex or len(self._uids) >= self.namesHeld:
            self._uids = {}
            self._uidsIndex = index
        self._uids[name] = uid

    def forgetAll(self) -> None:
        """
        Forget every answer (what they were made of may all have changed).
        """
        self._forgetEverything()
        self._generation += 1

    def _changed(self, name: str, attributesOnly: bool = False) -> None:
        """
        A file at the top of the tree changed: its owner's answer goes,
        unless only the file's attributes were told changed and its owner's
        files are still as the answer was made of them but for their change
        times (C{stateSince}): then the answer stays, with the files' new
        state.  Each answer rendered is kept with its file in an extended
        attribute (L{fbtwist.store.tree.CalendarStore.keep}) right after it
        is made: without this, every worker holding it would drop it then,
        and make it again at its next lookup.

        Any change of the file's content comes through its one name
        (L{FreeBusyVisibility.rememberNow} holds no other), and is told as
        a change of its content or name.
        """
        if not name.endswith(_SUFFIXES):
            return
        uid = name[:-4]
        if attributesOnly and self._stateSince is not None:
            held = self._held.get(uid)
            if held is not None and held[4] is not None:
                state = self._stateSince(uid, held[4])
                if state is not None:
                    self._held[uid] = held[:4] + (state,)
                    return
        self._drop(uid)
        self._generation += 1

    @property
    def held(self) -> int:
        """
        How many answers are held.
        """
        return len(self._held)

    def counts(self) -> tuple:
        """
        C{(hits, misses, answers held, bytes held)} (the names' uids
        counted in the bytes), for the metrics.
        """
        return self.hits, self.misses, len(self._held), self._size + len(self._uids) * NAME_WEIGHT
