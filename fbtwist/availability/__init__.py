"""
Availability: working hours (RFC 7953 C{VAVAILABILITY}) and finding a time
when people and a room are free.

The pure domain core, no HTTP, LDAP or store:
  - L{model}: availability as plain values, and L{model.unavailable}, the
    busy time it implies over a range;
  - L{workhours}: the site's default working hours from an option's text;
  - L{vavailability}: reading a published C{VAVAILABILITY} and rendering
    one;
  - L{slots}: finding slots where enough people (and a room) are free.
"""
