"""
The fast tier: protocol and domain logic in memory, no sockets.

Importing this package installs L{fasttier.guard}: from then on, code
called by a test of this package that opens a socket, starts a process
or asks the global reactor for time, threads, listeners, connections or
processes fails with L{fasttier.RealResourceUsed} (code called by the integration tier, in the
same process, is not affected).
"""

from tests.unit import fasttier

fasttier.guard()
