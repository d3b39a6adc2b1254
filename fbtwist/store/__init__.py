"""
The calendar tree on disk: files, uploads, atomic writes and WebDAV locks.
"""
