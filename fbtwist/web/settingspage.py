"""
C{/settings}: a signed-in user's page (HTTP Basic through the one portal,
as C{/feeds}) to choose who may see their free/busy times and at which
detail (L{fbtwist.access.settings}), and to set their working hours, per
day, several windows a day, in their time zone: written as
C{<login>.avail.ics} exactly as if they had published it (the same checks,
the same atomic publish through their avatar).  Rendered with
C{twisted.web.template} (C{fbtwist/data/settings.xhtml}) under the pages'
Content-Security-Policy; its forms are checked against cross-site requests
(L{fbtwist.web.forms}).
"""

from typing import Dict, List, Optional, Tuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from twisted.cred.portal import Portal
from twisted.logger import Logger
from twisted.web import http
from twisted.web.resource import IResource, Resource
from twisted.web.template import XMLFile, flattenString, renderer, tags

from fbtwist.access.settings import Audience, Shown, VisibilitySettings, validateGroups
from fbtwist.availability.model import BUSY_UNAVAILABLE, Availability
from fbtwist.availability.publish import AVAILABILITY_SUFFIX, validatePublish
from fbtwist.availability.vavailability import renderAvailability
from fbtwist.availability.workhours import DAYS, REFERENCE_MONDAY, WorkingHoursError, parseWorkingHours
from fbtwist.errors import InvalidCalendar
from fbtwist.web.auth import BasicAuthGuard
from fbtwist.web.forms import FormTokens, SignedInFormElement, checkForm, formTokensFor
from fbtwist.web.page import DATA, securityHeaders
from fbtwist.web.responses import HTTPError, renderAsync

SETTINGS_PATH = b"/settings"
#: The page's forms, for their tokens.
FORM = "settings"
#: The largest form accepted, in bytes.
MAX_FORM = 8192

_WHO_LABELS = (
    (Audience.EVERYONE, "Everyone (people who are not signed in too, where this site lets them look)"),
    (Audience.SIGNED_IN, "Everyone who signs in"),
    (Audience.GROUPS, "Members of these directory groups"),
    (Audience.NOBODY, "Nobody"),
)
_DETAIL_LABELS = (
    (Shown.BUSY, "Busy only: every period shown as busy"),
    (Shown.FULL, "Full: busy, tentative and out of office"),
)
_CODES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


class ISettingsPage(IResource):
    """
    What the realm is asked for to show a signed-in user their settings.
    """


def dayWindows(model: Optional[Availability]) -> Optional[Tuple[str, Dict[int, List[str]]]]:
    """
    The per-day windows of working hours as the form shows them, when
    C{model} has that shape (one block of weekly windows, as the form and
    C{--working-hours} write them).

    @return: C{(zone name, {weekday: ["08:00-12:00", ...]})}, or C{None}.
    """
    if model is None or len(model.blocks) != 1:
        return None
    block = model.blocks[0]
    zone = getattr(model.zone, "key", None)
    if zone is None or block.start is not None or block.end is not None or block.busytype != BUSY_UNAVAILABLE:
        return None
    days: Dict[int, List[str]] = {}
    for window in block.windows:
        if len(window.rules) != 1 or window.dates or window.exdates or window.exactLength:
            return None
        rule = window.rules[0]
        if not rule.startswith("FREQ=WEEKLY;BYDAY="):
            return None
        first = window.start.hour * 60 + window.start.minute
        last = first + int(window.wallLength.total_seconds() // 60)
        if window.start.second or last > 24 * 60 or window.start.replace(tzinfo=None) < REFERENCE_MONDAY:
            return None
        text = f"{first // 60:02d}:{first % 60:02d}-{last // 60:02d}:{last % 60:02d}"
        for code in rule[len("FREQ=WEEKLY;BYDAY="):].split(","):
            if code not in _CODES:
                return None
            days.setdefault(_CODES.index(code), []).append(text)
    return zone, {day: sorted(windows) for day, windows in days.items()}


class SettingsElement(SignedInFormElement):
    loader = XMLFile(DATA.child("settings.xhtml"))

    def __init__(self, uid: str, chosen: VisibilitySettings, policy, hours, ownHours: bool, token: str,
                 notice: str = ""):
        super().__init__(uid, token)
        self.chosen = chosen
        self.policy = policy
        self.hours = hours
        self.ownHours = ownHours
        self.message = notice

    @renderer
    def notice(self, request, tag):
        return tag(self.message, id="notice", role="alert") if self.message else ""

    def _choices(self, name, labels, current):
        for value, label in labels:
            box = tags.input(type="radio", name=name, value=value.value, id=f"{name}-{value.value}")
            if value is current:
                box(checked="checked")
            yield tags.label(box, " ", label)
            yield tags.br()

    @renderer
    def whoChoices(self, request, tag):
        return self._choices("who", _WHO_LABELS, self.chosen.who)

    @renderer
    def detailChoices(self, request, tag):
        return self._choices("detail", _DETAIL_LABELS, self.chosen.detail)

    @renderer
    def groups(self, request, tag):
        return tag(value=", ".join(self.chosen.groups))

    @renderer
    def siteRule(self, request, tag):
        if not self.policy.forbidLoosening:
            return ""
        default = self.policy.default
        return tag(f"This site lets you make its default ({default.who.value}, {default.detail.value}) "
                   f"stricter only.")

    @renderer
    def hoursState(self, request, tag):
        if self.ownHours and self.hours is None:
            return tag("Your working hours were published as a file this form cannot show; "
                       "saving here replaces them.")
        if self.ownHours:
            return tag("These are your own working hours.")
        return tag("You have not set your own working hours: the site's, shown here, hold.")

    @renderer
    def zone(self, request, tag):
        return tag(value=self.hours[0] if self.hours else "UTC")

    @renderer
    def days(self, request, tag):
        perDay = self.hours[1] if self.hours else {}
        for day, name in enumerate(DAYS):
            field = tags.input(type="text", name=name[:3], id=f"day-{name[:3]}", size="30",
                               value=", ".join(perDay.get(day, [])))
            yield tags.label(name.capitalize(), " ", field)
            yield tags.br()

    @renderer
    def ifOwnHours(self, request, tag):
        return tag if self.ownHours else ""


class SettingsPage(Resource):
    """
    C{/settings} for the signed-in user whose avatar is C{avatar}.
    """

    isLeaf = True
    log = Logger()

    def __init__(self, avatar, tokens: FormTokens, defaultZone):
        super().__init__()
        self.avatar = avatar
        self.uid = avatar.uid
        self.tokens = tokens
        self.defaultZone = defaultZone
        self.whoSees = avatar.visibility.whoSees

    def render_GET(self, request):
        return renderAsync(request, self._page(request))

    def render_HEAD(self, request):
        return self.render_GET(request)

    def render_POST(self, request):
        return renderAsync(request, self._post(request))

    def _hoursFile(self) -> Tuple[str, ...]:
        return self.avatar.path([self.uid + AVAILABILITY_SUFFIX])

    async def _page(self, request, notice: str = "", code: int = http.OK) -> None:
        chosen = self.whoSees.settingsOf(self.uid)
        model, tag, _ = self.avatar.visibility.workingHoursOf(self.uid)
        ownHours = tag != "site"
        hours = dayWindows(model)
        if hours is None and not ownHours:
            hours = (getattr(self.defaultZone, "key", "UTC"), {})
        element = SettingsElement(self.uid, chosen, self.whoSees.policy, hours, ownHours,
                                  self.tokens.issue(self.uid, FORM), notice)
        body = b"<!DOCTYPE html>\n" + await flattenString(None, element)
        securityHeaders(request)
        request.setResponseCode(code)
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-store")
        request.setHeader(b"Content-Length", b"%d" % len(body))
        if request.method != b"HEAD":
            request.write(body)

    async def _post(self, request) -> None:
        content = request.content.read(MAX_FORM + 1)
        if len(content) > MAX_FORM:
            raise HTTPError(http.REQUEST_ENTITY_TOO_LARGE, "the form is too large")
        checkForm(request, self.tokens, self.uid, FORM)
        action = _field(request, b"action")
        try:
            if action == "visibility":
                await self._saveVisibility(request)
            elif action == "hours":
                await self._saveHours(request)
            elif action == "site-hours":
                if self.avatar.stat(self._hoursFile()) is not None:
                    self.avatar.delete(self._hoursFile())
            else:
                raise HTTPError(http.BAD_REQUEST, "action must be visibility, hours or site-hours")
        except ValueError as e:
            return await self._page(request, f"Not saved: {e}", http.BAD_REQUEST)
        except InvalidCalendar as e:
            return await self._page(request, f"Not saved: {e.reason}", http.BAD_REQUEST)
        request.setResponseCode(http.SEE_OTHER)
        request.setHeader(b"Location", SETTINGS_PATH)
        request.setHeader(b"Content-Length", b"0")

    async def _saveVisibility(self, request) -> None:
        """
        @raise ValueError: With the reason, when the choice is not allowed.
        """
        try:
            who = Audience(_field(request, b"who"))
            detail = Shown(_field(request, b"detail"))
        except ValueError:
            raise ValueError("choose who may see you and what they see") from None
        groups = validateGroups(_field(request, b"groups").replace("\n", ",").split(","))
        if who is Audience.GROUPS and not groups:
            raise ValueError("name at least one group whose members may see you")
        chosen = VisibilitySettings(who, detail, groups if who is Audience.GROUPS else ())
        refusal = self.whoSees.policy.refusal(chosen)
        if refusal is not None:
            raise ValueError(refusal)
        membership = self.whoSees.membership
        if chosen.groups and membership.groupBase is None:
            raise ValueError("this site does not look groups up (--group-base): choose another level")
        for cn in chosen.groups:
            if not await membership.exists(cn):
                raise ValueError(f"the directory has no group {cn!r} (or one too large to use)")
        self.whoSees.settings.save(self.uid, chosen)
        self.log.info("{uid} chose who may see them: {who}, {detail}", uid=self.uid, who=who.value,
                      detail=detail.value)

    async def _saveHours(self, request) -> None:
        """
        Publish the working hours the form gives, as C{<login>.avail.ics}.

        @raise ValueError: With the reason, when they are not valid.
        """
        zoneName = _field(request, b"tz").strip() or "UTC"
        try:
            if len(zoneName) > 64:
                raise ValueError(zoneName)
            zone = ZoneInfo(zoneName)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            # OSError: a folder of zones (Europe), or a name the file
            # system refuses.
            raise ValueError(f"{zoneName[:60]!r} is not a time zone (e.g. Europe/Berlin)") from None
        groups = []
        for day, name in enumerate(DAYS):
            windows = _field(request, name[:3].encode("ascii")).strip()
            if windows:
                groups.append(f"{name[:3]} {windows}")
        if not groups:
            raise ValueError("give the hours of at least one day, or use the site's working hours")
        try:
            model = parseWorkingHours("; ".join(groups), zone)
        except WorkingHoursError as e:
            raise ValueError(str(e)) from None
        path = self._hoursFile()
        data = renderAvailability(model).to_ical()
        validatePublish(path[-1], data)
        await self.avatar.publish(path, data)
        self.log.info("{uid} set their working hours on the settings page", uid=self.uid)


def _field(request, name: bytes) -> str:
    values = request.args.get(name) or [b""]
    try:
        return values[0].decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPError(http.BAD_REQUEST, f"the {name.decode()} field is not UTF-8") from None


def settingsResource(portal: Portal, realmName: str, defaultZone) -> Resource:
    """
    C{/settings} behind HTTP Basic authentication through C{portal} (the
    one portal; never anonymous): its realm is given the avatar factory of
    L{ISettingsPage}.
    """
    tokens = formTokensFor(portal)
    portal.realm.registerAvatarFactory(ISettingsPage, lambda avatar: SettingsPage(avatar, tokens, defaultZone))
    return BasicAuthGuard(portal, realmName, interface=ISettingsPage)
