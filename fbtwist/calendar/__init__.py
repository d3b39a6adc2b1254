"""
The calendar domain: iCalendar reading and validation, the fast C{.vfb}
reader, free/busy periods and their merging.
"""
