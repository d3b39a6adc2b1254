"""
Tests for L{fbtwist.access.preconditions}: the domain's evaluation of the
preconditions a client states (entity tags, the WebDAV C{If} header, lock
tokens), directly and through the avatar's changing operations.
"""

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from fbtwist.access.avatar import CalendarAvatar, locksOf
from fbtwist.access.preconditions import (
    checkEntityTags,
    checkIfHeader,
    checkLocks,
    ifHeaderHolds,
    submittedTokens,
)
from fbtwist.access.values import NO_PRECONDITIONS, Condition, ConditionList, Lock, Preconditions
from fbtwist.access.visibility import FreeBusyVisibility
from fbtwist.errors import InsufficientStorage, LockedBy, PreconditionFailed
from fbtwist.store.tree import CalendarStore
from fbtwist.web.dav.ifheader import parseIf
from tests.helpers import outlookVFB

TOKEN = "opaquelocktoken:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"
ETAG = '"abc"'


def stateOf(states):
    return lambda tag: states.get(tag, (None, frozenset()))


def lockOn(path, depth="0", principal="alice", token=TOKEN) -> Lock:
    return Lock(token, tuple(path), depth, "exclusive", "", principal, 60, 1e12)


class IfHeaderTests(SynchronousTestCase):
    """
    The header is true when any list is true; a list when all its
    conditions are.
    """

    def test_tokenMatches(self):
        """
        A state token matches when a lock with that token covers the resource.
        """
        locked = stateOf({None: (ETAG, frozenset([TOKEN]))})
        self.assertTrue(ifHeaderHolds(parseIf(f"(<{TOKEN}>)"), locked))
        self.assertFalse(ifHeaderHolds(parseIf("(<opaquelocktoken:other>)"), locked))
        self.assertTrue(ifHeaderHolds(parseIf(f"(<{TOKEN}> [{ETAG}])"), locked))
        self.assertFalse(ifHeaderHolds(parseIf(f'(<{TOKEN}> ["bad"])'), locked))

    def test_notNoLock(self):
        """
        C{(Not <DAV:no-lock>)} is always true, C{(<DAV:no-lock>)} never.
        """
        unlocked = stateOf({})
        self.assertTrue(ifHeaderHolds(parseIf("(Not <DAV:no-lock>)"), unlocked))
        self.assertFalse(ifHeaderHolds(parseIf("(<DAV:no-lock>)"), unlocked))
        self.assertTrue(ifHeaderHolds(parseIf("(<opaquelocktoken:x>) (Not <DAV:no-lock>)"), unlocked))

    def test_etagOfMissingResource(self):
        """
        No entity tag matches a resource that does not exist; its negation does.
        """
        self.assertFalse(ifHeaderHolds(parseIf(f"([{ETAG}])"), stateOf({})))
        self.assertTrue(ifHeaderHolds(parseIf(f"(Not [{ETAG}])"), stateOf({})))

    def test_weakTagMatchesStrong(self):
        """
        A weak form of the current entity tag matches it.
        """
        self.assertTrue(ifHeaderHolds(parseIf(f"([W/{ETAG}])"), stateOf({None: (ETAG, frozenset())})))

    def test_taggedListUsesItsResource(self):
        """
        A tagged list is evaluated against the resource its tag names.
        """
        states = stateOf({"http://h/coll/": (None, frozenset([TOKEN]))})
        self.assertTrue(ifHeaderHolds(parseIf(f"<http://h/coll/> (<{TOKEN}>)"), states))
        self.assertFalse(ifHeaderHolds(parseIf(f"<http://h/other> (<{TOKEN}>)"), states))

    def test_submittedTokens(self):
        """
        Tokens outside C{Not} are submitted, wherever they are; no header
        submits none.
        """
        lists = parseIf(f"<http://h/a> (<{TOKEN}>) (Not <opaquelocktoken:n>) "
                        f"<http://h/b> ([{ETAG}] <opaquelocktoken:b>)")
        self.assertEqual(submittedTokens(lists), {TOKEN, "opaquelocktoken:b"})
        self.assertEqual(submittedTokens(None), frozenset())

    def test_checkAgainstLocksAndTags(self):
        """
        L{checkIfHeader} gives a list's resource the ETag of its path and the
        tokens of the locks covering it; a tag outside the tree has neither.
        """
        lists = (ConditionList("/pub/calendar/", (Condition(False, "token", TOKEN),)),)
        inForce = [lockOn((), depth="infinity")]
        etags = {("a.vfb",): ETAG}
        inside = Preconditions(ifHeader=lists, tagged={"/pub/calendar/": ()})
        checkIfHeader(inside, ("a.vfb",), inForce, etags.get)
        outside = Preconditions(ifHeader=lists, tagged={"/pub/calendar/": None})
        self.assertRaises(PreconditionFailed, checkIfHeader, outside, ("a.vfb",), inForce, etags.get)
        untagged = Preconditions(ifHeader=(ConditionList(None, (Condition(False, "etag", ETAG),)),))
        checkIfHeader(untagged, ("a.vfb",), [], etags.get)
        self.assertRaises(PreconditionFailed, checkIfHeader, untagged, ("b.vfb",), [], etags.get)
        checkIfHeader(NO_PRECONDITIONS, ("b.vfb",), [], etags.get)


class EntityTagTests(SynchronousTestCase):
    """
    C{If-Match} and C{If-None-Match} against a file's current version.
    """

    def test_ifMatch(self):
        """
        C{If-Match} holds for the current tag (in a list, or C{*}) of an
        existing file, never for nothing.
        """
        checkEntityTags(Preconditions(ifMatch=b'"x", ' + ETAG.encode()), True, ETAG)
        checkEntityTags(Preconditions(ifMatch=b"*"), True, None)
        for stated, exists in [(b'"x"', True), (b"*", False), (ETAG.encode(), False)]:
            self.assertRaises(PreconditionFailed, checkEntityTags, Preconditions(ifMatch=stated), exists, ETAG)

    def test_ifNoneMatch(self):
        """
        C{If-None-Match} fails for C{*} or the current tag of an existing
        file, and always holds when nothing is there.
        """
        checkEntityTags(Preconditions(ifNoneMatch=b"*"), False, None)
        checkEntityTags(Preconditions(ifNoneMatch=b'"x"'), True, ETAG)
        for stated in (b"*", ETAG.encode()):
            self.assertRaises(PreconditionFailed, checkEntityTags, Preconditions(ifNoneMatch=stated), True, ETAG)


class LockTests(SynchronousTestCase):
    """
    A lock stands in the way of a change unless its token is submitted by
    the user who took it.
    """

    def check(self, preconditions, uid, locks, changes=((("a.vfb",), False, False),)):
        def affecting(path, recursive, membership):
            return [lock for lock in locks if lock.covers(path) or (membership and lock.covers(path[:-1]))
                    or (recursive and lock.within(path))]

        checkLocks(preconditions, uid, changes, affecting, lambda path: path == ())

    def test_noTokens(self):
        """
        Without tokens (FTP) every lock refuses, naming the lock and its root.
        """
        lock = lockOn(())
        error = self.assertRaises(LockedBy, self.check, NO_PRECONDITIONS, "alice", [lock],
                                  [(("a.vfb",), False, True)])
        self.assertEqual((error.lock, error.rootIsCollection, error.conflicting), (lock, True, False))
        self.assertEqual(error.reason, "a.vfb is locked by a WebDAV client")
        self.check(NO_PRECONDITIONS, "alice", [lock], [(("a.vfb",), False, False)])

    def test_ownToken(self):
        """
        The token of one's own lock lets the change through; another's
        lock, or another token, does not.
        """
        self.check(Preconditions(tokens=frozenset([TOKEN])), "alice", [lockOn(("a.vfb",))])
        self.assertRaises(LockedBy, self.check, Preconditions(tokens=frozenset([TOKEN])), "bob",
                          [lockOn(("a.vfb",))])
        self.assertRaises(LockedBy, self.check, Preconditions(tokens=frozenset(["opaquelocktoken:x"])), "alice",
                          [lockOn(("a.vfb",))])

    def test_recursive(self):
        """
        A recursive change (removing a collection) needs the tokens of the
        locks below it.
        """
        below = lockOn(("sub", "a.vfb"))
        self.check(NO_PRECONDITIONS, "alice", [below], [(("sub",), False, False)])
        self.assertRaises(LockedBy, self.check, NO_PRECONDITIONS, "alice", [below], [(("sub",), True, False)])


class AvatarPreconditionTests(SynchronousTestCase):
    """
    The avatar's changing operations evaluate the preconditions they are
    given against the tree and its locks.
    """

    def setUp(self):
        self.store = CalendarStore(FilePath(self.mktemp()))
        self.store.write(("alice.vfb",), outlookVFB())
        visibility = FreeBusyVisibility(self.store, None, Clock())
        self.alice = CalendarAvatar("alice", False, self.store, visibility)
        self.admin = CalendarAvatar("admin", True, self.store, visibility)

    def test_lockedFileRefusesChanges(self):
        """
        Alice's lock refuses a publish, delete, property change, copy onto
        or move of her file made without its token (as over FTP), and lets
        them through with it.
        """
        self.store.write(("other.vfb",), outlookVFB())
        granted = self.successResultOf(self.alice.lock(("alice.vfb",), "exclusive", "0", "", 60))
        path = ("alice.vfb",)
        refused = [
            self.alice.publish(path, outlookVFB()),
            self.alice.delete(path),
            self.alice.patchProperties(path, [("{x:}y", "<y xmlns='x:'/>")]),
            self.admin.copy(("other.vfb",), path),
            self.admin.move(path, ("other.vfb",)),
        ]
        for d in refused:
            self.assertEqual(self.failureResultOf(d, LockedBy).value.lock, granted.lock)
        self.assertEqual(self.store.deadProperties(path), {})
        held = Preconditions(tokens=frozenset([granted.lock.token]))
        self.successResultOf(self.alice.patchProperties(path, [("{x:}y", "<y xmlns='x:'/>")], held))
        self.successResultOf(self.alice.publish(path, outlookVFB(), held))
        self.successResultOf(self.alice.delete(path, held))
        self.assertIsNone(self.store.stat(path))
        self.assertEqual(self.successResultOf(self.alice.activeLocks()).locks, [])

    def test_lockedCollection(self):
        """
        A depth-0 lock on a collection protects its membership: adding or
        removing a member needs its token; replacing one does not.
        """
        self.store.makeCollection(("sub",))
        granted = self.successResultOf(self.admin.lock(("sub",), "exclusive", "0", "", 60))
        self.failureResultOf(self.admin.makeCollection(("sub", "inner")), LockedBy)
        self.failureResultOf(self.admin.publish(("sub", "x.vfb"), outlookVFB()), LockedBy)
        held = Preconditions(tokens=frozenset([granted.lock.token]))
        self.successResultOf(self.admin.publish(("sub", "x.vfb"), outlookVFB(), held))
        self.successResultOf(self.admin.publish(("sub", "x.vfb"), outlookVFB()))
        self.failureResultOf(self.admin.delete(("sub", "x.vfb")), LockedBy)

    def test_publishWithNoLockAsksNoStat(self):
        """
        A publish that no lock can apply to (the index says) does not ask
        the store whether its file is new; one into a locked collection
        does, and is refused when it is.
        """
        asked = []
        stat = self.store.stat
        self.store.stat = lambda path: asked.append(tuple(path)) or stat(path)
        self.assertFalse(self.successResultOf(self.alice.publish(("alice.vfb",), outlookVFB())))
        self.assertEqual(asked, [])
        self.store.makeCollection(("sub",))
        self.successResultOf(self.admin.lock(("sub",), "exclusive", "0", "", 60))
        del asked[:]
        self.failureResultOf(self.admin.publish(("sub", "x.vfb"), outlookVFB()), LockedBy)
        self.assertIn(("sub", "x.vfb"), asked)

    def test_oneLockStorePerStore(self):
        """
        Every avatar of one store uses one lock store; another store has its
        own.
        """
        other = CalendarStore(FilePath(self.mktemp()))
        self.assertIs(locksOf(self.store), locksOf(self.store))
        self.assertIsNot(locksOf(self.store), locksOf(other))
        self.assertEqual(locksOf(other).directory.path, other.metadataDirectory("davlocks", create=False).path)

    def test_conflictingLock(self):
        """
        A second exclusive lock is refused naming the first
        (C{conflicting}); an unmapped name locked gets an empty file, which
        goes again when the lock is refused.
        """
        first = self.successResultOf(self.alice.lock(("alice.vfb",), "exclusive", "0", "", 60))
        error = self.failureResultOf(self.admin.lock(("alice.vfb",), "shared", "0", "", 60), LockedBy).value
        self.assertEqual((error.lock, error.conflicting), (first.lock, True))
        self.successResultOf(self.admin.lock((), "exclusive", "0", "", 60))
        self.failureResultOf(self.admin.lock(("new.vfb",), "exclusive", "infinity", "", 60), LockedBy)
        self.assertIsNone(self.store.stat(("new.vfb",)))

    def test_tooManyLocks(self):
        """
        A user holding the most locks gets no more (insufficient storage).
        """
        from fbtwist.store.locks import MAX_LOCKS_PER_PRINCIPAL

        for i in range(MAX_LOCKS_PER_PRINCIPAL):
            self.successResultOf(self.admin.lock((f"f{i}.vfb",), "exclusive", "0", "", 60))
        self.failureResultOf(self.admin.lock(("last.vfb",), "exclusive", "0", "", 60), InsufficientStorage)
        self.assertIsNone(self.store.stat(("last.vfb",)))

    def test_ifHeaderOnLock(self):
        """
        A LOCK's C{If} header is evaluated; one that fails takes no lock.
        """
        failing = Preconditions(ifHeader=tuple(parseIf('(["nope"])')))
        self.failureResultOf(self.alice.lock(("alice.vfb",), "exclusive", "0", "", 60, failing), PreconditionFailed)
        self.assertEqual(self.successResultOf(self.alice.activeLocks()).locks, [])

    def test_overwriteAndEntityTags(self):
        """
        COPY onto an existing file without overwrite, and a delete whose
        C{If-Match} is stale, are refused and change nothing.
        """
        self.store.write(("other.vfb",), b"other")
        self.failureResultOf(self.admin.copy(("alice.vfb",), ("other.vfb",), NO_PRECONDITIONS, overwrite=False),
                             PreconditionFailed)
        self.failureResultOf(self.alice.delete(("alice.vfb",), Preconditions(ifMatch=b'"stale"')),
                             PreconditionFailed)
        self.assertEqual(self.store.read(("other.vfb",)), b"other")
        self.assertIsNotNone(self.store.stat(("alice.vfb",)))
        self.assertTrue(self.successResultOf(self.admin.copy(("alice.vfb",), ("other.vfb",))))


class _SteppedPool:
    """
    A store's C{runBlocking} that runs nothing until told: what the avatar
    hands it would run in the thread pool in the server.
    """

    def __init__(self):
        self.pending = []

    def __call__(self, f, *args):
        d = defer.Deferred()
        self.pending.append((f, args, d))
        return d

    def runAll(self) -> int:
        ran = 0
        while self.pending:
            f, args, d = self.pending.pop(0)
            ran += 1
            try:
                result = f(*args)
            except BaseException:
                d.errback()
            else:
                d.callback(result)
        return ran


class OffTheReactorTests(SynchronousTestCase):
    """
    The changes that may block (fsyncs and renames, walking a collection,
    waiting for the lock mutex or for the publishes a new lock concerns)
    run in the store's thread pool, after the preconditions are read.
    """

    def test_changesWaitForThePool(self):
        """
        Nothing is locked, removed, copied, moved, made or patched before the
        pool runs the work; then each Deferred fires.
        """
        pool = _SteppedPool()
        store = CalendarStore(FilePath(self.mktemp()), runBlocking=pool)
        store.write(("a.vfb",), outlookVFB())
        store.write(("b.vfb",), outlookVFB())
        store.write(("e.vfb",), outlookVFB())
        admin = CalendarAvatar("admin", True, store, FreeBusyVisibility(store, None, Clock()))
        changes = [
            (admin.lock(("a.vfb",), "shared", "0", "", 60), lambda: store.stat(("a.vfb",)) is not None),
            (admin.copy(("a.vfb",), ("c.vfb",)), lambda: store.stat(("c.vfb",)) is not None),
            (admin.move(("b.vfb",), ("d.vfb",)), lambda: store.stat(("d.vfb",)) is not None),
            (admin.makeCollection(("sub",)), lambda: store.stat(("sub",)) is not None),
            (admin.patchProperties(("e.vfb",), [("{x:}y", "<y xmlns='x:'/>")]),
             lambda: store.deadProperties(("e.vfb",)) != {}),
        ]
        self.assertIsNone(store.stat(("c.vfb",)))
        self.assertIsNone(store.stat(("d.vfb",)))
        self.assertIsNone(store.stat(("sub",)))
        self.assertEqual(store.deadProperties(("e.vfb",)), {})
        for d, _ in changes:
            self.assertNoResult(d)
        self.assertEqual(pool.runAll(), len(changes))
        results = [self.successResultOf(d) for d, _ in changes]
        for _, done in changes:
            self.assertTrue(done())
        granted = results[0]
        d = admin.unlock(("a.vfb",), granted.lock.token)
        self.assertNoResult(d)
        pool.runAll()
        self.assertTrue(self.successResultOf(d))
        d = admin.delete(("c.vfb",))
        self.assertNoResult(d)
        pool.runAll()
        self.successResultOf(d)
        self.assertIsNone(store.stat(("c.vfb",)))
