"""
PUT: publish a file.  The body was bounded by the site's upload limit
before it got here; it is checked by L{fbtwist.calendar.ical} and written atomically.
"""

from twisted.logger import Logger
from twisted.web import http

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
        log.info(
            "rejected a publish of {path} by {uid} over HTTP: {reason}",
            fbEvent="publish-rejected", uid=avatar.uid, protocol="http", path="/".join(path),
            reason=publishRejectionReason(e),
        )
        raise


async def _put(avatar, path, request) -> None:
    avatar.authorize(Action.WRITE, path)
    if not path:
        raise errors.AlreadyExists("the root is a collection")
    name = path[-1]
    if name.lower().endswith(ical.FREEBUSY_SUFFIXES + ical.EVENT_SUFFIXES):
        checkMediaType(request)

    def check() -> None:
        conditions.checkIfMatch(avatar, request, path)
        # A new file changes its parent's membership, which a lock on the parent protects.
        conditions.checkWrite(avatar, request, path, [(path, False, avatar.store.stat(path) is None)])

    conditions.parseIfHeader(request)  # a malformed If header: 400 before any work
    body = readBody(request)
    validatePublish(name, body)
    upload = avatar.openUpload(path)
    # The locks and preconditions are checked once the body is on disk,
    # right before the rename and under the lock mutex, in the thread pool
    # (reading the lock store and the file's ETag would otherwise wait for
    # other threads' fsyncs in the reactor): a LOCK or another PUT may come
    # in while the body is written.
    created = await upload.commitAsync(body, check, exclusive=avatar.lockStore().exclusive)
    log.info(
        "published {path} as {uid} over HTTP ({size} bytes)",
        fbEvent="publish", path="/".join(path), uid=avatar.uid, size=len(body), protocol="http",
    )
    request.setResponseCode(http.CREATED if created else http.NO_CONTENT)
    if created:
        request.setHeader(b"Content-Length", b"0")
