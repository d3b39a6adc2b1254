"""
The page people read: C{GET /calendar/?who=alice,betty&week=2026-11-23}.

In a browser it is a search box and, for each person asked for, a week grid
of their busy times with links to the previous and next week, rendered on
the server with C{twisted.web.template} (C{fbtwist/data/page.xhtml}; every
text escaped by the flattener) and a small stylesheet and script of our own
(C{fbtwist/data/page.css}, C{page.js}; no CDN).  Each stretch of busy time
is one block in its day's column, placed by its start and length; the
script shows a clicked block's times next to it.  With
C{Accept: application/json} the same data comes as JSON.  Only busy times
are shown, as through every lookup URL.

C{/} is a small page of its own (L{RootElement}) pointing here and to the
set-up page.
"""

import json
from datetime import date, datetime, time, timedelta, timezone
from typing import Dict, List, NamedTuple, Optional, Sequence
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from twisted.python.filepath import FilePath
from twisted.web import http
from twisted.web.template import Element, XMLFile, flattenString, renderer, tags

from fbtwist.calendar import freebusy
from fbtwist.calendar.freebusy import BUSY, BUSY_TENTATIVE, BUSY_UNAVAILABLE, Period, TimeRange, startOfDay
from fbtwist.web.responses import HTTPError

DATA = FilePath(__file__).parent().sibling("data")

#: The page's own files, served under /calendar/.
STATIC_FILES = {
    b"page.css": ("page.css", b"text/css; charset=utf-8"),
    b"page.js": ("page.js", b"text/javascript; charset=utf-8"),
}

PAGE_PATH = "/calendar/"
_DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MAX_NAME = 256
_SECURITY_HEADERS = (
    (b"Content-Security-Policy", b"default-src 'none'; style-src 'self'; script-src 'self'; form-action 'self'"),
    (b"X-Content-Type-Options", b"nosniff"),
    (b"Referrer-Policy", b"no-referrer"),
)


def securityHeaders(request) -> None:
    """
    The headers of every HTML page of ours: nothing but our own stylesheet
    and script may load or run (no inline script or style).
    """
    for header, value in _SECURITY_HEADERS:
        request.setHeader(header, value)


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


def findAskedFor(request) -> tuple:
    """
    The meeting length "find a time" asks for (C{find}, one of
    L{FIND_DURATIONS}, else C{None}) and whether within working hours
    (C{workhours=1}).

    @raise HTTPError: 400 for another length.
    """
    values = _arguments(request, "find")
    finding = values[0].strip().upper() if values and values[0].strip() else None
    if finding is not None and finding not in FIND_DURATIONS:
        raise HTTPError(http.BAD_REQUEST, "find must be one of " + ", ".join(FIND_DURATIONS))
    return finding, (_arguments(request, "workhours") or [""])[0].strip() in ("1", "yes", "true")


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


#: The kinds of busy time the page draws: FBTYPE -> (CSS class, words).
#: Any other FBTYPE was read as BUSY (RFC 5545 3.2.9).
KINDS: Dict[str, tuple] = {
    BUSY: ("busy", "busy"),
    BUSY_TENTATIVE: ("tentative", "tentative"),
    BUSY_UNAVAILABLE: ("away", "out of office"),
}

#: The type of the periods "find a time" suggests (drawn on a grid of their
#: own, never served as free/busy).
SUGGESTION = "X-FBTWIST-SUGGESTION"
KINDS[SUGGESTION] = ("suggestion", "free for everyone")

#: The meeting lengths the "find a time" form offers: ISO 8601 -> words.
FIND_DURATIONS = {"PT30M": "30 minutes", "PT1H": "1 hour", "PT90M": "1½ hours", "PT2H": "2 hours"}

#: The grid places blocks to this many minutes.
STEP = 5
_STEPS_PER_HOUR = 60 // STEP
_STEPS_PER_DAY = 24 * _STEPS_PER_HOUR


def kindOf(fbtype: str) -> tuple:
    """
    The CSS class and the words for busy time of type C{fbtype}.
    """
    return KINDS.get(fbtype, KINDS[BUSY])


class Cell:
    """
    One hour of one day in the grid, and its UTC bounds.
    """

    def __init__(self, day: date, hour: int, zone: ZoneInfo):
        self.day, self.hour = day, hour
        self.start = datetime.combine(day, time(hour), zone).astimezone(timezone.utc)
        self.end = (
            datetime.combine(day, time(hour + 1), zone) if hour < 23 else startOfDay(day + timedelta(days=1), zone)
        ).astimezone(timezone.utc)

    @property
    def exists(self) -> bool:
        # The hour skipped when clocks go forward takes no time.
        return self.end > self.start


class Block(NamedTuple):
    """
    The part of one busy period that falls on one day, as the grid draws
    it: from C{start} to C{end}, counted in L{STEP}s of wall-clock time
    since that day's midnight (start rounded down, end up, at least one
    step long).
    """

    period: Period
    start: int
    end: int

    @property
    def hour(self) -> int:
        """
        The hour the block starts in.
        """
        return self.start // _STEPS_PER_HOUR

    def geometry(self) -> List[str]:
        """
        The CSS classes that place the block in its day's column:
        C{hour-H at-N} (it starts N steps after hour H), C{h-N f-N} (it
        lasts N hours and N steps); see C{page.css}.
        """
        length = self.end - self.start
        return [f"hour-{self.hour}", f"at-{self.start % _STEPS_PER_HOUR}", f"h-{length // _STEPS_PER_HOUR}",
                f"f-{length % _STEPS_PER_HOUR}"]


def _wallSteps(moment: datetime, zone: ZoneInfo, roundUp: bool) -> int:
    local = moment.astimezone(zone)
    seconds = local.hour * 3600 + local.minute * 60 + local.second + (local.microsecond > 0)
    step = STEP * 60
    return -(-seconds // step) if roundUp else seconds // step


def dayBlocks(periods: Sequence[Period], day: date, zone: ZoneInfo) -> List[Block]:
    """
    The blocks of C{day} (in C{zone}) for merged busy C{periods}: one per
    period, cut at midnight.
    """
    dayStart, dayEnd = startOfDay(day, zone), startOfDay(day + timedelta(days=1), zone)
    blocks = []
    for p in periods:
        if not p.isBusy or p.end <= dayStart or p.start >= dayEnd:
            continue
        start = _wallSteps(max(p.start, dayStart), zone, roundUp=False)
        end = _STEPS_PER_DAY if p.end >= dayEnd else _wallSteps(p.end, zone, roundUp=True)
        # At least one step; inside the hour repeated when clocks go back a
        # period can even end "before" it began on the wall clock.
        blocks.append(Block(p, start, max(end, start + 1)))
    return blocks


def _dayAndMonth(day: date) -> str:
    return f"{day.day:d} {_MONTH_NAMES[day.month - 1]}"


def _dayAndTime(moment: datetime) -> str:
    return f"{_DAY_NAMES[moment.weekday()]} {_dayAndMonth(moment)} {moment:%H:%M}"


def describe(period: Period, zone: ZoneInfo) -> str:
    """
    A period in words, for people: C{"busy, Tue 24 Nov 10:00 to 11:30"}
    (the end's day only when it is another day).
    """
    start, end = period.start.astimezone(zone), period.end.astimezone(zone)
    if end.date() == start.date():
        until = f"{end:%H:%M}"
    elif end.date() == start.date() + timedelta(days=1) and end.time() == time(0):
        until = "midnight"
    else:
        until = _dayAndTime(end)
    return f"{kindOf(period.fbtype)[1]}, {_dayAndTime(start)} to {until}"


async def answerPage(lookup, request, reader) -> None:
    """
    Render the page (HTML, or JSON when the client asks for it) as
    C{reader} (an L{fbtwist.interfaces.IFreeBusyReader}) may see it.
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
        busy = await lookup.busyTimes(name, week, reader)
        people.append((name, busy))
    finding, workhours = findAskedFor(request)
    suggestions = []
    if finding is not None and names:
        slots = await lookup.suggestTimes(names, week, freebusy.parseDuration("find", finding), zone, workhours)
        suggestions = [Period(slot.start, slot.end, SUGGESTION) for slot in slots]
    # The zone asked for is kept by the week links and the search form.
    keptZone = None if zone.key == settings.defaultZone.key else zone.key

    def link(weekStart: date) -> str:
        query = [("week", weekStart.isoformat())]
        if names:
            query.insert(0, ("who", ",".join(names)))
        if keptZone is not None:
            query.append(("tz", keptZone))
        if finding is not None:
            query += [("find", finding)] + ([("workhours", "1")] if workhours else [])
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
        element = PageElement(names, people, days, zone, keptZone, today, previous, following,
                              finding=finding, workhours=workhours, suggestions=suggestions)
        body = b"<!DOCTYPE html>\n" + await flattenString(None, element)
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        securityHeaders(request)
    request.setHeader(b"Content-Length", b"%d" % len(body))
    request.write(body)


def _wantsJSON(request) -> bool:
    """
    Whether the client prefers JSON to HTML (a browser lists text/html).
    """
    accept = (request.getHeader(b"Accept") or b"").decode("latin-1").lower()
    types = [part.split(";", 1)[0].strip() for part in accept.split(",")]
    return "application/json" in types and "text/html" not in types


class PageElement(Element):
    """
    The page's HTML: the frame from C{page.xhtml}, the week grids built
    here.
    """

    loader = XMLFile(DATA.child("page.xhtml"))

    def __init__(self, names: List[str], people: list, days: List[date], zone: ZoneInfo,
                 keptZone: Optional[str], today: date, previous: str, following: str,
                 finding: Optional[str] = None, workhours: bool = False, suggestions: Sequence[Period] = ()):
        super().__init__()
        self.names, self.people, self.days, self.zone = names, people, days, zone
        self.keptZone, self.today, self.previous, self.following = keptZone, today, previous, following
        #: The meeting length asked for (C{find}), the working-hours box,
        #: and the slots found, as periods of type L{SUGGESTION}.
        self.finding, self.workhours, self.suggestions = finding, workhours, list(suggestions)
        #: The hours each day skips when clocks go forward.
        self.skipped = {day: [hour for hour in range(24) if not Cell(day, hour, zone).exists] for day in days}

    @renderer
    def page(self, request, tag):
        first, last = self.days[0], self.days[-1]
        return tag.fillSlots(
            title="Free/busy" + (": " + ", ".join(self.names) if self.names else ""),
            week=first.isoformat(),
            previous=self.previous,
            next=self.following,
            people=", ".join(self.names),
            range=f"{_dayAndMonth(first)} {first.year} – {_dayAndMonth(last)} {last.year} ({self.zone.key})",
        )

    @renderer
    def who(self, request, tag):
        tag(value=", ".join(self.names))
        if not self.names:
            tag(autofocus="autofocus")
        return tag

    @renderer
    def zoneKept(self, request, tag):
        return tag(value=self.keptZone) if self.keptZone is not None else ""

    @renderer
    def ifNobodyAsked(self, request, tag):
        return "" if self.names else tag

    @renderer
    def ifSomebodyAsked(self, request, tag):
        return tag if self.names else ""

    @renderer
    def grids(self, request, tag):
        return [self.person(name, busy) for name, busy in self.people]

    @renderer
    def findChoices(self, request, tag):
        return tag([tags.option(words, value=value, **({"selected": "selected"} if value == self.finding else {}))
                    for value, words in FIND_DURATIONS.items()])

    @renderer
    def workhoursBox(self, request, tag):
        return tag(checked="checked") if self.workhours else tag

    @renderer
    def suggested(self, request, tag):
        """
        The times "find a time" found this week: a list, and a grid.
        """
        if self.finding is None or not self.names:
            return ""
        title = f"Free for everyone ({FIND_DURATIONS.get(self.finding, self.finding)})"
        if not self.suggestions:
            return tags.section(tags.h2(title), tags.p("No time this week suits everyone.", class_="missing"),
                                class_="suggestions")
        times = tags.ol([tags.li(describe(period, self.zone).split(", ", 1)[1]) for period in self.suggestions])
        return tags.section(tags.h2(title), times, self.person(title, self.suggestions).children[1:],
                            class_="suggestions")

    def person(self, name: str, busy: Optional[List[Period]]):
        section = tags.section(tags.h2(name), class_="person")
        if busy is None:
            return section(tags.p("Nobody by this name has published free/busy times.", class_="missing"))
        head = tags.tr(tags.th(tags.span("Hours", class_="hidden")))
        for day in self.days:
            head(tags.th(tags.span(_DAY_NAMES[day.weekday()], class_="dayname"), " ",
                         tags.span(_dayAndMonth(day), class_="date"),
                         scope="col", **self._today(day)))
        # One row: the hours down the side, and a column per day holding its
        # blocks (a cell per hour would be 168 elements a person).
        row = tags.tr(tags.td([tags.span(f"{hour:02d}:00") for hour in range(24)], class_="hours"))
        for day in self.days:
            column = tags.td(**{"data-day": day.isoformat()}, **self._today(day))
            for hour in self.skipped[day]:
                column(tags.div(title=f"no {hour:02d}:00 this day: clocks go forward",
                                class_=f"gap hour-{hour} at-0 h-1 f-0"))
            for block in dayBlocks(busy, day, self.zone):
                kind, words = kindOf(block.period.fbtype)
                column(tags.button(tags.span(words), type="button", title=describe(block.period, self.zone),
                                   class_=" ".join(["block", kind] + block.geometry())))
            row(column)
        return section(tags.table(tags.thead(head), tags.tbody(row), class_="week", **{"data-person": name}))

    def _today(self, day: date) -> dict:
        return {"class": "today"} if day == self.today else {}


class RootElement(Element):
    """
    C{/}: what this server is, with links to the page and (when the site
    has one) the set-up page.
    """

    loader = XMLFile(DATA.child("root.xhtml"))

    def __init__(self, setup: bool):
        super().__init__()
        self.setup = setup

    @renderer
    def ifSetup(self, request, tag):
        return tag if self.setup else ""
