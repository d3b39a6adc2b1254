"""
Rooms and other bookable resources, as plain values: what the directory
says of each, and which fit a meeting.
"""

from typing import Iterable, List, NamedTuple, Sequence, Tuple


class Room(NamedTuple):
    """
    A room from the directory.

    @ivar uid: Its login (the directory URL's attribute): the name its
        free/busy is published and looked up under.
    @ivar name: Its display name (C{cn}), or the uid.
    @ivar capacity: How many people it seats (0: not said).
    @ivar equipment: What it has, lower-cased, sorted.
    """

    uid: str
    name: str
    capacity: int = 0
    equipment: Tuple[str, ...] = ()

    def fits(self, capacity: int, equipment: Sequence[str]) -> bool:
        """
        Whether the room seats C{capacity} and has every item of
        C{equipment} (compared case-insensitively).
        """
        return self.capacity >= capacity and all(item.lower() in self.equipment for item in equipment)


def fitting(rooms: Iterable[Room], capacity: int, equipment: Sequence[str]) -> List[Room]:
    """
    The rooms that fit, by uid.
    """
    return sorted((room for room in rooms if room.fits(capacity, equipment)), key=lambda room: room.uid)


def equipmentOf(values: Iterable[str]) -> Tuple[str, ...]:
    """
    A room's equipment from its directory values, lower-cased: Exchange's
    C{msExchResourceMetaData} also holds C{ResourceType:Room}, which is not
    equipment and is left out.
    """
    items = set()
    for value in values:
        text = value.strip()
        if not text or text.lower().startswith("resourcetype:"):
            continue
        items.add(text.lower())
    return tuple(sorted(items))


def capacityOf(values: Iterable[str]) -> int:
    """
    A room's capacity from its directory values: the first whole number,
    else 0.
    """
    for value in values:
        try:
            return max(0, int(value.strip()))
        except ValueError:
            continue
    return 0
