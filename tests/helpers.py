"""
Fixtures shared by the tests: sample calendars, the demo directory on
loopback, and a whole fbtwist built by L{fbtwist.tap.makeService} listening
on a free loopback port.
"""

import errno
import os
import resource
import warnings
from contextlib import contextmanager

warnings.filterwarnings("ignore", module="ldaptor")
warnings.filterwarnings("ignore", category=DeprecationWarning,
                        message=".*(pyparsing|crypt|camelCase|Deprecated call).*")

from twisted.internet import defer
from twisted.python.filepath import FilePath

from fbtwist.config import DEMO_LDIF  # noqa: F401 (for the tests that import it from here)
from fbtwist.tap import Options, makeService

#: The source tree, and its etc/.
TOP = FilePath(__file__).parent().parent()
ETC = TOP.child("etc")

#: Demo logins and passwords (fbtwist/data/demo.ldif, DEMO_LDIF).
PASSWORDS = {
    "alice": "wonderland",
    "bsmith": "builder",
    "carol": "marvel",
    "dave": "sécret-ß",
    "admin": "admin-secret",
}
ADMIN_GROUP = "cn=admins,ou=groups,dc=example,dc=com"


def outlookVFB(organizer: str = "someone@example.com", busy: str = "20210105T070000Z/20210105T073000Z",
               newline: bytes = b"\r\n") -> bytes:
    """
    A free/busy file as Outlook 16 writes it: no UID, a bare ORGANIZER, no
    FBTYPE.
    """
    lines = [
        "BEGIN:VCALENDAR",
        "PRODID:-//Microsoft Corporation//Outlook 16.0 MIMEDIR//EN",
        "VERSION:2.0",
        "METHOD:PUBLISH",
        "BEGIN:VFREEBUSY",
        f"ORGANIZER:{organizer}",
        "DTSTAMP:20210103T235558Z",
        "DTSTART:20201227T230000Z",
        "DTEND:20210228T230000Z",
        f"FREEBUSY:{busy}",
        "END:VFREEBUSY",
        "END:VCALENDAR",
    ]
    return newline.join(line.encode("utf-8") for line in lines) + newline


def freeBusy(*busy: str) -> bytes:
    """
    A free/busy file covering March and April 2025 with C{busy} periods.
    """
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN", "BEGIN:VFREEBUSY",
             "DTSTART:20250301T000000Z", "DTEND:20250501T000000Z"]
    lines += ["FREEBUSY:" + period for period in busy]
    return "\r\n".join(lines + ["END:VFREEBUSY", "END:VCALENDAR", ""]).encode("utf-8")


def availability(zone: str = "America/New_York", start: str = "090000", end: str = "170000",
                 days: str = "MO,TU,WE,TH,FR") -> bytes:
    """
    A C{VAVAILABILITY} calendar: available from C{start} to C{end} on
    C{days}, on the wall clock of C{zone}.
    """
    return "\r\n".join([
        "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN",
        "BEGIN:VAVAILABILITY", "UID:hours", "DTSTAMP:20210101T000000Z",
        "BEGIN:AVAILABLE", "UID:hours-1", "DTSTAMP:20210101T000000Z",
        f"DTSTART;TZID={zone}:20250106T{start}", f"DTEND;TZID={zone}:20250106T{end}",
        f"RRULE:FREQ=WEEKLY;BYDAY={days}",
        "END:AVAILABLE", "END:VAVAILABILITY", "END:VCALENDAR", "",
    ]).encode("utf-8")


def publicAnswer(store, uid: str, suffix: str = ".vfb") -> bytes:
    """
    What anonymous readers get of C{uid}'s published free/busy file
    (L{fbtwist.calendar.publicview.publicFreeBusy}, stamped with the file's time).
    """
    from datetime import datetime, timezone

    from fbtwist.calendar import publicview

    path = (uid + suffix,)
    stamp = datetime.fromtimestamp(int(store.stat(path).modified), timezone.utc)
    return publicview.publicFreeBusy(store.read(path), uid, stamp)


def treeNames(root) -> list:
    """
    The names at the top of the calendar tree at C{root} (a path), sorted,
    with the temporary files its staging folder holds as
    C{.uploads/<name>} (the folder itself not): what a write left
    behind shows, wherever its temporary file was made.
    """
    from fbtwist.store.files import STAGING_FOLDER

    names = [name for name in os.listdir(root) if name != STAGING_FOLDER]
    staging = os.path.join(root, STAGING_FOLDER)
    if os.path.isdir(staging):
        names += [STAGING_FOLDER + "/" + name for name in os.listdir(staging)]
    return sorted(names)


def inline(f):
    """
    Run an C{async def} test method as a Deferred (trial runs coroutines
    only through Deferreds).
    """

    def test(self):
        return defer.Deferred.fromCoroutine(f(self))

    test.__name__, test.__doc__ = f.__name__, f.__doc__
    return test


def serviceOptions(*args: str) -> Options:
    options = Options()
    options.parseOptions(list(args))
    return options


def listeningPort(service) -> defer.Deferred:
    """
    The port a started listener service (L{fbtwist.tap.ListenerService})
    listens on.
    """
    return service.whenListening()


class RunningServer:
    """
    A whole fbtwist (makeService, the real reactor) on loopback, stopped by
    the test's cleanup.
    """

    def __init__(self, testCase, *args: str):
        self.testCase = testCase
        self.root = FilePath(testCase.mktemp())
        self.args = ["--http", "tcp:0:interface=127.0.0.1", "--ftp", "none", "--root", self.root.path, *args]

    async def start(self) -> "RunningServer":
        from twisted.internet import reactor

        self.service = makeService(serviceOptions(*self.args), reactor=reactor)
        self.service.startService()
        self.testCase.addCleanup(lambda: defer.Deferred.fromCoroutine(self.stop()))
        port = await listeningPort(self.service.getServiceNamed("http"))
        self.port = port.getHost().port
        self.store = self.service.store
        self.directory = self.service.directory
        return self

    async def stop(self) -> None:
        self.directory.close()
        await defer.maybeDeferred(self.service.stopService)
        await self.service.getServiceNamed("http").factory.disconnectAll()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


async def startServer(testCase, *args: str) -> RunningServer:
    return await RunningServer(testCase, *args).start()


async def startServerOnSlapd(testCase, ldif: str, *args: str, schema: str = None) -> RunningServer:
    """
    A throwaway slapd (plain LDAP, L{tests.slapd.SlapdServer}) holding
    C{ldif}, and a whole fbtwist (L{startServer} with C{args}) whose
    directory it is: people below C{ou=people} by uid, with a filter that
    matches people only (as administrators write it), groups below
    C{ou=groups}.  Both are stopped by the test's cleanup.

    @return: The server, with its C{slapd} and a C{http} client of it.
    """
    from tests.slapd import GROUPS, PEOPLE, SlapdServer

    slapd = SlapdServer(testCase.mktemp(), ldif, tls=False, schema=schema)
    slapd.start()
    testCase.addCleanup(slapd.stop)
    url = f"ldap://127.0.0.1:{slapd.port}/{PEOPLE}?uid?one?(objectClass=inetOrgPerson)"
    server = await startServer(testCase, "--ldap", url, "--group-base", GROUPS, *args)
    server.slapd = slapd
    server.http = httpClient(testCase)
    return server


def httpClient(testCase):
    """
    A treq client whose connections are closed by the test's cleanup.
    """
    import treq
    from twisted.internet import reactor
    from twisted.web.client import Agent, HTTPConnectionPool

    pool = HTTPConnectionPool(reactor, persistent=True)
    testCase.addCleanup(pool.closeCachedConnections)
    return treq.client.HTTPClient(Agent(reactor, pool=pool))


def logEvents(testCase) -> list:
    """
    A list that receives every log event until C{testCase} ends.
    """
    from twisted.logger import globalLogPublisher

    events = []
    globalLogPublisher.addObserver(events.append)
    testCase.addCleanup(globalLogPublisher.removeObserver, events.append)
    return events


def exhaustDescriptors(held: list) -> None:
    """
    Open C{os.devnull} until this process has no file descriptor left,
    adding the descriptors to C{held}.
    """
    while True:
        try:
            held.append(os.open(os.devnull, os.O_RDONLY))
        except OSError as e:
            if e.errno != errno.EMFILE:
                raise
            return


@contextmanager
def descriptorsExhausted():
    """
    Run the block with no free file descriptor in this process (the soft
    limit lowered to a little above those open, the rest taken).

    @return: The descriptors taken (a list): the block may take more with
        L{exhaustDescriptors} once it freed some.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    held = []
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(int(n) for n in os.listdir("/proc/self/fd")) + 16, hard))
    try:
        exhaustDescriptors(held)
        yield held
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def basicAuth(login: str, password: str = None) -> dict:
    """
    An Authorization header for C{login} (its demo password by default).
    """
    import base64

    password = PASSWORDS[login] if password is None else password
    token = base64.b64encode(f"{login}:{password}".encode("utf-8"))
    return {b"Authorization": [b"Basic " + token]}


async def rawRequest(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """
    Send C{data} as-is over a new loopback connection and return all that
    comes back until the server closes it (for requests a client library
    would normalise, and for checking what the server does not read).
    """
    from twisted.internet import protocol, reactor
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

    class Collect(protocol.Protocol):
        def __init__(self):
            self.received = []
            self.done = defer.Deferred()

        def connectionMade(self):
            self.transport.write(data)

        def dataReceived(self, chunk):
            self.received.append(chunk)

        def connectionLost(self, reason):
            self.done.callback(b"".join(self.received))

    proto = await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), Collect())
    timer = reactor.callLater(timeout, proto.transport.abortConnection)
    result = await proto.done
    if timer.active():
        timer.cancel()
    return result


def statusOf(response: bytes) -> int:
    """
    The status code of the last response in C{response} (after any
    C{100 Continue}).
    """
    lines = [line for line in response.split(b"\r\n") if line.startswith(b"HTTP/1.")]
    return int(lines[-1].split()[1])
