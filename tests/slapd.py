"""
A private, throwaway OpenLDAP C{slapd} for the test suite.

L{SlapdServer} writes a C{slapd.conf}, a test PKI and an MDB database under a
directory the test owns (usually C{self.mktemp()}), loads an LDIF with
C{slapadd}, and runs C{slapd} as a child process listening on 127.0.0.1 only::

    server = SlapdServer(self.mktemp(), ldif)
    server.start()
    self.addCleanup(server.stop)
    endpoint = HostnameEndpoint(reactor, server.host, server.port)

C{stop()} then C{start()} brings the same directory back on the same ports,
with the same data, which is what outage and recovery tests need;
C{pause()} and C{resume()} freeze it so that it accepts connections but never
answers, which is what timeout tests need.

Every wait is bounded. Nothing here imports C{fbtwist} or the reactor: the
helpers block, briefly, and are meant for C{setUp} and test bodies.

C{slapd} and C{slapadd} come from Debian's C{slapd} package; C{ldapsearch} is
not needed. Where they are missing L{SlapdServer.start} raises
L{SlapdUnavailable}, whose message says how to install them.
"""

import atexit
import base64
import datetime
import hashlib
import ipaddress
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
import weakref

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "SlapdError",
    "SlapdServer",
    "SlapdUnavailable",
    "hashPassword",
    "slapdAvailable",
]

INSTALL_HINT = "install with: apt-get install slapd ldap-utils"

# Where Debian (first) and other distributions keep slapd's pieces.
_SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/libexec")
_SCHEMA_DIRS = (
    "/etc/ldap/schema",
    "/etc/openldap/schema",
    "/usr/local/etc/openldap/schema",
)
_MODULE_DIRS = (
    "/usr/lib/ldap",
    "/usr/lib64/openldap",
    "/usr/lib/openldap",
    "/usr/local/libexec/openldap",
)
_SCHEMAS = ("core", "cosine", "inetorgperson", "nis")

# How many fresh port pairs start() tries when another process takes a port
# between our probe and slapd's bind.
_PORT_ATTEMPTS = 5

# slapd's message when a listener's port is taken (EADDRINUSE).
_ADDRESS_IN_USE = re.compile(rb"bind\(\d+\) failed errno=98\b")

# Servers still running when the interpreter exits are stopped, so an
# aborted test run does not leave slapd processes behind.
_running = weakref.WeakSet()


@atexit.register
def _stopAll():
    for server in list(_running):
        server.stop()


class SlapdError(Exception):
    """
    slapd could not be prepared, started or stopped. The message includes
    slapd's own output where there is any.
    """


class SlapdUnavailable(SlapdError):
    """
    The OpenLDAP server programs (C{slapd}, C{slapadd}) or their schema
    files are not installed.
    """


def _findProgram(name):
    searchPath = os.pathsep.join(
        [os.environ.get("PATH", os.defpath), *_SBIN_DIRS]
    )
    return shutil.which(name, path=searchPath)


def _firstDirectory(candidates, wanted=lambda path: True):
    for candidate in candidates:
        if os.path.isdir(candidate) and wanted(candidate):
            return candidate
    return None


def _hasSchemas(directory):
    return all(
        os.path.isfile(os.path.join(directory, name + ".schema"))
        for name in _SCHEMAS
    )


def _hasMDBModule(directory):
    return any(
        os.path.exists(os.path.join(directory, "back_mdb" + extension))
        for extension in (".so", ".la")
    )


def _installation():
    """
    Find slapd's programs and files.

    @return: a L{dict} with the keys C{slapd}, C{slapadd}, C{schemaDir} and
        C{moduleDir} (L{None} when back_mdb is built into slapd).
    @raise SlapdUnavailable: if something needed is missing.
    """
    slapd = _findProgram("slapd")
    slapadd = _findProgram("slapadd")
    schemaDir = _firstDirectory(_SCHEMA_DIRS, _hasSchemas)
    missing = [
        what
        for what, found in [
            ("slapd", slapd),
            ("slapadd", slapadd),
            ("the core/cosine/inetorgperson/nis schema files", schemaDir),
        ]
        if found is None
    ]
    if missing:
        raise SlapdUnavailable(
            "OpenLDAP is not installed (missing: {}); {}".format(
                ", ".join(missing), INSTALL_HINT
            )
        )
    return {
        "slapd": slapd,
        "slapadd": slapadd,
        "schemaDir": schemaDir,
        "moduleDir": _firstDirectory(_MODULE_DIRS, _hasMDBModule),
    }


def slapdAvailable():
    """
    Tell whether L{SlapdServer} can run here.

    @return: C{True} if C{slapd}, C{slapadd} and the schema files it needs
        are installed.
    @rtype: L{bool}
    """
    try:
        _installation()
    except SlapdUnavailable:
        return False
    return True


def hashPassword(plain, salt=None):
    """
    Hash a password the way OpenLDAP's C{slappasswd} does by default, for a
    C{userPassword} value in LDIF.

    @param plain: the password; a L{str} is encoded as UTF-8.
    @type plain: L{str} or L{bytes}
    @param salt: the salt, for reproducible output; 8 random bytes if
        omitted.
    @type salt: L{bytes} or L{None}
    @return: C{"{SSHA}"} followed by base64 of SHA-1(password + salt) + salt.
    @rtype: L{str}
    """
    if isinstance(plain, str):
        plain = plain.encode("utf-8")
    if salt is None:
        salt = os.urandom(8)
    digest = hashlib.sha1(plain + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode("ascii")


#: Where the test directories keep their people and their groups.
PEOPLE = "ou=people,dc=example,dc=com"
GROUPS = "ou=groups,dc=example,dc=com"


def ldifEntry(dn, *objectClasses, **attributes):
    """
    One LDIF record, ending with its blank line.

    @param dn: the entry's DN.
    @param objectClasses: its object classes.
    @param attributes: its attributes (a list or tuple for several values;
        L{None} for none).
    @return: the record (L{str}).
    """
    lines = [f"dn: {dn}"] + [f"objectClass: {c}" for c in objectClasses]
    for name, values in attributes.items():
        if values is None:
            continue
        for value in values if isinstance(values, (list, tuple)) else [values]:
            lines.append(f"{name}: {value}")
    return "\n".join(lines) + "\n\n"


def unitEntry(dn):
    """
    An C{organizationalUnit} record for C{dn} (C{ou=NAME,...}).
    """
    return ldifEntry(dn, "organizationalUnit", ou=dn.split(",", 1)[0].split("=", 1)[1])


def personEntry(rdn, cn, sn, uid=None, mail=None, password=None, parent=PEOPLE, **more):
    """
    An C{inetOrgPerson} record named C{rdn} under C{parent}.

    @param password: the plain password, stored hashed (L{hashPassword});
        L{None} for none.
    """
    return ldifEntry(f"{rdn},{parent}", "inetOrgPerson", uid=uid, cn=cn, sn=sn, mail=mail,
                     userPassword=None if password is None else hashPassword(password), **more)


def aliceAndEveLDIF(alicePassword=None, evePassword=None):
    """
    The people and groups units; alice (named by her uid) and Eve (named by
    her C{cn}, with uid C{eve}: a member DN that the login attribute does
    not name), and the C{groupOfNames} C{team} of both.
    """
    return (
        unitEntry(PEOPLE) + unitEntry(GROUPS)
        + personEntry("uid=alice", "Alice", "Liddell", uid="alice", mail="alice@example.com",
                      password=alicePassword)
        + personEntry("cn=Eve Example", "Eve Example", "Example", uid="eve", mail="eve@example.com",
                      password=evePassword)
        + ldifEntry(f"cn=team,{GROUPS}", "groupOfNames", cn="team",
                    member=[f"uid=alice,{PEOPLE}", f"cn=Eve Example,{PEOPLE}"])
    )


def _freePort():
    """
    @return: a TCP port on 127.0.0.1 that nothing listens on right now.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _normalizeDN(dn):
    # Good enough for test data: case and spaces around separators.
    return re.sub(r"\s*([,=+])\s*", r"\1", dn.strip()).lower()


def _ldifDNs(ldif):
    """
    @return: the normalised DN of every record in C{ldif} (str).
    """
    unfolded = re.sub(r"\r?\n ", "", ldif)
    dns = []
    for line in unfolded.splitlines():
        if line.lower().startswith("dn::"):
            dns.append(base64.b64decode(line[4:].strip()).decode("utf-8"))
        elif line.lower().startswith("dn:"):
            dns.append(line[3:])
    return {_normalizeDN(dn) for dn in dns}


def _baseEntry(suffix):
    """
    @return: LDIF for the entry named C{suffix}, whose first RDN must be a
        single C{dc=}, C{o=} or C{ou=}.
    @raise ValueError: for any other suffix.
    """
    match = re.fullmatch(r"\s*(dc|o|ou)\s*=\s*([^,+=\\]+?)\s*(,.*)?", suffix,
                         re.IGNORECASE)
    if match is None:
        raise ValueError(
            "the LDIF has no entry for the suffix {!r}, and one can be made "
            "only for a dc=, o= or ou= suffix: add it to the LDIF".format(
                suffix
            )
        )
    attribute, value = match.group(1).lower(), match.group(2)
    objectClasses = {
        "dc": ["dcObject", "organization"],
        "o": ["organization"],
        "ou": ["organizationalUnit"],
    }[attribute]
    lines = ["dn: " + suffix]
    lines += ["objectClass: " + name for name in objectClasses]
    lines.append("{}: {}".format(attribute, value))
    if attribute == "dc":
        lines.append("o: " + value)
    return "\n".join(lines) + "\n"


def _writeFile(path, data, mode=0o644):
    if isinstance(data, str):
        data = data.encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


class _TestPKI:
    """
    A self-signed test CA with one server certificate, plus a second,
    unrelated CA.

    @param commonName: the server certificate's subject CN.
    @param altNames: its subjectAltName entries: DNS names and IP
        addresses (as text; C{"DNS:"} in front makes an address a DNS
        name); none leaves the extension out.
    @param expired: whether it expired yesterday.
    """

    def __init__(self, commonName="localhost", altNames=("localhost", "127.0.0.1"), expired=False):
        self.caKey, self.caCert = self._makeCA("fbtwist test CA")
        _, self.otherCACert = self._makeCA("fbtwist unrelated test CA")
        self.serverKey = ec.generate_private_key(ec.SECP256R1())
        extensions = [
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                True,
            ),
            (
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                False,
            ),
            (
                x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self.caKey.public_key()
                ),
                False,
            ),
        ]
        if altNames:
            extensions.append(
                (x509.SubjectAlternativeName([_generalName(n) for n in altNames]), False)
            )
        self.serverCert = self._sign(
            self._name(commonName),
            self.serverKey.public_key(),
            extensions,
            issuer=self.caCert.subject,
            signingKey=self.caKey,
            expired=expired,
        )

    @staticmethod
    def _name(commonName):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, commonName)])

    @staticmethod
    def _sign(subject, publicKey, extensions, issuer, signingKey, expired=False):
        now = datetime.datetime.now(datetime.timezone.utc)
        notAfter = now - datetime.timedelta(days=1) if expired else now + datetime.timedelta(days=30)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(publicKey)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=2))
            .not_valid_after(notAfter)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(publicKey), False
            )
        )
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical)
        return builder.sign(signingKey, hashes.SHA256())

    @classmethod
    def _makeCA(cls, commonName):
        key = ec.generate_private_key(ec.SECP256R1())
        name = cls._name(commonName)
        cert = cls._sign(
            name,
            key.public_key(),
            [
                (x509.BasicConstraints(ca=True, path_length=0), True),
                (
                    x509.KeyUsage(
                        digital_signature=False,
                        content_commitment=False,
                        key_encipherment=False,
                        data_encipherment=False,
                        key_agreement=False,
                        key_cert_sign=True,
                        crl_sign=True,
                        encipher_only=False,
                        decipher_only=False,
                    ),
                    True,
                ),
            ],
            issuer=name,
            signingKey=key,
        )
        return key, cert


def _generalName(name):
    # "DNS:" forces a DNS name (even one that looks like an address).
    if name.startswith("DNS:"):
        return x509.DNSName(name[4:])
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


# A hand-made LDAP simple bind (RFC 4511), so that readiness checks need
# neither ldapsearch nor a reactor.
def _berLength(length):
    if length < 0x80:
        return bytes([length])
    encoded = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(encoded)]) + encoded


def _ber(tag, content):
    return bytes([tag]) + _berLength(len(content)) + content


def _berSplit(data):
    """
    Split one BER TLV off the front of C{data}.

    @return: C{(tag, content, rest)}, or L{None} if C{data} holds only part
        of it.
    """
    if len(data) < 2:
        return None
    tag, first = data[0], data[1]
    offset = 2
    if first < 0x80:
        length = first
    else:
        size = first & 0x7F
        if len(data) < offset + size:
            return None
        length = int.from_bytes(data[offset:offset + size], "big")
        offset += size
    if len(data) < offset + length:
        return None
    return tag, data[offset:offset + length], data[offset + length:]


def _bindResultCode(host, port, dn, password, timeout):
    """
    Bind to an LDAP server with a blocking socket.

    @return: the bind's LDAP result code (0 is success).
    @raise OSError: if the server cannot be reached or does not answer in
        time.
    @raise ValueError: if the answer is not an LDAP bind response.
    """
    request = _ber(
        0x30,
        _ber(0x02, b"\x01")
        + _ber(
            0x60,
            _ber(0x02, b"\x03")
            + _ber(0x04, dn.encode("utf-8"))
            + _ber(0x80, password.encode("utf-8")),
        ),
    )
    unbind = _ber(0x30, _ber(0x02, b"\x02") + _ber(0x42, b""))
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(request)
        received = b""
        while (message := _berSplit(received)) is None:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionResetError("connection closed before a reply")
            received += chunk
        sock.sendall(unbind)
    tag, content, _ = message
    split = _berSplit(content)  # the message ID
    if tag != 0x30 or split is None:
        raise ValueError("not an LDAP message: {!r}".format(received))
    split = _berSplit(split[2])  # the protocol operation
    if split is None or split[0] != 0x61:
        raise ValueError("not a bind response: {!r}".format(received))
    result = _berSplit(split[1])
    if result is None or result[0] != 0x0A:
        raise ValueError("bind response without result: {!r}".format(received))
    return int.from_bytes(result[1], "big")


class _AddressInUse(SlapdError):
    """
    slapd could not listen because another process holds a port.
    """


class SlapdServer:
    """
    A throwaway OpenLDAP server on 127.0.0.1, confined to one directory.

    The database holds C{ldif}, loaded once by the first L{start} with
    C{slapadd}. If C{ldif} has no entry named C{suffix}, one is added in
    front of it (C{dcObject} + C{organization} for C{dc=}, C{organization}
    for C{o=}, C{organizationalUnit} for C{ou=}; any other suffix must be in
    the LDIF).

    Access control, as a production directory would have it: C{userPassword}
    can be used to bind (C{by anonymous auth}) and changed by its owner, and
    is readable by nobody but the root DN; everything else is readable by
    anyone, anonymous clients included. The root DN bypasses access control.

    With C{tls} (the default) the server speaks LDAPS on L{ldapsPort} and
    StartTLS on L{port}, with a certificate for DNS name C{localhost} and IP
    127.0.0.1 issued by the CA in L{caCertPath}. Connect by address
    (C{HostnameEndpoint(reactor, server.host, port)}) and verify the name
    C{localhost}: the server does not listen on IPv6, where C{localhost}
    may resolve first. L{otherCACertPath} is an unrelated CA that must not
    verify it. (OpenLDAP's own clients, C{ldapsearch} included, check the
    machine's host name when told C{localhost}: give them L{ldapsUrl},
    which names 127.0.0.1, also in the certificate.)

    Ports are chosen by the first L{start} and kept for the life of the
    object; until then L{port} and L{ldapsPort} are L{None}. The first
    L{start} also replaces any database left in C{basedir}; later ones keep
    it.

    Files under C{basedir}: C{slapd.conf}, C{data.ldif}, C{db/} (the MDB
    database), C{slapd.pid}, C{slapd.log} (slapd's output, all runs) and
    C{tls/} (C{ca.pem}, C{other-ca.pem}, C{server.pem}, C{server.key}).

    @ivar host: the address slapd listens on, C{"127.0.0.1"}.
    @ivar port: the plain LDAP (and StartTLS) port.
    @ivar ldapsPort: the LDAPS port, or L{None} without C{tls}.
    @ivar suffix: the database suffix (base DN).
    @ivar rootDN: the DN of the database's administrator, C{cn=admin,}
        followed by C{suffix}.
    @ivar rootPassword: its password (L{str}).
    @ivar caCertPath: the PEM file of the CA that issued the server's
        certificate, or L{None} without C{tls}.
    @ivar otherCACertPath: the PEM file of an unrelated CA, or L{None}
        without C{tls}.
    @ivar serverCertPath: the PEM file of the server's certificate, or
        L{None} without C{tls}.
    @ivar basedir: the absolute path of the directory holding it all.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        basedir,
        ldif,
        tls=True,
        suffix="dc=example,dc=com",
        rootPassword=None,
        startTimeout=10.0,
        certificate=None,
        schema="",
    ):
        """
        Describe the server; nothing is written or started until L{start}.

        @param basedir: a directory for the server's files; created if
            missing. C{self.mktemp()} in a trial test.
        @type basedir: L{str} or L{os.PathLike}
        @param ldif: the directory's entries, as LDIF text.
        @type ldif: L{str}
        @param tls: whether to configure LDAPS and StartTLS.
        @param suffix: the database suffix (base DN).
        @param rootPassword: the root DN's password; a random one if
            omitted.
        @type rootPassword: L{str} or L{None}
        @param startTimeout: seconds L{start} waits for slapd to answer.
        @param certificate: how the server certificate differs from the
            usual one, as keyword arguments: C{commonName} (its CN),
            C{altNames} (its subjectAltName DNS names and IP addresses;
            empty for none), C{expired}.
        @type certificate: L{dict} or L{None}
        @param schema: more schema, in C{slapd.conf} syntax
            (C{attributetype} and C{objectclass} lines), for entries the
            usual schema files cannot hold.
        @type schema: L{str}
        """
        self.basedir = os.path.abspath(os.fspath(basedir))
        self.schema = schema
        self.ldif = ldif
        self.tls = tls
        self.suffix = suffix
        self.rootDN = "cn=admin," + suffix
        if rootPassword is None:
            rootPassword = secrets.token_urlsafe(16)
        self.rootPassword = rootPassword
        self.startTimeout = startTimeout
        self.certificate = dict(certificate or {})
        self.port = None
        self.ldapsPort = None
        self._tlsDir = os.path.join(self.basedir, "tls")
        if tls:
            self.caCertPath = os.path.join(self._tlsDir, "ca.pem")
            self.otherCACertPath = os.path.join(self._tlsDir, "other-ca.pem")
            self.serverCertPath = os.path.join(self._tlsDir, "server.pem")
        else:
            self.caCertPath = self.otherCACertPath = None
            self.serverCertPath = None
        self._configPath = os.path.join(self.basedir, "slapd.conf")
        self._pidPath = os.path.join(self.basedir, "slapd.pid")
        self._logPath = os.path.join(self.basedir, "slapd.log")
        self._installed = None
        self._process = None

    @property
    def url(self):
        """
        C{ldap://127.0.0.1:PORT/}, or L{None} before the first L{start}.
        """
        if self.port is None:
            return None
        return "ldap://{}:{}/".format(self.host, self.port)

    @property
    def ldapsUrl(self):
        """
        C{ldaps://127.0.0.1:PORT/}, or L{None} before the first L{start} or
        without C{tls}.
        """
        if self.ldapsPort is None:
            return None
        return "ldaps://{}:{}/".format(self.host, self.ldapsPort)

    @property
    def running(self):
        """
        Whether the slapd process started by L{start} is alive.
        """
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self):
        """
        The slapd process ID, or L{None} when stopped.
        """
        return None if self._process is None else self._process.pid

    def start(self):
        """
        Start slapd and wait until it answers an LDAP bind as L{rootDN}.

        The first call writes the configuration, certificates and database
        and picks the ports (retrying with new ones if another process takes
        one first); later calls restart the same directory on the same
        ports.

        @raise SlapdUnavailable: if OpenLDAP is not installed.
        @raise SlapdError: if slapd is already running, cannot load the
            LDIF, exits, or does not answer within C{startTimeout} seconds.
        """
        if self._process is not None:
            raise SlapdError("slapd is already running (pid {})".format(
                self._process.pid))
        if self._installed is None:
            installed = _installation()
            self._prepare(installed)
            self._installed = installed
        if self.port is not None:
            self._launch()
            return
        for attempt in range(_PORT_ATTEMPTS):
            self.port = _freePort()
            if self.tls:
                while (ldapsPort := _freePort()) == self.port:
                    pass
                self.ldapsPort = ldapsPort
            try:
                self._launch()
            except _AddressInUse:
                if attempt == _PORT_ATTEMPTS - 1:
                    self.port = self.ldapsPort = None
                    raise
            else:
                return

    def stop(self, timeout=10.0):
        """
        Stop slapd (SIGTERM, then SIGKILL after C{timeout} seconds) and wait
        for it to exit. Its data and ports stay, for a later L{start}. Does
        nothing if it is not running, so it suits C{addCleanup}.

        @raise SlapdError: if slapd survives even SIGKILL for 5 seconds.
        """
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            # A stopped (paused) process would hold SIGTERM until resumed.
            process.send_signal(signal.SIGCONT)
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    raise SlapdError(
                        "slapd (pid {}) did not exit".format(process.pid)
                    ) from None
        self._process = None
        _running.discard(self)

    def pause(self, timeout=5.0):
        """
        Freeze slapd (SIGSTOP): the kernel still accepts connections, but no
        request is answered until L{resume}. For timeout tests.

        Returns once every slapd thread has stopped (where C{/proc} shows
        it): kill() returns before they do, and a request sent in between
        can still be answered.

        @raise SlapdError: if slapd is not running, or its threads have not
            all stopped within C{timeout} seconds.
        """
        self._signal(signal.SIGSTOP)
        deadline = time.monotonic() + timeout
        while not self._allThreadsStopped():
            if time.monotonic() > deadline:
                raise SlapdError(
                    "slapd (pid {}) did not stop within {} s".format(
                        self._process.pid, timeout
                    )
                )
            time.sleep(0.001)

    def _allThreadsStopped(self):
        """
        @return: whether every thread of slapd is stopped, or C{True} if
            there is no C{/proc} to tell.
        """
        taskDir = "/proc/{}/task".format(self._process.pid)
        try:
            threads = os.listdir(taskDir)
        except FileNotFoundError:
            return True
        for thread in threads:
            try:
                with open(os.path.join(taskDir, thread, "stat")) as f:
                    stat = f.read()
            except FileNotFoundError:  # The thread has just exited.
                continue
            # The state follows the command name, which is in parentheses.
            if stat.rpartition(")")[2].split()[0] not in ("T", "t"):
                return False
        return True

    def resume(self):
        """
        Undo L{pause} (SIGCONT).

        @raise SlapdError: if slapd is not running.
        """
        self._signal(signal.SIGCONT)

    def _signal(self, signum):
        if not self.running:
            raise SlapdError("slapd is not running")
        self._process.send_signal(signum)

    def _prepare(self, installed):
        """
        Write the TLS files, C{slapd.conf} and the LDIF, and load the LDIF
        into a new database.
        """
        if _normalizeDN(self.suffix) in _ldifDNs(self.ldif):
            ldif = self.ldif
        else:
            ldif = _baseEntry(self.suffix) + "\n" + self.ldif
        databaseDir = os.path.join(self.basedir, "db")
        # Start empty, also after a failed first start: slapadd only adds.
        shutil.rmtree(databaseDir, ignore_errors=True)
        os.makedirs(databaseDir)
        if self.tls:
            self._writePKI()
        _writeFile(self._configPath, self._config(installed, databaseDir))
        ldifPath = os.path.join(self.basedir, "data.ldif")
        _writeFile(ldifPath, ldif)
        self._run(
            [installed["slapadd"], "-q", "-f", self._configPath, "-l", ldifPath]
        )

    def _writePKI(self):
        os.makedirs(self._tlsDir, exist_ok=True)
        pki = _TestPKI(**self.certificate)
        _writeFile(self.caCertPath, _pem(pki.caCert))
        _writeFile(self.otherCACertPath, _pem(pki.otherCACert))
        _writeFile(self.serverCertPath, _pem(pki.serverCert))
        _writeFile(
            os.path.join(self._tlsDir, "server.key"),
            pki.serverKey.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            mode=0o600,
        )

    def _config(self, installed, databaseDir):
        def quoted(value):
            return '"{}"'.format(value.replace("\\", "\\\\").replace('"', '\\"'))

        lines = ["# Written by tests/slapd.py: a throwaway test directory."]
        lines += [
            "include " + quoted(
                os.path.join(installed["schemaDir"], name + ".schema"))
            for name in _SCHEMAS
        ]
        if self.schema:
            extra = os.path.join(self.basedir, "extra.schema")
            _writeFile(extra, self.schema)
            lines.append("include " + quoted(extra))
        lines += [
            "pidfile " + quoted(self._pidPath),
            "argsfile " + quoted(os.path.join(self.basedir, "slapd.args")),
        ]
        if installed["moduleDir"] is not None:
            lines += [
                "modulepath " + quoted(installed["moduleDir"]),
                "moduleload back_mdb",
            ]
        if self.tls:
            lines += [
                "TLSCACertificateFile " + quoted(self.caCertPath),
                "TLSCertificateFile " + quoted(self.serverCertPath),
                "TLSCertificateKeyFile " + quoted(
                    os.path.join(self._tlsDir, "server.key")),
            ]
        lines += [
            "",
            "database mdb",
            "maxsize 16777216",
            "suffix " + quoted(self.suffix),
            "rootdn " + quoted(self.rootDN),
            "rootpw " + hashPassword(self.rootPassword),
            "directory " + quoted(databaseDir),
            "index objectClass,uid eq",
            "",
            "access to attrs=userPassword",
            "    by anonymous auth",
            "    by self write",
            "    by * none",
            "access to *",
            "    by * read",
            "",
        ]
        return "\n".join(lines)

    def _run(self, argv):
        try:
            result = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=self.startTimeout,
            )
        except subprocess.TimeoutExpired as e:
            raise SlapdError(
                "{} did not finish in {} s:\n{}".format(
                    argv[0], self.startTimeout, (e.output or b"").decode(
                        "utf-8", "replace")
                )
            ) from e
        if result.returncode != 0:
            raise SlapdError(
                "{} failed with status {}:\n{}".format(
                    " ".join(argv),
                    result.returncode,
                    result.stdout.decode("utf-8", "replace"),
                )
            )

    def _launch(self):
        """
        Run slapd on the chosen ports and wait until it answers.

        @raise _AddressInUse: if one of the ports is taken.
        @raise SlapdError: if slapd exits or does not answer in time.
        """
        urls = ["ldap://{}:{}/".format(self.host, self.port)]
        if self.tls:
            urls.append("ldaps://{}:{}/".format(self.host, self.ldapsPort))
        # -d keeps slapd in the foreground, our child; level "none" prints
        # only startup messages and fatal errors (-d 0 would hide those).
        argv = [
            self._installed["slapd"],
            "-f", self._configPath,
            "-h", " ".join(urls),
            "-d", "none",
        ]
        with open(self._logPath, "ab") as log:
            logOffset = log.tell()
            self._process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                close_fds=True,
            )
        _running.add(self)
        try:
            self._waitUntilReady(logOffset)
        except BaseException:
            self.stop()
            raise

    def _logSince(self, offset):
        with open(self._logPath, "rb") as log:
            log.seek(offset)
            return log.read()

    def _waitUntilReady(self, logOffset):
        deadline = time.monotonic() + self.startTimeout
        lastProblem = "no answer"
        while True:
            status = self._process.poll()
            if status is not None:
                output = self._logSince(logOffset)
                error = _AddressInUse if _ADDRESS_IN_USE.search(output) \
                    else SlapdError
                raise error(
                    "slapd exited with status {} while starting:\n{}".format(
                        status, output.decode("utf-8", "replace")
                    )
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SlapdError(
                    "slapd did not answer on {} within {} s ({}); its "
                    "output:\n{}".format(
                        self.url,
                        self.startTimeout,
                        lastProblem,
                        self._logSince(logOffset).decode("utf-8", "replace"),
                    )
                )
            try:
                # A successful bind with our random root password proves the
                # answer comes from our slapd, not a stranger on the port.
                code = _bindResultCode(
                    self.host,
                    self.port,
                    self.rootDN,
                    self.rootPassword,
                    timeout=min(1.0, remaining),
                )
            except (OSError, ValueError) as e:
                lastProblem = repr(e)
            else:
                if code == 0:
                    return
                lastProblem = "bind as {} gave result code {}".format(
                    self.rootDN, code
                )
            time.sleep(0.01)

    def __repr__(self):
        return "<SlapdServer {} {} in {}>".format(
            self.url or "(not started)",
            "running" if self.running else "stopped",
            self.basedir,
        )
