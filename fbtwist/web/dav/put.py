"""
PUT: publish a file.  The body was bounded by the site's upload limit
before it got here; it is checked by L{fbtwist.calendar.ical} and written atomically.
"""

from twisted.logger import Logger
from twisted.web.http import CREATED, NO_CONTENT

from fbtwist import errors
from fbtwist.access.permissions import Action
from fbtwist.availability.publish import validatePublish
from fbtwist.calendar import ical
from fbtwist.errors import UnsupportedMediaType
from fbtwist.logs import publishRejectionReason
from fbtwist.web.dav import conditions
from fbtwist.web.dav.davxml import readBody

log = Logger()

#: Media types calendar clients send with a free/busy file (or none).
CALENDAR_MEDIA_TYPES = {
    b"text/calendar",
    b"text/x-vcalendar",
    b"text/vcalendar",
    b"text/plain",
    b"text/directory",
    b"application/octet-stream",
    b"application/ics",
    b"application/x-ics",
    b"application/calendar",
    b"application/x-vcalendar",
}


def checkMediaType(request) -> None:
    """
    @raise UnsupportedMediaType: When the body is declared as something
        other than a calendar (a form, multipart, an image, ...).
    """
    header = request.getHeader(b"Content-Type")
    if header is None:
        return
    mediaType = header.split(b";", 1)[0].strip().lower()
    if mediaType and mediaType not in CALENDAR_MEDIA_TYPES:
        raise UnsupportedMediaType(
            f"send the file as text/calendar, not {mediaType.decode('latin-1')}"
        )


async def put(avatar, path, request) -> None:
    try:
        await _put(avatar, path, request)
    except Exception as e:
        rejected(avatar, "/".join(path), e)
        raise


def rejected(avatar, path: str, error: BaseException) -> None:
    """
    Log the C{publish-rejected} event of a PUT of C{path} refused by C{error}.
    """
    log.info(
        "rejected a publish of {path} by {uid} over HTTP: {reason}",
        fbEvent="publish-rejected", uid=avatar.uid, protocol="http", path=path,
        reason=publishRejectionReason(error),
    )


async def _put(avatar, path, request) -> None:
    avatar.authorize(Action.WRITE, path)
    if not path:
        raise errors.AlreadyExists("the root is a collection")
    name = path[-1]
    if name.lower().endswith(ical.FREEBUSY_SUFFIXES + ical.EVENT_SUFFIXES):
        checkMediaType(request)

    # Read here (a malformed If header: 400 before any work), as values:
    # the avatar evaluates them in the thread pool, right before the rename
    # and under the lock mutex, where the request must not be touched.
    stated = conditions.preconditionsOf(avatar, request)
    body = readBody(request)
    validatePublish(name, body)
    created = await avatar.publish(path, body, stated)
    log.info(
        "published {path} as {uid} over HTTP ({size} bytes)",
        fbEvent="publish", path="/".join(path), uid=avatar.uid, size=len(body), protocol="http",
    )
    request.setResponseCode(CREATED if created else NO_CONTENT)
    if created:
        request.setHeader(b"Content-Length", b"0")
