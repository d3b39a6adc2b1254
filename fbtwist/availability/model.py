"""
Availability as plain values, and the busy time it implies (RFC 7953).

A person's availability is one or more L{Block}s (a C{VAVAILABILITY} each),
each holding L{Window}s (its C{AVAILABLE} subcomponents).  L{unavailable}
turns it into the C{FBTYPE} periods a free/busy answer would carry.  Nothing
here parses or renders iCalendar (L{fbtwist.availability.vavailability} does)
or knows about HTTP, LDAP or the store.

RFC 7953 rules implemented:
  - a block covers C{DTSTART} to C{DTEND} (or C{DTSTART} + C{DURATION}); a
    missing start or end is unbounded;
  - inside its range a block makes time busy with its C{BUSYTYPE}, except
    during its windows' occurrences; C{BUSYTYPE} defaults to
    C{BUSY-UNAVAILABLE}, and a value this server does not know (an x-name,
    C{FREE}) counts as C{BUSY-UNAVAILABLE} too, as the RFC asks;
  - an occurrence of a window only makes time free inside its own block's
    range;
  - overlapping blocks are decided by C{PRIORITY}: 1 is the highest, 9 the
    lowest and 0 (or none) lower still; where a block of higher priority
    covers time, blocks of lower priority say nothing about it;
  - blocks of the same priority combine: time available in any of them
    is available (so Monday-to-Thursday in one block and Friday in
    another make a five-day week rather than no week at all), and time
    busy in several takes the strongest of their types;
  - time outside every block is free (availability adds busy time, it
    never removes the busy time of events);
  - windows recur by C{RRULE}, C{RDATE} (date-times and periods) and
    C{EXDATE}; C{DTSTART} is always an occurrence; a window with a
    C{RECURRENCE-ID} replaces that occurrence of the window with its
    C{UID} (it is read as an C{EXDATE} of that window plus a window of
    its own, see the reader).

Where this deliberately differs from the letter of RFC 5545: each
occurrence lasts as long on the wall clock of its zone as the first one
(C{DTEND} minus C{DTSTART} in local time), so 08:00-18:00 stays
08:00-18:00 on the days the clocks change, as C{recurring-ical-events}
treats events; RFC 5545 asks for the exact duration, which differs only
for windows spanning the hour the clocks change.  A C{DURATION} counts its
days on the wall clock and its hours exactly, as RFC 5545 says (C{PT24H}
cannot be told from C{P1D} once parsed, and counts as a day).  A local time
the clocks skip is read with the offset before the change (RFC 5545
3.3.5), an ambiguous one as its first occurrence.

Not implemented: C{MINUTELY} and C{SECONDLY} rules (refused, like events'),
floating and all-day times (refused by the reader: RFC 7953 requires
date-times in UTC or with a C{TZID}), and the other properties of the
components (C{LOCATION}, C{SUMMARY}...), which readers never see.

The work of expanding rules is bounded by L{fbtwist.calendar.derive.expansionLimit}
(L{MAX_RULE_ITERATIONS} steps by default).
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple

from dateutil.rrule import rrulestr

from fbtwist.calendar.derive import expansionLimit
from fbtwist.calendar.freebusy import BUSY, BUSY_TENTATIVE, BUSY_UNAVAILABLE, Period, mergePeriods

#: The C{BUSYTYPE} values a block may have; any other counts as
#: C{BUSY-UNAVAILABLE} (RFC 7953 3.2).
BUSYTYPES = (BUSY, BUSY_UNAVAILABLE, BUSY_TENTATIVE)

#: The most steps of recurrence rules one expansion of a person's
#: availability may take (see L{expansionLimit}): a fifth of what a
#: calendar of events may, as working hours are a few windows a week.  Two
#: years of a daily window take about 1,500 steps, of a weekly window with
#: a C{COUNT} begun decades ago about 12,000, of an hourly one 9,000 (a
#: zone's own rules are not counted: see L{Window.ruleStarts}); a rule
#: that never matches is refused after a fraction of a second.
MAX_RULE_ITERATIONS = 100_000

#: The rank of an undefined priority (C{PRIORITY:0} or none): below 9.
_UNDEFINED_RANK = 10

#: How far each rule frequency steps, for moving a rule's start forward
#: (see L{_ruleStart}).
_STEPS = {"HOURLY": timedelta(hours=1), "DAILY": timedelta(days=1), "WEEKLY": timedelta(weeks=1)}


def busyType(value: Optional[str]) -> str:
    """
    The C{BUSYTYPE} a reader must assume: C{BUSY-UNAVAILABLE} when absent
    or unknown.
    """
    if value is None:
        return BUSY_UNAVAILABLE
    upper = str(value).strip().upper()
    return upper if upper in BUSYTYPES else BUSY_UNAVAILABLE


@dataclass(frozen=True)
class Window:
    """
    One C{AVAILABLE}: a stretch of available time, perhaps recurring.

    @ivar start: The first occurrence's start, aware, in its own zone.
    @ivar wallLength: How long each occurrence lasts on its zone's wall
        clock (applied first).
    @ivar exactLength: How much longer it lasts in elapsed time (applied
        after C{wallLength}).
    @ivar rules: C{RRULE} values as text (C{FREQ=WEEKLY;BYDAY=MO}), each
        with an C{UNTIL} in UTC if any.
    @ivar dates: C{RDATE}s: (start, length) with C{length} C{None} for a
        date-time (the window's own length), else the period's.
    @ivar exdates: C{EXDATE}s (and the C{RECURRENCE-ID}s of overridden
        occurrences), aware.
    """

    start: datetime
    wallLength: timedelta = timedelta(0)
    exactLength: timedelta = timedelta(0)
    rules: Tuple[str, ...] = ()
    dates: Tuple[Tuple[datetime, Optional[timedelta]], ...] = ()
    exdates: Tuple[datetime, ...] = ()

    def endOf(self, start: datetime) -> datetime:
        """
        The end (in UTC) of the occurrence starting at C{start} (aware, in
        the window's zone).
        """
        return (start + self.wallLength).astimezone(timezone.utc) + self.exactLength

    @property
    def longest(self) -> timedelta:
        """
        An upper bound of any occurrence's length (a wall-clock day may
        be an hour longer than 24 hours).
        """
        lengths = [self.wallLength + self.exactLength] + [d for _, d in self.dates if d is not None]
        return max(lengths) + timedelta(hours=2)

    def ruleStarts(self, start: datetime, end: datetime) -> List[Tuple[datetime, Optional[datetime]]]:
        """
        The first half of L{occurrences}, the one to bound with
        L{expansionLimit}: the wall-clock starts (naive) that the rules
        give around C{[start, end)}, a day wider each side, each with
        its rule's C{UNTIL} (in UTC) or C{None}.

        The rules are stepped through on the wall clock without the zone,
        as RFC 5545 asks, so that the zone's own work (a C{VTIMEZONE}
        written as rules from 1601, as Outlook's are, is expanded again for
        every offset looked up) is not counted as the rules' work: it is
        done in L{occurrences}, once per occurrence found.
        """
        if not self.rules:
            return []
        # Wall-clock bounds from UTC ones without asking the zone: no
        # zone is a day away from UTC.
        slack = timedelta(days=1)
        after = (start - self.longest).astimezone(timezone.utc).replace(tzinfo=None) - slack
        before = end.astimezone(timezone.utc).replace(tzinfo=None) + slack
        wall = self.start.replace(tzinfo=None)
        found: List[Tuple[datetime, Optional[datetime]]] = []
        for text in self.rules:
            parts = text.split(";")
            until = [part for part in parts if part.upper().startswith("UNTIL=")]
            rule = rrulestr(";".join(part for part in parts if part not in until),
                            dtstart=_ruleStart(text, wall, after))
            limit = _untilOf(until[0]) if until else None
            if limit is not None:
                # On the wall clock, with slack: occurrences are held to the
                # exact UNTIL in UTC afterwards.
                rule = rule.replace(until=limit.replace(tzinfo=None) + slack)
            found.extend((moment, limit) for moment in rule.between(after, before, inc=True))
        return found

    def occurrences(self, start: datetime, end: datetime,
                    ruleStarts: Optional[List[Tuple[datetime, Optional[datetime]]]] = None,
                    ) -> Iterator[Tuple[datetime, datetime]]:
        """
        The occurrences overlapping C{[start, end)} as UTC (start, end)
        pairs, in no particular order.

        @param ruleStarts: What L{ruleStarts} gave for this range, when it
            was called under L{expansionLimit}; without it, the rules are
            expanded here, without a bound.
        """
        if ruleStarts is None:
            ruleStarts = self.ruleStarts(start, end)
        zone = self.start.tzinfo
        excluded = {moment.astimezone(timezone.utc) for moment in self.exdates}
        seen = set()
        candidates = [(self.start, self.endOf(self.start), None)]
        for moment, length in self.dates:
            last = self.endOf(moment) if length is None else moment.astimezone(timezone.utc) + length
            candidates.append((moment, last, None))
        for wall, until in ruleStarts:
            moment = wall.replace(tzinfo=zone)
            candidates.append((moment, self.endOf(moment), until))
        for first, last, until in candidates:
            utc = first.astimezone(timezone.utc)
            if utc in excluded or utc in seen or (until is not None and utc > until):
                continue
            seen.add(utc)
            if utc < end and last > start:
                yield utc, last


def _untilOf(part: str) -> datetime:
    """
    The moment of an C{UNTIL=...Z} rule part (the reader writes them in
    UTC).
    """
    return datetime.strptime(part.split("=", 1)[1], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)


def _ruleStart(text: str, start: datetime, after: datetime) -> datetime:
    """
    A start (naive, on the wall clock, as C{start} and C{after}) for
    expanding rule C{text} from which it produces the same occurrences
    after C{after} as from C{start}, but with fewer steps.

    Without C{COUNT}, the candidates of an C{HOURLY}, C{DAILY} or
    C{WEEKLY} rule are C{start} plus whole multiples of its C{INTERVAL} on
    the wall clock, filtered by C{BY...} parts that do not depend on the
    start (an implied C{BYDAY} or time of day is kept by whole steps): so
    the start may move forward by whole multiples.  A weekly rule that
    began in 2011 is then expanded from last week, not for fifteen years
    on every lookup.  Other rules step by months or years, which are few.
    """
    parts = dict(part.split("=", 1) for part in text.upper().split(";") if "=" in part)
    step = _STEPS.get(parts.get("FREQ", ""))
    if step is None or "COUNT" in parts:
        return start
    try:
        step *= max(1, int(parts.get("INTERVAL", "1")))
    except ValueError:
        return start
    target = after - step
    if target <= start:
        return start
    return start + step * ((target - start) // step)


@dataclass(frozen=True)
class Block:
    """
    One C{VAVAILABILITY}.

    @ivar start: Where its range begins (aware), or C{None}: unbounded.
    @ivar end: Where it ends (aware), or C{None}: unbounded.
    @ivar busytype: The C{FBTYPE} of its time outside its windows.
    @ivar priority: Its C{PRIORITY}, 0 (undefined, lowest) or 1 (highest)
        to 9.
    """

    windows: Tuple[Window, ...] = ()
    start: Optional[datetime] = None
    end: Optional[datetime] = None
    busytype: str = BUSY_UNAVAILABLE
    priority: int = 0

    @property
    def rank(self) -> int:
        """
        Its place in the order of priority: lower ranks win.
        """
        return self.priority if 1 <= self.priority <= 9 else _UNDEFINED_RANK

    def span(self, start: datetime, end: datetime) -> Optional[Tuple[datetime, datetime]]:
        """
        The part of C{[start, end)} it covers, or C{None}.
        """
        first = start if self.start is None else max(start, self.start.astimezone(timezone.utc))
        last = end if self.end is None else min(end, self.end.astimezone(timezone.utc))
        return (first, last) if first < last else None


@dataclass(frozen=True)
class Availability:
    """
    A person's availability: what L{unavailable} needs, and what
    L{fbtwist.availability.vavailability.renderAvailability} writes.

    @ivar zone: The person's zone: the zone it is rendered in.
    """

    blocks: Tuple[Block, ...] = ()
    zone: tzinfo = field(default=timezone.utc)


# --- sets of time as sorted, disjoint (start, end) pairs ---

Span = Tuple[datetime, datetime]


def union(spans: Iterable[Span]) -> List[Span]:
    """
    Sorted, disjoint spans covering what C{spans} cover (touching ones
    joined).
    """
    out: List[Span] = []
    for first, last in sorted(s for s in spans if s[0] < s[1]):
        if out and first <= out[-1][1]:
            if last > out[-1][1]:
                out[-1] = (out[-1][0], last)
        else:
            out.append((first, last))
    return out


def subtract(spans: Sequence[Span], minus: Sequence[Span]) -> List[Span]:
    """
    The parts of C{spans} outside C{minus}; both sorted and disjoint.
    """
    out: List[Span] = []
    index = 0
    for first, last in spans:
        while index < len(minus) and minus[index][1] <= first:
            index += 1
        cursor, probe = first, index
        while probe < len(minus) and minus[probe][0] < last:
            if minus[probe][0] > cursor:
                out.append((cursor, minus[probe][0]))
            cursor = max(cursor, minus[probe][1])
            probe += 1
        if cursor < last:
            out.append((cursor, last))
    return out


# --- the busy time availability implies ---


def unavailable(model: Availability, start: datetime, end: datetime,
                ruleIterations: int = MAX_RULE_ITERATIONS) -> List[Period]:
    """
    The busy time C{model} implies within C{[start, end)}: merged, sorted
    periods, clipped to the range, each of its block's C{BUSYTYPE}
    (C{BUSY-UNAVAILABLE} unless the block says otherwise).

    @param start: Aware.
    @param end: Aware, after C{start}.
    @param ruleIterations: The work the rules may take (see
        L{expansionLimit}).
    @raise fbtwist.calendar.derive.TooExpensive: When the rules need more work.
    """
    start, end = start.astimezone(timezone.utc), end.astimezone(timezone.utc)
    if end <= start:
        return []
    spans = [block.span(start, end) for block in model.blocks]
    with expansionLimit(ruleIterations):
        ruleStarts = [[window.ruleStarts(*span) for window in block.windows] if span else []
                      for block, span in zip(model.blocks, spans)]
    decided: List[Span] = []  # time a block of higher priority has spoken for
    busy: List[Period] = []
    for rank in sorted({block.rank for block in model.blocks}):
        level = [(index, block, spans[index]) for index, block in enumerate(model.blocks)
                 if block.rank == rank and spans[index] is not None]
        free = union(
            (max(first, span[0]), min(last, span[1]))
            for index, block, span in level
            for window, starts in zip(block.windows, ruleStarts[index])
            for first, last in window.occurrences(*span, ruleStarts=starts)
        )
        for index, block, span in level:
            for first, last in subtract(subtract([span], free), decided):
                busy.append(Period(first, last, block.busytype))
        decided = union(decided + [span for _, _, span in level])
    # Merging keeps the strongest type where blocks of one level overlap.
    return mergePeriods(busy)
