"""
The fields of an HTTP request's access event (L{fbtwist.logs.logAccess}
writes the line).
"""

from typing import Optional

from fbtwist.web.auth import basicCredentials


def _text(value: Optional[bytes]) -> Optional[str]:
    if value is None:
        return None
    return value.decode("utf-8", "surrogateescape")


def accessFields(request, started: float, finished: float, status: Optional[int] = None,
                 size: Optional[int] = None) -> dict:
    """
    The fields of a request's access event.

    @param started: When the request arrived (seconds since the epoch).
    @param finished: When it was answered.
    """
    credentials = basicCredentials(request)
    # The login only: the credentials also hold the password.
    user = getattr(credentials, "username", None)
    peer = request.getClientAddress()
    command = request.method if request.method is not None else b"-"
    return dict(
        peer=getattr(peer, "host", None) or "-",
        user=_text(user) if isinstance(user, bytes) else user,
        started=started,
        method=_text(command),
        uri=_text(request.uri),
        protocol=_text(request.clientproto),
        status=int(status if status is not None else request.code),
        size=int(size if size is not None else request.sentLength),
        referer=_text(request.getHeader(b"Referer")),
        agent=_text(request.getHeader(b"User-Agent")),
        seconds=round(max(0.0, finished - started), 6),
    )
