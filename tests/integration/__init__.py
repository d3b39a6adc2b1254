"""
The integration tier: real servers, real clients, real processes.
"""
