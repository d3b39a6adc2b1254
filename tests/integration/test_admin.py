"""
The maintenance command run as a process on real folders: import an old
server's files, check a tree; both show progress and end with a summary
(its progress, and lookups of what it imported: L{tests.unit.test_admin}).
"""

import io
import os
import subprocess
import sys

from twisted.python.filepath import FilePath
from twisted.trial import unittest

from fbtwist.admin import main
from fbtwist.store.tree import CalendarStore
from tests.helpers import outlookVFB
from tests.processes import TOP


class AdminTests(unittest.SynchronousTestCase):
    """
    C{python -m fbtwist.admin} on real folders.
    """

    def setUp(self):
        self.old = FilePath(self.mktemp())
        self.old.child("people").makedirs()
        self.old.child("alice.vfb").setContent(outlookVFB("alice@example.com"))
        self.old.child("people").child("bsmith.vfb").setContent(outlookVFB("betty@example.com"))
        self.old.child("people").child("carol.ifb").setContent(outlookVFB("carol@example.com"))
        self.old.child("broken.vfb").setContent(b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n")
        self.old.child("notes.txt").setContent(b"not a calendar file, not imported")
        self.root = FilePath(self.mktemp())

    def admin(self, *args):
        result = subprocess.run(
            [sys.executable, "-m", "fbtwist.admin", "--root", self.root.path, *args],
            cwd=TOP, capture_output=True, text=True, timeout=60,
            env=dict(os.environ, PYTHONPATH=TOP, PYTHONWARNINGS="ignore"),
        )
        return result.returncode, result.stdout, result.stderr

    def test_import(self):
        """
        Valid files are imported atomically, invalid ones named and left
        out; progress on stderr, the summary on stdout, status 1.
        """
        code, out, err = self.admin("import", self.old.path)
        self.assertEqual(code, 1)
        self.assertIn("importing: 4/4 files (100%)", err)
        self.assertIn(f"not imported: {self.old.child('broken.vfb').path}: the calendar has no VFREEBUSY", out)
        self.assertTrue(out.endswith(
            "4 files found: 3 imported, 0 replaced, 0 kept (already in the tree; --overwrite replaces them), "
            "1 not imported\n"
        ), out)
        store = CalendarStore(self.root)
        self.assertEqual(sorted(i.name for i in store.children(())), ["alice.vfb", "bsmith.vfb", "carol.vfb"])
        self.assertEqual(store.read(("bsmith.vfb",)), outlookVFB("betty@example.com"))

    def test_existingKept(self):
        """
        A file already in the tree is kept unless --overwrite.
        """
        self.old.child("broken.vfb").remove()
        store = CalendarStore(self.root)
        store.write(("alice.vfb",), outlookVFB("newer@example.com"))
        code, out, err = self.admin("import", self.old.path)
        self.assertEqual(code, 0)
        self.assertIn("2 imported, 0 replaced, 1 kept", out)
        self.assertEqual(store.read(("alice.vfb",)), outlookVFB("newer@example.com"))
        code, out, err = self.admin("import", "--overwrite", self.old.child("alice.vfb").path)
        self.assertIn("0 imported, 1 replaced, 0 kept", out)
        self.assertEqual(store.read(("alice.vfb",)), outlookVFB("alice@example.com"))

    def test_sameNameTwice(self):
        """
        Two files of one name in different folders: the first is imported,
        the second named and left out; hidden files are never imported.
        """
        self.old.child("broken.vfb").remove()
        self.old.child("people").child("alice.vfb").setContent(outlookVFB("other@example.com"))
        self.old.child(".hidden.vfb").setContent(outlookVFB())
        code, out, err = self.admin("import", self.old.path)
        self.assertEqual(code, 1)
        self.assertIn("people/alice.vfb: another file of the import is also alice.vfb", out)
        self.assertEqual(CalendarStore(self.root).read(("alice.vfb",)), outlookVFB("alice@example.com"))
        self.assertNotIn(".hidden.vfb", os.listdir(self.root.path))

    def test_dryRun(self):
        """
        --dry-run counts and writes nothing.
        """
        code, out, err = self.admin("import", "--dry-run", self.old.path)
        self.assertIn("3 would be imported", out)
        self.assertEqual(list(CalendarStore(self.root).children(())), [])

    def test_check(self):
        """
        check validates every file of the tree and names the invalid ones.
        """
        store = CalendarStore(self.root)
        store.write(("alice.vfb",), outlookVFB())
        store.write(("bsmith.vfb",), b"")
        store.write(("carol.vfb",), b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n")
        code, out, err = self.admin("check")
        self.assertEqual(code, 1)
        self.assertIn("checking: 3/3 files (100%)", err)
        self.assertEqual(out, (
            "invalid: carol.vfb: the calendar has no VFREEBUSY component\n"
            f"checked 3 files in {store.root.path}: 1 valid, 1 invalid, 1 empty (placeholders), "
            "0 unreachable by lookups\n"
        ))

    def test_checkUnreachable(self):
        """
        check names the valid files no lookup can reach: in a folder, with
        another suffix or case, named by an address; status 1.
        """
        store = CalendarStore(self.root)
        store.write(("dave.vfb",), outlookVFB())
        store.write(("Dave.VFB",), outlookVFB())
        store.write(("carol.ifb",), outlookVFB())
        store.write(("Alice.vfb",), outlookVFB())
        store.write(("bsmith@example.com.vfb",), outlookVFB())
        store.makeCollection(("sub",))
        store.write(("sub", "dave.ifb"), outlookVFB())
        code, out, err = self.admin("check")
        self.assertEqual(code, 1)
        self.assertEqual(out, (
            "unreachable: Alice.vfb: lookups read the login's spelling, lowercase: rename it alice.vfb\n"
            "unreachable: Dave.VFB: lookups read only <login>.vfb and <login>.ics and <login>.avail.ics\n"
            "unreachable: bsmith@example.com.vfb: named by a mail address: lookups read <login>.vfb\n"
            "unreachable: carol.ifb: lookups read only <login>.vfb and <login>.ics and <login>.avail.ics\n"
            "unreachable: sub/dave.ifb: lookups read only files at the top of the tree\n"
            f"checked 6 files in {store.root.path}: 6 valid, 0 invalid, 0 empty (placeholders), "
            "5 unreachable by lookups\n"
        ))

    def test_importCanonicalNames(self):
        """
        Imported files are stored as <login>.vfb in lowercase, whatever
        their case, suffix or folder; names no lookup reads are refused
        with the reason; a check of the result is clean.
        """
        old = FilePath(self.mktemp())
        old.child("sub").makedirs()
        old.child("Dave.VFB").setContent(outlookVFB("dave@example.org"))
        old.child("sub").child("Carol.ifb").setContent(outlookVFB("carol@example.com"))
        old.child("sub").child("dave.ifb").setContent(outlookVFB("other@example.org"))
        old.child("frank@example.com.ifb").setContent(outlookVFB())
        old.child("notes.txt").setContent(b"not a calendar")
        code, out, err = self.admin("import", old.path, old.child("notes.txt").path)
        self.assertEqual(code, 1)
        self.assertIn(f"not imported: {old.child('sub').child('dave.ifb').path}: "
                      "another file of the import is also dave.vfb", out)
        self.assertIn(f"not imported: {old.child('frank@example.com.ifb').path}: named by a mail address", out)
        self.assertIn(f"not imported: {old.child('notes.txt').path}: not a free/busy file name", out)
        store = CalendarStore(self.root)
        self.assertEqual(sorted(i.name for i in store.children(())), ["carol.vfb", "dave.vfb"])
        self.assertEqual(store.read(("dave.vfb",)), outlookVFB("dave@example.org"))
        code, out, err = self.admin("check")
        self.assertEqual((code, out.splitlines()[-1].endswith("0 unreachable by lookups")), (0, True))

    def test_configFile(self):
        """
        The tree's location may come from fbtwist's config file.
        """
        config = FilePath(self.mktemp())
        config.setContent(f"[freebusy]\nroot = {self.root.path}\n".encode())
        CalendarStore(self.root).write(("alice.vfb",), outlookVFB())
        out, err = io.StringIO(), io.StringIO()
        self.assertEqual(main(["--config", config.path, "check"], out, err), 0)
        self.assertIn("1 valid, 0 invalid", out.getvalue())

    def test_usage(self):
        """
        A missing sub-command or source is a usage error, status 2.
        """
        out, err = io.StringIO(), io.StringIO()
        self.assertEqual(main(["--root", self.root.path], out, err), 2)
        self.assertIn("check or import", err.getvalue())
        self.assertEqual(main(["--root", self.root.path, "import"], out, err), 2)
        self.assertIn("at least one folder", err.getvalue())
