"""
Check iCalendar text on stdin with libical (the C library behind Evolution
and KOrganizer's importers), through its GObject introspection binding.

Run by the system Python (C{/usr/bin/python3}, where Debian's C{python3-gi}
and C{gir1.2-ical-3.0} live), not the test virtualenv.  Parses stdin, runs
libical's RFC 5545 / iTIP restriction checks, prints every error libical
records (its C{X-LIC-ERROR} properties) and exits 1 when there is any, 2
when the text does not parse at all.
"""

import sys

import gi

gi.require_version("ICalGLib", "3.0")
from gi.repository import ICalGLib  # noqa: E402


def main() -> int:
    text = sys.stdin.read()
    try:
        component = ICalGLib.Component.new_from_string(text)
    except TypeError:  # "constructor returned NULL"
        component = None
    if component is None or component.isa() != ICalGLib.ComponentKind.VCALENDAR_COMPONENT:
        print("libical: not one VCALENDAR")
        return 2
    component.check_restrictions()
    if component.count_errors() == 0:
        return 0
    for line in component.as_ical_string().splitlines():
        if line.startswith("X-LIC-ERROR") or line.startswith(" "):
            print(line)
    return 1


if __name__ == "__main__":
    sys.exit(main())
