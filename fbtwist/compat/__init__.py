"""
The private names of Twisted and ldaptor that fbtwist still relies on, fenced
in: one adapter module per library (L{fbtwist.compat.twisted},
L{fbtwist.compat.ldaptor}).  Production code calls the small functions
these modules expose and never touches a library's private name itself;
each module lists what it relies on (C{PRIVATE_NAMES}), and
C{tests/unit/test_compat.py} fails, naming the attribute and the library
version, when an upgrade removes one.

L{fbtwist.compat.libc} gives the C library's functions that fbtwist calls
through C{ctypes} (each looked up once, C{None} where there is none).

This package imports nothing else of fbtwist: every layer may use it.
"""

from typing import NamedTuple, Optional


class PrivateName(NamedTuple):
    """
    One private attribute of a library that an adapter relies on.

    @ivar owner: The dotted name of the module or class that has it.
    @ivar attribute: The attribute's name.
    @ivar instance: Whether instances get it (set in C{__init__} or a
        method) rather than the class or module holding it; the contract
        test then looks for it in the class's source.
    @ivar usedBy: The fbtwist module that needs it, when that module may
        be absent; C{None} when the adapter always needs it.
    """

    owner: str
    attribute: str
    instance: bool = False
    usedBy: Optional[str] = None
