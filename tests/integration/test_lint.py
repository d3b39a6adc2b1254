"""
C{bin/check-apidocs}, which C{bin/lint} (and so a whole-suite C{bin/test})
runs over fbtwist: what it lets through and what it stops.
"""

import subprocess
import sys

from twisted.python.filepath import FilePath
from twisted.trial import unittest

CHECK = FilePath(__file__).parent().parent().sibling("bin").child("check-apidocs")


class CheckAPIDocsTests(unittest.SynchronousTestCase):
    """
    C{bin/check-apidocs} run over a small package whose docstring varies.
    """

    def check(self, docstring):
        """
        Run the check over a package C{sample} with C{docstring}.

        @return: the finished process, its output as text.
        """
        package = FilePath(self.mktemp()).child("sample")
        package.makedirs()
        package.child("__init__.py").setContent(f'"""\n{docstring}\n"""\n\ndef f():\n    pass\n'.encode())
        return subprocess.run([sys.executable, CHECK.path, package.path], capture_output=True, text=True,
                              timeout=120)

    def test_goodLinks(self):
        """
        Links to the package's own objects, to other projects' and to
        builtins pass without a word.
        """
        result = self.check("L{sample.f}, L{f}, L{twisted.internet.defer.Deferred}, L{ValueError}.")
        self.assertEqual((result.returncode, result.stdout, result.stderr), (0, "", ""))

    def test_brokenOwnLink(self):
        """
        A link to a name the package does not have fails the check.
        """
        result = self.check("See L{sample.missing}.")
        self.assertEqual(result.returncode, 1)
        self.assertIn('Cannot find link target for "sample.missing"', result.stdout)

    def test_brokenExternalLink(self):
        """
        A link to a misspelt object of another project fails the check.
        """
        result = self.check("See L{twisted.internet.defer.Deferrred}.")
        self.assertEqual(result.returncode, 1)
        self.assertIn("twisted.internet.defer.Deferrred", result.stdout)

    def test_unqualifiedName(self):
        """
        A link to a name neither defined nor imported where it is used (and
        not a builtin) fails the check: the reader could not follow it.
        """
        result = self.check("Uses L{IReactorTime}.")
        self.assertEqual(result.returncode, 1)
        self.assertIn('"IReactorTime"', result.stdout)

    def test_epytextError(self):
        """
        Markup pydoctor cannot parse fails the check.
        """
        result = self.check("An unclosed C{literal.")
        self.assertEqual(result.returncode, 1)
        self.assertIn("bad docstring", result.stdout)
