"""
Rooms in the directory: the entries a configured filter matches below a
configured base (C{(objectClass=room)} in OpenLDAP, Exchange's room
mailboxes in Active Directory), their capacity and equipment from
configured attributes, and the people a configured attribute names as
their delegates (who may publish a room's free/busy).

A room's login (the directory URL's attribute) is the name its free/busy
is published and looked up under, as a person's; its mail addresses (the
directory's mail attributes) and display name make it a CalDAV principal
of type C{ROOM} (L{DirectoryRooms.principals}), found and searched in the
same kept list.
"""

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Set, Tuple

from ldaptor.protocols import pureldap
from twisted.internet import defer
from twisted.python.failure import Failure

from fbtwist.availability.rooms import Room, capacityOf, equipmentOf
from fbtwist.directory.entries import _dnKey, allValues, firstValue
from fbtwist.directory.filters import anyOf, equalityFilter, prefixFilter
from fbtwist.directory.ldapurl import _parsedFilter
from fbtwist.directory.principals import MIN_SEARCH_TEXT, principalAttributes, principalRecord
from fbtwist.interfaces import ROOM, PrincipalRecord

#: How long the list of rooms is kept before the directory is asked again.
ROOMS_TTL = 60.0
#: How many users' names as the rooms' delegates are remembered at most.
MAX_REMEMBERED = 10_000


@dataclass(frozen=True)
class RoomSearch:
    """
    Where rooms are and what their attributes are called.

    @ivar base: Searched below (the whole subtree).
    @ivar filter: An LDAP filter, as text, matching rooms only.
    @ivar capacityAttribute: Holds how many people a room seats.
    @ivar equipmentAttribute: Holds what a room has, a value an item.
    @ivar delegateAttribute: Names (by DN, or by login) the people who may
        publish a room's free/busy.
    """

    base: str
    filter: str = "(objectClass=room)"
    capacityAttribute: str = "msExchResourceCapacity"
    equipmentAttribute: str = "msExchResourceMetaData"
    delegateAttribute: str = "owner"

    def filterObject(self):
        return _parsedFilter(self.filter)


class DirectoryRooms:
    """
    The rooms of one directory (an L{fbtwist.directory.ldapdirectory.LDAPDirectory}).
    """

    def __init__(self, directory, search: RoomSearch, clock):
        self.directory = directory
        self.search = search
        self.clock = clock
        self._rooms: Optional[List[Room]] = None
        #: The rooms as principals, in the order of L{_rooms}.
        self._records: List[PrincipalRecord] = []
        self._loaded = 0.0
        #: Callers waiting for the list being fetched (one search serves
        #: them all), or C{None} while none is.
        self._waiting: Optional[List[defer.Deferred]] = None
        #: The kept rooms by the values of their delegate attribute: as
        #: they are (a delegate named by login), and as DN keys (by DN).
        self._byLogin: Dict[str, Set[str]] = {}
        self._byDN: Dict[str, Set[str]] = {}
        #: Each user's DN key (C{None}: none found), and when it was found.
        self._userKeys: Dict[str, Tuple[float, Optional[str]]] = {}

    async def _entries(self, condition, attributes):
        filterObject = self.search.filterObject()
        if condition is not None:
            filterObject = pureldap.LDAPFilter_and([filterObject, condition])
        return await self.directory.search(
            filterObject, attributes, base=self.search.base, scope=pureldap.LDAP_SCOPE_wholeSubtree,
            withURLFilter=False,
        )

    async def rooms(self) -> List[Room]:
        """
        Every room, by uid (entries without one are left out), kept for
        L{ROOMS_TTL} seconds; callers asking while the list is fetched
        wait for that one search.
        """
        now = self.clock.seconds()
        if self._rooms is not None and now - self._loaded < ROOMS_TTL:
            return self._rooms
        waiter = defer.Deferred()
        if self._waiting is not None:
            self._waiting.append(waiter)
        else:
            # The search runs on its own, not as the first caller's: a
            # caller that gives up stops no one else's wait.
            self._waiting = [waiter]
            defer.Deferred.fromCoroutine(self._load(now)).addBoth(self._fetched)
        return await waiter

    def _fetched(self, outcome) -> None:
        waiting, self._waiting = self._waiting, None
        for waiter in waiting:
            if isinstance(outcome, Failure):
                waiter.errback(outcome)
            else:
                waiter.callback(outcome)

    async def _load(self, now: float) -> List[Room]:
        attribute, mails = self.directory.url.attribute, self.directory.mailAttributes
        delegate = self.search.delegateAttribute
        entries = await self._entries(
            None, principalAttributes(attribute, mails) + [self.search.capacityAttribute,
                                                           self.search.equipmentAttribute, delegate])
        rooms, records = [], {}
        byLogin: Dict[str, Set[str]] = {}
        byDN: Dict[str, Set[str]] = {}
        for entry in entries:
            uid = firstValue(entry, attribute)
            if uid:
                rooms.append(Room(uid, firstValue(entry, "cn") or uid,
                                  capacityOf(allValues(entry, self.search.capacityAttribute)),
                                  equipmentOf(allValues(entry, self.search.equipmentAttribute))))
                records[uid] = principalRecord(entry, ROOM, attribute, mails)
                for value in allValues(entry, delegate):
                    byLogin.setdefault(value, set()).add(uid)
                    if "=" in value:
                        byDN.setdefault(_dnKey(value), set()).add(uid)
        self._rooms, self._loaded = sorted(rooms), now
        self._records = [records[room.uid] for room in self._rooms]
        self._byLogin, self._byDN = byLogin, byDN
        return self._rooms

    async def principals(self) -> List[PrincipalRecord]:
        """
        Every room as a CalDAV principal (kind L{ROOM}), from the list
        L{rooms} keeps.
        """
        await self.rooms()
        return self._records

    async def principal(self, uid: str) -> Optional[PrincipalRecord]:
        """
        The room whose uid is C{uid} (exactly), or C{None}.
        """
        for record in await self.principals():
            if record.name == uid:
                return record
        return None

    async def principalByAddress(self, address: str) -> Optional[PrincipalRecord]:
        """
        The one room holding the mail address C{address} (without case), or
        C{None}.
        """
        address = address.strip().lower()
        found = [r for r in await self.principals() if address in (a.lower() for a in r.addresses)]
        return found[0] if len(found) == 1 else None

    async def searchPrincipals(self, text: str, limit: int) -> List[PrincipalRecord]:
        """
        The rooms whose uid, display name (or a word of it) or a mail
        address starts with C{text} (without case), at most C{limit}, by
        display name.
        """
        text = text.strip().lower()
        if len(text) < MIN_SEARCH_TEXT or limit <= 0:
            return []
        found = [r for r in await self.principals() if _startsWith(r, text)]
        found.sort(key=lambda r: (r.displayName.lower(), r.name))
        return found[:limit]

    async def delegatedRooms(self, uid: str) -> List[str]:
        """
        The uids of the rooms whose delegate attribute names C{uid}: by the
        user's DN (compared as DNs), or by the login itself.  Answered from
        the kept list of rooms (L{rooms}, which holds their delegates):
        every login asks, and a search per login would cost more than the
        rest of a publish.  The user's DN is looked for only when some
        room names its delegates by DN (from the name index when it
        knows the login, else by a search), and kept for L{ROOMS_TTL}
        seconds too.
        """
        await self.rooms()
        found = set(self._byLogin.get(uid, ()))
        if self._byDN:
            userKey = await self._userKey(uid)
            if userKey is not None:
                found |= self._byDN.get(userKey, set())
        return sorted(found)

    async def _userKey(self, uid: str) -> Optional[str]:
        """
        The DN key (L{_dnKey}) of the entry C{uid} names, or C{None}.
        """
        now = self.clock.seconds()
        known = self._userKeys.get(uid)
        if known is not None and now - known[0] < ROOMS_TTL:
            return known[1]
        indexed = self.directory.indexedLogin(uid)
        if indexed is not None:
            dn = indexed[1]
        else:
            user = await self.directory.findUser(uid)
            dn = user.dn.getText() if user is not None else None
        key = _dnKey(dn) if dn is not None else None
        if len(self._userKeys) >= MAX_REMEMBERED:
            self._userKeys.clear()
        self._userKeys[uid] = (now, key)
        return key

    async def resolveRoom(self, name: str) -> Optional[str]:
        """
        The uid of the one room called C{name} (its uid, a mail address or
        its local part), or C{None}.
        """
        attribute = self.directory.url.attribute
        mails = self.directory.mailAttributes
        alternatives = [equalityFilter(attribute, name)]
        if "@" in name:
            alternatives += [equalityFilter(a, name) for a in mails]
        else:
            alternatives += [prefixFilter(a, name + "@") for a in mails]
        entries = await self._entries(anyOf(alternatives), [attribute])
        uids = {firstValue(entry, attribute) for entry in entries} - {None}
        return uids.pop() if len(uids) == 1 else None


def _startsWith(record: PrincipalRecord, text: str) -> bool:
    candidates: Sequence[str] = [record.name, record.displayName, *record.displayName.split(), *record.addresses]
    return any(c.lower().startswith(text) for c in candidates)
