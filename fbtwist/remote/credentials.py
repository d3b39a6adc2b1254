"""
Basic credentials for a remote server, read from a file so that the
password is never a command-line argument or a config value, and kept in a
value object whose C{repr} hides the password so that it never reaches a
log line.
"""

import base64
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Credentials:
    """
    A user name and password for HTTP Basic authentication.
    """

    username: str
    password: str = field(repr=False)

    def authorization(self) -> bytes:
        """
        @return: The value of an C{Authorization} header carrying these
            credentials (UTF-8, as RFC 7617's C{charset="UTF-8"} asks).
        """
        pair = f"{self.username}:{self.password}".encode("utf-8")
        return b"Basic " + base64.b64encode(pair)


def readCredentials(path: str) -> Credentials:
    """
    Read credentials from the first line of a file, written
    C{username:password} (the password may hold colons, the user name
    may not).

    @raise ValueError: With one sentence saying what is wrong, never
        quoting the file's content.
    """
    try:
        with open(path, encoding="utf-8") as f:
            line = f.readline().rstrip("\r\n")
    except OSError as e:
        raise ValueError(f"cannot read {path} ({e.strerror}): name a file whose first line is username:password") \
            from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text: its first line must be username:password") from None
    username, colon, password = line.partition(":")
    if not colon or not username or not password:
        raise ValueError(f"the first line of {path} must be username:password, both non-empty")
    if any(not c.isprintable() for c in line):
        raise ValueError(f"the first line of {path} holds a control character")
    return Credentials(username, password)
