"""
The fields of an HTTP request's access event (L{fbtwist.logs.logAccess}
writes the line).
"""

from typing import Optional

from fbtwist.web.auth import basicCredentials


def fieldText(value: Optional[bytes]) -> Optional[str]:
    """
    An access field's text: the bytes as they came, decoded (what is not
    UTF-8 kept as escapes for the line's writer), or C{None}.
    """
    if value is None:
        return None
    return value.decode("utf-8", "surrogateescape")


def accessEventFields(peer: Optional[str], user, started: float, finished: float, method: Optional[bytes],
                      uri: Optional[bytes], protocol: Optional[bytes], status: int, size: int,
                      referer: Optional[bytes], agent: Optional[bytes]) -> dict:
    """
    The fields of an access event from its parts, the one definition of
    them: for a request Twisted read (L{accessFields}) and for one answered
    before it (L{fbtwist.web.fastlookup}).

    @param user: The login (bytes or text), without the password; C{None}.
    @param started: When the request arrived (seconds since the epoch).
    @param finished: When it was answered.
    """
    return dict(
        peer=peer or "-",
        user=fieldText(user) if isinstance(user, bytes) else user,
        started=started,
        method=fieldText(method if method is not None else b"-"),
        uri=fieldText(uri),
        protocol=fieldText(protocol),
        status=int(status),
        size=int(size),
        referer=fieldText(referer),
        agent=fieldText(agent),
        seconds=round(max(0.0, finished - started), 6),
    )


def accessFields(request, started: float, finished: float, status: Optional[int] = None,
                 size: Optional[int] = None) -> dict:
    """
    The fields of a request's access event.

    @param started: When the request arrived (seconds since the epoch).
    @param finished: When it was answered.
    """
    credentials = basicCredentials(request)
    return accessEventFields(
        getattr(request.getClientAddress(), "host", None),
        # The login only: the credentials also hold the password.
        getattr(credentials, "username", None),
        started, finished, request.method, request.uri, request.clientproto,
        status if status is not None else request.code,
        size if size is not None else request.sentLength,
        request.getHeader(b"Referer"), request.getHeader(b"User-Agent"),
    )
