"""
The hand-written WebDAV resource for the publishing tree (C{/pub/calendar}):
L{fbtwist.web.dav.resource} dispatches each method to one small module here.
"""
