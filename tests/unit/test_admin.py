"""
The maintenance command in this process: its progress on a terminal and in
a log, and what it imports found by a whole server's lookups in memory
(L{tests.memory}); the command run as a process on real folders:
L{tests.integration.test_admin}.
"""

import io

from twisted.python.filepath import FilePath
from twisted.trial import unittest

from fbtwist.admin import Progress, main
from tests.helpers import inline, outlookVFB
from tests.memory import startMemoryServer


class _Terminal(io.StringIO):
    def isatty(self):
        return True


class ProgressTests(unittest.SynchronousTestCase):
    """
    Progress on a terminal and in a log.
    """

    def test_terminal(self):
        """
        On a terminal one line is rewritten in place, then ended.
        """
        out = _Terminal()
        progress = Progress("checking", 3, out)
        for _ in range(3):
            progress.step()
        progress.finish()
        self.assertEqual(out.getvalue(), (
            "\rchecking: 1/3 files (33%)\rchecking: 2/3 files (66%)\rchecking: 3/3 files (100%)\n"
        ))

    def test_log(self):
        """
        Elsewhere a line when the work starts and one per tenth of it, the
        last one at 100%.
        """
        out = io.StringIO()
        progress = Progress("importing", 100, out)
        for _ in range(100):
            progress.step()
        progress.finish()
        lines = out.getvalue().splitlines()
        self.assertEqual(len(lines), 11)
        self.assertEqual(lines[:2], ["importing: 1/100 files (1%)", "importing: 10/100 files (10%)"])
        self.assertEqual(lines[-1], "importing: 100/100 files (100%)")

    def test_nothing(self):
        """
        With nothing to do, one line still says so.
        """
        out = io.StringIO()
        progress = Progress("checking", 0, out)
        progress.finish()
        self.assertEqual(out.getvalue(), "checking: 0/0 files (100%)\n")


class ImportedLookupTests(unittest.TestCase):
    """
    What the import stores, a running server's lookups find.
    """

    @inline
    async def test_lookupsFindImported(self):
        """
        Dave.VFB and sub/Carol.ifb, imported, answer /calendar/dave.vfb and
        /calendar/carol.vfb.
        """
        old = FilePath(self.mktemp())
        old.child("sub").makedirs()
        old.child("Dave.VFB").setContent(outlookVFB("dave@example.org"))
        old.child("sub").child("Carol.ifb").setContent(outlookVFB("carol@example.com"))
        server = startMemoryServer(self)
        self.assertEqual(main(["--root", server.root.path, "import", old.path], io.StringIO(), io.StringIO()), 0)
        client = server.client()
        for name in ["dave", "carol"]:
            response = await client.get(server.url(f"/calendar/{name}.vfb"))
            self.assertEqual((name, response.code), (name, 200))
            self.assertIn(b"FREEBUSY:20210105T070000Z/20210105T073000Z", await response.content())

