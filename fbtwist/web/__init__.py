"""
The HTTP protocol: the site and its connections, authentication, responses,
anonymous lookups and pages; L{fbtwist.web.dav} is WebDAV publishing.
"""
