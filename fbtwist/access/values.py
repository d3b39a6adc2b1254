"""
The values the avatar's operations take and give: store paths and what the
tree says about a resource, WebDAV locks and their scopes, depths and
timeouts.  The store defines them; protocol code names them from here, so
that it depends on the avatar's API alone, never on the store.
"""

from fbtwist.store.locks import EXCLUSIVE, INFINITY, SHARED, Lock, LockConflict, LockStore, TooManyLocks, parseTimeout
from fbtwist.store.paths import FileSnapshot, ResourceInfo, StorePath, validateName

__all__ = [
    "EXCLUSIVE",
    "INFINITY",
    "SHARED",
    "FileSnapshot",
    "Lock",
    "LockConflict",
    "LockStore",
    "ResourceInfo",
    "StorePath",
    "TooManyLocks",
    "parseTimeout",
    "validateName",
]
