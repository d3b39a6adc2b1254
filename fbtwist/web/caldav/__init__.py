"""
CalDAV (RFC 4791) and CalDAV scheduling (RFC 6638) for free/busy: what Apple
Calendar, iOS, Thunderbird and Evolution ask when they plan a meeting.  Every
answer comes from the same published times and the same rules as the
lookups under C{/calendar/} (L{fbtwist.web.caldav.freebusy}); one module per
method or report, as in L{fbtwist.web.dav}.
"""
