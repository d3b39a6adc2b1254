"""
The packages of L{fbtwist} depend one way, from the protocols down to the
domain (README.rst, "Layout"): every module's imports are read with L{ast}
(those inside functions too) and checked against the rules below.
"""

import ast
import os
from typing import Dict, Iterator, Set, Tuple

from twisted.trial import unittest

import fbtwist

#: The directory of the fbtwist package.
TOP = os.path.dirname(os.path.abspath(fbtwist.__file__))

#: The packages each package must never import.
FORBIDDEN = {
    "fbtwist.web": {"fbtwist.store", "fbtwist.directory"},
    "fbtwist.ftp": {"fbtwist.store", "fbtwist.directory"},
    "fbtwist.store": {"fbtwist.web", "fbtwist.ftp", "fbtwist.access", "fbtwist.ops"},
    "fbtwist.calendar": {"fbtwist.web", "fbtwist.ftp", "fbtwist.access", "fbtwist.ops"},
    "fbtwist.directory": {"fbtwist.web", "fbtwist.ftp", "fbtwist.access", "fbtwist.ops"},
    "fbtwist.access": {"fbtwist.web", "fbtwist.ftp"},
    "fbtwist.availability": {"fbtwist.web", "fbtwist.ftp", "fbtwist.access", "fbtwist.ops", "fbtwist.store",
                             "fbtwist.directory"},
    "fbtwist.remote": {"fbtwist.web", "fbtwist.ftp", "fbtwist.access", "fbtwist.ops", "fbtwist.store",
                       "fbtwist.directory"},
}

#: The imports that break a rule, (importer, imported module) -> why: none.
#: The protocols reach the tree and the directory through the avatar only
#: (the values its operations take and give are named from
#: L{fbtwist.access.values}); an entry here must say why it cannot.  The
#: test fails when one no longer exists, so that this list only shrinks.
KNOWN_EXCEPTIONS: Dict[Tuple[str, str], str] = {}


#: The protocol packages, which evaluate no lock and see no lock store:
#: they hand the avatar the client's preconditions as values
#: (L{fbtwist.access.values.Preconditions}) and get locks back as values.
PROTOCOLS = ("fbtwist.web", "fbtwist.ftp")

#: The names of the lock store and its workings (attributes, imported or
#: used names) no protocol module may use.
LOCK_INTERNALS = frozenset({
    "LockStore", "lockStore", "lockDirectory", "LOCK_DIRECTORY", "exclusive", "affecting", "covering",
    "assertUnlocked", "takeLock", "LockConflict", "TooManyLocks",
})


def lockInternalsUsed(path: str) -> Set[str]:
    """
    @return: C{"line: name"} for each use of a lock-store internal
        (L{LOCK_INTERNALS}, or an import of C{fbtwist.store.locks}) in the
        module at C{path}.
    """
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Attribute):
            names = [node.attr]
        elif isinstance(node, ast.Name):
            names = [node.id]
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [alias.name.rsplit(".", 1)[-1] for alias in node.names]
            modules = [alias.name for alias in node.names] + [getattr(node, "module", None) or ""]
            names += ["fbtwist.store.locks" for m in modules if m.startswith("fbtwist.store.locks")]
        found.update(f"{node.lineno}: {name}" for name in names
                     if name in LOCK_INTERNALS or name == "fbtwist.store.locks")
    return found


def modules() -> Iterator[Tuple[str, str]]:
    """
    @return: C{(dotted name, path)} of every module of the package.
    """
    for folder, dirs, files in os.walk(TOP):
        dirs[:] = sorted(d for d in dirs if os.path.exists(os.path.join(folder, d, "__init__.py")))
        for name in sorted(files):
            if name.endswith(".py"):
                relative = os.path.relpath(os.path.join(folder, name), os.path.dirname(TOP))
                dotted = relative[: -len(".py")].replace(os.sep, ".")
                if dotted.endswith(".__init__"):
                    dotted = dotted[: -len(".__init__")]
                yield dotted, os.path.join(folder, name)


def _known(names: Set[str], dotted: str) -> str:
    """
    The module C{dotted} names, or the longest of its prefixes that is one
    (C{fbtwist.errors.NotFound} is C{fbtwist.errors}).
    """
    while dotted not in names and "." in dotted:
        dotted = dotted.rsplit(".", 1)[0]
    return dotted


def importsOf(path: str, names: Set[str]) -> Set[str]:
    """
    @return: The fbtwist modules the module at C{path} imports.
    """
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            for alias in node.names:
                # "from fbtwist.calendar import ical" imports a module.
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in names else node.module)
    return {_known(names, name) for name in found if name == "fbtwist" or name.startswith("fbtwist.")}


def importGraph() -> Dict[str, Set[str]]:
    """
    @return: Each fbtwist module's imports of other fbtwist modules.
    """
    found = dict(modules())
    names = set(found)
    return {name: importsOf(path, names) - {name} for name, path in found.items()}


def packageOf(module: str) -> str:
    """
    The layer of C{module}: its package under C{fbtwist} (C{fbtwist.web}
    for C{fbtwist.web.dav.put}), or the module itself at the top
    (C{fbtwist.tap}).
    """
    return ".".join(module.split(".")[:2])


def violations(graph: Dict[str, Set[str]]) -> Set[Tuple[str, str]]:
    """
    @return: The C{(importer, imported)} pairs that break L{FORBIDDEN}.
    """
    return {(importer, imported) for importer, imports in graph.items() for imported in imports
            if packageOf(imported) in FORBIDDEN.get(packageOf(importer), ())}


def packageCycles(graph: Dict[str, Set[str]]) -> Set[frozenset]:
    """
    @return: The sets of packages (and top modules) that import each other,
        in a circle (strongly connected components of more than one).
    """
    edges: Dict[str, Set[str]] = {}
    for importer, imports in graph.items():
        source = packageOf(importer)
        edges.setdefault(source, set()).update(packageOf(i) for i in imports if packageOf(i) != source)
    # Tarjan's algorithm.
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack, onStack, cycles = [], set(), set()

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        onStack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in onStack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                onStack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.add(frozenset(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return cycles


class LayeringTests(unittest.TestCase):
    """
    The one-way rule between fbtwist's packages.
    """

    def setUp(self):
        self.graph = importGraph()

    def test_readsEveryModule(self):
        """
        The graph holds every package and sees imports written either way.
        """
        self.assertIn("fbtwist.web.dav.put", self.graph)
        self.assertIn("fbtwist.calendar.ical", self.graph["fbtwist.web.dav.put"])
        self.assertIn("fbtwist.ops.workers", self.graph["fbtwist.tap"])
        for package in FORBIDDEN:
            self.assertIn(package, self.graph)

    def test_rulesFindViolations(self):
        """
        An import that breaks a rule is found, whether at the top of a module
        or inside a function.
        """
        graph = {"fbtwist.web.x": {"fbtwist.store.tree"}, "fbtwist.calendar.y": {"fbtwist.ops.logs"},
                 "fbtwist.access.z": {"fbtwist.store.tree", "fbtwist.errors"}}
        self.assertEqual(violations(graph), {("fbtwist.web.x", "fbtwist.store.tree"),
                                             ("fbtwist.calendar.y", "fbtwist.ops.logs")})
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("def f():\n    from fbtwist.store import tree\n")
        self.assertEqual(importsOf(path, {"fbtwist.store", "fbtwist.store.tree"}), {"fbtwist.store.tree"})

    def test_noNewViolations(self):
        """
        No module imports a package its layer must not, except the known
        exceptions.
        """
        unlisted = sorted(violations(self.graph) - set(KNOWN_EXCEPTIONS))
        self.assertEqual(unlisted, [], "imports against the layering (README.rst, Layout)")

    def test_exceptionsStillExist(self):
        """
        Every known exception still exists: one that was removed is taken
        off the list.
        """
        gone = sorted(set(KNOWN_EXCEPTIONS) - violations(self.graph))
        self.assertEqual(gone, [], "fixed: remove these from KNOWN_EXCEPTIONS")

    def test_noPackageCycles(self):
        """
        No two packages (or top modules) import each other, directly or
        through others.
        """
        self.assertEqual(packageCycles(self.graph), set())

    def test_cyclesFound(self):
        """
        A cycle through three packages is found.
        """
        graph = {"fbtwist.a.x": {"fbtwist.b.y"}, "fbtwist.b.y": {"fbtwist.c.z"}, "fbtwist.c.z": {"fbtwist.a.w"},
                 "fbtwist.a.w": set(), "fbtwist.tap": {"fbtwist.a.x"}}
        self.assertEqual(packageCycles(graph), {frozenset({"fbtwist.a", "fbtwist.b", "fbtwist.c"})})

    def test_protocolsSeeNoLockStore(self):
        """
        No WebDAV or FTP module touches the lock store or its workings: the
        avatar evaluates preconditions and locks.
        """
        found = {name: sorted(lockInternalsUsed(path)) for name, path in modules()
                 if any(name == p or name.startswith(p + ".") for p in PROTOCOLS)}
        self.assertIn("fbtwist.web.dav.lock", found)
        self.assertIn("fbtwist.ftp.shell", found)
        self.assertEqual({name: uses for name, uses in found.items() if uses}, {})

    def test_lockInternalsFound(self):
        """
        An import of the lock store, or its use through an attribute, is
        found.
        """
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("from fbtwist.access.values import LockStore\n"
                    "import fbtwist.store.locks\n"
                    "def f(avatar):\n    return avatar.lockStore().affecting(())\n")
        self.assertEqual(lockInternalsUsed(path), {"1: LockStore", "2: fbtwist.store.locks", "4: lockStore",
                                                   "4: affecting"})
