"""
Real processes for the tests that need one (twistd's own log observers,
signals, shutdown, descriptor limits, scale-out, reliability, several
processes) and the benchmark in bench/: a directory of many generated users
in a private slapd, fbtwist run by C{twistd} as a child process (the one
harness for that: L{FbtwistProcess}), HAProxy in front of several of them,
and a blocking HTTP client.

Everything here is bounded in time; nothing imports the reactor at module
level, so the blocking helpers suit C{SynchronousTestCase} and plain
scripts, and L{startTwistd} suits a trial C{TestCase} running the reactor.
"""

import base64
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import Dict, Iterable, List, Optional, Tuple

from tests.slapd import SlapdServer, hashPassword

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUFFIX = "dc=example,dc=com"
PEOPLE = "ou=people," + SUFFIX
#: The group of administrators in L{usersLDIF}: user000000 alone.
ADMIN_GROUP = "cn=admins,ou=groups," + SUFFIX


def userName(index: int) -> str:
    return f"user{index:06d}"


def userPassword(index: int) -> str:
    return f"pw-{index:06d}"


def usersLDIF(count: int) -> str:
    """
    LDIF for C{ou=people} and C{count} users C{user000000...} whose
    password is C{pw-000000...} and whose mail is C{<uid>@example.com};
    C{user000000} is the one member of L{ADMIN_GROUP}.

    Each password gets its own salted SHA-1 hash (C{{SSHA}}, what slapd
    checks fastest): about a second for 100,000 entries.
    """
    parts = [
        f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n",
        f"dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n",
        f"dn: {ADMIN_GROUP}\nobjectClass: groupOfNames\ncn: admins\nmember: uid={userName(0)},{PEOPLE}\n",
    ]
    for index in range(count):
        uid = userName(index)
        parts.append(
            f"dn: uid={uid},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: User {index}\n"
            f"sn: {index}\nmail: {uid}@example.com\nuserPassword: {hashPassword(userPassword(index))}\n"
        )
    return "\n".join(parts)


class UserDirectory(SlapdServer):
    """
    A private slapd holding L{usersLDIF}, with the indexes a production
    directory has for fbtwist's and Apache's searches (uid and mail).
    """

    def __init__(self, basedir: str, count: int, startTimeout: float = 120.0):
        super().__init__(basedir, usersLDIF(count), tls=False, suffix=SUFFIX, startTimeout=startTimeout)
        self.count = count

    def _config(self, installed, databaseDir):
        config = super()._config(installed, databaseDir)
        # 16 MB holds about 10,000 users: size the map for the count.
        config = config.replace("maxsize 16777216", f"maxsize {max(16, self.count // 200) * 2**20}")
        config = config.replace("index objectClass,uid eq", "index objectClass,uid eq\nindex mail eq,sub")
        # OpenLDAP's default size limit (500) also caps paged searches in
        # total; production directories let fbtwist's name index page
        # through every user (Active Directory does by default).
        return config.replace("\ndatabase mdb", "\nsizelimit size.soft=500 size.prtotal=unlimited\ndatabase mdb", 1)

    @property
    def searchURL(self) -> str:
        """
        The RFC 4516 URL of the users, for C{--ldap} (and Apache's
        C{AuthLDAPURL}).
        """
        return f"ldap://{self.host}:{self.port}/{PEOPLE}?uid?one"


def freePort() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def waitForPort(port: int, timeout: float = 20.0, process: Optional[subprocess.Popen] = None) -> None:
    """
    Wait until something accepts connections on 127.0.0.1:C{port}.

    @raise RuntimeError: When C{process} exits first or time runs out.
    """
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process {process.args[:3]} exited with {process.returncode} while starting")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on port {port} after {timeout} s") from None
            time.sleep(0.05)


def processTreeRSS(pid: int) -> int:
    """
    The resident memory, in bytes, of C{pid} and all its descendants (0 for
    processes that are gone).
    """
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            with open(f"/proc/{current}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as f:
                    pending.extend(int(child) for child in f.read().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def childPIDs(pid: int) -> List[int]:
    children = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            children.extend(int(child) for child in f.read().split())
    return children


def stopProcess(process: Optional[subprocess.Popen], timeout: float = 10.0) -> None:
    """
    Stop a child process: SIGTERM, then SIGKILL if it is still there after
    C{timeout} seconds; nothing if it is not running (or C{None}).
    """
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def pidAlive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


class FbtwistProcess:
    """
    C{twistd -n freebusy} as a child process on a free loopback port, run
    from the source tree (C{PYTHONPATH}); without C{ldapURL} it uses the
    demo directory.

    @ivar port: The HTTP port.
    @ivar root: The calendar tree.
    @ivar rlimitNoFile: When set, the child's limit of open file
        descriptors (C{RLIMIT_NOFILE}).
    """

    def __init__(self, root: str, ldapURL: Optional[str] = None, extraArgs: Iterable[str] = (),
                 logPath: Optional[str] = None, port: Optional[int] = None, preexec_fn=None,
                 python: str = sys.executable, rlimitNoFile: Optional[int] = None):
        self.root = root
        self.rlimitNoFile = rlimitNoFile
        self.port = port or freePort()
        self.logPath = logPath or os.path.join(os.path.dirname(os.path.abspath(root)), f"fbtwist-{self.port}.log")
        self.args = [
            python, "-c", "from twisted.scripts.twistd import run; run()",
            "-n", "--pidfile=", "freebusy",
            "--http", f"tcp:{self.port}:interface=127.0.0.1", "--ftp", "none", "--root", root,
        ]
        if ldapURL is not None:
            self.args += ["--ldap", ldapURL]
        self.args += list(extraArgs)
        self.preexec_fn = preexec_fn
        self.process: Optional[subprocess.Popen] = None

    def _spawn(self) -> None:
        # Warnings would break the JSON log lines some tests read.
        env = dict(os.environ, PYTHONWARNINGS="ignore")
        env["PYTHONPATH"] = TOP + os.pathsep + env.get("PYTHONPATH", "")
        with open(self.logPath, "ab") as log:
            self.process = subprocess.Popen(
                self.args, cwd=TOP, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=self._beforeExec, close_fds=True,
            )

    def _beforeExec(self) -> None:
        if self.rlimitNoFile is not None:
            import resource

            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.rlimitNoFile, hard))
        if self.preexec_fn is not None:
            self.preexec_fn()

    def ports(self):
        """
        The ports the process listens on once started: HTTP, and FTP when
        the arguments give it a TCP port (the last C{--ftp} counts, as for
        twistd).
        """
        ftp = None
        for option, value in zip(self.args, self.args[1:]):
            if option == "--ftp":
                ftp = value
        ports = [self.port]
        if ftp is not None and ftp.startswith("tcp:"):
            ports.append(int(ftp.split(":")[1]))
        return ports

    def start(self, timeout: float = 30.0) -> "FbtwistProcess":
        """
        Start the process and block until it listens (for HTTP, and for FTP
        when asked to: the two listeners start one after the other).
        """
        self._spawn()
        try:
            for port in self.ports():
                waitForPort(port, timeout, self.process)
        except BaseException:
            self.kill()
            raise
        return self

    async def started(self, testCase, timeout: float = 30.0) -> "FbtwistProcess":
        """
        Start the process without blocking the reactor (in a trial
        C{TestCase}), killed when the test ends if it still runs.

        @return: A coroutine firing with this process once it listens.
        """
        from twisted.internet import reactor
        from twisted.internet.task import deferLater

        self._spawn()
        testCase.addCleanup(self.kill)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError("twistd exited while starting:\n" + self.log())
            try:
                for port in self.ports():
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("twistd did not start:\n" + self.log()) from None
            await deferLater(reactor, 0.05)

    async def exited(self, timeout: float = 20.0) -> int:
        """
        Wait, without blocking the reactor, for the process to exit.

        @return: A coroutine firing with its exit status.
        """
        from twisted.internet import reactor
        from twisted.internet.task import deferLater

        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError("twistd did not exit:\n" + self.log())
            await deferLater(reactor, 0.05)
        return self.process.returncode

    def signal(self, number: int = signal.SIGTERM) -> None:
        self.process.send_signal(number)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        with open(self.logPath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self, timeout: float = 15.0) -> None:
        """
        SIGTERM, then SIGKILL after C{timeout} seconds; safe to call twice.
        """
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """
        SIGKILL, and wait for the process to go.
        """
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


async def startTwistd(testCase, *args: str, root: Optional[str] = None, rlimitNoFile: Optional[int] = None):
    """
    Start fbtwist under C{twistd} with C{args} in a trial C{TestCase}, on a
    fresh calendar tree (or C{root}), with its log in the test's temporary
    folder.

    @return: A coroutine firing with the running L{FbtwistProcess}.
    """
    root = root or os.path.abspath(testCase.mktemp())
    logPath = os.path.abspath(testCase.mktemp()) + ".out"
    process = FbtwistProcess(root, extraArgs=args, logPath=logPath, rlimitNoFile=rlimitNoFile)
    return await process.started(testCase)


HAPROXY_CONFIG = """\
global
    maxconn 2048
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    option http-server-close
frontend fbtwist
    bind 127.0.0.1:{port}
    default_backend nodes
backend nodes
    balance roundrobin
{servers}
"""


class HAProxyProcess:
    """
    HAProxy (Debian package C{haproxy}) on a free loopback port, balancing
    round-robin over C{backends} (ports on 127.0.0.1).
    """

    def __init__(self, basedir: str, backends: Iterable[int]):
        os.makedirs(basedir, exist_ok=True)
        self.port = freePort()
        self.configPath = os.path.join(basedir, "haproxy.cfg")
        servers = "\n".join(f"    server node{i} 127.0.0.1:{port}" for i, port in enumerate(backends))
        with open(self.configPath, "w") as f:
            f.write(HAPROXY_CONFIG.format(port=self.port, servers=servers))
        self.logPath = os.path.join(basedir, "haproxy.log")
        self.process: Optional[subprocess.Popen] = None

    def start(self, timeout: float = 10.0) -> "HAProxyProcess":
        haproxy = shutil.which("haproxy", path=os.environ.get("PATH", "") + ":/usr/sbin")
        if haproxy is None:
            raise RuntimeError("haproxy is not installed: apt-get install haproxy")
        with open(self.logPath, "ab") as log:
            self.process = subprocess.Popen(
                [haproxy, "-db", "-f", self.configPath], stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT,
            )
        waitForPort(self.port, timeout, self.process)
        return self

    def stop(self) -> None:
        stopProcess(self.process)


def basicAuthorization(login: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{login}:{password}".encode("utf-8")).decode("ascii")


def request(port: int, method: str, path: str, body: Optional[bytes] = None,
            headers: Optional[Dict[str, str]] = None, timeout: float = 15.0) -> Tuple[int, bytes]:
    """
    One HTTP request on a new connection to 127.0.0.1:C{port}.

    @return: The status and the body.
    """
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def publish(port: int, login: str, password: str, body: bytes, name: Optional[str] = None,
            timeout: float = 15.0) -> int:
    """
    PUT C{body} as C{login}'s free/busy file; the status.
    """
    status, _ = request(
        port, "PUT", f"/pub/calendar/{name or login}.vfb", body,
        {"Authorization": basicAuthorization(login, password), "Content-Type": "text/calendar"}, timeout,
    )
    return status


def freeBusyFile(label: str, periods: int = 1) -> bytes:
    """
    A valid free/busy file, Outlook-style, of C{periods} busy periods; its
    C{label} (in ORGANIZER) tells versions apart, and every line carries it
    so that any mix of two versions is detectable.
    """
    lines = [
        "BEGIN:VCALENDAR",
        "PRODID:-//Microsoft Corporation//Outlook 16.0 MIMEDIR//EN",
        "VERSION:2.0",
        "METHOD:PUBLISH",
        "BEGIN:VFREEBUSY",
        f"ORGANIZER:{label}@example.com",
        "DTSTAMP:20210103T235558Z",
        "DTSTART:20201227T230000Z",
        "DTEND:20210228T230000Z",
    ]
    for index in range(periods):
        day, hour = 1 + index // 20 % 28, index % 20
        lines.append(f"FREEBUSY;X-V={label}:202102{day:02d}T{hour:02d}0000Z/PT30M")
    lines += ["END:VFREEBUSY", "END:VCALENDAR"]
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def versionOf(data: bytes):
    """
    The label L{freeBusyFile} put in a file, read from what a lookup
    returned (which may be rewritten for readers, so it is not compared
    byte for byte), or C{None} when the answer is no whole calendar.
    """
    text = data.decode("utf-8", "replace").replace("\r\n", "\n")
    if not text.rstrip("\n").endswith("END:VCALENDAR"):
        return None
    for line in text.splitlines():
        if line.startswith("ORGANIZER:") and line.endswith("@example.com"):
            # Readers get the address as a URI (mailto:), the owner as published.
            return line[len("ORGANIZER:"):-len("@example.com")].removeprefix("mailto:")
    return None
