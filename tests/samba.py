"""
A private, throwaway Active Directory domain controller for the test suite:
Samba's, from Debian's C{samba} packages.

Samba listens on fixed ports (LDAP on 389), so it runs in a network
namespace of its own, created for it (loopback only, nothing else in it):
test runs cannot clash with each other or with a directory on the
machine.  The tests reach it through two C{socat} relays: one inside the
namespace from a Unix socket (which crosses namespaces: it is a file) to
Samba's port 389, one outside from a loopback TCP port of the system's
choosing to that socket::

    dc = SambaDomain(tempfile.mkdtemp())
    dc.provision()                      # about 5 s
    dc.tool("user", "create", "alice", "Passw0rd-alice")
    dc.start()
    ldap://127.0.0.1:{dc.port}/DC=example,DC=test

Users and groups are best created with L{SambaDomain.tool} before
L{SambaDomain.start} (Samba's C{samba-tool} on the database files), other
attributes with L{SambaDomain.modify} (C{ldapmodify} as the administrator)
once it runs.  L{SambaDomain.stop} stops everything started and removes the
namespace; servers still running when the interpreter exits are stopped.

Nothing here imports C{fbtwist} or the reactor: the helpers block, briefly,
and are meant for fixtures.  Needs root (network namespaces), and Debian's
C{samba}, C{samba-ad-provision}, C{samba-dsdb-modules},
C{samba-vfs-modules}, C{socat} and C{ldap-utils}; L{SambaUnavailable} says
which are missing.
"""

import atexit
import os
import re
import shutil
import signal
import subprocess
import time
import weakref

from tests.slapd import _bindResultCode

REALM = "EXAMPLE.TEST"
DOMAIN = "EXAMPLE"
BASE = "DC=example,DC=test"
ADMIN = "Administrator@example.test"
ADMIN_PASSWORD = "Adm1n-Pass!word"

_PROGRAMS = {
    "samba": "samba", "samba-tool": "samba-tool (samba-ad-provision, samba-dsdb-modules, samba-vfs-modules)",
    "socat": "socat", "ldapmodify": "ldap-utils", "ip": "iproute2",
}
INSTALL_HINT = (
    "install with: apt-get install samba samba-ad-provision samba-dsdb-modules samba-vfs-modules socat ldap-utils"
)

_running = weakref.WeakSet()


@atexit.register
def _stopAll():
    for domain in list(_running):
        domain.stop()


class SambaError(Exception):
    """
    Samba could not be provisioned, started or changed.
    """


class SambaUnavailable(SambaError):
    """
    What the tests need is not installed, or this is not root.
    """


def _missing():
    missing = [package for program, package in _PROGRAMS.items() if shutil.which(program) is None]
    if os.geteuid() != 0:
        missing.append("root (for a network namespace)")
    return missing


class SambaDomain:
    """
    One domain (realm C{EXAMPLE.TEST}, NetBIOS domain C{EXAMPLE}) with one
    domain controller, in C{directory}.

    @ivar port: The loopback TCP port reaching its LDAP service, once
        started.
    """

    def __init__(self, directory):
        self.directory = os.path.abspath(directory)
        self.namespace = f"fbtwist-samba-{os.getpid()}-{id(self) & 0xffff:x}"
        self.socket = os.path.join(self.directory, "ldap.sock")
        self.port = None
        self._processes = []
        self._namespaceMade = False

    @property
    def config(self):
        return os.path.join(self.directory, "etc", "smb.conf")

    def _run(self, argv, input=None, timeout=60):
        try:
            result = subprocess.run(argv, input=input, capture_output=True, timeout=timeout, text=True)
        except subprocess.TimeoutExpired:
            raise SambaError(f"{argv[0]} did not finish in {timeout} s") from None
        if result.returncode != 0:
            raise SambaError(f"{' '.join(argv[:4])} failed ({result.returncode}): {result.stderr[-2000:]}")
        return result.stdout

    def provision(self):
        """
        Make the domain's database and configuration: RFC 2307 attributes,
        no DNS, the LDAP service only, plain LDAP simple binds allowed.

        @raise SambaUnavailable: When something needed is missing.
        """
        missing = _missing()
        if missing:
            raise SambaUnavailable(f"Samba tests need {', '.join(missing)}; {INSTALL_HINT}")
        os.makedirs(self.directory, exist_ok=True)
        self._run([
            "samba-tool", "domain", "provision", "--use-rfc2307", f"--realm={REALM}", f"--domain={DOMAIN}",
            "--server-role=dc", "--dns-backend=NONE", "--host-name=dc1", f"--adminpass={ADMIN_PASSWORD}",
            f"--targetdir={self.directory}",
            "--option=interfaces=lo", "--option=bind interfaces only=yes",
            "--option=server services=ldap", f"--option=log file={os.path.join(self.directory, 'samba.log')}",
        ], timeout=120)
        # Simple binds over plain LDAP (not kept from --option by
        # provision), and the pid file and sockets here: by default in
        # /run/samba, where a second instance would find the first's.
        own = "".join(
            f"\t{name} = {value}\n" for name, value in (
                ("ldap server require strong auth", "no"),
                ("pid directory", self.directory),
                ("ncalrpc dir", os.path.join(self.directory, "ncalrpc")),
                ("winbindd socket directory", os.path.join(self.directory, "winbindd")),
                ("ntp signd socket directory", os.path.join(self.directory, "ntp_signd")),
            )
        )
        with open(self.config, encoding="utf-8") as f:
            config = f.read()
        with open(self.config, "w", encoding="utf-8") as f:
            f.write(config.replace("[global]\n", "[global]\n" + own, 1))

    def tool(self, *args):
        """
        Run C{samba-tool ARGS} on the domain's database (before L{start}).
        """
        return self._run(["samba-tool", *args, "-H", os.path.join(self.directory, "private", "sam.ldb"),
                          "-s", self.config])

    def _spawn(self, argv):
        log = open(os.path.join(self.directory, f"{os.path.basename(argv[0])}-{len(self._processes)}.log"), "wb")
        with log:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        self._processes.append(process)
        return process, log.name

    def _inNamespace(self, *argv):
        return ["ip", "netns", "exec", self.namespace, *argv]

    def start(self, timeout=30.0):
        """
        Run Samba in a new network namespace and open the relays; return
        once it answers binds.
        """
        self._run(["ip", "netns", "add", self.namespace])
        self._namespaceMade = True
        _running.add(self)
        try:
            self._run(self._inNamespace("ip", "link", "set", "lo", "up"))
            samba, sambaLog = self._spawn(self._inNamespace("samba", "-i", "-M", "single", "-s", self.config))
            self._spawn(self._inNamespace("socat", f"UNIX-LISTEN:{self.socket},fork", "TCP:127.0.0.1:389"))
            relay, relayLog = self._spawn([
                "socat", "-d", "-d", "TCP-LISTEN:0,bind=127.0.0.1,fork,reuseaddr", f"UNIX-CONNECT:{self.socket}",
            ])
            deadline = time.monotonic() + timeout
            while self.port is None:
                with open(relayLog, "rb") as f:
                    found = re.search(rb"listening on AF=2 127\.0\.0\.1:(\d+)", f.read())
                if found:
                    self.port = int(found.group(1))
                elif relay.poll() is not None or time.monotonic() > deadline:
                    raise SambaError(f"socat did not listen: {open(relayLog, 'rb').read()[-1000:]!r}")
                else:
                    time.sleep(0.05)
            while True:
                if samba.poll() is not None:
                    raise SambaError(f"samba exited: {open(sambaLog, 'rb').read()[-2000:]!r}")
                try:
                    answer = _bindResultCode("127.0.0.1", self.port, ADMIN, ADMIN_PASSWORD, 2.0)
                except (OSError, ValueError) as e:
                    answer = e
                if answer == 0:
                    return
                if time.monotonic() > deadline:
                    raise SambaError(
                        f"samba did not accept a bind in {timeout} s (last answer: {answer!r}): "
                        f"{open(sambaLog, 'rb').read()[-2000:]!r}"
                    )
                time.sleep(0.2)
        except BaseException:
            self.stop()
            raise

    def modify(self, ldif):
        """
        Apply C{ldif} (changetype records) with C{ldapmodify} as the
        domain's administrator.
        """
        self._run(["ldapmodify", "-x", "-H", f"ldap://127.0.0.1:{self.port}", "-D", ADMIN, "-w", ADMIN_PASSWORD],
                  input=ldif)

    def bindResult(self, dn, password):
        """
        @return: The result code of a simple bind as C{dn}.
        """
        return _bindResultCode("127.0.0.1", self.port, dn, password, 5.0)

    def url(self, base=BASE, attribute="sAMAccountName", filter=""):
        return f"ldap://127.0.0.1:{self.port}/{base}?{attribute}?sub?{filter}"

    def stop(self, timeout=10.0):
        """
        Stop Samba and the relays, and remove the namespace.
        """
        processes, self._processes = self._processes, []
        for process in processes:
            # The whole group: socat's forked children too.
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for process in processes:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait()
        if self._namespaceMade:
            self._namespaceMade = False
            subprocess.run(["ip", "netns", "del", self.namespace], capture_output=True)
        _running.discard(self)
        self.port = None
