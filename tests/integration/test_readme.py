"""
README.rst is executable documentation: it renders without a single docutils
message, and its shell examples run as written against a real
C{twistd freebusy} with the demo directory.

Every literal block in the README is followed by an RST comment (invisible
when rendered) saying what to expect of it::

    .. expect:
       201
       200 FREEBUSY:20261125T090000Z/20261125T103000Z

one line per command of the block: for C{curl}, the response code (HTTP or
FTP) and optionally a text the output must contain; for any other command,
C{exit N} and optionally such a text. A block that is not a command to run
against the demo server (an INI file, sample output, a deployment recipe) is
followed by C{.. not run: REASON}; a block showing a file of the repository
by C{.. file: PATH}, and must then be that file's text. A block with none of
these fails the test, so a new example cannot be forgotten.

The examples run in the README's order against one server, which the first
plain C{bin/serve} stands for (C{expect: serving}). A block whose first
command is C{bin/serve ARGS} starts its own server with those arguments (the
way C{bin/serve} would, on free ports) for the rest of the block. Commands
run with C{bash} in a folder that looks like the top of a clone (links to the
clone's files, its own empty C{var/}); C{curl} runs with C{-sS} and reports
the response code; a command that is only an C{http://} URL (one to open in
a browser) is fetched with C{curl}; C{127.0.0.1:8080} and C{127.0.0.1:2121}
are the test server's ports.

A second organisation (for federation): in a block, a C{bin/serve ARGS &}
whose arguments listen on L{PARTNER_HTTP} starts another server beside the
block's, its listeners chosen by the test (its C{--http} and C{--ftp}
arguments dropped); C{127.0.0.1:8081} in the block's later commands and
C{bin/serve} arguments is then that server's HTTP port.
"""

import io
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from typing import List, NamedTuple, Optional

import docutils.core
import docutils.nodes
from twisted.trial import unittest

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
README = os.path.join(TOP, "README.rst")
_LISTENING = {
    "http": re.compile(r"FreeBusySite starting on (\d+)"),
    "ftp": re.compile(r"CalendarFTPFactory starting on (\d+)"),
}
_STATUS = re.compile(rb"^@@status (\d+)$", re.MULTILINE)
_HEREDOC = re.compile(r"<<-?\s*'?\"?(\w+)'?\"?")


#: The listener of a second organisation's server in a README example.
PARTNER_HTTP = "tcp:8081:interface=127.0.0.1"
PARTNER_ADDRESS = "127.0.0.1:8081"


def partnerArguments(args: List[str]) -> Optional[List[str]]:
    """
    @return: The arguments of a second organisation's C{bin/serve ARGS &}
        without its listeners (the test chooses them), or C{None} when
        C{args} are not a second organisation's.
    """
    args = [a for a in args if a != "&"]
    if PARTNER_HTTP not in args and f"--http={PARTNER_HTTP}" not in args:
        return None
    kept, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("--http", "--ftp"):
            skip = True
        elif not arg.startswith(("--http=", "--ftp=")):
            kept.append(arg)
    return kept


class Example(NamedTuple):
    line: int
    commands: List[str]
    expected: List[str]


def shownFile(block: docutils.nodes.literal_block, note: str) -> None:
    """
    Check that a block marked C{.. file: PATH} shows that file of the
    repository as it is.

    @raise AssertionError: The path is missing, or the file differs.
    """
    line = block.line or 0
    path = note[len("file:"):].strip()
    if not path:
        raise AssertionError(f"README.rst line {line}: '.. file:' names no file")
    try:
        with open(os.path.join(TOP, path), encoding="utf-8", newline="") as f:
            content = f.read()
    except OSError as e:
        raise AssertionError(f"README.rst line {line}: '.. file: {path}': {e.strerror}") from None
    if block.astext().splitlines() != content.splitlines():
        raise AssertionError(f"README.rst line {line}: the block is not the text of {path}")


def renderMessages(text: str) -> str:
    """
    Render C{text} as reStructuredText; return every message docutils
    reports at warning level and above.
    """
    messages = io.StringIO()
    docutils.core.publish_doctree(text, settings_overrides={
        "report_level": 2, "halt_level": 5, "warning_stream": messages})
    return messages.getvalue()


def splitCommands(block: str) -> List[str]:
    """
    The commands of a shell block: continuation lines joined, a here-document
    kept with its command, comments and blank lines dropped.
    """
    commands = []
    lines = block.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        command = line
        while command.endswith("\\") and i < len(lines):
            command = command + "\n" + lines[i]
            i += 1
        heredoc = _HEREDOC.search(command)
        if heredoc:
            while i < len(lines):
                command += "\n" + lines[i]
                i += 1
                if lines[i - 1].strip() == heredoc.group(1):
                    break
        commands.append(command)
    return commands


def examples(text: str) -> List[Example]:
    """
    The README's literal blocks that are to be run, with what to expect.

    @raise AssertionError: A literal block says neither C{expect} nor
        C{not run}, or its expectations do not match its commands.
    """
    document = docutils.core.publish_doctree(text, settings_overrides={"report_level": 5})
    found = []
    for block in document.findall(docutils.nodes.literal_block):
        parent = block.parent
        index = parent.index(block)
        following = parent[index + 1] if index + 1 < len(parent) else None
        line = block.line or 0
        if not isinstance(following, docutils.nodes.comment):
            raise AssertionError(f"README.rst line {line}: a literal block without '.. expect:' or "
                                 f"'.. not run: REASON' after it:\n{block.astext()[:200]}")
        note = following.astext().strip()
        if note.startswith("not run:") and note[len("not run:"):].strip():
            continue
        if note.startswith("file:"):
            shownFile(block, note)
            continue
        if not note.startswith("expect:"):
            raise AssertionError(f"README.rst line {line}: the comment after a literal block must be "
                                 f"'expect:', 'not run: REASON' or 'file: PATH', not {note[:60]!r}")
        expected = [e.strip() for e in note[len("expect:"):].strip().splitlines() if e.strip()]
        commands = splitCommands(block.astext())
        if len(expected) != len(commands):
            raise AssertionError(f"README.rst line {line}: {len(commands)} commands but {len(expected)} "
                                 f"expectations")
        found.append(Example(line, commands, expected))
    return found


class Server:
    """
    A real C{twistd -n freebusy} with the demo directory, as C{bin/serve}
    starts it, on free loopback ports.
    """

    def __init__(self, cwd: str, args: List[str]):
        if any(arg.split("=")[0] in ("--http", "--ftp") for arg in args):
            raise AssertionError(f"bin/serve {' '.join(args)}: the test chooses the listeners; "
                                 "mark an example with its own --http or --ftp 'not run'")
        self.log = tempfile.NamedTemporaryFile(prefix="fbtwist-readme-", suffix=".log", delete=False)
        env = dict(os.environ, PYTHONPATH=TOP, PYTHONWARNINGS="ignore")
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
             "-n", "--pidfile=", "freebusy", *args,
             "--http", "tcp:0:interface=127.0.0.1", "--ftp", "tcp:0:interface=127.0.0.1"],
            cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        self.ports = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(self.ports) < 2:
            output = self.output()
            for name, pattern in _LISTENING.items():
                match = pattern.search(output)
                if match:
                    self.ports[name] = int(match.group(1))
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        # The demo directory loads its users before lookups can find them.
        while time.monotonic() < deadline and "DEMO DIRECTORY" not in self.output():
            time.sleep(0.05)
        if len(self.ports) < 2 or self.process.poll() is not None:
            self.stop()
            raise AssertionError("twistd freebusy did not start:\n" + self.output())

    def output(self) -> str:
        with open(self.log.name, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def rewrite(self, command: str) -> str:
        return (command.replace("127.0.0.1:8080", f"127.0.0.1:{self.ports['http']}")
                .replace("127.0.0.1:2121", f"127.0.0.1:{self.ports['ftp']}"))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if not self.log.closed:
            self.log.close()
            os.unlink(self.log.name)


def sandbox() -> str:
    """
    A folder that looks like the top of a clone: links to the clone's files
    and folders, and an empty C{var/} of its own for the calendar tree.
    """
    top = tempfile.mkdtemp(prefix="fbtwist-readme-")
    for name in os.listdir(TOP):
        if name not in ("var", "_trial_temp", ".git"):
            os.symlink(os.path.join(TOP, name), os.path.join(top, name))
    os.mkdir(os.path.join(top, "var"))
    shims = os.path.join(top, ".shims")
    os.mkdir(shims)
    curl = os.path.join(shims, "curl")
    with open(curl, "w") as f:
        f.write("#!/bin/sh\nexec /usr/bin/curl -sS --max-time 20 -w '\\n@@status %{response_code}\\n' \"$@\"\n")
    os.chmod(curl, 0o755)
    return top


def run(command: str, cwd: str) -> subprocess.CompletedProcess:
    """
    Run one README command with C{bash} in the sandbox C{cwd}; a bare URL is
    fetched with C{curl}, as a browser would.
    """
    if re.fullmatch(r"https?://\S+", command.strip()):
        command = "curl " + shlex.quote(command.strip())
    venvBin = os.path.dirname(sys.executable)
    env = dict(os.environ, PATH=os.pathsep.join([os.path.join(cwd, ".shims"), venvBin, os.environ["PATH"]]))
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, timeout=60)


def check(test: unittest.TestCase, example: Example, index: int, command: str,
          result: subprocess.CompletedProcess, expected: str) -> None:
    output = result.stdout + result.stderr
    where = f"README.rst line {example.line}, command {index + 1}: {command.splitlines()[0][:100]}"
    want, _, text = expected.partition(" ")
    if want == "exit":
        code, _, text = text.partition(" ")
        test.assertEqual(result.returncode, int(code), f"{where}\n{output.decode('utf-8', 'replace')}")
    else:
        statuses = _STATUS.findall(result.stdout)
        test.assertTrue(statuses, f"{where}: not a curl command, or curl said nothing\n"
                                  f"{output.decode('utf-8', 'replace')}")
        test.assertEqual(statuses[-1].decode("ascii"), want, f"{where}\n{output.decode('utf-8', 'replace')}")
    if text:
        test.assertIn(text.encode("utf-8"), output, f"{where}\n{output.decode('utf-8', 'replace')}")


class ReadmeTests(unittest.TestCase):
    """
    README.rst renders cleanly and its examples work as written.
    """

    def setUp(self):
        with open(README, encoding="utf-8") as f:
            self.text = f.read()

    def test_renders(self):
        """
        docutils reports nothing at warning level or above (README.rst is
        also the package's long description).
        """
        self.assertEqual(renderMessages(self.text), "")

    def test_splitCommands(self):
        """
        Continuation lines and here-documents stay with their command.
        """
        self.assertEqual(splitCommands("curl a \\\n  b\n\n# note\ncat > f <<'EOF'\nx\nEOF\nls"),
                         ["curl a \\\n  b", "cat > f <<'EOF'\nx\nEOF", "ls"])

    def test_everyBlockSaysWhatToExpect(self):
        """
        A literal block without a comment saying what to expect is refused.
        """
        with self.assertRaises(AssertionError) as raised:
            examples("Try::\n\n    curl http://127.0.0.1:8080/\n\nDone.\n")
        self.assertIn("without '.. expect:'", str(raised.exception))
        self.assertEqual(examples("Try::\n\n    curl x\n\n.. expect:\n   200\n"),
                         [Example(3, ["curl x"], ["200"])])
        self.assertEqual(examples("Try::\n\n    a = b\n\n.. not run: an INI file\n"), [])

    def test_shownFile(self):
        """
        A block marked C{.. file: PATH} must be that file's text.
        """
        with open(os.path.join(TOP, "etc/examples/old-server/x.vfb"), encoding="utf-8") as f:
            shown = "".join("    " + line for line in f)
        self.assertEqual(examples(f"It is::\n\n{shown}\n.. file: etc/examples/old-server/x.vfb\n"), [])
        changed = shown.replace("broken", "fixed")
        with self.assertRaises(AssertionError) as raised:
            examples(f"It is::\n\n{changed}\n.. file: etc/examples/old-server/x.vfb\n")
        self.assertIn("not the text of etc/examples/old-server/x.vfb", str(raised.exception))
        with self.assertRaises(AssertionError) as raised:
            examples(f"It is::\n\n{shown}\n.. file: etc/examples/none.vfb\n")
        self.assertIn("etc/examples/none.vfb", str(raised.exception))

    def test_partnerArguments(self):
        """
        A bin/serve on the partner's port is a second organisation, its listeners left to the test.
        """
        self.assertEqual(partnerArguments(["--http", PARTNER_HTTP, "--ftp", "none", "--root", "var/p", "&"]),
                         ["--root", "var/p"])
        self.assertEqual(partnerArguments([f"--http={PARTNER_HTTP}"]), [])
        self.assertIsNone(partnerArguments(["--lookup-auth"]))

    def test_checkFails(self):
        """
        A wrong response code, exit status or missing text fails the example.
        """
        example = Example(1, ["curl x"], ["200"])

        def answer(stdout: bytes, code: int = 0) -> subprocess.CompletedProcess:
            return subprocess.CompletedProcess("curl x", code, stdout, b"")

        check(self, example, 0, "curl x", answer(b"found\n@@status 200\n"), "200 found")
        check(self, example, 0, "ls", answer(b"one\n", 1), "exit 1 one")
        for result, expected in [(answer(b"gone\n@@status 404\n"), "200"),
                                 (answer(b"found\n@@status 200\n"), "200 lost"),
                                 (answer(b"nothing\n"), "200"),
                                 (answer(b"one\n", 0), "exit 1"),
                                 (answer(b"one\n", 1), "exit 1 two")]:
            with self.assertRaises(self.failureException):
                check(self, example, 0, "curl x", result, expected)

    def test_examples(self):
        """
        Every README example to be run works as written, in order, against a
        real twistd freebusy with the demo directory.
        """
        failures: List[str] = []
        found = examples(self.text)
        self.assertGreater(len(found), 5)
        top = sandbox()
        self.addCleanup(subprocess.run, ["rm", "-rf", top])
        server = Server(top, [])
        self.addCleanup(server.stop)
        for example in found:
            current: Optional[Server] = server
            own: Optional[Server] = None
            partner: Optional[Server] = None

            def toPartner(text: str, partner: Optional[Server]) -> str:
                if partner is None:
                    return text
                return text.replace(PARTNER_ADDRESS, f"127.0.0.1:{partner.ports['http']}")

            for index, (command, expected) in enumerate(zip(example.commands, example.expected)):
                words = shlex.split(command.replace("\\\n", " "), comments=True)
                if words[:1] == ["bin/serve"]:
                    self.assertEqual(expected, "serving", f"README.rst line {example.line}: "
                                                          "expect 'serving' for bin/serve")
                    partnerArgs = partnerArguments(words[1:])
                    if partnerArgs is not None:
                        partner = Server(top, partnerArgs)
                        self.addCleanup(partner.stop)
                    elif words[1:]:
                        own = Server(top, [toPartner(word, partner) for word in words[1:]])
                        self.addCleanup(own.stop)
                        current = own
                    continue
                try:
                    result = run(toPartner(current.rewrite(command), partner), top)
                    check(self, example, index, command, result, expected)
                except self.failureException as e:
                    # Go on: one run names every example that broke.
                    failures.append(str(e))
            if own is not None:
                own.stop()
            if partner is not None:
                partner.stop()
        if failures:
            self.fail(f"{len(failures)} README example(s) failed:\n\n" + "\n\n".join(failures))
