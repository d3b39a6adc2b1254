"""
Maintenance of a calendar tree, run while the server runs or not::

    python -m fbtwist.admin [--config FILE | --root DIR] check
    python -m fbtwist.admin [--config FILE | --root DIR] import [--overwrite] [--dry-run] SOURCE...

(or C{fbtwist-admin ...} once installed).

C{check} validates every calendar file in the tree as a publish would, and
names the files no lookup can reach (L{unreachable}).  C{import} copies the
C{.vfb}/C{.ifb} files of an old server's folders into the top of the tree
under the name lookups read (L{importName}: C{Dave.IFB} becomes
C{dave.vfb}), each validated and written atomically, existing files kept
unless C{--overwrite}.  Both show progress on standard error (a line that
updates itself on a terminal, one line per tenth of the work otherwise) and
end with a summary on standard output; the exit status is 1 when a file was
invalid, could not be imported, or (C{check}) cannot be reached.
"""

import os
import sys
from typing import Iterator, List, Optional, TextIO

from twisted.python import usage
from twisted.python.filepath import FilePath

from fbtwist.access.permissions import PUBLISHED_SUFFIXES
from fbtwist.availability.publish import validatePublish
from fbtwist.calendar import ical
from fbtwist.config import ConfigError, buildConfig
from fbtwist.errors import FreeBusyError, InvalidName
from fbtwist.store.paths import validateName
from fbtwist.store.tree import CalendarStore


class Progress:
    """
    Shows how far a long job is: C{label: done/total (percent)}.

    On a terminal the line is rewritten in place; otherwise (a log, a pipe)
    one line is written each time another tenth of the work is done.
    """

    def __init__(self, label: str, total: int, stream: TextIO):
        self.label = label
        self.total = total
        self.done = 0
        self.stream = stream
        self.interactive = stream.isatty()
        self._lastTenth = -1

    def _line(self) -> str:
        percent = 100 if self.total == 0 else self.done * 100 // self.total
        return f"{self.label}: {self.done}/{self.total} files ({percent}%)"

    def step(self) -> None:
        self.done += 1
        if self.interactive:
            self.stream.write("\r" + self._line())
            self.stream.flush()
            return
        tenth = self.done * 10 // max(self.total, 1)
        if tenth != self._lastTenth:
            self._lastTenth = tenth
            self.stream.write(self._line() + "\n")
            self.stream.flush()

    def finish(self) -> None:
        if self.interactive:
            self.stream.write("\n")
        elif self.done == 0:
            self.stream.write(self._line() + "\n")
        self.stream.flush()


#: Every name ending a calendar file may have, in any case.
_CALENDAR_SUFFIXES = ical.FREEBUSY_SUFFIXES + ical.EVENT_SUFFIXES


def calendarFiles(store: CalendarStore, path=()) -> Iterator[tuple]:
    """
    The store paths of every calendar file (free/busy or full calendar, any
    case) in the tree (hidden files, such as temporary ones, are not listed
    by the store).
    """
    for info in store.children(path):
        if info.isCollection:
            yield from calendarFiles(store, info.path)
        elif info.name.lower().endswith(_CALENDAR_SUFFIXES):
            yield info.path


def unreachable(path) -> Optional[str]:
    """
    Why no lookup can reach the calendar file at C{path}, or C{None} when
    one can.  A lookup reads C{<login>.vfb} or C{<login>.ics} at the top
    of the tree, the login spelled as the directory has it (logins are
    lowercase in practice; a publish writes that spelling).
    """
    if len(path) != 1:
        return "lookups read only files at the top of the tree"
    name = path[0]
    if not name.endswith(PUBLISHED_SUFFIXES):
        return f"lookups read only <login>{' and <login>'.join(PUBLISHED_SUFFIXES)}"
    if "@" in name.rsplit(".", 1)[0]:
        return "named by a mail address: lookups read <login>.vfb"
    if name != name.lower():
        return f"lookups read the login's spelling, lowercase: rename it {name.lower()}"
    return None


def importName(name: str) -> str:
    """
    The name in the tree of an imported free/busy file called C{name}:
    C{<login>.vfb}, lowercase, as lookups read it (C{Dave.IFB} is
    C{dave.vfb}).

    @raise InvalidName: Saying why a file cannot be imported under any
        name a lookup reads.
    """
    lowered = name.lower()
    for suffix in ical.FREEBUSY_SUFFIXES:
        if lowered.endswith(suffix) and len(lowered) > len(suffix):
            login = lowered[: -len(suffix)]
            break
    else:
        raise InvalidName(f"not a free/busy file name (<login>{' or <login>'.join(ical.FREEBUSY_SUFFIXES)})")
    if "@" in login:
        raise InvalidName("named by a mail address: lookups read <login>.vfb, rename it so")
    canonical = login + PUBLISHED_SUFFIXES[0]
    validateName(canonical)
    return canonical


def check(store: CalendarStore, out: TextIO, err: TextIO) -> int:
    """
    Validate every calendar file in C{store} as a publish would, and name
    those no lookup can reach (L{unreachable}).

    @return: The exit status: 1 when any file is invalid or unreachable.
    """
    paths = sorted(calendarFiles(store))
    progress = Progress("checking", len(paths), err)
    problems: List[str] = []
    invalid = lost = empty = 0
    for path in paths:
        shown = "/".join(path)
        data = store.read(path)
        if not data:
            empty += 1
        else:
            try:
                validatePublish(path[-1], data)
            except FreeBusyError as e:
                invalid += 1
                problems.append(f"invalid: {shown}: {e.reason}")
        reason = unreachable(path)
        if reason is not None:
            lost += 1
            problems.append(f"unreachable: {shown}: {reason}")
        progress.step()
    progress.finish()
    for line in problems:
        out.write(line + "\n")
    valid = len(paths) - invalid - empty
    out.write(
        f"checked {len(paths)} files in {store.root.path}: {valid} valid, {invalid} invalid, "
        f"{empty} empty (placeholders), {lost} unreachable by lookups\n"
    )
    return 1 if problems else 0


def sourceFiles(sources: List[str]) -> List[FilePath]:
    """
    The free/busy files among C{sources} (files, or folders searched
    recursively), sorted.
    """
    found = []
    for source in sources:
        fp = FilePath(os.path.abspath(source))
        if fp.isdir():
            for dirpath, dirnames, filenames in os.walk(fp.path):
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                for name in filenames:
                    if name.lower().endswith(ical.FREEBUSY_SUFFIXES) and not name.startswith("."):
                        found.append(FilePath(os.path.join(dirpath, name)))
        elif fp.isfile():
            found.append(fp)
        else:
            raise usage.UsageError(f"{source} is neither a file nor a folder")
    return sorted(found, key=lambda f: f.path)


def importFiles(store: CalendarStore, sources: List[str], out: TextIO, err: TextIO,
                overwrite: bool = False, dryRun: bool = False) -> int:
    """
    Copy free/busy files into the top of the tree, under the names lookups
    read (L{importName}).

    @return: The exit status: 1 when any file could not be imported.
    """
    files = sourceFiles(sources)
    progress = Progress("importing" if not dryRun else "checking import", len(files), err)
    imported = replaced = kept = 0
    problems: List[str] = []
    seen = set()
    for fp in files:
        try:
            name = importName(fp.basename())
            if name in seen:
                raise InvalidName(f"another file of the import is also {name}")
            seen.add(name)
            data = fp.getContent()
            validatePublish(name, data)
            exists = store.stat((name,)) is not None
            if exists and not overwrite:
                kept += 1
            else:
                if not dryRun:
                    store.write((name,), data)
                if exists:
                    replaced += 1
                else:
                    imported += 1
        except FreeBusyError as e:
            problems.append(f"not imported: {fp.path}: {e.reason}")
        except OSError as e:
            problems.append(f"not imported: {fp.path}: {e.strerror}")
        progress.step()
    progress.finish()
    for line in problems:
        out.write(line + "\n")
    would = "would be " if dryRun else ""
    out.write(
        f"{len(files)} files found: {imported} {would}imported, {replaced} {would}replaced, "
        f"{kept} kept (already in the tree; --overwrite replaces them), {len(problems)} not imported\n"
    )
    return 1 if problems else 0


#: How fbtwist-admin is called, the first line of its help.
_COMMAND = "fbtwist-admin [--config FILE | --root DIR]"


class _AdminOptionsBase(usage.Options):
    """
    What every C{fbtwist-admin} command shares: a usage line naming the
    command, and C{--version} giving fbtwist's version.
    """

    def getSynopsis(self) -> str:
        command = f" {self.parent.subCommand}" if getattr(self, "parent", None) is not None else ""
        return f"Usage: {_COMMAND}{command} {self.synopsis}".rstrip()

    def opt_version(self):
        """
        Show fbtwist's version and exit.
        """
        import fbtwist

        print(f"fbtwist-admin {fbtwist.__version__}")
        sys.exit(0)


class CheckOptions(_AdminOptionsBase):
    synopsis = ""
    longdesc = ("Validate every calendar file in the tree and name those no lookup can reach; the exit "
                "status is 1 when one is invalid or unreachable.")


class ImportOptions(_AdminOptionsBase):
    synopsis = "[--overwrite] [--dry-run] SOURCE..."
    longdesc = ("Copy the .vfb/.ifb files of the given folders (searched recursively) or files into the top "
                "of the tree, each as <login>.vfb in lowercase (the name lookups read), validated and written "
                "atomically; files already in the tree are kept unless --overwrite.")
    optFlags = [
        ["overwrite", None, "Replace files already in the tree."],
        ["dry-run", "n", "Check and count, but write nothing."],
    ]

    def parseArgs(self, *sources):
        if not sources:
            raise usage.UsageError("name at least one folder or file to import")
        self["sources"] = list(sources)


class AdminOptions(_AdminOptionsBase):
    synopsis = "check|import ..."
    longdesc = ("Maintain fbtwist's calendar tree, while the server runs or not. "
                "fbtwist-admin COMMAND --help describes a command.")
    optParameters = [
        ["config", "c", None, "Read the calendar tree's location (root) from this fbtwist INI file."],
        ["root", None, None, "The calendar tree (overrides the config file)."],
    ]
    subCommands = [
        ["check", None, CheckOptions, "Validate every calendar file in the tree; name unreachable ones."],
        ["import", None, ImportOptions, "Import .vfb/.ifb files from an old server."],
    ]

    def postOptions(self):
        if self.subCommand is None:
            raise usage.UsageError("say what to do: check or import")
        try:
            self.config = buildConfig({"root": self["root"]}, self["config"])
        except ConfigError as e:
            raise usage.UsageError(str(e)) from None


def main(argv: Optional[List[str]] = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    options = AdminOptions()
    try:
        options.parseOptions(sys.argv[1:] if argv is None else argv)
    except usage.UsageError as e:
        # The usage line, not the whole help: the mistake stays in view.
        usageLine = (options.subOptions if hasattr(options, "subOptions") else options).getSynopsis()
        err.write(f"{usageLine}\nfbtwist-admin: {e}\n")
        return 2
    root = options.config.root
    if options.subCommand == "check":
        if not root.isdir():
            err.write(f"fbtwist-admin: there is no calendar tree at {root.path}\n")
            return 2
        return check(CalendarStore(root), out, err)
    sub = options.subOptions
    try:
        return importFiles(CalendarStore(root), sub["sources"], out, err,
                           overwrite=bool(sub["overwrite"]), dryRun=bool(sub["dry-run"]))
    except usage.UsageError as e:
        err.write(f"fbtwist-admin: {e}\n")
        return 2


def run() -> None:
    """
    The C{fbtwist-admin} console script.
    """
    sys.exit(main())


if __name__ == "__main__":
    run()
