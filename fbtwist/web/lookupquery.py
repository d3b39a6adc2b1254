"""
What a lookup URL asks for: the name in its last segment, and the CalConnect
Freebusy Read URL parameters (C{start}, C{end}, C{period}, C{format}) and
C{fbtype=explicit} / C{simple=1}.
"""

from datetime import datetime, timedelta
from typing import NamedTuple, Optional

from twisted.web import http

from fbtwist.access.values import validateName
from fbtwist.calendar import freebusy
from fbtwist.calendar.freebusy import RangeError, TimeRange
from fbtwist.errors import InvalidName
from fbtwist.web.responses import HTTPError

#: The suffixes a lookup URL may end in (Outlook's, and RFC 5545's).
LOOKUP_SUFFIXES = (".vfb", ".ifb")
FORMAT_ICALENDAR = "text/calendar"
FORMAT_JCAL = "application/calendar+json"


class Query(NamedTuple):
    """
    What a lookup's parameters ask for.
    """

    range: Optional[TimeRange]
    format: str
    style: str
    #: Whether time outside the person's working hours is to be marked
    #: C{BUSY-UNAVAILABLE} (C{workhours=1}).
    workhours: bool = False

    @property
    def transforms(self) -> bool:
        """
        Whether anything but the default answer (the whole published
        window, as iCalendar, FBTYPEs as published) is asked for.
        """
        return self.range is not None or self.format != FORMAT_ICALENDAR or self.style != freebusy.STYLE_PUBLISHED \
            or self.workhours


def argument(request, name: str) -> Optional[str]:
    """
    The first value of a query parameter as text, or C{None}.

    @raise HTTPError: 400 when it is not UTF-8.
    """
    values = request.args.get(name.encode("ascii"))
    if not values:
        return None
    try:
        return values[0].decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPError(http.BAD_REQUEST, f"the {name} parameter is not UTF-8") from None


#: What a lookup without parameters asks for.
NO_PARAMETERS = Query(None, FORMAT_ICALENDAR, freebusy.STYLE_PUBLISHED)


def parseQuery(request, now: datetime, window: timedelta) -> Query:
    """
    Read the lookup parameters.

    @raise HTTPError: 400 for bad times or options, 406 for a format other
        than iCalendar or jCal.
    """
    if not request.args:
        return NO_PARAMETERS
    try:
        timeRange = freebusy.parseRange(
            argument(request, "start"), argument(request, "end"), argument(request, "period"), now, window
        )
    except RangeError as e:
        raise HTTPError(http.BAD_REQUEST, str(e)) from None
    wanted = (argument(request, "format") or FORMAT_ICALENDAR).split(";", 1)[0].strip().lower()
    if " " in wanted and wanted.replace(" ", "+") == FORMAT_JCAL:
        # A "+" in a query string means a space (HTML forms' encoding).
        raise HTTPError(
            http.NOT_ACCEPTABLE, f"format={wanted} is not served: a + in a URL is read as a space, "
                                 f"write format={FORMAT_JCAL.replace('+', '%2B')}"
        )
    if wanted not in (FORMAT_ICALENDAR, FORMAT_JCAL):
        raise HTTPError(
            http.NOT_ACCEPTABLE, f"format={wanted} is not served: ask for {FORMAT_ICALENDAR} or {FORMAT_JCAL}"
        )
    style = freebusy.STYLE_PUBLISHED
    fbtype = argument(request, "fbtype")
    if fbtype is not None:
        if fbtype.strip().lower() != "explicit":
            raise HTTPError(http.BAD_REQUEST, "fbtype may only be explicit")
        style = freebusy.STYLE_EXPLICIT
    if flagArgument(request, "simple"):
        if style == freebusy.STYLE_EXPLICIT:
            raise HTTPError(http.BAD_REQUEST, "ask for fbtype=explicit or simple=1, not both")
        style = freebusy.STYLE_SIMPLE
    return Query(timeRange, wanted, style, flagArgument(request, "workhours"))


def flagArgument(request, name: str) -> bool:
    """
    A yes-or-no query parameter (C{1}, C{0}, C{yes}, C{no}, C{true},
    C{false}); absent is no.

    @raise HTTPError: 400 for anything else.
    """
    value = argument(request, name)
    if value is None:
        return False
    value = value.strip().lower()
    if value not in ("1", "0", "yes", "no", "true", "false"):
        raise HTTPError(http.BAD_REQUEST, f"{name} must be 1 or 0")
    return value in ("1", "yes", "true")


def splitLookupName(segment: bytes) -> str:
    """
    The name in a C{<name>.vfb} or C{<name>.ifb} path segment (already
    percent-decoded, so C{%40} arrived as C{@}).

    @raise HTTPError: 404 for anything else.
    """
    try:
        text = segment.decode("utf-8")
        validateName(text)
    except (UnicodeDecodeError, InvalidName):
        raise HTTPError(http.NOT_FOUND, "no such name") from None
    lowered = text.lower()
    for suffix in LOOKUP_SUFFIXES:
        if lowered.endswith(suffix) and len(text) > len(suffix):
            return text[: -len(suffix)]
    raise HTTPError(http.NOT_FOUND, "ask for /calendar/<name>.vfb or /calendar/<name>.ifb")
