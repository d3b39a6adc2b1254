"""
The way in: the realm and its avatar (what a logged-in user may do to the
calendar tree), permissions, the directory checker, login throttling and the
latency floor.
"""
