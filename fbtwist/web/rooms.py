"""
C{GET /calendar/rooms/?capacity=6&equipment=projector}: the rooms from the
directory that seat C{capacity} people and have every item of
C{equipment} (comma-separated, repeatable), as JSON (C{Accept:
application/json}) or a page.  Each room's free/busy is looked up like a
person's, at C{/calendar/<room>.vfb}.
"""

import json
from typing import List, Sequence

from twisted.web import http
from twisted.web.template import flattenString, tags

from fbtwist.availability.rooms import Room, fitting
from fbtwist.web import page
from fbtwist.web.lookupquery import argument
from fbtwist.web.responses import HTTPError

#: The most people a room may be asked to seat.
MAX_CAPACITY = 100_000


def _capacity(request) -> int:
    text = argument(request, "capacity")
    if text is None or not text.strip():
        return 0
    try:
        value = int(text.strip())
    except ValueError:
        raise HTTPError(http.BAD_REQUEST, "capacity must be a whole number") from None
    if not 0 <= value <= MAX_CAPACITY:
        raise HTTPError(http.BAD_REQUEST, f"capacity must be between 0 and {MAX_CAPACITY}")
    return value


def _equipment(request) -> List[str]:
    items = []
    for raw in request.args.get(b"equipment", []):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise HTTPError(http.BAD_REQUEST, "the equipment parameter is not UTF-8") from None
        items.extend(item.strip().lower() for item in text.split(",") if item.strip())
    return list(dict.fromkeys(items))


async def matchingRooms(directory, capacity: int, equipment: Sequence[str]) -> List[Room]:
    """
    The directory's rooms that seat C{capacity} and have every item of
    C{equipment}, by uid.
    """
    return fitting(await directory.findRooms(), capacity, equipment)


def roomAsJSON(room: Room) -> dict:
    return {"name": room.uid, "displayName": room.name, "capacity": room.capacity,
            "equipment": list(room.equipment), "freebusy": f"{page.PAGE_PATH}{room.uid}.vfb"}


def roomsPage(rooms: List[Room], capacity: int, equipment: List[str]):
    """
    The rooms page: a table of the rooms that fit (every text escaped by
    the flattener; our own stylesheet, nothing inline).
    """
    asked = []
    if capacity:
        asked.append(f"for {capacity} people")
    if equipment:
        asked.append("with " + ", ".join(equipment))
    title = "Rooms" + (" " + " ".join(asked) if asked else "")
    rows = [tags.tr(tags.td(tags.a(room.name, href=f"{page.PAGE_PATH}{room.uid}.vfb")),
                    tags.td(room.uid), tags.td(str(room.capacity) if room.capacity else ""),
                    tags.td(", ".join(room.equipment)))
            for room in rooms]
    body = tags.table(
        tags.thead(tags.tr(tags.th("Room"), tags.th("Name"), tags.th("Seats"), tags.th("Equipment"))),
        tags.tbody(rows), class_="rooms",
    ) if rows else tags.p("No room fits.", class_="missing")
    return tags.html(
        tags.head(tags.meta(charset="utf-8"), tags.title(title),
                  tags.link(rel="stylesheet", href=page.PAGE_PATH + "page.css")),
        tags.body(tags.h1(title), body),
        lang="en",
    )


async def answerRooms(lookup, request) -> None:
    """
    Answer C{GET /calendar/rooms/} from C{lookup}'s directory.
    """
    capacity, equipment = _capacity(request), _equipment(request)
    rooms = await matchingRooms(lookup.visibility.directory, capacity, equipment)
    request.setHeader(b"Vary", b"Accept")
    request.setHeader(b"Cache-Control", b"no-cache")
    if page._wantsJSON(request):
        body = json.dumps({"rooms": [roomAsJSON(room) for room in rooms]}, ensure_ascii=False).encode("utf-8")
        request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
    else:
        body = b"<!DOCTYPE html>\n" + await flattenString(None, roomsPage(rooms, capacity, equipment))
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        page.securityHeaders(request)
    request.setHeader(b"Content-Length", b"%d" % len(body))
    request.write(body)
