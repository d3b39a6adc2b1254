"""
Who may see a person's free/busy times, and at which detail: each user's
choice, within what the site allows.

  - B{The choice}: L{VisibilitySettings}: who (L{Audience}: everyone,
    anonymous readers included where the site lets them read; signed-in
    users; members of chosen directory groups; nobody) and the detail
    (L{Shown}: busy only, every C{FBTYPE} shown as C{BUSY}; or full:
    busy, tentative and out of office as published).  The person
    themselves always sees their own.
  - B{The site}: L{SitePolicy}: the default of those who chose nothing,
    and whether users may only make it stricter (C{--visibility-fixed}).
  - B{Where}: one small JSON file per user in a hidden folder of the tree
    (C{.visibility/<uid>.json}, the store's metadata directory, written
    atomically and fsynced), so every server sharing the tree decides
    alike.  A damaged file counts as no choice (the site default), with
    one warning per version of the file.
  - B{The decision}: L{WhoSees}, asked by
    L{fbtwist.access.visibility.FreeBusyVisibility} for every person,
    group member and published file, so every door follows it.  A viewer's
    groups come from the directory, cached for a while; when the directory
    cannot say, the answer is "not a member": a person is hidden rather
    than shown by mistake, and hidden looks like never published.

CalDAV's scheduling outbox answers a person one may not see with
C{3.8;No authority} (RFC 6638) and so does it for a person who never
published: the reply is the same for both, which is what hiding requires.
"""

import json
import os
import secrets
from dataclasses import dataclass, field
from enum import Enum
from typing import Optional, Tuple

from twisted.logger import Logger

from fbtwist.access.folderwatch import FolderMemo
from fbtwist.cache import LRUCache
from fbtwist.errors import DirectoryUnavailable
from fbtwist.store.files import atomicWrite
from fbtwist.store.paths import validateName

#: The hidden folder of the tree that holds users' choices.
SETTINGS_FOLDER = "visibility"
#: The hidden folder of the tree that holds the forms' secret.
FORMS_FOLDER = "forms"
_FORMAT = 1
#: The largest settings file read, in bytes.
MAX_FILE = 4096
#: How many groups one user may name.
MAX_GROUPS = 20
#: The longest group name (C{cn}).
MAX_GROUP_NAME = 64
#: How many users' choices are remembered while their folder is unchanged.
KNOWN_SIZE = 200_000


class Audience(Enum):
    """
    Who may see someone's free/busy times, loosest first.
    """

    EVERYONE = "everyone"
    SIGNED_IN = "signed-in"
    GROUPS = "groups"
    NOBODY = "nobody"

    @property
    def looseness(self) -> int:
        return {"everyone": 3, "signed-in": 2, "groups": 1, "nobody": 0}[self.value]


class Shown(Enum):
    """
    How much of someone's time those who may see it see.
    """

    #: Every period as C{BUSY}: when, but not how sure or why.
    BUSY = "busy"
    #: The periods with their C{FBTYPE}s (busy, tentative, out of office).
    FULL = "full"

    @property
    def looseness(self) -> int:
        return 1 if self is Shown.FULL else 0


@dataclass(frozen=True)
class VisibilitySettings:
    """
    One user's choice.

    @ivar groups: The directory groups (by C{cn}) whose members may see,
        with L{Audience.GROUPS}.
    """

    who: Audience
    detail: Shown
    groups: Tuple[str, ...] = field(default=())

    def toJSON(self) -> dict:
        return {"format": _FORMAT, "who": self.who.value, "detail": self.detail.value, "groups": list(self.groups)}

    @classmethod
    def fromJSON(cls, record) -> "VisibilitySettings":
        """
        @raise ValueError: When C{record} is not settings this server wrote.
        """
        if not isinstance(record, dict) or record.get("format") != _FORMAT:
            raise ValueError("not a settings record")
        groups = record.get("groups", [])
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise ValueError("groups must be a list of names")
        return cls(Audience(record["who"]), Shown(record["detail"]), validateGroups(groups))


def validateGroups(names) -> Tuple[str, ...]:
    """
    Group names as a user may choose them: at most L{MAX_GROUPS}, each a
    C{cn} of at most L{MAX_GROUP_NAME} printable characters, without
    repeats (any case).

    @raise ValueError: With one sentence saying what is wrong.
    """
    chosen, seen = [], set()
    for name in names:
        name = name.strip()
        if not name:
            continue
        if len(name) > MAX_GROUP_NAME or not name.isprintable() or "@" in name:
            raise ValueError(f"{name[:MAX_GROUP_NAME]!r} is not a group name of this directory")
        if name.lower() not in seen:
            seen.add(name.lower())
            chosen.append(name)
    if len(chosen) > MAX_GROUPS:
        raise ValueError(f"at most {MAX_GROUPS} groups may be chosen")
    return tuple(chosen)


@dataclass(frozen=True)
class SitePolicy:
    """
    What the site decides: the default (C{--visibility}, C{--visibility-detail})
    and whether users may only make it stricter (C{--visibility-fixed}).
    """

    default: VisibilitySettings = VisibilitySettings(Audience.EVERYONE, Shown.FULL)
    forbidLoosening: bool = False

    @classmethod
    def fromConfig(cls, config) -> "SitePolicy":
        return cls(VisibilitySettings(Audience(config.visibility), Shown(config.visibilityDetail)),
                   config.visibilityFixed)

    def refusal(self, chosen: VisibilitySettings) -> Optional[str]:
        """
        @return: Why C{chosen} is not allowed here (one sentence), or
            C{None} when it is.
        """
        if not self.forbidLoosening:
            return None
        if chosen.who.looseness > self.default.who.looseness:
            return f"this site lets you show your times at most to: {self.default.who.value}"
        if chosen.detail.looseness > self.default.detail.looseness:
            return "this site shows busy times only: full detail is not allowed"
        return None

    def effective(self, chosen: Optional[VisibilitySettings]) -> VisibilitySettings:
        """
        What holds for someone who chose C{chosen} (C{None}: nothing): the
        choice, held to the site's default when users may not loosen it
        (a choice made before the site forbade it is held too).
        """
        if chosen is None:
            return self.default
        if not self.forbidLoosening:
            return chosen
        who, detail = chosen.who, chosen.detail
        if who.looseness > self.default.who.looseness:
            who = self.default.who
        if detail.looseness > self.default.detail.looseness:
            detail = self.default.detail
        return VisibilitySettings(who, detail, chosen.groups)


def _fileName(uid: str) -> str:
    """
    The name the file of C{uid}'s choice (C{uid} lowercased) would have (a uid that can name
    none is not found among the folder's names, as its file would not be).
    """
    return uid + ".json"


class SettingsStore:
    """
    Users' choices in the calendar tree (see the module).

    Asked for every lookup, so what was read is remembered while the
    folder stays as it was: one C{stat} of the folder per question, or per
    turn of the reactor with C{turns}
    (L{fbtwist.access.folderwatch}, which says why that is sound for every
    server sharing the tree), one C{stat} of the user's file while the
    folder has just changed.

    @param store: The L{fbtwist.interfaces.ICalendarStore}.
    @param clock: The wall clock, for the folder's watch.
    @param turns: The reactor's L{fbtwist.store.watch.ReactorTurns}, or
        C{None}.
    """

    log = Logger()

    def __init__(self, store, clock=None, turns=None):
        self.store = store
        self._folderPath = None
        self._formKey = None
        #: uid -> ((mtime, size), settings or None).
        self._cache = LRUCache(8192)
        #: Lower-case uid -> settings or None, while the folder is unchanged.
        self._known = FolderMemo(lambda: self._folder().path, self._read, KNOWN_SIZE, clock,
                                 fileOf=_fileName, absent=None, turns=turns)

    def _folder(self):
        # Made by the first choice saved, not before.
        if self._folderPath is None:
            self._folderPath = self.store.metadataDirectory(SETTINGS_FOLDER, create=False)
        return self._folderPath

    def _file(self, uid: str):
        return self._folder().child(validateName(uid.lower()) + ".json")

    def get(self, uid: str) -> Optional[VisibilitySettings]:
        """
        @return: C{uid}'s choice, or C{None} when they made none or its
            file is damaged (the site's default holds).
        """
        return self._known.get(uid.lower())

    def folderVersion(self):
        """
        A value that changes whenever anyone's saved choice may have
        (L{FolderMemo.folderVersion}), or C{None} when that cannot be
        promised now.
        """
        return self._known.folderVersion()

    def _read(self, uid: str) -> Optional[VisibilitySettings]:
        try:
            path = self._file(uid)
            st = os.stat(path.path)
        except (OSError, ValueError):
            return None
        version = (st.st_mtime_ns, st.st_size, st.st_ino)
        cached = self._cache.get(uid.lower())
        if cached is not None and cached[0] == version:
            return cached[1]
        settings = None
        try:
            if st.st_size > MAX_FILE:
                raise ValueError(f"larger than {MAX_FILE} bytes")
            settings = VisibilitySettings.fromJSON(json.loads(path.getContent()))
        except OSError:
            return None
        except (ValueError, KeyError, TypeError) as e:
            # Once per version of the file: the cache remembers it.
            self.log.warn("the visibility settings of {uid} are unreadable ({reason}): the site's default holds",
                          uid=uid, reason=str(e)[:200])
        self._cache.put(uid.lower(), (version, settings))
        return settings

    def save(self, uid: str, settings: VisibilitySettings) -> None:
        """
        Keep C{uid}'s choice (atomically: a reader sees the old or the new).
        """
        data = json.dumps(settings.toJSON(), separators=(",", ":")).encode("utf-8")
        self._folder().makedirs(ignoreExistingDirectory=True)
        atomicWrite(self._file(uid), data)
        self._cache.pop(uid.lower())
        self._known.forget(uid.lower())

    def formKey(self) -> bytes:
        """
        The secret that signs the settings pages' form tokens, the same for
        every server sharing the tree: made once (written beside, then
        linked into place, so two servers making it at once agree on the
        first), then read.
        """
        if self._formKey is None:
            folder = self.store.metadataDirectory(FORMS_FOLDER)
            key = folder.child("key")
            if not key.exists():
                temporary = folder.child(f"key.{secrets.token_hex(8)}")
                atomicWrite(temporary, secrets.token_hex(32).encode("ascii"))
                try:
                    os.link(temporary.path, key.path)
                except FileExistsError:
                    pass
                finally:
                    temporary.remove()
            self._formKey = key.getContent().strip()
        return self._formKey


class GroupMembership:
    """
    Who is in a directory group, asked of the directory and remembered for
    C{ttl} seconds (at most C{size} groups).

    @param maxMembers: The most members of one group read; in a larger
        group nobody counts as a member (it is logged).
    """

    log = Logger()

    def __init__(self, directory, groupBase: Optional[str], clock, ttl: float = 300.0, size: int = 1024,
                 maxMembers: int = 5000):
        self.directory = directory
        self.groupBase = groupBase
        self.clock = clock
        self.ttl = ttl
        self.maxMembers = maxMembers
        self._members = LRUCache(size, clock=lambda: self.clock.seconds())
        #: Whether each group exists (C{False} for one too large, too).
        self._known = LRUCache(size, clock=lambda: self.clock.seconds())

    def isMemberNow(self, uid: str, cn: str) -> Optional[bool]:
        """
        @return: Whether C{uid} is in the group C{cn}, when known without
            asking the directory, else C{None}.
        """
        if self.groupBase is None:
            return False
        members = self._members.get(cn.lower())
        return None if members is None else uid.lower() in members

    async def exists(self, cn: str) -> bool:
        """
        Whether the directory has a group C{cn} (remembered as
        L{isMember} remembers it).

        @raise DirectoryUnavailable: When the directory cannot be asked.
        """
        if self.groupBase is None:
            return False
        await self.isMember("", cn)
        return self._known.get(cn.lower(), False)

    async def isMember(self, uid: str, cn: str) -> bool:
        """
        Whether C{uid} is in the group C{cn}.

        @raise DirectoryUnavailable: When the directory cannot be asked.
        """
        known = self.isMemberNow(uid, cn)
        if known is not None:
            return known
        found = await self.directory.groupMembers(cn, self.groupBase, self.maxMembers)
        if found is not None and len(found) > self.maxMembers:
            self.log.warn("the group {cn} has more than {limit} members: none counts as one for visibility",
                          cn=cn, limit=self.maxMembers)
            found = None
        members = frozenset(m.lower() for m in (found or ()))
        self._members.put(cn.lower(), members, expires=self.clock.seconds() + self.ttl)
        self._known.put(cn.lower(), found is not None, expires=self.clock.seconds() + self.ttl)
        return uid.lower() in members


class WhoSees:
    """
    The decision of whether a viewer may see an owner's free/busy times,
    and at which detail (see the module).

    @param settings: The L{SettingsStore}.
    @param policy: The L{SitePolicy}.
    @param membership: The L{GroupMembership} of viewers.
    """

    log = Logger()

    def __init__(self, settings: SettingsStore, policy: SitePolicy, membership: GroupMembership):
        self.settings = settings
        self.policy = policy
        self.membership = membership

    def settingsOf(self, owner: str) -> VisibilitySettings:
        """
        @return: What holds for C{owner}: their choice within the site's
            rules, or the site's default.
        """
        return self.policy.effective(self.settings.get(owner))

    def mayViewNow(self, viewer, owner: str) -> Optional[bool]:
        """
        Whether C{viewer} (a L{fbtwist.access.visibility.Viewer}) may see
        C{owner}'s times, when known without asking the directory, else
        C{None}.
        """
        return self.decideNow(viewer, owner)[0]

    def decideNow(self, viewer, owner: str) -> Tuple[Optional[bool], Shown]:
        """
        L{mayViewNow} and L{detailOf} together, from one reading of the
        owner's choice (a lookup asks both).
        """
        chosen = self.settingsOf(owner)
        return self._mayViewNow(viewer, owner, chosen), chosen.detail

    def _mayViewNow(self, viewer, owner: str, chosen: VisibilitySettings) -> Optional[bool]:
        if viewer.uid is not None and viewer.uid.lower() == owner.lower():
            return True
        if chosen.who is Audience.EVERYONE:
            return True
        if chosen.who is Audience.NOBODY or viewer.uid is None:
            return False
        if chosen.who is Audience.SIGNED_IN:
            return True
        unknown = False
        for cn in chosen.groups:
            member = self.membership.isMemberNow(viewer.uid, cn)
            if member:
                return True
            unknown = unknown or member is None
        return None if unknown else False

    async def mayView(self, viewer, owner: str) -> bool:
        """
        Whether C{viewer} may see C{owner}'s times; when the directory
        cannot tell whether the viewer is in a chosen group, not.
        """
        known = self.mayViewNow(viewer, owner)
        if known is not None:
            return known
        for cn in self.settingsOf(owner).groups:
            try:
                if await self.membership.isMember(viewer.uid, cn):
                    return True
            except DirectoryUnavailable:
                self.log.info("the directory cannot say whether {viewer} is in {cn}: {owner} stays hidden",
                              viewer=viewer.uid, cn=cn, owner=owner)
                return False
        return False

    def detailOf(self, owner: str) -> Shown:
        return self.settingsOf(owner).detail
