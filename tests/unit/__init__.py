"""
The fast tier: protocol and domain logic in memory, no sockets.
"""
