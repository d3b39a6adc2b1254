"""
The page people read: C{GET /calendar/?who=alice,betty&week=2026-11-23}.

In a browser it is a search box and, for each person asked for, a week grid
of their busy times with links to the previous and next week, rendered on
the server (every text escaped) with a small stylesheet and script of our
own (C{fbtwist/data/page.css}, C{page.js}; no CDN).  With
C{Accept: application/json} the same data comes as JSON.  Only busy times
are shown, as through every lookup URL.
"""

import html
import json
from datetime import date, datetime, time, timedelta, timezone
from typing import List, Optional
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from twisted.python.filepath import FilePath
from twisted.web import http

from fbtwist import freebusy
from fbtwist.freebusy import Period, TimeRange, startOfDay
from fbtwist.webresponse import HTTPError

DATA = FilePath(__file__).sibling("data")

#: The page's own files, served under /calendar/.
STATIC_FILES = {
    b"page.css": ("page.css", b"text/css; charset=utf-8"),
    b"page.js": ("page.js", b"text/javascript; charset=utf-8"),
}

PAGE_PATH = "/calendar/"
_DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MAX_NAME = 256
_SECURITY_HEADERS = (
    (b"Content-Security-Policy", b"default-src 'none'; style-src 'self'; script-src 'self'; form-action 'self'"),
    (b"X-Content-Type-Options", b"nosniff"),
    (b"Referrer-Policy", b"no-referrer"),
)


def serveStatic(request, name: bytes) -> None:
    fileName, contentType = STATIC_FILES[name]
    body = DATA.child(fileName).getContent()
    request.setHeader(b"Content-Type", contentType)
    request.setHeader(b"Cache-Control", b"max-age=3600")
    request.setHeader(b"X-Content-Type-Options", b"nosniff")
    request.setHeader(b"Content-Length", b"%d" % len(body))
    request.write(body)
    request.finish()


def _arguments(request, name: str) -> List[str]:
    values = []
    for raw in request.args.get(name.encode("ascii"), []):
        try:
            values.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise HTTPError(http.BAD_REQUEST, f"the {name} parameter is not UTF-8") from None
    return values


def peopleAskedFor(request, limit: int) -> List[str]:
    """
    The names in C{who} (comma-separated, repeatable), in order, once each.

    @raise HTTPError: 400 for too many or too long names.
    """
    names = []
    for value in _arguments(request, "who"):
        for name in value.split(","):
            name = name.strip()
            if name and name.lower() not in (n.lower() for n in names):
                if len(name) > _MAX_NAME:
                    raise HTTPError(http.BAD_REQUEST, "a name in who is too long")
                names.append(name)
    if len(names) > limit:
        raise HTTPError(http.BAD_REQUEST, f"ask for at most {limit} people at once")
    return names


def zoneAskedFor(request, default: ZoneInfo) -> ZoneInfo:
    values = _arguments(request, "tz")
    if not values or not values[0].strip():
        return default
    try:
        return ZoneInfo(values[0].strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise HTTPError(http.BAD_REQUEST, f"tz={values[0]!r} is not a time zone such as Europe/Berlin") from None


def weekAskedFor(request, today: date) -> date:
    """
    The Monday of the week asked for (C{week=YYYY-MM-DD}, any day of it),
    or of this week.
    """
    values = _arguments(request, "week")
    day = today
    if values and values[0].strip():
        try:
            day = date.fromisoformat(values[0].strip())
        except ValueError:
            raise HTTPError(http.BAD_REQUEST, f"week={values[0]!r} is not a date such as 2026-11-23") from None
    return day - timedelta(days=day.weekday())


class Cell:
    """
    One hour of one day in the grid: its UTC bounds and what covers it.
    """

    def __init__(self, day: date, hour: int, zone: ZoneInfo):
        self.day, self.hour = day, hour
        self.start = datetime.combine(day, time(hour), zone).astimezone(timezone.utc)
        self.end = (
            datetime.combine(day, time(hour + 1), zone) if hour < 23 else startOfDay(day + timedelta(days=1), zone)
        ).astimezone(timezone.utc)
        self.fbtype: Optional[str] = None
        self.periods: List[Period] = []

    @property
    def exists(self) -> bool:
        # The hour skipped when clocks go forward takes no time.
        return self.end > self.start

    def quarters(self) -> Optional[tuple]:
        """
        Which quarters of the hour (first, last + 1, of 0 to 4) the busy
        periods cover, when they are one stretch that leaves part of the
        hour free; otherwise C{None}.
        """
        if not self.periods or not self.exists:
            return None
        spans = sorted((max(p.start, self.start), min(p.end, self.end)) for p in self.periods)
        first, last = spans[0]
        for start, end in spans[1:]:
            if start > last:
                return None  # a gap inside the hour: shown as wholly busy
            last = max(last, end)
        length = (self.end - self.start).total_seconds()
        begin = int(4 * (first - self.start).total_seconds() // length)
        finish = -int(-4 * (last - self.start).total_seconds() // length)
        return None if (begin, finish) == (0, 4) else (begin, max(finish, begin + 1))

    def cover(self, periods: List[Period]) -> None:
        for p in periods:
            if p.start < self.end and p.end > self.start and p.isBusy:
                self.periods.append(p)
                if self.fbtype is None or freebusy.strength(p.fbtype) > freebusy.strength(self.fbtype):
                    self.fbtype = p.fbtype


def _localTime(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")


async def answerPage(lookup, request) -> None:
    """
    Render the page (HTML, or JSON when the client asks for it).
    """
    settings = lookup.settings
    names = peopleAskedFor(request, settings.maxPeople)
    zone = zoneAskedFor(request, settings.defaultZone)
    today = lookup.now().astimezone(zone).date()
    monday = weekAskedFor(request, today)
    days = [monday + timedelta(days=i) for i in range(7)]
    week = TimeRange(startOfDay(monday, zone), startOfDay(monday + timedelta(days=7), zone))
    people = []
    for name in names:
        busy = await lookup.busyTimes(name, week)
        people.append((name, busy))

    def link(weekStart: date) -> str:
        query = [("week", weekStart.isoformat())]
        if names:
            query.insert(0, ("who", ",".join(names)))
        if zone is not settings.defaultZone:
            query.append(("tz", zone.key))
        return PAGE_PATH + "?" + urlencode(query)

    previous, following = link(monday - timedelta(days=7)), link(monday + timedelta(days=7))
    request.setHeader(b"Vary", b"Accept")
    request.setHeader(b"Cache-Control", b"no-cache")
    if _wantsJSON(request):
        body = json.dumps(
            {
                "timezone": zone.key,
                "week": {"start": week.start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                         "end": week.end.strftime("%Y-%m-%dT%H:%M:%SZ")},
                "days": [d.isoformat() for d in days],
                "previous": previous,
                "next": following,
                "people": [
                    {"name": name, "found": busy is not None, "busy": freebusy.busyAsJSON(busy or [])}
                    for name, busy in people
                ],
            },
            ensure_ascii=False,
        ).encode("utf-8")
        request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
    else:
        body = renderHTML(names, people, days, zone, today, previous, following).encode("utf-8")
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        for header, value in _SECURITY_HEADERS:
            request.setHeader(header, value)
    request.setHeader(b"Content-Length", b"%d" % len(body))
    request.write(body)


def _wantsJSON(request) -> bool:
    """
    Whether the client prefers JSON to HTML (a browser lists text/html).
    """
    accept = (request.getHeader(b"Accept") or b"").decode("latin-1").lower()
    types = [part.split(";", 1)[0].strip() for part in accept.split(",")]
    return "application/json" in types and "text/html" not in types


def renderHTML(names, people, days, zone: ZoneInfo, today: date, previous: str, following: str) -> str:
    e = html.escape
    title = "Free/busy" + (": " + ", ".join(names) if names else "")
    out = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)}</title>",
        f'<link rel="stylesheet" href="{PAGE_PATH}page.css">',
        f'<script src="{PAGE_PATH}page.js" defer></script>',
        "</head><body>",
        "<header><h1>Free/busy</h1>",
        f'<form method="get" action="{PAGE_PATH}" role="search">',
        '<label for="who">People (names or addresses, comma-separated)</label> ',
        f'<input id="who" name="who" type="search" value="{e(", ".join(names))}" '
        f'placeholder="alice, betty@example.com"{"" if names else " autofocus"}>',
        f'<input type="hidden" name="week" value="{days[0].isoformat()}">',
        '<button type="submit">Show</button></form></header>',
        '<nav class="weeks">',
        f'<a id="previous" rel="prev" href="{e(previous)}">&larr; previous week</a>',
        f'<span class="range">{days[0].strftime("%d %b %Y")} &ndash; {days[-1].strftime("%d %b %Y")} '
        f"({e(zone.key)})</span>",
        f'<a id="next" rel="next" href="{e(following)}">next week &rarr;</a>',
        "</nav>",
        '<p id="detail" aria-live="polite"></p>',
    ]
    if not names:
        out.append('<p class="hint">Type one or more names to see their busy times for a week.</p>')
    for name, busy in people:
        out.append(f'<section class="person"><h2>{e(name)}</h2>')
        if busy is None:
            out.append('<p class="missing">Nobody by this name has published free/busy times.</p></section>')
            continue
        out.append(f'<table class="week" data-person="{e(name)}"><thead><tr><th></th>')
        for day in days:
            css = ' class="today"' if day == today else ""
            out.append(f'<th scope="col"{css}>{_DAY_NAMES[day.weekday()]} {day.strftime("%d %b")}</th>')
        out.append("</tr></thead><tbody>")
        for hour in range(24):
            out.append(f'<tr><th scope="row">{hour:02d}:00</th>')
            for day in days:
                cell = Cell(day, hour, zone)
                cell.cover(busy)
                classes = []
                if day == today:
                    classes.append("today")
                if not cell.exists:
                    classes.append("gap")
                text = ""
                if cell.fbtype is not None:
                    classes.append(cell.fbtype.lower())
                    part = cell.quarters()
                    if part is not None:
                        classes += ["partial", f"from-{part[0]}", f"to-{part[1]}"]
                    text = "; ".join(
                        f"{_localTime(p.start, zone)} to {_localTime(p.end, zone)} {p.fbtype.lower()}"
                        for p in cell.periods
                    )
                attributes = f' data-day="{day.isoformat()}" data-hour="{hour}"'
                if classes:
                    attributes += f' class="{" ".join(classes)}"'
                if text:
                    attributes += f' title="{e(text)}"'
                out.append(f"<td{attributes}></td>")
            out.append("</tr>")
        out.append("</tbody></table></section>")
    out.append('<footer><p>Only busy times are shown. Calendar clients: '
               f'<code>{e(PAGE_PATH)}&lt;name&gt;.vfb</code></p></footer>')
    out.append("</body></html>")
    return "\n".join(out)
