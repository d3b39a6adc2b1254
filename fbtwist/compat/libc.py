"""
The C library's functions that fbtwist calls through C{ctypes}: the
inotify calls (L{fbtwist.store.changes}), C{sync_file_range}
(L{fbtwist.store.files}) and glibc's C{malloc_trim}
(L{fbtwist.directory.heap}).

Each is looked up in the interpreter's own C library (C{CDLL(None)}: no
search for a library file, which would start C{ldconfig}), once, and is
C{None} where that library has no such function (another system, another
C library: musl has no C{malloc_trim}); the callers then do without.
"""

import ctypes
from typing import Callable, Dict, Optional, Sequence

#: The interpreter's C library once opened; C{False} when it cannot be.
_library = None

#: The functions asked for, by name (C{None}: there is none).
_functions: Dict[str, Optional[Callable]] = {}


def cFunction(name: str, argtypes: Sequence, restype=ctypes.c_int) -> Optional[Callable]:
    """
    The C library's function C{name}, taking C{argtypes} and giving
    C{restype} (C{errno} kept for C{ctypes.get_errno}), or C{None} where
    there is none.  Each name is set up once, by the first call: give the
    same types at every call.
    """
    try:
        return _functions[name]
    except KeyError:
        pass
    global _library
    if _library is None:
        try:
            _library = ctypes.CDLL(None, use_errno=True)
        except OSError:
            _library = False
    function = getattr(_library, name, None) if _library else None
    if function is not None:
        function.argtypes, function.restype = list(argtypes), restype
    _functions[name] = function
    return function
