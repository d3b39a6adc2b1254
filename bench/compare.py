"""
fbtwist against the classic free/busy stack: Apache httpd 2.4 with mod_dav,
mod_dav_fs and mod_authnz_ldap, and against WsgiDAV (a Python WebDAV server
on cheroot), on the same directory and the same files (each peer its own
copy of them: L{writePeerTrees}).

Run it with C{bench/run} (which installs what it needs, then runs
C{python -m bench.compare} from the top of the tree); C{bench/run --help}
lists the knobs.  Everything listens on 127.0.0.1 and lives in a temporary
directory that is removed afterwards (C{--keep} keeps it).
"""

import argparse
import base64
import datetime
import http.client
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, TOP)

from bench.pace import pick, runPaced, summarize  # noqa: E402
from fbtwist.store.changes import mountOf  # noqa: E402
from tests.processes import (  # noqa: E402
    ADMIN_GROUP,
    PEOPLE,
    SUFFIX,
    FbtwistProcess,
    UserDirectory,
    basicAuthorization,
    freePort,
    processTreeRSS,
    request,
    stopProcess,
    userName,
    userPassword,
    usersLDIF,
    waitForPort,
)
from tests.slapd import SlapdServer, hashPassword  # noqa: E402
from tests.slapd import _baseEntry as baseEntry  # noqa: E402

MODULES = "/usr/lib/apache2/modules"
PROPFIND_BODY = (
    '<?xml version="1.0" encoding="utf-8"?>\n<D:propfind xmlns:D="DAV:"><D:prop>'
    "<D:resourcetype/><D:getcontentlength/><D:getlastmodified/></D:prop></D:propfind>"
)


def calendarBody(label: str = "bench") -> bytes:
    """
    What Outlook publishes: two months, a few dozen busy periods.
    """
    lines = [
        "BEGIN:VCALENDAR", "PRODID:-//Microsoft Corporation//Outlook 16.0 MIMEDIR//EN", "VERSION:2.0",
        "METHOD:PUBLISH", "BEGIN:VFREEBUSY", f"ORGANIZER:{label}@example.com", "DTSTAMP:20210103T235558Z",
        "DTSTART:20201227T230000Z", "DTEND:20210228T230000Z",
    ]
    for day in range(1, 29):
        lines.append(f"FREEBUSY:202101{day:02d}T070000Z/202101{day:02d}T073000Z")
        lines.append(f"FREEBUSY:202102{day:02d}T130000Z/PT1H")
    lines += ["END:VFREEBUSY", "END:VCALENDAR"]
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


# --- Apache ------------------------------------------------------------------

APACHE_CONFIG = """\
# Apache httpd configured like a classic free/busy server: WebDAV publishing
# under /pub/calendar with Basic auth against LDAP (search-then-bind, the
# mod_ldap cache on), anonymous read-only lookups under /calendar, on one
# directory.  Written by bench/bench.py.
ServerRoot "{root}"
ServerName 127.0.0.1
PidFile "{root}/httpd.pid"
DefaultRuntimeDir "{root}/run"
Listen 127.0.0.1:{port}
{user}
LoadModule mpm_event_module {modules}/mod_mpm_event.so
LoadModule authn_core_module {modules}/mod_authn_core.so
LoadModule authz_core_module {modules}/mod_authz_core.so
LoadModule authz_user_module {modules}/mod_authz_user.so
LoadModule auth_basic_module {modules}/mod_auth_basic.so
LoadModule ldap_module {modules}/mod_ldap.so
LoadModule authnz_ldap_module {modules}/mod_authnz_ldap.so
LoadModule alias_module {modules}/mod_alias.so
LoadModule mime_module {modules}/mod_mime.so
LoadModule dav_module {modules}/mod_dav.so
LoadModule dav_fs_module {modules}/mod_dav_fs.so

# Debian's mpm_event defaults.
StartServers 2
MinSpareThreads 25
MaxSpareThreads 75
ThreadLimit 64
ThreadsPerChild 25
MaxRequestWorkers 150
MaxConnectionsPerChild 0
KeepAlive On
MaxKeepAliveRequests 100000

ErrorLog "{root}/error.log"
LogLevel warn
LogFormat "%h %l %u %t \\"%r\\" %>s %b" common
CustomLog "{root}/access.log" common
TypesConfig /etc/mime.types
AddType text/calendar .vfb
DavLockDB "{root}/DavLock"

# mod_ldap's caches, on (their defaults, stated).
LDAPSharedCacheSize 500000
LDAPCacheEntries 1024
LDAPCacheTTL 600
LDAPOpCacheEntries 1024
LDAPOpCacheTTL 600

<Directory />
    AllowOverride None
    Require all denied
</Directory>

Alias /pub/calendar "{tree}"
Alias /calendar "{tree}"

<Directory "{tree}">
    Options None
    Require all granted
</Directory>

<Location /calendar>
    <LimitExcept GET HEAD OPTIONS>
        Require all denied
    </LimitExcept>
</Location>

<Location /pub/calendar>
    Dav On
    AuthType Basic
    AuthName "fbtwist free/busy"
    AuthBasicProvider ldap
    AuthLDAPURL "{ldapURL}"
    AuthLDAPGroupAttribute member
    AuthLDAPGroupAttributeIsDN on
    <RequireAll>
        Require valid-user
        <RequireAny>
            # Reading and listing: any user.
            Require method GET HEAD OPTIONS PROPFIND
            # Writing: only one's own file at the top (the request path
            # must be /pub/calendar/<login>.vfb, case-sensitive).
            Require expr "%{{REQUEST_URI}} == '/pub/calendar/%{{REMOTE_USER}}.vfb'"
            # Administrators: anything.
            Require ldap-group {adminGroup}
        </RequireAny>
    </RequireAll>
</Location>
"""


class ApacheProcess:
    """
    Apache httpd (Debian's C{apache2}) with a private ServerRoot, in the
    foreground, on 127.0.0.1.
    """

    def __init__(self, root: str, tree: str, ldapURL: str):
        self.root = root
        self.port = freePort()
        os.makedirs(os.path.join(root, "run"), exist_ok=True)
        user = ""
        if os.getuid() == 0:
            # Root may not serve: the children run as www-data, which
            # must be able to write the tree (mod_dav_fs renames into it).
            user = "User www-data\nGroup www-data"
            shutil.chown(root, "www-data", "www-data")
            shutil.chown(os.path.join(root, "run"), "www-data", "www-data")
        config = APACHE_CONFIG.format(
            root=root, port=self.port, modules=MODULES, tree=tree, ldapURL=ldapURL, user=user,
            adminGroup=ADMIN_GROUP,
        )
        self.configPath = os.path.join(root, "httpd.conf")
        with open(self.configPath, "w") as f:
            f.write(config)
        self.process: Optional[subprocess.Popen] = None

    def start(self) -> "ApacheProcess":
        apache = shutil.which("apache2", path="/usr/sbin:" + os.environ.get("PATH", ""))
        check = subprocess.run([apache, "-t", "-f", self.configPath], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError("Apache refuses the configuration:\n" + check.stderr)
        self.process = subprocess.Popen(
            [apache, "-f", self.configPath, "-DFOREGROUND"], stdin=subprocess.DEVNULL,
            stdout=open(os.path.join(self.root, "stdout.log"), "ab"), stderr=subprocess.STDOUT,
        )
        waitForPort(self.port, 20, self.process)
        return self

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGWINCH)  # graceful-stop
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.terminate()
                try:
                    self.process.wait(10)
                except subprocess.TimeoutExpired:
                    self.process.kill()


# --- WsgiDAV -----------------------------------------------------------------

#: WsgiDAV and its server, pinned; installed from PyPI into a virtualenv of
#: the benchmark's own (fbtwist does not depend on them).
WSGIDAV_REQUIREMENTS = ("wsgidav==4.4.0", "cheroot==11.1.2")
WSGIDAV_THREADS = 32


def wsgidavPython(venv: str) -> str:
    """
    The Python of a virtualenv at C{venv} holding L{WSGIDAV_REQUIREMENTS},
    made (or completed) if needed.
    """
    python = os.path.join(venv, "bin", "python")
    marker = os.path.join(venv, ".bench-requirements")
    wanted = " ".join(WSGIDAV_REQUIREMENTS)
    try:
        with open(marker) as f:
            if f.read() == wanted and os.path.exists(python):
                return python
    except FileNotFoundError:
        pass
    print(f"  installing {wanted} into {venv}", flush=True)
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *WSGIDAV_REQUIREMENTS],
                   check=True)
    with open(marker, "w") as f:
        f.write(wanted)
    return python


class WsgidavProcess:
    """
    WsgiDAV on cheroot (L{WSGIDAV_THREADS} threads) serving C{tree} as
    bench/wsgidavserver.py configures it: anonymous read-only /calendar,
    Basic-auth /pub/calendar for the C{users} generated users, checked
    from memory (WsgiDAV 4 has no LDAP domain controller).
    """

    def __init__(self, root: str, tree: str, users: int, python: str):
        self.root = root
        self.port = freePort()
        self.args = [python, os.path.join(HERE, "wsgidavserver.py"), str(self.port), tree, str(users),
                     str(WSGIDAV_THREADS)]
        self.process: Optional[subprocess.Popen] = None

    def start(self) -> "WsgidavProcess":
        os.makedirs(self.root, exist_ok=True)
        with open(os.path.join(self.root, "wsgidav.log"), "ab") as log:
            self.process = subprocess.Popen(self.args, cwd=self.root, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT)
        waitForPort(self.port, 60, self.process)
        return self

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        stopProcess(self.process)


def fbtwistVersion() -> str:
    """
    The version of the fbtwist the servers run (the source tree this file
    is in, as C{FbtwistProcess} runs it), with its commit when in git.
    """
    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(top, "fbtwist", "__init__.py")) as f:
        found = re.search(r'^__version__ = "([^"]+)"', f.read(), re.M)
    version = found.group(1) if found else "?"
    try:
        commit = subprocess.run(["git", "-C", top, "describe", "--always", "--dirty"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except OSError:
        commit = ""
    return f"{version} (commit {commit})" if commit else version


def versions(wsgidav: Optional[str] = None) -> Dict[str, str]:
    """
    The versions of what is measured: asked while it is installed (WsgiDAV's
    virtualenv may be in the work directory, removed at the end).
    """
    def first(argv, pattern=None):
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            text = (out.stdout + out.stderr).strip().splitlines()
        except OSError:
            return "not installed"
        for line in text:
            if pattern is None or re.search(pattern, line):
                return line.strip()
        return text[0] if text else "?"

    import twisted

    return {
        "fbtwist": fbtwistVersion(),
        "Python": platform.python_version(),
        "Twisted": twisted.__version__,
        "Apache": first(["/usr/sbin/apache2", "-v"], "Server version"),
        "OpenLDAP": first(["/usr/sbin/slapd", "-VV"]),
        "wrk": first(["wrk", "-v"]),
        **({"WsgiDAV": first([wsgidav, "-c", "import wsgidav, cheroot; "
                              "print(f'WsgiDAV {wsgidav.__version__} on cheroot {cheroot.__version__}')"])}
           if wsgidav else {}),
    }


def machine() -> Dict[str, str]:
    with open("/proc/meminfo") as f:
        memory = int(f.readline().split()[1]) // 1024
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cpus": str(os.cpu_count()), "cpu": model, "memory": f"{memory} MB", "kernel": platform.release(),
            "filesystem of the trees": treeFilesystem(tempfile.gettempdir())}


def treeFilesystem(path: str, mountinfo: Optional[str] = None, procfs: str = "/proc/fs") -> str:
    """
    What filesystem C{path} is on (the trees the servers publish into):
    its type, what is mounted and where (L{fbtwist.store.changes.mountOf}),
    and for ext4 whether it has a journal and is mounted with C{discard}.
    Without a journal, ext4 gives a new file no inode freed in the last
    minute (five, while the inode's table block is not written back) as
    long as another is free: it reads each such inode on its way to a free
    one (Linux's C{recently_deleted}, C{fs/ext4/ialloc.c}).  Every server
    that publishes by creating a file and renaming it over the old one
    (fbtwist, Apache's C{mod_dav_fs}) then pays more CPU a publish the
    more files were replaced or removed shortly before, the bench's own
    trees included.

    @param mountinfo: The mount table's text (for tests; by default this
        process's).
    @param procfs: Where the kernel tells about ext4 and its journals (for
        tests).
    """
    mount = mountOf(path, mountinfo)
    if mount is None:
        return "?"
    text = f"{mount.kind} ({mount.source} on {mount.point})"
    if mount.kind == "ext4":
        device = os.path.basename(mount.source)
        try:
            journal = any(name.startswith(device + "-") for name in os.listdir(os.path.join(procfs, "jbd2")))
        except OSError:
            journal = False
        try:
            with open(os.path.join(procfs, "ext4", device, "options")) as f:
                discard = "discard" in f.read().split()
        except OSError:
            discard = False
        text += (", with a journal" if journal else
                 ", **without a journal** (a new file gets no inode freed in the last minute while another "
                 "is free: each publish's CPU grows with the files replaced or removed shortly before)")
        text += ", mounted with `discard`" if discard else ""
    return text


# --- wrk ---------------------------------------------------------------------

LUA_BASE64 = r"""
local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local function at(k) return alphabet:sub(k + 1, k + 1) end
    out[#out + 1] = at(math.floor(n / 262144) % 64) .. at(math.floor(n / 4096) % 64)
      .. (b and at(math.floor(n / 64) % 64) or "=") .. (c and at(n % 64) or "=")
  end
  return table.concat(out)
end
"""

LUA_THREADS = r"""
local threadCount = 0
function setup(thread)
  thread:set("threadIndex", threadCount)
  threadCount = threadCount + 1
end
local counter = 0
local function nextUser()
  local user = (FIRST + threadIndex + counter * THREADS) % USERS
  counter = counter + 1
  return string.format("user%06d", user), string.format("pw-%06d", user)
end
"""


def luaScript(kind: str, users: int, threads: int, body: bytes = b"", folder: str = "/", first: int = 0) -> str:
    """
    A wrk script: C{lookup} (anonymous GET, round-robin over the users from
    the C{first}th on), C{publish} (PUT as each user in turn) or
    C{propfind} (Depth 1 on C{folder}).
    """
    header = (f'USERS = {users}\nTHREADS = {threads}\nFIRST = {first}\nFOLDER = "{folder}"\n'
              + LUA_BASE64 + LUA_THREADS)
    if kind == "lookup":
        return header + """
function request()
  local uid = nextUser()
  return wrk.format("GET", "/calendar/" .. uid .. ".vfb")
end
"""
    if kind == "publish":
        return header + "BODY = [==[" + body.decode("ascii") + "]==]\n" + """
function request()
  local uid, password = nextUser()
  return wrk.format("PUT", "/pub/calendar/" .. uid .. ".vfb", {
    ["Authorization"] = "Basic " .. base64(uid .. ":" .. password),
    ["Content-Type"] = "text/calendar",
  }, BODY)
end
"""
    if kind == "propfind":
        return header + f"BODY = [==[{PROPFIND_BODY}]==]\n" + """
function request()
  return wrk.format("PROPFIND", FOLDER, {
    ["Authorization"] = "Basic " .. base64("user000000:pw-000000"),
    ["Depth"] = "1",
    ["Content-Type"] = "application/xml; charset=utf-8",
  }, BODY)
end
"""
    raise ValueError(kind)


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _milliseconds(text: str) -> float:
    match = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    return float(match.group(1)) * _UNITS[match.group(2)]


def parseWrk(output: str) -> dict:
    result = {"rps": 0.0, "p50": float("nan"), "p99": float("nan"), "errors": 0, "requests": 0}
    for line in output.splitlines():
        line = line.strip()
        if line.startswith("Requests/sec:"):
            result["rps"] = float(line.split()[1])
        elif re.match(r"^(50|99)(\.0+)?%\s", line):
            percent, value = line.split()[:2]
            result["p" + percent.split(".")[0].rstrip("%")] = _milliseconds(value)
        elif line.startswith("Non-2xx or 3xx responses:"):
            result["errors"] += int(line.split(":")[1])
        elif line.startswith("Socket errors:"):
            result["errors"] += sum(int(n) for n in re.findall(r"\d+", line.split(":", 1)[1]))
        elif re.match(r"^\d+ requests in", line):
            result["requests"] = int(line.split()[0])
    return result


class PeakRSS:
    """
    Polls the resident memory of a process tree (a server and its
    children) while a workload runs.
    """

    def __init__(self, pid: int, interval: float = 0.1):
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, processTreeRSS(self.pid))
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, processTreeRSS(self.pid))


def runWrk(port: int, script: str, workdir: str, duration: float, threads: int, connections: int,
           pid: int, timeout: str = "10s") -> dict:
    scriptPath = os.path.join(workdir, f"wrk-{abs(hash(script))}.lua")
    with open(scriptPath, "w") as f:
        f.write(script)
    argv = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration:g}s", "--latency",
            "--timeout", timeout, "-s", scriptPath, f"http://127.0.0.1:{port}/"]
    settle()
    cpu = processTreeCPU(pid)
    with PeakRSS(pid) as rss:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=duration * 3 + 120)
    cpu = processTreeCPU(pid) - cpu
    result = parseWrk(out.stdout)
    result["rss"] = rss.peak
    # The server's CPU time per request: unlike the rate, it does not
    # depend on what else the machine runs.
    result["cpu"] = cpu / max(1, result["requests"]) * 1000
    if out.returncode != 0:
        result["errors"] += 1
        result["note"] = out.stderr.strip()[:200]
    return result


# --- The run -----------------------------------------------------------------


class Results:
    def __init__(self):
        self.rows: List[dict] = []
        self.notes: List[str] = []
        #: (users, server) -> what fbtwist logged loading its name index and
        #: its resident memory once loaded, before any load.
        self.startup: Dict[tuple, dict] = {}
        #: The million-user run's set-up times and one-off measurements.
        self.million: Dict[str, object] = {}
        #: users -> the pass asking once for every user before the lookups
        #: (L{lookEveryoneUpOnce}).
        self.warmed: Dict[tuple, dict] = {}
        #: What was measured, which versions (L{versions}), once all is
        #: installed.
        self.versions: Dict[str, str] = {}

    def add(self, users, workload, server, result: dict):
        row = dict(users=users, workload=workload, server=server, **result)
        self.rows.append(row)
        print(
            f"  {workload:<26} {server:<16} {row['rps']:9.1f} req/s  p50 {row['p50']:8.2f} ms  "
            f"p99 {row['p99']:8.2f} ms  RSS {row['rss'] / 2**20:7.1f} MB  errors {row['errors']}"
            + (f"  ({row['note']})" if row.get("note") else ""),
            flush=True,
        )


def median(rounds: List[dict]) -> dict:
    """
    The round with the median throughput, with the peak RSS of all rounds.
    """
    ordered = sorted(rounds, key=lambda r: r["rps"])
    chosen = dict(ordered[len(ordered) // 2])
    chosen["rss"] = max(r["rss"] for r in rounds)
    chosen["errors"] = sum(r["errors"] for r in rounds)
    chosen["rounds"] = len(rounds)
    return chosen


def writeFiles(folder: str, names, body: bytes) -> None:
    """
    Write C{body} under each name, with the ETag attribute fbtwist's store
    would have set (without the fsync of each: this is set-up).
    """
    # The one place the benchmark uses fbtwist's internals.
    from fbtwist.store.files import _setEtagAttribute, etagForContent

    os.makedirs(folder, exist_ok=True)
    etag = etagForContent(body)
    for name in names:
        path = os.path.join(folder, name)
        with open(path, "wb") as f:
            f.write(body)
        _setEtagAttribute(path, etag)


#: ext4 allows 65,000 links to one inode.
LINKS_PER_INODE = 60000


def linkFiles(folder: str, names, body: bytes) -> int:
    """
    Like L{writeFiles}, for a million names in minutes and a few MB of
    disk: one file written (with its ETag attribute) per L{LINKS_PER_INODE}
    names, the others hard links to it.  Servers read the same bytes (a
    publish replaces a link with a file of its own).

    @return: the number of names.
    """
    count = 0
    source = None
    for name in names:
        if count % LINKS_PER_INODE == 0:
            writeFiles(folder, [name], body)
            source = os.path.join(folder, name)
        else:
            os.link(source, os.path.join(folder, name))
        count += 1
    return count


def writeTree(tree: str, users: int, body: bytes) -> None:
    writeFiles(tree, (userName(i) + ".vfb" for i in range(users)), body)


def writePeerTrees(args, base: str, users: int, body: bytes) -> Dict[str, str]:
    """
    For Apache and WsgiDAV each, a tree of its own holding the same files
    as fbtwist's (L{writeTree}, L{writeFindFiles}), by the peer's name.

    Each server publishes over files it wrote itself, as it would serve
    them alone: on one shared tree, a publish replaces a file another
    server wrote, and pays for what that server left with it (fbtwist's
    kept answers are an extended attribute of a block of its own, freed
    with the old file), and the servers' publishing in turn slowed each
    other down (Apache published some 40 % slower in turn with fbtwist
    than alone).
    """
    trees = {}
    names = ([] if args.no_apache else ["apache"]) + (["wsgidav"] if args.wsgidav_python else [])
    for name in names:
        trees[name] = os.path.join(base, f"tree-{name}")
        writeTree(trees[name], users, body)
        writeFindFiles(trees[name])
        chownTree(trees[name])
    return trees


# --- Finding a time, CalDAV free/busy, other organisations -------------------

#: Attributes for rooms' seats and equipment (OpenLDAP's schema has none).
ROOM_SCHEMA = """\
attributetype ( 1.3.6.1.4.1.99999.7.1 NAME 'benchRoomSeats'
    EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.99999.7.2 NAME 'benchRoomEquipment'
    EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
objectclass ( 1.3.6.1.4.1.99999.7.3 NAME 'benchRoom' AUXILIARY
    MAY ( benchRoomSeats $ benchRoomEquipment $ uid $ mail ) )
"""
ROOMS = "ou=rooms," + SUFFIX
#: The find row's people: users from the middle of the directory.
FIND_PEOPLE = [userName(20 + i) for i in range(20)]
FIND_ROOMS = [f"room{i:02d}" for i in range(15)]
#: fbtwist's options for the rooms of L{RoomDirectory}.
ROOM_OPTIONS = ["--room-base", ROOMS, "--room-capacity-attribute", "benchRoomSeats",
                "--room-equipment-attribute", "benchRoomEquipment"]
#: The domain the (g) rows' other organisation answers for.
PARTNER = "partner.example"


class RoomDirectory(UserDirectory):
    """
    L{UserDirectory} and 15 rooms (4 to 18 seats, every other one with a
    projector) below C{ou=rooms}.
    """

    def __init__(self, basedir: str, count: int):
        super().__init__(basedir, count)
        self.schema = ROOM_SCHEMA
        rooms = [f"dn: {ROOMS}\nobjectClass: organizationalUnit\nou: rooms\n"]
        for number, uid in enumerate(FIND_ROOMS):
            rooms.append(f"dn: uid={uid},{ROOMS}\nobjectClass: room\nobjectClass: benchRoom\ncn: Room {number}\n"
                         f"uid: {uid}\nbenchRoomSeats: {4 + number}\n"
                         f"benchRoomEquipment: {'projector' if number % 2 else 'whiteboard'}\n")
        self.ldif += "\n" + "\n".join(rooms)


def writeFindFiles(tree: str) -> None:
    """
    The find row's people (six meetings a day for two weeks, three of them
    with working hours of their own in other zones) and rooms (eight
    bookings a day), as bench/find.py makes them.
    """
    from bench import find

    for uid in FIND_PEOPLE:
        writeFiles(tree, [uid + ".vfb"], find.freeBusy(6))
    for uid, zone in zip(FIND_PEOPLE[:3], ("America/New_York", "Asia/Tokyo", "Europe/London")):
        writeFiles(tree, [uid + ".avail.ics"], find.availability(zone))
    for uid in FIND_ROOMS:
        writeFiles(tree, [uid + ".vfb"], find.freeBusy(8))


FIND_PATH = ("/calendar/find?who=" + ",".join(FIND_PEOPLE) + "&duration=PT1H&start=20260323T000000Z"
             "&end=20260406T000000Z&workhours=1&rooms=1&capacity=6&equipment=projector&quorum=10&limit=10")


def outboxBody(attendees: List[int]) -> bytes:
    """
    What Apple Calendar posts to user000000's outbox to see the free/busy
    of C{attendees} (user indexes) for a week.
    """
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//bench//EN", "METHOD:REQUEST", "BEGIN:VFREEBUSY",
             "UID:bench", "DTSTAMP:20261206T000000Z", "DTSTART:20210104T000000Z", "DTEND:20210111T000000Z",
             f"ORGANIZER:mailto:{userName(0)}@example.com"]
    lines += [f"ATTENDEE:mailto:{userName(index)}@example.com" for index in attendees]
    lines += ["END:VFREEBUSY", "END:VCALENDAR", ""]
    return "\r\n".join(lines).encode("ascii")


def processTreeCPU(pid: int) -> float:
    """
    The CPU time (user and system, seconds) C{pid} and its descendants
    have used so far.
    """
    ticks = 0
    for current in [pid] + _descendants(pid):
        try:
            with open(f"/proc/{current}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def _machineBusySeconds() -> float:
    """
    The CPU time (seconds, all cores) the machine has spent on anything but
    idling and waiting for I/O since it started (C{/proc/stat}).
    """
    with open("/proc/stat") as f:
        fields = [int(value) for value in f.readline().split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


#: What L{settle} counts as a quiet machine: this share of one core busy.
QUIET = 0.15


def settle(timeout: float = 30.0) -> float:
    """
    Before a measured run: what the servers wrote without syncing written
    out (C{sync}), and the machine quiet (less than L{QUIET} of a core busy
    over half a second), or C{timeout} seconds gone.  Otherwise a server
    measured right after another pays for it: the kernel writing back the
    files Apache and WsgiDAV published without an fsync some seconds
    before, WsgiDAV still answering requests queued when its run ended.

    @return: The share of a core the machine was busy with last.
    """
    os.sync()
    deadline = time.monotonic() + timeout
    while True:
        before = _machineBusySeconds()
        time.sleep(0.5)
        busy = (_machineBusySeconds() - before) / 0.5
        if busy < QUIET or time.monotonic() > deadline:
            return busy


def paced(results: Results, users: int, name: str, serverName: str, server, rate: float, makeRequest,
          duration: float) -> None:
    """
    C{makeRequest}'s requests at C{rate} for C{duration} seconds; the row
    notes the server's CPU time per request, which, unlike the latency,
    does not depend on what else the machine runs.
    """
    settle()
    cpu = processTreeCPU(server.pid)
    with PeakRSS(server.pid) as rss:
        raw, elapsed = runPaced(server.port, {name: (rate, makeRequest)}, duration)
    cpu = processTreeCPU(server.pid) - cpu
    summary = summarize(raw, elapsed)
    summary["rss"] = rss.peak
    summary["cpu"] = cpu / max(1, len(raw)) * 1000
    summary["note"] = "; ".join(filter(None, [summary.get("note"), f"server CPU {summary['cpu']:.1f} ms a request"]))
    results.add(users, name, serverName, summary)


def scheduling(args, results: Results, users: int, servers) -> None:
    """
    (e) CalDAV outbox POSTs for 20 attendees and (f) finding a time for 20
    people and 15 rooms, each at a constant rate (open loop, as the mixed
    load): the targets are how long one answer takes on a server that
    keeps up, not how many a closed loop can queue.
    """
    authorization = basicAuthorization(userName(0), userPassword(0))

    def outboxRequest(index, choose=pick(users, 13)):
        body = outboxBody([choose(index * 20 + k) for k in range(20)])
        return (f"POST /caldav/calendars/{userName(0)}/outbox/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: {authorization}\r\nContent-Type: text/calendar\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    def findRequest(index):
        return f"GET {FIND_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()

    for serverName, server in servers.items():
        if not serverName.startswith("fbtwist"):
            continue
        if "e" in args.workloads:
            status, answer = request(server.port, "POST", f"/caldav/calendars/{userName(0)}/outbox/",
                                     outboxBody(range(1, 21)), {"Authorization": authorization,
                                                                "Content-Type": "text/calendar"}, timeout=60)
            if status != 200 or answer.count(b"2.0;Success") != 20:
                results.notes.append(f"- {serverName} answered {status} to an outbox POST with {users} users: "
                                     f"{answer[:200]!r}")
            paced(results, users, f"(e) CalDAV outbox POST, 20 attendees, {args.outbox_rate:g}/s", serverName,
                  server, args.outbox_rate, outboxRequest, args.paced_duration)
        if "f" in args.workloads:
            status, answer = request(server.port, "GET", FIND_PATH, timeout=60)
            if status != 200 or b'"start"' not in answer:
                results.notes.append(f"- {serverName} answered {status} to find with {users} users: {answer[:200]!r}")
            paced(results, users, f"(f) find, 20 people + 15 rooms, 2 weeks, {args.find_rate:g}/s", serverName,
                  server, args.find_rate, findRequest, args.paced_duration)


def federation(args, results: Results, workdir: str, users: int, servers) -> None:
    """
    (g) lookups of other organisations' addresses once their answers are
    cached, against lookups of our own addresses: the same number of names
    (each asked for before, in a round not counted, so that the cache of
    every worker holds them), the same form of URL, the same closed loop.
    """
    names = min(users, args.federated_names)
    local = luaNames([f"{userName(i)}@example.com" for i in range(names)], args.threads)
    remote = luaNames([f"{userName(i)}@{PARTNER}" for i in range(names)], args.threads)
    for serverName, server in servers.items():
        if not serverName.startswith("fbtwist"):
            continue
        for index in range(names):
            for domain in ("example.com", PARTNER):
                request(server.port, "GET", f"/calendar/{userName(index)}@{domain}.vfb", timeout=30)
        # Each worker of --workers keeps its own cache: one round not
        # counted has every worker ask for every name.
        for script in (local, remote):
            runWrk(server.port, script, workdir, args.duration, args.threads, args.connections, server.pid)
        rounds = {"local": [], "federated": []}
        for round in range(args.rounds):
            for kind, script in (("local", local), ("federated", remote)):
                rounds[kind].append(runWrk(server.port, script, workdir, args.duration, args.threads,
                                           args.connections, server.pid))
        for kind in ("local", "federated"):
            row = median(rounds[kind])
            row["cpu"] = sorted(r["cpu"] for r in rounds[kind])[len(rounds[kind]) // 2]
            row["note"] = f"server CPU {row['cpu'] * 1000:.0f} µs a request"
            results.add(users, f"(g) lookup GET, {names} {kind} addresses"
                        + (" (cached)" if kind == "federated" else ""), serverName, row)


def luaNames(names: List[str], threads: int) -> str:
    """
    A wrk script asking for C{/calendar/<name>.vfb} round-robin over
    C{names}.
    """
    listed = ",".join(f'"{name}"' for name in names)
    return f"""NAMES = {{{listed}}}
THREADS = {threads}
local threadCount = 0
function setup(thread)
  thread:set("threadIndex", threadCount)
  threadCount = threadCount + 1
end
local counter = 0
function request()
  local name = NAMES[(threadIndex + counter * THREADS) % #NAMES + 1]
  counter = counter + 1
  return wrk.format("GET", "/calendar/" .. name .. ".vfb")
end
"""


def writeFolder(folder: str, count: int) -> None:
    writeFiles(folder, (f"file{i:06d}.vfb" for i in range(count)), calendarBody("folder"))


def chownTree(top: str) -> None:
    if os.getuid() != 0:
        return
    for dirpath, dirnames, filenames in os.walk(top):
        shutil.chown(dirpath, "www-data", "www-data")


def startServers(args, workdir: str, tree: str, directory: UserDirectory, extra=(), peers=True,
                 results: Optional["Results"] = None, indexTimeout: float = 300.0,
                 peerTrees: Optional[Dict[str, str]] = None):
    """
    The fbtwist variants and (with C{peers}) Apache and WsgiDAV on C{tree},
    each ready and warmed up.  With C{results}, what each fbtwist logged
    loading its name index and its memory once loaded go to its startup.

    @param peerTrees: A tree of its own for a peer (by its name), holding
        the same files: see L{writePeerTrees}.
    """
    peerTrees = peerTrees or {}
    servers = {}
    try:
        for workers in args.fbtwist_workers:
            name = "fbtwist" if workers == 0 else f"fbtwist x{workers}"
            extraArgs = list(extra) + (["--workers", str(workers)] if workers else [])
            if "--name-index-dir" not in extraArgs:
                # Each variant its own, new: a cold start (no index file kept
                # by an earlier run, none shared with the other variant).
                extraArgs += ["--name-index-dir", os.path.join(workdir, f"names-{workers}")]
            servers[name] = FbtwistProcess(
                tree, directory.searchURL, extraArgs=extraArgs,
                logPath=os.path.join(workdir, f"fbtwist-{workers}.log"),
            ).start()
            # One after another: each variant's cold start is measured on its
            # own, not while the other builds its index against the same
            # directory on the same cores.
            waitForIndex(servers[name], workers, directory, results, indexTimeout)
        if peers and not args.no_apache:
            apacheRoot = os.path.join(workdir, "apache")
            os.makedirs(apacheRoot, exist_ok=True)
            servers["apache"] = ApacheProcess(apacheRoot, peerTrees.get("apache", tree), directory.searchURL).start()
        if peers and args.wsgidav_python:
            servers["wsgidav"] = WsgidavProcess(os.path.join(workdir, "wsgidav"), peerTrees.get("wsgidav", tree),
                                                directory.count, args.wsgidav_python).start()
        # Warm up: the first request of each pays for imports and connections.
        for server in servers.values():
            for _ in range(3):
                try:
                    request(server.port, "GET", f"/calendar/{userName(0)}.vfb", timeout=30)
                except OSError:
                    pass
    except BaseException:
        stopServers(servers)
        raise
    return servers


def waitForIndex(server, workers: int, directory, results: Optional["Results"], timeout: float) -> None:
    """
    Wait until C{server} (a fbtwist variant with C{workers} workers) has
    loaded its directory name index (one process, or the master of
    --workers, whose workers then map the file it wrote): a server runs for
    days, and is measured once it has.  With C{results}, what it logged
    loading the index and its memory once loaded go to its startup.
    """
    name = "fbtwist" if workers == 0 else f"fbtwist x{workers}"
    waitForLogLines(server.logPath, "name index loaded", 1, timeout)
    if workers:
        waitForLogLines(server.logPath, "name index mapped", workers, timeout)
    if results is not None:
        loads = nameIndexLoads(server.logPath)
        results.startup[(directory.count, name)] = dict(
            indexSeconds=max((load["seconds"] for load in loads), default=float("nan")),
            names=max((load["names"] for load in loads), default=0),
            loads=len(loads), rss=processTreeRSS(server.pid), pss=processTreePSS(server.pid),
        )


def processTreePSS(pid: int) -> int:
    """
    The proportional memory (PSS), in bytes, of C{pid} and its descendants:
    pages several of them share (the mapped name index) counted once in
    all, where their RSS counts them once per process.
    """
    total = 0
    for current in [pid] + _descendants(pid):
        try:
            with open(f"/proc/{current}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def _descendants(pid: int) -> List[int]:
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as f:
                    children = [int(child) for child in f.read().split()]
                found += children
                pending += children
        except OSError:
            continue
    return found


def waitForLogLines(path: str, text: str, count: int, timeout: float = 300.0) -> None:
    """
    Wait until C{text} appears C{count} times in the log at C{path}.
    """
    deadline = time.monotonic() + timeout
    while True:
        with open(path, errors="replace") as f:
            if f.read().count(text) >= count:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path}: no {count} x {text!r} after {timeout:.0f} s")
        time.sleep(0.2)


_INDEX_LOADED = re.compile(r"name index loaded from .*?: (\d+) entries, (\d+) names in ([\d.]+)s")


def nameIndexLoads(logPath: str) -> List[dict]:
    """
    Each "name index loaded ... in Xs" line of an fbtwist log (one per
    worker process).
    """
    with open(logPath, errors="replace") as f:
        return [dict(entries=int(m.group(1)), names=int(m.group(2)), seconds=float(m.group(3)))
                for m in _INDEX_LOADED.finditer(f.read())]


def stopServers(servers) -> None:
    for server in servers.values():
        server.stop()


def checkPublish(port: int, body: bytes) -> int:
    status, _ = request(port, "PUT", f"/pub/calendar/{userName(1)}.vfb", body,
                        {"Authorization": basicAuthorization(userName(1), userPassword(1)),
                         "Content-Type": "text/calendar"}, timeout=30)
    return status


def lookEveryoneUp(port: int, users: int, connections: int = 32, passes: int = 1) -> dict:
    """
    Ask once for every user's file (C{passes} times: all of them in turn,
    then again), on C{connections} kept-alive connections (one request at a
    time on each, as calendar clients ask): a server in use has been asked
    for its users before, and fbtwist keeps each answer it rendered with
    the file (C{--keep-answers}), as it would have after any earlier lookup
    of that version.

    @return: how many requests were answered 200, and the seconds it took.
    """
    import selectors
    import socket

    began = time.monotonic()
    pending = (index % users for index in range(users * passes))
    answered = 0
    selector = selectors.DefaultSelector()

    def open_(index: int) -> None:
        # A connection asking for user C{index}'s file.  Its state: what it
        # read, and the user it asked for (asked again on a new connection
        # when the server closes it before any byte of the answer: a server
        # may close a kept-alive connection, as WsgiDAV's cheroot does).
        connection = socket.create_connection(("127.0.0.1", port), timeout=120)
        selector.register(connection, selectors.EVENT_READ, [b"", index])
        ask(connection, index)

    def ask(connection, index: int) -> None:
        connection.sendall(b"GET /calendar/%s.vfb HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % userName(index).encode())

    def close(connection) -> None:
        selector.unregister(connection)
        connection.close()

    for _ in range(connections):
        index = next(pending, None)
        if index is not None:
            open_(index)
    reopened = 0
    while selector.get_map():
        for key, _ in selector.select(timeout=120):
            connection, state = key.fileobj, key.data
            try:
                data = connection.recv(1 << 16)
            except ConnectionResetError:
                data = b""
            if not data:
                if state[0] or reopened >= users * passes:
                    raise OSError("the server closed a connection in the middle of an answer")
                reopened += 1
                close(connection)
                open_(state[1])
                continue
            state[0] += data
            head, separator, rest = state[0].partition(b"\r\n\r\n")
            if not separator:
                continue
            length = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", head).group(1))
            if len(rest) < length:
                continue
            answered += head.startswith(b"HTTP/1.1 200 ")
            state[0] = rest[length:]
            index = next(pending, None)
            if index is None:
                close(connection)
            elif re.search(rb"(?i)\r\nconnection: *close", head):
                close(connection)
                open_(index)
            else:
                state[1] = index
                try:
                    ask(connection, index)
                except OSError:
                    close(connection)
                    open_(index)
    return dict(answered=answered, seconds=time.monotonic() - began, reopened=reopened)


def lookEveryoneUpOnce(results: "Results", users: int, servers) -> None:
    """
    L{lookEveryoneUp}, through the fbtwist variant with the most workers:
    the answers are kept with the files, which every variant serves.
    """
    variants = [name for name in servers if name.startswith("fbtwist")]
    if not variants:
        return
    name = max(variants, key=lambda n: (len(n), n))
    walked = lookEveryoneUp(servers[name].port, users)
    print(f"  every one of {users:,} users looked up once by {name} in {walked['seconds']:.1f} s "
          f"({walked['answered']:,} answered)", flush=True)
    results.warmed[users] = dict(walked, server=name)


def warmPasses(serverName: str) -> int:
    """
    How many passes over all the users the lookups of L{warmLookups} make
    for C{serverName}: one for fbtwist, or for C{fbtwist xW} (C{--workers
    W}) enough that each worker has been asked for 95% of the users (the
    kernel spreads the connections over the workers, so a pass asks each
    worker for about 1/W of them): 5 for two workers.  None for the peers,
    which hold no answers in memory (their files, just written, are in the
    page cache): WsgiDAV's cheroot closes the kept-alive connections past
    ten idle ones, and a pass on 32 connections then waits on its listen
    queue of five.
    """
    if not serverName.startswith("fbtwist"):
        return 0
    workers = int(serverName.rpartition(" x")[2]) if serverName.startswith("fbtwist x") else 1
    return 1 if workers <= 1 else math.ceil(math.log(0.05) / math.log(1 - 1 / workers))


def warmLookups(args, workdir: str, users: int, serverName: str, server) -> int:
    """
    L{warmPasses} passes of lookups over all the users (L{lookEveryoneUp}),
    and at least a round's time of lookups (as at 100,000 users before),
    not counted.

    @return: Where the counted rounds go on (the lookups asked, modulo the
        users).
    """
    passes = warmPasses(serverName)
    began = time.monotonic()
    walked = lookEveryoneUp(server.port, users, passes=passes) if passes else None
    first = 0
    if time.monotonic() - began < args.duration:
        first = runWrk(server.port, luaScript("lookup", users, args.threads), workdir, args.duration, args.threads,
                       args.connections, server.pid)["requests"]
    done = "a round's time of lookups" if walked is None else (
        f"{passes} pass{'es' if passes > 1 else ''} over the {users:,} users ({walked['answered']:,} answered)")
    print(f"  warm-up, {serverName}: {done} in {time.monotonic() - began:.0f} s", flush=True)
    return first


def closedLoop(args, results: Results, workdir, users, servers, body):
    if "a" in args.workloads:
        lookEveryoneUpOnce(results, users, servers)
    for workload in [w for letter, w in (("a", "lookup"), ("b", "publish")) if letter in args.workloads]:
        name = {"lookup": "(a) lookup GET", "publish": "(b) publish PUT"}[workload]
        rounds = {server: [] for server in servers}
        # Where each server's next round of lookups starts: the rounds go on
        # round-robin over all the users (each asked once in turn), rather
        # than each asking the first users again.
        first = {server: 0 for server in servers}

        def measure(serverName, server, workload=workload, first=first, rounds=rounds):
            script = (luaScript(workload, users, args.threads, first=first[serverName] % users)
                      if workload == "lookup" else luaScript(workload, users, args.threads, body))
            result = runWrk(server.port, script, workdir, args.duration, args.threads, args.connections, server.pid)
            first[serverName] += result["requests"]
            rounds[serverName].append(result)

        if workload == "lookup":
            # As a server in use, asked all the time: each fbtwist process
            # has been asked for every user and remembers the answers
            # (--answer-memory; each worker of --workers its own): passes
            # over all the users, not counted (warmLookups), right before
            # that server's rounds.  (Rounds of servers in turn would leave
            # each idle for minutes at a million users, its memory gone
            # cold: on this virtual machine, lookups of a process idle for
            # five minutes took 62-78 µs of CPU instead of 41.)
            for serverName, server in servers.items():
                first[serverName] = warmLookups(args, workdir, users, serverName, server)
                for round in range(args.rounds):
                    measure(serverName, server)
        else:
            for round in range(args.rounds):
                for serverName, server in servers.items():
                    measure(serverName, server)
        for serverName in servers:
            row = median(rounds[serverName])
            # The server's CPU per request (the median round's), as the
            # paced rows note it: a target of its own for publishes.
            row["cpu"] = sorted(r["cpu"] for r in rounds[serverName])[len(rounds[serverName]) // 2]
            row["note"] = "; ".join(filter(None, [row.get("note"), f"server CPU {row['cpu'] * 1000:.0f} µs a request"]))
            results.add(users, name, serverName, row)


def mixed(args, results: Results, users, servers, body):
    publishRate = users / 900.0
    lookupRate = publishRate * 10
    authorization = {}

    def publishRequest(index, choose=pick(users, 7)):
        uid = choose(index)
        if uid not in authorization:
            authorization[uid] = base64.b64encode(f"{userName(uid)}:{userPassword(uid)}".encode()).decode()
        return (
            f"PUT /pub/calendar/{userName(uid)}.vfb HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Basic {authorization[uid]}\r\nContent-Type: text/calendar\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    def lookupRequest(index, choose=pick(users, 11)):
        return f"GET /calendar/{userName(choose(index))}.vfb HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()

    name = f"(d) mixed {publishRate:.1f} PUT/s + {lookupRate:.0f} GET/s"
    for serverName, server in servers.items():
        settle()
        with PeakRSS(server.pid) as rss:
            raw, elapsed = runPaced(server.port, {"publish": (publishRate, publishRequest),
                                                  "lookup": (lookupRate, lookupRequest)}, args.mixed_duration)
        summary = summarize(raw, elapsed)
        summary["rss"] = rss.peak
        results.add(users, name, serverName, summary)


def propfind(args, results: Results, workdir: str, body: bytes):
    """
    PROPFIND Depth 1 on folders of 10,000 and 100,000 files, in a tree of
    its own (the folders hold files nobody publishes).
    """
    tree = os.path.join(workdir, "propfind-tree")
    directory = UserDirectory(os.path.join(workdir, "propfind-ldap"), 10)
    directory.start()
    try:
        for size in args.propfind:
            print(f"  writing a folder of {size} files", flush=True)
            writeFolder(os.path.join(tree, f"folder{size}"), size)
        chownTree(tree)
        servers = startServers(args, workdir, tree, directory, extra=["--admin-group", ADMIN_GROUP])
        try:
            for size in args.propfind:
                folder = f"/pub/calendar/folder{size}/"
                name = f"(c) PROPFIND Depth 1, {size} files"
                script = luaScript("propfind", 10, 1, folder=folder)
                for serverName, server in servers.items():
                    with PeakRSS(server.pid) as rss:
                        began = time.monotonic()
                        status, answer = request(
                            server.port, "PROPFIND", folder, PROPFIND_BODY.encode(),
                            {"Depth": "1", "Authorization": basicAuthorization(userName(0), userPassword(0)),
                             "Content-Type": "application/xml"}, timeout=600,
                        )
                        took = time.monotonic() - began
                    if status == 207 and took > args.propfind_duration / 3:
                        # Too slow for wrk to finish a few in its run: this
                        # one request is the measurement.
                        results.add(size, name, serverName, dict(
                            rps=1 / took, p50=took * 1000, p99=took * 1000, rss=rss.peak, errors=0,
                            note=f"{len(answer) / 2**20:.1f} MB answer, one request"))
                        continue
                    if status != 207:
                        note = "not supported yet" if status in (405, 501) else f"answered {status}"
                        results.add(size, name, serverName, dict(rps=float("nan"), p50=float("nan"),
                                                                 p99=float("nan"), rss=0, errors=0, note=note))
                        continue
                    rounds = [runWrk(server.port, script, workdir, args.propfind_duration, 1, 1, server.pid,
                                     timeout="120s") for _ in range(args.rounds)]
                    chosen = median(rounds)
                    chosen["note"] = f"{len(answer) / 2**20:.1f} MB answer"
                    results.add(size, name, serverName, chosen)
        finally:
            stopServers(servers)
    finally:
        directory.stop()


# --- A million users ---------------------------------------------------------


class StreamedUserDirectory(UserDirectory):
    """
    L{UserDirectory} for a million users: the LDIF goes to disk as it is
    generated (never whole in memory) and C{slapadd -q} loads it; how long
    each step took is in C{timings}.
    """

    #: The version of the generated directory: a cached database of another
    #: version (or user count) is made again.
    VERSION = 1

    def __init__(self, basedir: str, count: int, cache: Optional[str] = None):
        # Not UserDirectory.__init__: it builds the whole LDIF in memory.
        SlapdServer.__init__(self, basedir, "", tls=False, suffix=SUFFIX, startTimeout=3600.0)
        self.count = count
        self.timings: Dict[str, float] = {}
        #: Where the database is kept between runs (C{None}: made for this
        #: run only, in C{basedir}).
        self.cache = cache

    def _prepare(self, installed):
        # Replaces tests/slapd.py's loader, which writes self.ldif whole.
        if self.cache is None:
            databaseDir = os.path.join(self.basedir, "db")
        else:
            databaseDir = os.path.join(self.cache, f"users{self.count}")
        os.makedirs(self.basedir, exist_ok=True)
        with open(self._configPath, "w") as f:
            f.write(self._config(installed, databaseDir))
        stamp = os.path.join(databaseDir, "made-by-bench")
        made = f"{self.VERSION} {self.count}\n"
        try:
            with open(stamp) as f:
                if f.read() == made:
                    self.timings.update(ldif=0.0, ldifBytes=0, slapadd=0.0, cached=True)
                    return
        except OSError:
            pass
        shutil.rmtree(databaseDir, ignore_errors=True)
        os.makedirs(databaseDir)
        ldifPath = os.path.join(self.basedir, "data.ldif")
        began = time.monotonic()
        with open(ldifPath, "w") as f:
            f.write(baseEntry(SUFFIX) + "\n" + usersLDIF(0) + "\n")
            for index in range(self.count):
                uid = userName(index)
                f.write(f"dn: uid={uid},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: User {index}\n"
                        f"sn: {index}\nmail: {uid}@example.com\n"
                        f"userPassword: {hashPassword(userPassword(index))}\n\n")
        self.timings["ldif"] = time.monotonic() - began
        self.timings["ldifBytes"] = os.path.getsize(ldifPath)
        began = time.monotonic()
        self._run([installed["slapadd"], "-q", "-f", self._configPath, "-l", ldifPath])
        self.timings["slapadd"] = time.monotonic() - began
        os.unlink(ldifPath)
        with open(stamp, "w") as f:
            f.write(made)


def firstLogins(port: int, indexes: List[int], body: bytes, connections: int = 32) -> dict:
    """
    Each user of C{indexes} publishes once, over C{connections} concurrent
    keep-alive connections started together: a burst of first logins.
    (Not wrk: it cannot send each request exactly once and stop.)
    """
    pending = list(indexes)
    lock = threading.Lock()
    latencies, errors, statuses = [], [], {}
    start = threading.Barrier(connections + 1)

    def client():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        start.wait()
        while True:
            with lock:
                if not pending:
                    break
                index = pending.pop()
            began = time.monotonic()
            try:
                connection.request("PUT", f"/pub/calendar/{userName(index)}.vfb", body, {
                    "Authorization": basicAuthorization(userName(index), userPassword(index)),
                    "Content-Type": "text/calendar"})
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as e:
                status = type(e).__name__
                connection.close()
            with lock:
                latencies.append((time.monotonic() - began) * 1000)
                statuses[status] = statuses.get(status, 0) + 1
                if status not in (201, 204):
                    errors.append(status)
        connection.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(connections)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.monotonic()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    latencies.sort()

    def percentile(p):
        return latencies[min(len(latencies) - 1, int(len(latencies) * p / 100))] if latencies else float("nan")

    return dict(count=len(latencies), errors=len(errors), statuses=statuses, seconds=elapsed,
                p50=percentile(50), p99=percentile(99), max=latencies[-1] if latencies else float("nan"))


def streamedPropfind(port: int, path: str, pid: int) -> dict:
    """
    One PROPFIND Depth 1 of C{path}, its answer counted as it arrives (not
    kept), with the server's peak resident memory meanwhile.
    """
    before = processTreeRSS(pid)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1800)
    size = 0
    with PeakRSS(pid) as rss:
        began = time.monotonic()
        connection.request("PROPFIND", path, PROPFIND_BODY.encode(), {
            "Depth": "1", "Authorization": basicAuthorization(userName(0), userPassword(0)),
            "Content-Type": "application/xml"})
        response = connection.getresponse()
        firstByte = time.monotonic() - began
        while True:
            chunk = response.read(2**20)
            if not chunk:
                break
            size += len(chunk)
        elapsed = time.monotonic() - began
    connection.close()
    return dict(status=response.status, seconds=elapsed, firstByte=firstByte, bytes=size, rssBefore=before,
                rss=rss.peak)


def million(args, results: Results, workdir: str, body: bytes) -> None:
    """
    fbtwist alone (no peers) with C{args.million_users} users in one
    C{ou=people}: set-up times, name index load, memory, a burst of first
    logins, lookups and publishes, and PROPFIND of a folder that size.
    """
    users = args.million_users
    info = results.million
    info["users"] = users
    load = LoadSampler().start()
    base = os.path.join(workdir, f"users{users}")
    directory = StreamedUserDirectory(os.path.join(base, "ldap"), users, cache=args.million_cache or None)
    began = time.monotonic()
    directory.start()
    info.update(directory.timings, slapdReady=time.monotonic() - began)
    if info.get("cached"):
        print(f"  slapd database of {args.million_cache}, made by an earlier run; slapd ready after "
              f"{info['slapdReady']:.1f} s", flush=True)
    else:
        print(f"  LDIF written in {info['ldif']:.1f} s, slapadd -q {info['slapadd']:.1f} s, "
              f"slapd ready after {info['slapdReady']:.1f} s", flush=True)
    try:
        tree = os.path.join(base, "tree")
        began = time.monotonic()
        # A file of its own for each user, as after their publishes (and
        # as at 100,000 users): fbtwist keeps a lookup's answer with the
        # file, which it cannot with a file of several names.
        writeFiles(tree, (userName(i) + ".vfb" for i in range(users)), body)
        info["treeSeconds"] = time.monotonic() - began
        folder = f"folder{users}"
        began = time.monotonic()
        linkFiles(os.path.join(tree, folder), (f"file{i:07d}.vfb" for i in range(users)), calendarBody("folder"))
        info["folderSeconds"] = time.monotonic() - began
        print(f"  {users:,} users' files in {info['treeSeconds']:.1f} s, a folder of {users:,} files in "
              f"{info['folderSeconds']:.1f} s", flush=True)
        # The files on disk before the servers start: the kernel's writing
        # them back would otherwise take the cores the cold starts are
        # measured on.
        os.sync()
        began = time.monotonic()
        extra = ["--admin-group", ADMIN_GROUP]
        if args.million_answer_memory:
            # As a site this size would set it: room for every user's answer
            # (and name) in each serving process.
            extra += ["--answer-memory", args.million_answer_memory]
            info["answerMemory"] = args.million_answer_memory
        servers = startServers(args, base, tree, directory, extra=extra, peers=False,
                               results=results, indexTimeout=3600.0)
        info["serversReady"] = time.monotonic() - began
        try:
            info["burst"] = {}
            for number, (name, server) in enumerate(servers.items()):
                # Users no server has logged in yet, spread over the directory.
                step = users // 100
                indexes = [(k * step + 7 + number * 3) % users for k in range(100)]
                burst = info["burst"][name] = firstLogins(server.port, indexes, body)
                print(f"  first logins, {name}: {burst['count']} in {burst['seconds']:.2f} s, p99 "
                      f"{burst['p99']:.0f} ms, {burst['errors']} errors", flush=True)
            closedLoop(args, results, base, users, servers, body)
            # After the load: the index pages lookups and logins touched count.
            info["namesPSS"] = {name: indexPSS(server.pid, os.path.join(base, f"names-{workers}"))
                                for (name, server), workers in zip(servers.items(), args.fbtwist_workers)}
            for name, held in info["namesPSS"].items():
                print(f"  names, {name}: {held / 2**20:.1f} MB (PSS of the index file in all its processes)",
                      flush=True)
            # The table's RSS sums the processes' resident sets: pages the
            # workers share (the name index) count once per worker there,
            # once in all here.
            info["memory"] = {name: dict(rss=processTreeRSS(server.pid), pss=processTreePSS(server.pid))
                              for name, server in servers.items()}
            for name, memory in info["memory"].items():
                print(f"  memory, {name}: PSS {memory['pss'] / 2**20:.0f} MB for all its processes "
                      f"(RSS summed {memory['rss'] / 2**20:.0f} MB)", flush=True)
            info["propfind"] = {}
            for name, server in servers.items():
                answer = info["propfind"][name] = streamedPropfind(server.port, f"/pub/calendar/{folder}/",
                                                                   server.pid)
                seconds = answer["seconds"]
                results.add(users, f"(c) PROPFIND Depth 1, {users} files", name, dict(
                    rps=1 / seconds, p50=seconds * 1000, p99=seconds * 1000, rss=answer["rss"],
                    rssBefore=answer["rssBefore"], errors=int(answer["status"] != 207),
                    note=f"one request, {answer['bytes'] / 2**20:.0f} MB answer, status {answer['status']}"))
        finally:
            stopServers(servers)
        info["warm"] = {}
        for workers in args.fbtwist_workers:
            name = "fbtwist" if workers == 0 else f"fbtwist x{workers}"
            warm = info["warm"][name] = warmStart(base, tree, directory, workers)
            print(f"  warm start, {name}: every process has the kept name index after {warm['seconds']:.1f} s",
                  flush=True)
    finally:
        directory.stop()
        info["load"] = load.stop()
        print(f"  load average during the run: {info['load']}", flush=True)


class LoadSampler:
    """
    The machine's 1-minute load average every few seconds in a thread:
    what else ran during a measurement.
    """

    def __init__(self, interval: float = 5.0):
        self.interval = interval
        self.samples: List[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "LoadSampler":
        self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            if self._stop.wait(self.interval):
                break

    def stop(self) -> str:
        """
        @return: The lowest, mean and highest sample, in words.
        """
        self._stop.set()
        self._thread.join()
        samples = self.samples or [os.getloadavg()[0]]
        return (f"{min(samples):.2f} lowest, {sum(samples) / len(samples):.2f} mean, {max(samples):.2f} highest "
                f"(1-minute load average, 2 CPUs)")


def warmStart(base: str, tree: str, directory, workers: int) -> dict:
    """
    Start fbtwist again on the name index file its last run kept (in
    C{base}, as L{startServers} named it): how long until every process has
    it, from the start of the process.
    """
    extraArgs = ["--admin-group", ADMIN_GROUP, "--name-index-dir", os.path.join(base, f"names-{workers}")]
    extraArgs += ["--workers", str(workers)] if workers else []
    logPath = os.path.join(base, f"fbtwist-{workers}-warm.log")
    began = time.monotonic()
    server = FbtwistProcess(tree, directory.searchURL, extraArgs=extraArgs, logPath=logPath).start(timeout=300)
    try:
        waitForLogLines(logPath, "kept name index", 1, 300)
        if workers:
            waitForLogLines(logPath, "name index mapped", workers, 300)
        return dict(seconds=time.monotonic() - began, pss=processTreePSS(server.pid))
    finally:
        server.stop()


def indexPSS(pid: int, folder: str) -> int:
    """
    The PSS, in bytes, of the mappings of files in C{folder} (the name
    index) in C{pid} and its descendants: the memory the names take for all
    the processes together.
    """
    total = 0
    for current in [pid] + _descendants(pid):
        try:
            with open(f"/proc/{current}/smaps") as f:
                inside = False
                for line in f:
                    fields = line.split()
                    if "-" in fields[0] and len(fields) >= 5:
                        inside = len(fields) >= 6 and fields[5].startswith(folder + "/")
                    elif inside and fields[0] == "Pss:":
                        total += int(fields[1]) * 1024
        except OSError:
            continue
    return total


def startupTable(results: Results) -> List[str]:
    if not results.startup:
        return []
    lines = [
        "## Name index and memory at start", "",
        "The name index load time is what fbtwist logs (\"name index loaded ... in Xs\"; the slowest worker); "
        "the memory is the resident set of all its processes once every worker has it (a short-lived child "
        "process builds the file, the master and the workers map it; a cold start, no file kept), before any "
        "load; PSS counts the pages they share once. The variants start one after another, each once the one "
        "before has its index (a cold start measured alone).",
        "", "| users | server | name index loaded in | names | RSS once loaded | PSS once loaded |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for (users, server), start in sorted(results.startup.items()):
        lines.append(f"| {users:,} | {server} | {formatNumber(start['indexSeconds'], 2)} s | {start['names']:,} | "
                     f"{formatRSS(start['rss'])} | {formatRSS(start.get('pss', 0))} |")
    return lines + [""]


def millionSection(results: Results) -> List[str]:
    info = results.million
    if not info:
        return []
    users = info["users"]
    lines = [
        f"## {users:,} users", "",
        "fbtwist alone (no peers), its users in one `ou=people` (uid and mail indexed).", "",
    ]
    if info.get("cached"):
        lines.append(f"- slapd's database of {users:,} users made by an earlier run (`--million-cache`); slapd "
                     f"answered {info['slapdReady']:.1f} s after the start of it all.")
    else:
        lines += [
            f"- LDIF of {users:,} users (each password its own salted SHA-1) written as generated, never whole "
            f"in memory: {info['ldif']:.1f} s, {info['ldifBytes'] / 2**20:.0f} MB.",
            f"- `slapadd -q` loaded it in {info['slapadd']:.1f} s; slapd answered {info['slapdReady']:.1f} s "
            "after the start of it all.",
        ]
    lines += [
        f"- The users' {users:,} files made in {info.get('treeSeconds', 0):.1f} s, one file each (as at "
        f"100,000 users); a folder of {users:,} more in {info.get('folderSeconds', 0):.1f} s: hard links, "
        f"{LINKS_PER_INODE:,} to each written file (same bytes for the server).",
    ]
    if info.get("answerMemory"):
        lines.append(f"- fbtwist with `--answer-memory {info['answerMemory']}` (`--million-answer-memory`): room "
                     "for every user's answer and name in each serving process (about 4 KB each: the body, "
                     "its head, the entry, the name), as a site this size would set it; the 100,000-user "
                     "rows have the default, 512M, which holds all of theirs.")
    if "serversReady" in info:
        lines.append(f"- fbtwist started and every worker had loaded its name index after "
                     f"{info['serversReady']:.1f} s.")
    for (count, name), start in sorted(results.startup.items()):
        if count == users:
            lines.append(f"- Name index, {name}, cold (no kept file: a child process builds it): loaded in "
                         f"{start['indexSeconds']:.1f} s, {start['names']:,} names.")
    for name, warm in sorted(info.get("warm", {}).items()):
        lines.append(f"- Name index, {name}, warm (the file of the last run mapped at once, then rebuilt): every "
                     f"process had it {warm['seconds']:.1f} s after the start.")
    for name, held in sorted(info.get("namesPSS", {}).items()):
        lines.append(f"- Names held, {name}: {held / 2**20:.1f} MB for all its processes together (PSS of the "
                     "index file's pages, after the load).")
    for name, memory in sorted(info.get("memory", {}).items()):
        lines.append(f"- Memory of {name} after the lookups and publishes: {memory['pss'] / 2**20:,.0f} MB for all "
                     f"its processes together (PSS); their resident sets summed, as the table's RSS column sums "
                     f"them: {memory['rss'] / 2**20:,.0f} MB (pages the workers share, the name index, counted "
                     "there once per worker).")
    if "load" in info:
        lines.append(f"- Load average of the machine during the run: {info['load']}.")
    burst = info.get("burst", {})
    if burst:
        lines += ["", "Burst of first logins: 100 users who never logged in, each publishing once, over 32 "
                  "connections at the same time.", "",
                  "| server | publishes | took | p50 ms | p99 ms | max ms | errors | statuses |",
                  "|---|---:|---:|---:|---:|---:|---:|---|"]
        for name, b in burst.items():
            statuses = ", ".join(f"{k}: {v}" for k, v in sorted(b["statuses"].items(), key=str))
            lines.append(f"| {name} | {b['count']} | {b['seconds']:.2f} s | {formatNumber(b['p50'], 1)} | "
                         f"{formatNumber(b['p99'], 1)} | {formatNumber(b['max'], 1)} | {b['errors']} | {statuses} |")
    byKey = {(r["users"], r["workload"], r["server"]): r for r in results.rows}
    compared = [(r, byKey.get((100000, r["workload"], r["server"]))) for r in results.rows
                if r["users"] == users and r["workload"][:3] in ("(a)", "(b)")]
    if compared:
        lines += ["", "Against the 100,000-user row (same run):", "",
                  f"| workload | server | req/s, {users:,} users | req/s, 100,000 users | ratio |",
                  "|---|---|---:|---:|---:|"]
        for row, other in compared:
            ratio = f"{row['rps'] / other['rps']:.2f}×" if other and other["rps"] else "– (not run)"
            lines.append(f"| {row['workload']} | {row['server']} | {formatNumber(row['rps'])} | "
                         f"{formatNumber(other['rps']) if other else '–'} | {ratio} |")
    for name, answer in info.get("propfind", {}).items():
        lines.append("")
        lines.append(f"PROPFIND Depth 1 of the {users:,}-file folder, {name}: status {answer['status']}, "
                     f"{answer['bytes'] / 2**20:.0f} MB in {answer['seconds']:.1f} s (first byte after "
                     f"{answer['firstByte']:.1f} s); RSS {formatRSS(answer['rssBefore'])} before, "
                     f"{formatRSS(answer['rss'])} at the peak.")
    return lines + [""]


def profile(args, workdir, users, servers, body):
    """
    py-spy on the single fbtwist process during a lookup and a publish run;
    the functions with most samples (own time and with callees).
    """
    server = servers.get("fbtwist")
    pyspy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    if server is None or not os.path.exists(pyspy):
        return {}
    report = {}
    for workload in ("lookup", "publish"):
        out = os.path.join(workdir, f"profile-{workload}.txt")
        spy = subprocess.Popen([pyspy, "record", "--format", "raw", "--rate", "200", "--nonblocking",
                                "-o", out, "-p", str(server.pid), "-d", str(int(args.duration) + 1)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
        runWrk(server.port, luaScript(workload, users, args.threads, body), workdir, args.duration,
               args.threads, args.connections, server.pid)
        spy.wait(60)
        report[workload] = hotSpots(out)
    return report


#: Frames every sample passes through (twistd, the reactor loop, the thread
#: pool's workers): left out of the "with callees" ranking.
_PLUMBING = re.compile(
    r"\((?:<string>|.*twisted/(?:application|scripts)/.*|.*threading\.py|.*twisted/python/(?:log|context|threadpool)"
    r"\.py|.*twisted/_threads/.*|.*twisted/internet/(?:base|epollreactor|posixbase|tcp)\.py)(?::\d+)?\)$"
)
#: Idle pool threads waiting for work: not counted at all.
_IDLE = re.compile(r"(?:Condition\.wait|Queue\.get) \((?:.*/)?(?:threading|queue)\.py")


def hotSpots(collapsed: str, top: int = 12):
    own, inclusive, total = {}, {}, 0
    try:
        with open(collapsed) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        if not count.isdigit():
            continue  # not a sample line
        raw = stack.split(";")
        if _IDLE.match(raw[-1]):
            continue
        count = int(count)
        total += count
        # "function (path/to/module.py:line)" -> "function (module.py)"
        frames = [re.sub(r" \((?:.*/)?([^/]*?)(?::\d+)?\)$", r" (\1)", f) for f in raw]
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in {f for f, r in zip(frames, raw) if not _PLUMBING.search(r)}:
            inclusive[frame] = inclusive.get(frame, 0) + count

    def ranked(table, count):
        shares = [(frame, 100.0 * n / total) for frame, n in sorted(table.items(), key=lambda kv: -kv[1])]
        return shares[:count]

    return {"own": ranked(own, top), "inclusive": ranked(inclusive, 2 * top), "samples": total}


#: How much a server's peak RSS may grow from a folder of 10,000 files to one
#: of 100,000, or while it answers a PROPFIND of a million: "memory flat".
FLAT_GROWTH = 32 * 2**20
#: The million-user targets: the name index loaded in under this (seconds),
#: the names held in at most this for all processes together (bytes), the
#: lookups and publishes at least this fraction of their 100,000-user rates.
MILLION_LOAD_SECONDS = 10.0
MILLION_NAMES_BYTES = 100 * 2**20
MILLION_RATE_FRACTION = 0.9
#: A publish's server CPU time at most this (milliseconds).
PUBLISH_CPU_MS = 0.5


def targets(rows, million: Optional[dict] = None, startup: Optional[dict] = None) -> List[str]:
    """
    The issue's targets, each judged from the rows measured, with what was
    measured: one process is the C{fbtwist} rows, C{--workers 2} the
    C{fbtwist x2} ones; a target whose rows were not measured says so.
    """
    million = million or {}
    startup = startup or {}
    byKey = {(r["users"], r["workload"], r["server"]): r for r in rows}
    lines = ["## Targets", "", "| target | measured | met |", "|---|---|---|"]

    def line(target: str, measured: str, met: bool) -> None:
        lines.append(f"| {target} | {measured} | {'yes' if met else '**no**'} |")

    def missing(target: str, what: str = "not measured in this run") -> None:
        lines.append(f"| {target} | {what} | – |")

    def workloads(prefix: str, users=None):
        return sorted({(r["users"], r["workload"]) for r in rows if r["workload"].startswith(prefix)
                       and (users is None or users(r["users"]))})

    def against(prefix: str, server: str, peer: str, factor: float, label: str, users=None) -> None:
        found = False
        for count, workload in workloads(prefix, users):
            row, other = byKey.get((count, workload, server)), byKey.get((count, workload, peer))
            if row is None or other is None or not other["rps"] or row["rps"] != row["rps"]:
                continue
            found = True
            ratio = row["rps"] / other["rps"]
            line(f"{label}, {count:,} {'files' if prefix == '(c)' else 'users'}",
                 f"{ratio:.2f}× ({server}: {row['rps']:,.1f} vs {peer}: {other['rps']:,.1f} req/s)", ratio >= factor)
        if not found:
            missing(label)

    def notMillion(users: int) -> bool:
        return users != million.get("users")

    # 1. Publishes: durable, against Apache and WsgiDAV; their CPU.
    against("(b)", "fbtwist", "apache", 0.6, "publishes ≥ 0.6× Apache, one process", notMillion)
    against("(b)", "fbtwist x2", "apache", 1.0, "publishes ≥ 1.0× Apache, `--workers 2`", notMillion)
    against("(b)", "fbtwist x2", "wsgidav", 2.0, "publishes ≥ 2× WsgiDAV, `--workers 2`", notMillion)
    cpuRows = [r for r in rows if r["workload"].startswith("(b)") and r["server"].startswith("fbtwist")
               and r.get("cpu") and r["users"] != million.get("users")]
    for row in cpuRows:
        line(f"CPU per publish ≤ {PUBLISH_CPU_MS} ms, {row['server']}, {row['users']:,} users",
             f"{row['cpu']:.2f} ms (server CPU of all its processes ÷ publishes)", row["cpu"] <= PUBLISH_CPU_MS)
    if not cpuRows:
        missing(f"CPU per publish ≤ {PUBLISH_CPU_MS} ms")
    # 2. Lookups.
    against("(a)", "fbtwist", "apache", 0.5, "lookups ≥ 0.5× Apache, one process", notMillion)
    against("(a)", "fbtwist x2", "apache", 0.75, "lookups ≥ 0.75× Apache, `--workers 2`", notMillion)
    # 3. PROPFIND Depth 1 of 10,000 and 100,000 files, memory flat.
    def sizes(files: int) -> bool:
        return files in (10000, 100000)

    against("(c)", "fbtwist", "apache", 0.6, "PROPFIND Depth 1 ≥ 0.6× Apache, one process", sizes)
    against("(c)", "fbtwist x2", "apache", 0.6, "PROPFIND Depth 1 ≥ 0.6× Apache, `--workers 2`", sizes)
    for server in ("fbtwist", "fbtwist x2"):
        small = [byKey.get((10000, w, server)) for _, w in workloads("(c)", lambda files: files == 10000)]
        large = [byKey.get((100000, w, server)) for _, w in workloads("(c)", lambda files: files == 100000)]
        small, large = next(filter(None, small), None), next(filter(None, large), None)
        label = f"PROPFIND memory flat from 10,000 to 100,000 files (peak RSS grows < {FLAT_GROWTH // 2**20} MB), " \
                f"{server}"
        if small is None or large is None or not small["rss"] or not large["rss"]:
            missing(label)
            continue
        growth = large["rss"] - small["rss"]
        line(label, f"{formatRSS(small['rss'])} → {formatRSS(large['rss'])} ({growth / 2**20:+.0f} MB)",
             growth < FLAT_GROWTH)
    # 4. The mixed load at 100,000 users, both modes.
    for server in ("fbtwist", "fbtwist x2"):
        found = [r for r in rows if r["workload"].startswith("(d)") and r["users"] >= 100000
                 and r["server"] == server]
        for row in found:
            line(f"mixed load p99 < 20 ms, 0 errors, {server}, {row['users']:,} users",
                 f"p99 {row['p99']:.1f} ms, {row['errors']} errors", row["p99"] < 20 and not row["errors"])
        if not found:
            missing(f"mixed load p99 < 20 ms, 0 errors, {server}, 100,000 users")
    # 5. A million users.
    millionTargets(lines, line, missing, rows, million, startup)
    # Cached federated lookups within 10% of local ones.
    found = False
    for row in rows:
        if row["workload"].startswith("(g)") and "federated" in row["workload"] and row["users"] >= 100000:
            local = byKey.get((row["users"], row["workload"].replace("federated", "local").replace(" (cached)", ""),
                               row["server"]))
            if local and local["rps"] and not row["errors"]:
                found = True
                ratio = row["rps"] / local["rps"]
                cpu = (f"; server CPU {row['cpu'] * 1000:.0f} vs {local['cpu'] * 1000:.0f} µs a request"
                       if row.get("cpu") and local.get("cpu") else "")
                line(f"cached federated lookups within 10% of local ones, {row['server']}, {row['users']:,} users",
                     f"{ratio:.2f}× ({row['rps']:,.0f} vs {local['rps']:,.0f} req/s{cpu})", ratio >= 0.9)
    if not found:
        missing("cached federated lookups within 10% of local ones")
    return lines + [""]


def millionTargets(lines, line, missing, rows, million: dict, startup: dict) -> None:
    """
    The million-user targets (L{targets}' lines).
    """
    users = million.get("users")
    if not users:
        missing("a million users: burst of first logins, name index, names' memory, rates, PROPFIND",
                "not run (`bench/run --million`)")
        return
    for name, burst in sorted(million.get("burst", {}).items()):
        line(f"{users:,} users: a burst of first logins from 100 users publishes with 0 errors, {name}",
             f"{burst['count']} publishes, {burst['errors']} errors, p99 {burst['p99']:.0f} ms",
             burst["count"] == 100 and not burst["errors"])
    for (count, name), start in sorted(startup.items()):
        if count != users:
            continue
        seconds = start["indexSeconds"]
        line(f"{users:,} users: name index loaded (cold: built) in < {MILLION_LOAD_SECONDS:g} s, {name}",
             f"{seconds:.1f} s", seconds < MILLION_LOAD_SECONDS)
    for name, warm in sorted(million.get("warm", {}).items()):
        line(f"{users:,} users: name index of the last run in use (warm start) in < {MILLION_LOAD_SECONDS:g} s, "
             f"{name}", f"{warm['seconds']:.1f} s", warm["seconds"] < MILLION_LOAD_SECONDS)
    for name, held in sorted(million.get("namesPSS", {}).items()):
        line(f"{users:,} users: names held in ≤ {MILLION_NAMES_BYTES // 2**20} MB for all processes, {name}",
             f"{held / 2**20:.1f} MB (PSS of the index file's pages in all processes)",
             held <= MILLION_NAMES_BYTES)
    byKey = {(r["users"], r["workload"], r["server"]): r for r in rows}
    compared = False
    for row in rows:
        if row["users"] != users or row["workload"][:3] not in ("(a)", "(b)"):
            continue
        other = byKey.get((100000, row["workload"], row["server"]))
        if other is None or not other["rps"]:
            continue
        compared = True
        ratio = row["rps"] / other["rps"]
        kind = "lookups" if row["workload"].startswith("(a)") else "publishes"
        line(f"{users:,} users: {kind} within 10% of the 100,000-user rate, {row['server']}",
             f"{ratio:.2f}× ({row['rps']:,.0f} vs {other['rps']:,.0f} req/s)", ratio >= MILLION_RATE_FRACTION)
    if not compared:
        missing(f"{users:,} users: lookups and publishes within 10% of the 100,000-user rates",
                "no 100,000-user rows in this run")
    for name, answer in sorted(million.get("propfind", {}).items()):
        growth = answer["rss"] - answer["rssBefore"]
        line(f"PROPFIND Depth 1 of {users:,} files streamed, memory flat (peak RSS grows < "
             f"{FLAT_GROWTH // 2**20} MB), {name}",
             f"status {answer['status']}, {formatRSS(answer['rssBefore'])} before, {formatRSS(answer['rss'])} at the "
             f"peak ({growth / 2**20:+.0f} MB)", answer["status"] == 207 and growth < FLAT_GROWTH)


def formatRSS(value) -> str:
    return f"{value / 2**20:.0f} MB" if value else "–"


def formatNumber(value, digits=1) -> str:
    if value != value:
        return "–"
    if 0 < abs(value) < 1:
        return f"{value:.2g}"  # one PROPFIND taking seconds: 0.033 req/s
    return f"{value:,.{digits}f}"


def ratio(row, peer) -> str:
    """
    fbtwist's throughput ÷ the peer's (for the mixed load: the peer's p99
    ÷ fbtwist's, above 1 when fbtwist answers faster), or "–".
    """
    if not row["server"].startswith("fbtwist") or not peer or row["rps"] != row["rps"] \
            or peer["rps"] != peer["rps"] or peer["rps"] <= 0:
        return "–"
    if row["workload"].startswith("(d)"):
        return f"p99 {peer['p99'] / row['p99']:.2f}×" if row["p99"] else "–"
    return f"{row['rps'] / peer['rps']:.2f}×"


def markdown(args, results: Results, hot, started, finished, others) -> str:
    lines = [
        "# fbtwist vs Apache httpd (mod_dav + mod_authnz_ldap) and WsgiDAV",
        "",
        f"Measured by `bench/run` from {started:%Y-%m-%d %H:%M} to {finished:%H:%M} UTC "
        f"(command: `bench/run {' '.join(sys.argv[1:])}`).",
        "",
        "## Machine and versions",
        "",
    ]
    for key, value in machine().items():
        lines.append(f"- {key}: {value}")
    for key, value in (results.versions or versions()).items():
        lines.append(f"- {key}: {value}")
    if others:
        lines.append(f"- **Other work was running on the machine during the run**: {others}")
    lines += [
        "",
        f"Closed-loop workloads: `wrk -t {args.threads} -c {args.connections} -d {args.duration:g}s`, "
        f"{args.rounds} rounds alternating the servers; the round with the median throughput is shown, with "
        f"the peak RSS of all rounds (the whole process tree: Apache's children, fbtwist's workers). "
        "Before each measured run the files written are synced and the machine left to fall quiet (`settle`: "
        "at most 30 s), so that no server pays for the one measured before it. "
        f"The mixed load is open-loop at a constant rate for {args.mixed_duration} s (bench/pace.py, latency "
        "counted from when each request was due).",
        "",
        "Before the lookup rows of each directory size, every user was looked up once (`lookEveryoneUp`, "
        "through the fbtwist variant with the most workers), as on a server in use: fbtwist keeps each answer "
        "it rendered with the version of the file it was made of (`--keep-answers`), and every variant reads it "
        "back. Then, not counted, each fbtwist variant is asked for every user again (`warmLookups`: one pass; five "
        "for `fbtwist x2`, whose connections the kernel spreads over its two workers, so that each worker has been "
        "asked for about 97% of the users), and every server for at least a round's time, as on a server in use for a"
        " while: each fbtwist process remembers the answers it was asked for (`--answer-memory`: each worker of "
        "`--workers` its own). The counted rounds of lookups go on round-robin over all the users where the last one "
        "stopped (with 100,000 users each round asks for everyone more than once; with a million, a round asks for "
        "each user at most once), right after that server's warm-up (the other rows take the servers in turn each "
        "round). "
        "Apache and WsgiDAV send the files as they are. Apache and WsgiDAV each have a copy of the "
        "users' files of their own, so that each publishes over files it wrote itself, as it would alone. "
        + "; ".join(f"{users:,} users: {walked['seconds']:.0f} s" for users, walked in sorted(results.warmed.items()))
        + ("." if results.warmed else "(not done in this run)."),
        "",
        f"(e) CalDAV outbox POSTs (user000000 asks for 20 random users' week) at {args.outbox_rate:g}/s and (f) "
        f"finding a time (20 people with six meetings a day, three with working hours of their own in other zones, "
        f"15 rooms with eight bookings a day, two weeks, PT15M steps, working hours, a quorum of 10, rooms for 6 "
        f"with a projector) at {args.find_rate:g}/s are open loop too, for {args.paced_duration:g} s each: their "
        "targets are the time one answer takes on a server that keeps up. Each notes the server's CPU time per "
        "request, which does not depend on what else runs on the machine. (g) compares, in the same closed loop, "
        f"lookups of {args.federated_names} of our users' addresses with lookups of as many addresses at "
        f"{PARTNER}, a second fbtwist on the same directory and files standing in for the other organisation "
        "(`--federate`), every address asked for in a round not counted before, so that every worker has its "
        "answer cached.",
        "",
    ]
    if args.wsgidav_python:
        lines += [
            f"WsgiDAV runs on cheroot with {WSGIDAV_THREADS} threads, anonymous read-only `/calendar` and "
            "Basic-auth `/pub/calendar` (each user writes only their own file) on the same files. **WsgiDAV "
            "does not check LDAP**: version 4 has no LDAP domain controller, so it checks the same users and "
            "passwords from memory (its SimpleDomainController), with no network round trip; fbtwist and Apache "
            "ask slapd.",
            "",
        ]
    lines += [
        "| users (c: files) | workload | server | req/s | p50 ms | p99 ms | peak RSS | errors "
        "| fbtwist ÷ Apache | fbtwist ÷ WsgiDAV |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    byKey = {(r["users"], r["workload"], r["server"]): r for r in results.rows}
    for row in results.rows:
        peers = [ratio(row, byKey.get((row["users"], row["workload"], peer))) for peer in ("apache", "wsgidav")]
        note = f" ({row['note']})" if row.get("note") else ""
        lines.append(
            f"| {row['users']:,} | {row['workload']}{note} | {row['server']} | {formatNumber(row['rps'])} | "
            f"{formatNumber(row['p50'], 2)} | {formatNumber(row['p99'], 2)} | {formatRSS(row['rss'])} | "
            f"{row['errors']} | {peers[0]} | {peers[1]} |"
        )
    lines += ["", "For the mixed load the ratio is the peer's p99 ÷ fbtwist's (above 1: fbtwist answers faster).",
              ""]
    lines += startupTable(results)
    lines += millionSection(results)
    lines += targets(results.rows, results.million, results.startup)
    if hot:
        lines += ["## Profile (py-spy, single fbtwist process)", ""]
        for workload, spots in hot.items():
            if not spots:
                continue
            lines += [f"### {workload} ({spots['samples']} samples)", "", "| own time | function |", "|---:|---|"]
            lines += [f"| {p:.1f} % | `{frame}` |" for frame, p in spots["own"]]
            lines += ["", "| with callees | function |", "|---:|---|"]
            lines += [f"| {p:.1f} % | `{frame}` |" for frame, p in spots["inclusive"]]
            lines.append("")
    lines += results.notes
    return "\n".join(lines) + "\n"


def otherLoad() -> str:
    """
    What else is using the CPUs (other test suites on a shared machine).
    """
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    busy = subprocess.run(["ps", "-eo", "pcpu,comm", "--sort=-pcpu"], capture_output=True, text=True).stdout
    top = [line.split(None, 1) for line in busy.splitlines()[1:6]]
    names = sorted({name.strip() for cpu, name in top if float(cpu) > 20})
    return f"load average {' '.join(load)} at the start" + (f"; busy: {', '.join(names)}" if names else "")


def parseArguments(argv):
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__.strip().splitlines()[0])
    parser.add_argument("--users", default="100,10000,100000", help="directory sizes to run (comma-separated)")
    parser.add_argument("--propfind", default="10000,100000", help="PROPFIND folder sizes ('' to skip)")
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run")
    parser.add_argument("--propfind-duration", type=float, default=15, help="seconds per PROPFIND run")
    parser.add_argument("--mixed-duration", type=float, default=30, help="seconds of the mixed load")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per workload and server")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--fbtwist-workers", default="0,2",
                        help="fbtwist variants: 0 for one process, N for --workers N (comma-separated)")
    parser.add_argument("--no-apache", action="store_true", help="leave Apache out")
    parser.add_argument("--no-wsgidav", action="store_true", help="leave WsgiDAV out")
    parser.add_argument("--wsgidav-venv", default=None,
                        help="virtualenv for WsgiDAV (made if missing; default: in the work directory)")
    parser.add_argument("--million", action="store_true",
                        help="also the million-user run: slapd with --million-users users, fbtwist alone "
                             "(takes many minutes)")
    parser.add_argument("--million-users", type=int, default=1000000, help="users of the --million run")
    parser.add_argument("--million-answer-memory", default="4G",
                        help="fbtwist's --answer-memory in the --million run ('' for its default)")
    parser.add_argument("--million-cache", default=os.path.join(tempfile.gettempdir(), "fbtwist-bench-cache"),
                        help="keep the --million run's slapd database here between runs ('' to make it anew "
                             "in the work directory)")
    parser.add_argument("--workloads", default="abcdefg",
                        help="which workloads: a lookup, b publish, c PROPFIND, d mixed, e CalDAV outbox POST "
                             "for 20 attendees, f finding a time for 20 people and 15 rooms, g lookups of "
                             "another organisation's cached addresses against our own (default abcdefg)")
    parser.add_argument("--outbox-rate", type=float, default=20, help="outbox POSTs a second (e)")
    parser.add_argument("--find-rate", type=float, default=5, help="finds a second (f)")
    parser.add_argument("--paced-duration", type=float, default=20, help="seconds of each of e and f")
    parser.add_argument("--federated-names", type=int, default=500,
                        help="how many addresses, ours and the other organisation's, g asks for")
    parser.add_argument("--profile", action="store_true", help="profile fbtwist with py-spy (first user count)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 100 users, 1,000-file PROPFIND, 2 s runs, 1 round")
    parser.add_argument("--output", default=os.path.join(HERE, "RESULTS.md"), help="where the table goes")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, configs)")
    args = parser.parse_args(argv)
    if args.quick:
        args.users, args.propfind, args.duration, args.propfind_duration = "100", "1000", 2, 2
        args.mixed_duration, args.rounds, args.paced_duration = 3, 1, 3
    if "c" not in args.workloads:
        args.propfind = ""
    args.users = [int(n) for n in args.users.split(",") if n]
    args.propfind = [int(n) for n in args.propfind.split(",") if n]
    args.fbtwist_workers = [int(n) for n in args.fbtwist_workers.split(",") if n]
    args.wsgidav_python = None  # set by main() unless --no-wsgidav
    return args


def main(argv=None):
    args = parseArguments(argv if argv is not None else sys.argv[1:])
    started = datetime.datetime.now(datetime.timezone.utc)
    others = otherLoad()
    results = Results()
    hot = {}
    workdir = tempfile.mkdtemp(prefix="fbtwist-bench-")
    if os.getuid() == 0:
        os.chmod(workdir, 0o755)
    body = calendarBody()
    print(f"work directory: {workdir}", flush=True)
    try:
        if not args.no_wsgidav and (args.users or args.propfind):
            args.wsgidav_python = wsgidavPython(args.wsgidav_venv or os.path.join(workdir, "wsgidav-venv"))
        results.versions = versions(args.wsgidav_python)
        for users in args.users:
            print(f"== {users:,} users", flush=True)
            base = os.path.join(workdir, f"users{users}")
            directory = RoomDirectory(os.path.join(base, "ldap"), users)
            began = time.monotonic()
            directory.start()
            print(f"  slapd with {users:,} users ready in {time.monotonic() - began:.1f} s", flush=True)
            partner = None
            try:
                tree = os.path.join(base, "tree")
                writeTree(tree, users, body)
                writeFindFiles(tree)
                chownTree(tree)
                extra = list(ROOM_OPTIONS)
                if "g" in args.workloads:
                    # The other organisation: a second fbtwist on the same
                    # directory and files, its users' addresses @PARTNER for
                    # the servers measured.
                    partner = FbtwistProcess(tree, directory.searchURL,
                                             logPath=os.path.join(base, "partner.log")).start()
                    waitForLogLines(partner.logPath, "name index loaded", 1)
                    template = f"http://127.0.0.1:{partner.port}/calendar/%NAME%@example.com.vfb"
                    extra += ["--federate", f"{PARTNER}={template}", "--federation-allow-networks", "127.0.0.0/8"]
                peerTrees = writePeerTrees(args, base, users, body)
                os.sync()
                servers = startServers(args, base, tree, directory, extra=extra, results=results,
                                       peerTrees=peerTrees)
                try:
                    for serverName, server in servers.items():
                        status = checkPublish(server.port, body)
                        if status not in (201, 204):
                            results.notes.append(f"- {serverName} answered {status} to a publish check "
                                                 f"with {users} users.")
                            print(f"  WARNING: {serverName} answered {status} to a publish", flush=True)
                    closedLoop(args, results, base, users, servers, body)
                    if "d" in args.workloads:
                        mixed(args, results, users, servers, body)
                    scheduling(args, results, users, servers)
                    if "g" in args.workloads:
                        federation(args, results, base, users, servers)
                    if args.profile and not hot:
                        hot = profile(args, base, users, servers, body)
                finally:
                    stopServers(servers)
            finally:
                if partner is not None:
                    partner.stop()
                directory.stop()
        if args.propfind:
            print("== PROPFIND", flush=True)
            propfind(args, results, workdir, body)
        if args.million:
            print(f"== {args.million_users:,} users", flush=True)
            million(args, results, workdir, body)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    finished = datetime.datetime.now(datetime.timezone.utc)
    text = markdown(args, results, hot, started, finished, others)
    with open(args.output, "w") as f:
        f.write(text)
    with open(os.path.splitext(args.output)[0] + ".json", "w") as f:
        json.dump(results.rows, f, indent=1, default=str)
    print(f"results written to {args.output}", flush=True)


if __name__ == "__main__":
    main()
