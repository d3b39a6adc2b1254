"""
PUT: publish a file.  The body was bounded by the site's upload limit
before it got here; it is checked by L{fbtwist.calendar.ical} and written atomically.
"""

from typing import Optional

from twisted.logger import Logger
from twisted.web.http import CREATED, NO_CONTENT

from fbtwist import errors
from fbtwist.access.permissions import Action
from fbtwist.availability.publish import validatePublish
from fbtwist.calendar import ical
from fbtwist.errors import UnsupportedMediaType
from fbtwist.logs import logInfoText, publishRejectionReason
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


def checkMediaType(header: Optional[bytes]) -> None:
    """
    @param header: The C{Content-Type} header's value, or C{None}.
    @raise UnsupportedMediaType: When the body is declared as something
        other than a calendar (a form, multipart, an image, ...).
    """
    if header is None:
        return
    mediaType = header.split(b";", 1)[0].strip().lower()
    if mediaType and mediaType not in CALENDAR_MEDIA_TYPES:
        raise UnsupportedMediaType(
            f"send the file as text/calendar, not {mediaType.decode('latin-1')}"
        )


async def put(avatar, path, request) -> None:
    try:
        checkTarget(avatar, path, request.getHeader(b"Content-Type"))
        # Read here (a malformed If header: 400 before any work), as values:
        # the avatar evaluates them in the thread pool, right before the
        # rename and under the lock mutex, where the request must not be
        # touched.
        stated = conditions.preconditionsOf(avatar, request)
        body = readBody(request)
        validatePublish(path[-1], body)
        created = await avatar.publish(path, body, stated)
    except Exception as e:
        rejected(avatar, "/".join(path), e)
        raise
    published(avatar, path, len(body))
    request.setResponseCode(CREATED if created else NO_CONTENT)
    if created:
        request.setHeader(b"Content-Length", b"0")


def checkTarget(avatar, path, contentType: Optional[bytes]) -> None:
    """
    What a PUT of C{path} is refused for before its body is looked at: the
    user may not write there, the root, a calendar's name declared as
    another media type (C{contentType}: the C{Content-Type} header).
    """
    avatar.authorize(Action.WRITE, path)
    if not path:
        raise errors.AlreadyExists("the root is a collection")
    if path[-1].lower().endswith(ical.FREEBUSY_SUFFIXES + ical.EVENT_SUFFIXES):
        checkMediaType(contentType)


def published(avatar, path, size: int) -> None:
    """
    Log the C{publish} event of a PUT of C{path} (C{size} bytes).
    """
    joined, uid = "/".join(path), avatar.uid
    logInfoText(
        log, f"published {joined} as {uid} over HTTP ({size} bytes)",
        "published {path} as {uid} over HTTP ({size} bytes)",
        fbEvent="publish", path=joined, uid=uid, size=size, protocol="http",
    )


def rejected(avatar, path: str, error: BaseException) -> None:
    """
    Log the C{publish-rejected} event of a PUT of C{path} refused by C{error}.
    """
    log.info(
        "rejected a publish of {path} by {uid} over HTTP: {reason}",
        fbEvent="publish-rejected", uid=avatar.uid, protocol="http", path=path,
        reason=publishRejectionReason(error),
    )
