"""
Names and paths in the calendar tree, and what the store tells of a file.

A store path is a tuple of validated name segments relative to the root of
the tree; C{()} is the root collection itself.  Names starting with C{.} are
never valid client names, which leaves them free for temporary files and
metadata.
"""

import unicodedata
from typing import NamedTuple, Optional, Tuple

from fbtwist.errors import InvalidName

StorePath = Tuple[str, ...]

MAX_NAME_LENGTH = 255
MAX_DEPTH = 16


class ResourceInfo(NamedTuple):
    """
    What the store knows about one resource without reading it.
    """

    path: StorePath
    isCollection: bool
    size: int
    modified: float
    created: float
    inode: int

    @property
    def name(self) -> str:
        return self.path[-1] if self.path else ""


class FileSnapshot(NamedTuple):
    """
    One version of a file: what is known of it, its entity tag and its
    content, read together (see L{CalendarStore.snapshot}), and what a
    reader kept with this version (L{CalendarStore.keep}), if anything.
    """

    info: ResourceInfo
    etag: str
    data: bytes
    kept: Optional[bytes] = None


def validateName(name: str) -> str:
    """
    Check one path segment a client sent.

    @return: C{name}, unchanged.
    @raise InvalidName: For empty names, C{.} and C{..}, names starting with
        C{.}, names holding C{/}, C{\\}, NUL or other control characters, and
        names longer than L{MAX_NAME_LENGTH} bytes in UTF-8.
    """
    if not isinstance(name, str):
        raise InvalidName("names must be text")
    if not name:
        raise InvalidName("empty name")
    if name.startswith("."):
        raise InvalidName("names may not start with '.'")
    if "/" in name or "\\" in name:
        raise InvalidName("names may not contain '/' or '\\'")
    if not (name.isascii() and name.isprintable()) and any(
        unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in name
    ):
        # (Printable ASCII, nearly every name, has none: no need to look.)
        raise InvalidName("names may not contain control characters")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_LENGTH:
        raise InvalidName("name too long")
    return name


def validatePath(segments) -> StorePath:
    """
    Validate every segment of a path; a trailing empty segment (a URL
    ending in C{/}) is dropped.

    @raise InvalidName: When any segment is invalid or the path is too deep.
    """
    segments = list(segments)
    if segments and segments[-1] == "":
        segments.pop()
    if len(segments) > MAX_DEPTH:
        raise InvalidName("path too deep")
    return tuple(validateName(s) for s in segments)
