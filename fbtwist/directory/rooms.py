"""
Rooms in the directory: the entries a configured filter matches below a
configured base (C{(objectClass=room)} in OpenLDAP, Exchange's room
mailboxes in Active Directory), their capacity and equipment from
configured attributes, and the people a configured attribute names as
their delegates (who may publish a room's free/busy).

A room's login (the directory URL's attribute) is the name its free/busy
is published and looked up under, as a person's.
"""

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from ldaptor.protocols import pureldap

from fbtwist.availability.rooms import Room, capacityOf, equipmentOf
from fbtwist.directory.entries import _dnKey, allValues, firstValue
from fbtwist.directory.filters import anyOf, equalityFilter, prefixFilter
from fbtwist.directory.ldapurl import _parsedFilter

#: How long the list of rooms is kept before the directory is asked again.
ROOMS_TTL = 60.0
#: How many users' delegated rooms are remembered at most.
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
        self._loaded = 0.0
        #: Each user's delegated rooms, and when they were found.
        self._delegated: Dict[str, Tuple[float, List[str]]] = {}

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
        L{ROOMS_TTL} seconds.
        """
        now = self.clock.seconds()
        if self._rooms is not None and now - self._loaded < ROOMS_TTL:
            return self._rooms
        attribute = self.directory.url.attribute
        entries = await self._entries(
            None, [attribute, "cn", self.search.capacityAttribute, self.search.equipmentAttribute])
        rooms = []
        for entry in entries:
            uid = firstValue(entry, attribute)
            if uid:
                rooms.append(Room(uid, firstValue(entry, "cn") or uid,
                                  capacityOf(allValues(entry, self.search.capacityAttribute)),
                                  equipmentOf(allValues(entry, self.search.equipmentAttribute))))
        self._rooms, self._loaded = sorted(rooms), now
        return self._rooms

    async def delegatedRooms(self, uid: str) -> List[str]:
        """
        The uids of the rooms whose delegate attribute names C{uid}: by the
        user's DN (compared as DNs), or by the login itself; kept for
        L{ROOMS_TTL} seconds (every login asks).
        """
        now = self.clock.seconds()
        known = self._delegated.get(uid)
        if known is not None and now - known[0] < ROOMS_TTL:
            return known[1]
        rooms = await self._findDelegatedRooms(uid)
        if len(self._delegated) >= MAX_REMEMBERED:
            self._delegated.clear()
        self._delegated[uid] = (now, rooms)
        return rooms

    async def _findDelegatedRooms(self, uid: str) -> List[str]:
        attribute, delegate = self.directory.url.attribute, self.search.delegateAttribute
        user = await self.directory.findUser(uid)
        names = [equalityFilter(delegate, uid)]
        if user is not None:
            names.append(equalityFilter(delegate, user.dn.getText()))
        entries = await self._entries(anyOf(names), [attribute, delegate])
        userKey = _dnKey(user.dn.getText()) if user is not None else None
        found = set()
        for entry in entries:
            room = firstValue(entry, attribute)
            values = allValues(entry, delegate)
            if room and any(value == uid or _dnKey(value) == userKey for value in values):
                found.add(room)
        return sorted(found)

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
