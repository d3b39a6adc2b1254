"""
fbtwist: a free/busy calendar server.

Outlook and other calendar clients publish each user's free/busy file
(C{<uid>.vfb}) over HTTP/WebDAV or FTP and look colleagues' files up over
HTTP; publishers are checked against an LDAP directory.
"""

__version__ = "0.3.0"
