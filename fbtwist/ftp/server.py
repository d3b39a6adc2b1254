"""
The FTP server Outlook 98 publishes to: Twisted's C{twisted.protocols.ftp}
with its defects worked around (docs/library-notes.rst), logging in
through the same portal as HTTP and acting through
L{fbtwist.ftp.shell.CalendarFTPShell}.

What differs from Twisted's C{FTP}, and why:

 - B{Login}: USER/PASS become L{UsernamePassword} credentials carrying the
   client's address (C{peer}); wrong credentials are 530, a directory that
   cannot answer (or throttled logins) 421 and the connection is closed.
   Three failed logins in one session close it too.
 - B{TYPE A} converts line ends with L{CRLFLineEnds} (Twisted's converter
   crashes on Python 3).  An ASCII upload is stored with CRLF line ends,
   iCalendar's own (RFC 5545), also when a Unix client sent CR CR LF; an
   ASCII download sends CRLF line ends.
 - B{Bare NLST} and bare LIST list the working directory.
 - B{Replies never fail to format}: reply templates without C{%s} (552,
   553, ...) are sent as they are, and the shell's errors carry their own
   reply text.
 - B{PORT/EPRT} connect only to the client's own address and to ports from
   1024 up (no FTP bounce); a passive data connection is accepted only from
   the client's own address.
 - B{PASV/EPSV} reply at once; the command that needs the data connection
   waits for it (Twisted stops reading commands until it arrives).  The
   data port is opened on the address the client reached us at, in
   C{--ftp-passive-ports}, and PASV announces C{--ftp-passive-host} when set.
   A data port whose connection does not come within C{--ftp-data-timeout}
   is closed then (Twisted keeps it until the session ends).
 - B{STOR} writes to a temporary file (Twisted truncates the published file
   first), bounded by C{--max-upload} (552), validated when the data
   connection closes, committed atomically, and only then answered 226.
   Anything else (rejection, a broken data or control connection, no data
   connection at all) aborts it and leaves the published file untouched.
 - B{Idle timeout} counts commands and data alike, and is answered 421;
   B{connections per client address} are capped (421).
 - B{Out of file descriptors}, a command is answered 421 and the session
   closed; L{CalendarFTPFactory.outOfDescriptors} warns once a minute at
   most.
 - Commands are decoded as UTF-8 where they are valid UTF-8 (path names),
   replies are sent in UTF-8 (FEAT announces UTF8).
 - B{Explicit FTPS} (RFC 4217; Twisted has none) when a certificate is
   configured: AUTH TLS, PBSZ, PROT P/C, and TLS on data connections; with
   C{--ftp-tls-required}, USER is refused before AUTH TLS.
"""

import fnmatch
import ipaddress
import itertools
import random
import re
from typing import Optional

from twisted.cred.credentials import Anonymous, UsernamePassword
from twisted.cred.error import LoginFailed, UnauthorizedLogin, UnhandledCredentials
from twisted.internet import defer, interfaces, protocol
from twisted.internet.error import CannotListenError, ConnectionDone
from twisted.logger import Logger
from twisted.protocols import ftp
from zope.interface import implementer

from fbtwist.access.checker import credentialText
from fbtwist.addresses import normalisedHost
from fbtwist.budget import ConnectionBudget
from fbtwist.errors import DirectoryUnavailable, TooManyAttempts, descriptorError
from fbtwist.ftp.shell import VIEW_ROOT, FTPReplyError, viewPath
from fbtwist.logs import RareWarning

#: Failed logins after which a session is closed.
MAX_FAILED_LOGINS = 3

#: A line end as TYPE A clients send it: LF, CRLF, or CRs and LF.
_LINE_END = re.compile(rb"\r*\n")

#: What makes an NLST argument a pattern (as C{fnmatch} reads it).
_GLOB = re.compile(r"[*?[]")


class CRLFLineEnds:
    """
    Turns a stream of chunks into one with CRLF line ends, however they are
    cut: a bare LF becomes CRLF, CRLF stays, and so do several CRs before an
    LF: a Unix client (tnftp) puts a CR before every LF in TYPE A, so a file
    whose lines already end in CRLF arrives as CR CR LF.  A CR not before an
    LF is kept.  One instance per transfer; used for TYPE A in both
    directions; L{flush} gives what it holds back at the end.
    """

    #: CRs held back at the end of a chunk, waiting for an LF; past this
    #: many they are passed on (no client sends such runs on purpose).
    maxHeld = 1024

    def __init__(self):
        self._held = b""

    def convert(self, data: bytes) -> bytes:
        data = self._held + data
        kept = data.rstrip(b"\r")
        self._held = data[len(kept):]
        if len(self._held) > self.maxHeld:
            kept, self._held = kept + self._held[:-self.maxHeld], self._held[-self.maxHeld:]
        return _LINE_END.sub(b"\r\n", kept)

    def flush(self) -> bytes:
        """
        The end of the transfer: the CRs held back, as they came.
        """
        held, self._held = self._held, b""
        return held


@implementer(interfaces.IConsumer)
class _DownloadConsumer:
    """
    Hands a download to the data connection, converting line ends in
    TYPE A and counting as activity for the idle timeout.
    """

    def __init__(self, data, lineEnds: Optional[CRLFLineEnds], activity):
        self.data = data
        self.lineEnds = lineEnds
        self.activity = activity

    def registerProducer(self, producer, streaming):
        self.data.registerProducer(producer, streaming)

    def unregisterProducer(self):
        self.data.unregisterProducer()

    def write(self, chunk: bytes) -> None:
        self.activity()
        if self.lineEnds is not None:
            chunk = self.lineEnds.convert(chunk)
        self.data.write(chunk)

    def finish(self) -> None:
        """
        Send what the line end conversion held back.
        """
        if self.lineEnds is not None:
            self.data.write(self.lineEnds.flush())


class DataConnection(ftp.DTP):
    """
    A data connection that hands what it receives to a receiver and tells
    how it ended.

    @ivar closed: Fires with the reason (the exception, not a failure)
        when the connection is gone.
    """

    #: Bytes held before a STOR takes them; past this the client waits.
    bufferLimit = 65536

    def __init__(self):
        self.closed = defer.Deferred()
        self._receiver = None
        # Chunks received before a STOR takes them (our own list: DTP's
        # buffer is private to it).
        self._held: Optional[list] = []
        self._buffered = 0
        self._paused = False

    def connectionMade(self):
        tlsOptions = self.factory.tlsOptions
        if tlsOptions is not None:
            # PROT P: the FTP server is the TLS server on the data connection
            # whoever opened it (RFC 4217), so an active (PORT) connection,
            # a TCP client, starts TLS in the server role.
            self.transport.startTLS(tlsOptions, self.factory.passive)
        super().connectionMade()

    def receive(self, receiver) -> None:
        """
        Hand every chunk received so far, and from now on, to C{receiver}.
        """
        buffered, self._held = self._held or [], None
        self._receiver = receiver
        for chunk in buffered:
            receiver(chunk)
        if self._paused and self.isConnected:
            self._paused = False
            self.transport.resumeProducing()

    def dataReceived(self, data: bytes) -> None:
        if self._receiver is not None:
            self._receiver(data)
        elif self._held is not None:
            # Data sent before (or without) a STOR: hold a little, then
            # stop reading rather than fill the memory.
            self._held.append(data)
            self._buffered += len(data)
            if self._buffered > self.bufferLimit and not self._paused:
                self._paused = True
                self.transport.pauseProducing()

    def connectionLost(self, reason) -> None:
        self.isConnected = False
        self.closed.callback(reason.value)


class DataConnectionFactory(ftp.DTPFactory):
    """
    Makes the one L{DataConnection} of a PASV/EPSV/PORT/EPRT, from the
    client's own address only.

    @ivar tlsOptions: The server's TLS options when the data connection is
        protected (PROT P), else C{None}.
    @ivar passive: Whether the client connects to us (PASV/EPSV).
    """

    log = Logger()

    def __init__(self, pi, peerHost: str, reactor, tlsOptions=None, passive: bool = True):
        super().__init__(pi, peerHost, reactor)
        self.tlsOptions = tlsOptions
        self.passive = passive

    def buildProtocol(self, addr):
        if normalisedHost(addr.host) != self.peerHost:
            self.log.warn(
                "refused an FTP data connection from {address}; the session is from {peer}",
                address=addr.host, peer=self.peerHost,
            )
            return None
        # DTPFactory's own buildProtocol accepts only the first connection
        # and stops the timeout; it makes a plain DTP, replaced here.
        if super().buildProtocol(addr) is None:
            return None
        p = DataConnection()
        p.factory = self
        p.pi = self.pi
        self.pi.dtpInstance = p
        return p


class CalendarFTP(ftp.FTP):
    """
    One FTP session; see the module docstring for what differs from
    Twisted's C{FTP}.

    @ivar peerHost: The client's address (IPv4-mapped addresses as IPv4).
    """

    log = Logger()
    _encoding = "utf-8"
    #: Whether the client sent EPSV ALL (only EPSV may follow).
    _extendedPassiveOnly = False
    PUBLIC_COMMANDS = ["FEAT", "QUIT", "SYST", "NOOP", "OPTS", "AUTH", "PBSZ", "PROT"]
    FEATURES = ["EPRT", "EPSV", "MDTM", "PASV", "SIZE", "TYPE A;I", "UTF8"]

    peerHost = None
    logout = None
    _dataReady = None
    _upload = None
    _failedLogins = 0
    _sessionOpen = False
    tlsActive = False
    protectData = False

    @property
    def reactor(self):
        return self.factory.reactor

    def callLater(self, period, func):
        # TimeoutMixin's idle timer, on the injected reactor.
        return self.reactor.callLater(period, func)

    # -- the session --------------------------------------------------------

    def connectionMade(self):
        self.peerHost = normalisedHost(self.transport.getPeer().host)
        self._sessionOpen = True
        self.factory.sessionOpened(self)
        super().connectionMade()

    def connectionLost(self, reason):
        self.disconnected = True
        if self._upload is not None:
            self._upload.abort()
        self.cleanupDTP()
        if self._sessionOpen:
            self._sessionOpen = False
            self.factory.sessionClosed(self)
        if self.logout is not None:
            logout, self.logout = self.logout, None
            logout()
        super().connectionLost(reason)

    def timeoutConnection(self):
        self.log.info("FTP session from {peer} idle for {seconds} s: closing it", peer=self.peerHost,
                      seconds=self.timeOut)
        self.sendLine(f"421 No command or data for {self.timeOut:g} seconds: closing the connection.")
        self.transport.loseConnection()

    def close(self, reply: str) -> None:
        """
        Send C{reply} (a 421) and close the session.
        """
        self.sendLine(reply)
        self.disconnected = True
        self.transport.loseConnection()

    # -- commands and replies -----------------------------------------------

    def reply(self, key, *args):
        """
        Send the reply C{key}, formatted with C{args}; a template without
        C{%s} (Twisted's 552, 553, ...) is sent as it is instead of raising,
        and a C{key} that is not one of Twisted's is a reply code followed
        by the text in C{args}.
        """
        template = ftp.RESPONSE.get(key)
        if template is None:
            self.sendLine(" ".join([str(key), *map(str, args)]))
            return
        if isinstance(template, list):
            for line in template:
                self.sendLine(line)
            return
        if template.count("%s") == len(args):
            message = template % args
        else:
            message = template.replace("%s", " ".join(str(a) for a in args))
        self.sendLine(message)

    def lineReceived(self, line):
        self.resetTimeout()
        # Latin-1 keeps every byte: credentials are normalised by the
        # checker, path names by processCommand.
        text = line.decode("latin-1")
        command, space, argument = text.partition(" ")
        args = (argument,) if space else ()
        d = defer.maybeDeferred(self.processCommand, command, *args)
        d.addCallbacks(self._replied, self._failed, errbackArgs=(command,))
        d.addErrback(self._replyFailed, command)
        finished = []
        d.addBoth(finished.append)
        if not finished:
            # One command at a time: read no further until this one is done.
            self.pauseProducing()
            d.addBoth(lambda _: self._resume())

    def _replyFailed(self, failure, command):
        self.log.failure("replying to {command} failed", failure, command=command)
        if not self.disconnected:
            self.sendLine("451 Requested action aborted: local error in processing.")

    def _resume(self):
        if not self.disconnected and self.transport is not None:
            self.resumeProducing()

    def _replied(self, result):
        if self.disconnected:
            return
        if isinstance(result, tuple):
            self.reply(*result)
        elif result is not None:
            self.reply(result)

    def _failed(self, failure, command):
        if self.disconnected:
            return
        if failure.check(FTPReplyError):
            if failure.value.reason == "out-of-descriptors":
                self.factory.outOfDescriptors()
            if failure.value.code == "421":
                # 421 closes the session (RFC 959), which gives back its
                # descriptors too.
                self.close(failure.value.response())
            else:
                self.sendLine(failure.value.response())
        elif failure.check(ftp.FTPCmdError):
            self.reply(failure.value.errorCode, *failure.value.errorMessage)
        elif failure.check(TypeError) and any(
            text in str(failure.value) for text in ("takes exactly", "required positional argument")
        ):
            self.reply(ftp.SYNTAX_ERR, f"{command.upper()} requires an argument.")
        elif failure.check(TypeError) and "positional argument but" in str(failure.value):
            self.reply(ftp.SYNTAX_ERR, f"{command.upper()} takes no argument.")
        else:
            self.log.failure("FTP command {command} failed", failure, command=command.upper())
            self.sendLine("451 Requested action aborted: local error in processing.")

    def processCommand(self, cmd, *params):
        if cmd.upper() not in ("USER", "PASS"):
            # Path names: UTF-8 where they are valid UTF-8, as clients send
            # them (the same rule as for credentials).
            params = tuple(credentialText(p) for p in params)
        if cmd.upper() == "RNTO" and self.state == self.AUTHED:
            # Twisted's ftp_RNTO assumes an RNFR came first.
            return ftp.BAD_CMD_SEQ, "RNFR required before RNTO"
        return super().processCommand(cmd, *params)

    def _segments(self, path: str):
        try:
            return ftp.toSegments(self.workingDirectory, path)
        except ftp.InvalidPath:
            raise FTPReplyError("550", f"{path}: no such file or directory") from None

    # -- login --------------------------------------------------------------

    def ftp_USER(self, username=""):
        if not username:
            raise FTPReplyError("501", "USER requires a login.")
        if self.shell is not None:
            raise FTPReplyError("503", "Already logged in; to log in as someone else, reconnect.")
        if self.factory.tlsRequired and not self.tlsActive:
            raise FTPReplyError("530", "This server requires AUTH TLS before USER: passwords never travel in clear.")
        self._pendingLogin = username
        self.state = self.INAUTH
        if self._anonymous(username):
            return ftp.GUEST_NAME_OK_NEED_EMAIL
        return ftp.USR_NAME_OK_NEED_PASS, credentialText(username)

    def _anonymous(self, login: str) -> bool:
        """
        Whether C{login} asks for anonymous FTP (C{anonymous} or C{ftp}) and
        it is allowed; otherwise such a login is checked by the directory.
        """
        return self.factory.allowAnonymous and login.lower() in (self.factory.userAnonymous, "ftp")

    def ftp_PASS(self, password=""):
        if self.shell is not None:
            raise FTPReplyError("503", "Already logged in.")
        return defer.Deferred.fromCoroutine(self._login(password))

    async def _login(self, password: str):
        login = self._pendingLogin
        del self._pendingLogin
        if self._anonymous(login):
            credentials, reply = Anonymous(), ftp.GUEST_LOGGED_IN_PROCEED
        else:
            credentials, reply = UsernamePassword(login, password), ftp.USR_LOGGED_IN_PROCEED
        credentials.peer = self.peerHost
        try:
            interface, shell, logout = await self.portal.login(credentials, None, ftp.IFTPShell)
        except (UnauthorizedLogin, UnhandledCredentials, LoginFailed):
            self.state = self.UNAUTH
            self._failedLogins += 1
            if self._failedLogins >= MAX_FAILED_LOGINS:
                self.sendLine("530 Login incorrect.")
                self.close("421 Too many failed logins: closing the connection.")
                return None
            raise FTPReplyError("530", "Login incorrect.") from None
        except (DirectoryUnavailable, TooManyAttempts) as e:
            self.state = self.UNAUTH
            # A throttled login's reason says when to try again already.
            self.close(f"421 {e.reason}" + ("" if isinstance(e, TooManyAttempts) else " Try again later."))
            return None
        if self.disconnected:
            logout()
            return None
        self.shell, self.logout = shell, logout
        self.workingDirectory = []
        self.state = self.AUTHED
        uid = shell.uid
        self.log.info("FTP login by {who} from {peer}", who=uid if uid is not None else "anonymous", uid=uid,
                      peer=self.peerHost)
        return reply

    # -- explicit FTPS (RFC 4217) ------------------------------------------

    def ftp_FEAT(self):
        self.sendLine("211-Features:")
        features = self.FEATURES + (["AUTH TLS", "PBSZ", "PROT"] if self.factory.tlsOptions is not None else [])
        for feature in sorted(features):
            self.sendLine(" " + feature)
        self.sendLine("211 End")

    def ftp_AUTH(self, mechanism=""):
        if self.factory.tlsOptions is None:
            raise FTPReplyError("502", "TLS is not configured on this server.")
        if mechanism.upper() not in ("TLS", "TLS-C", "SSL"):
            raise FTPReplyError("504", f"AUTH {mechanism} is not supported; use AUTH TLS.")
        if self.tlsActive or self.state != self.UNAUTH:
            raise FTPReplyError("503", "AUTH TLS comes first, once.")
        self.sendLine("234 AUTH TLS accepted; start the TLS handshake.")
        self.transport.startTLS(self.factory.tlsOptions)
        self.tlsActive = True
        return None

    def ftp_PBSZ(self, size=""):
        if not self.tlsActive:
            raise FTPReplyError("503", "Use AUTH TLS first.")
        return "200", "PBSZ=0"

    def ftp_PROT(self, level=""):
        if not self.tlsActive:
            raise FTPReplyError("503", "Use AUTH TLS first.")
        if level.upper() not in ("P", "C"):
            raise FTPReplyError("504", "PROT takes P (private) or C (clear).")
        if self.factory.tlsRequired and level.upper() == "C":
            raise FTPReplyError("534", "This server requires protected data connections (PROT P).")
        self.protectData = level.upper() == "P"
        return "200", f"Protection level set to {'Private' if self.protectData else 'Clear'}."

    def _dataTLS(self):
        return self.factory.tlsOptions if self.protectData else None

    def ftp_ABOR(self):
        # Commands wait while a transfer runs, so there is never one to abort.
        return "225", "No transfer in progress."

    def ftp_OPTS(self, option=""):
        if option.upper().split() == ["UTF8", "ON"]:
            return ftp.CMD_OK
        raise FTPReplyError("501", f"Option '{option}' not understood.")

    # -- data connections ---------------------------------------------------

    def _localHost(self) -> str:
        return normalisedHost(self.transport.getHost().host)

    def _prepareData(self, factory: DataConnectionFactory, port) -> None:
        self.dtpFactory, self.dtpPort = factory, port
        self._dataReady = ready = defer.Deferred()

        def connected(_):
            if not ready.called:
                ready.callback(True)

        def failed(failure):
            failure.trap(ftp.PortConnectionError)
            if self.dtpPort is port and interfaces.IListeningPort.providedBy(port):
                # The data timeout: free the passive port now, not when the
                # session ends (a session kept alive by NOOPs would hold it).
                self.dtpPort = None
                port.stopListening()
            if not ready.called:
                ready.callback(False)

        factory.deferred.addCallbacks(connected, failed)

    def _listenForData(self) -> int:
        """
        Open a passive data port on the address the client reached us at.

        A repeated PASV or EPSV before any data connection came keeps the
        port it announced (a closed port is only free again later).

        @return: Its port number.
        """
        port = self.dtpPort
        if (interfaces.IListeningPort.providedBy(port) and self.dtpInstance is None
                and self._dataReady is not None and not self._dataReady.called):
            self.dtpFactory.cancelTimeout()
            self.dtpFactory.setTimeout(self.factory.dataTimeout)
            return port.getHost().port
        self.cleanupDTP()
        factory = DataConnectionFactory(self, self.peerHost, self.reactor, self._dataTLS(), passive=True)
        ports = self.factory.passivePorts
        if ports is None:
            candidates = [0]
        else:
            start = random.randrange(len(ports))
            candidates = itertools.chain(ports[start:], ports[:start])
        for number in candidates:
            try:
                port = self.reactor.listenTCP(number, factory, interface=self._localHost())
            except CannotListenError as e:
                if descriptorError(e.socketError) is not None:
                    raise FTPReplyError("421", "The server is too busy to open a data port; try again shortly.",
                                        "out-of-descriptors") from None
                continue
            break
        else:
            self.log.warn("no free passive FTP data port in {ports}", ports=ports)
            raise FTPReplyError("425", "No free data port; try again later.")
        factory.setTimeout(self.factory.dataTimeout)
        self._prepareData(factory, port)
        return port.getHost().port

    def ftp_PASV(self):
        if self._extendedPassiveOnly:
            raise FTPReplyError("503", "PASV is not allowed after EPSV ALL.")
        announced = self.factory.passiveHost
        if announced is None:
            announced = self._localHost()
            if not isinstance(ipaddress.ip_address(announced), ipaddress.IPv4Address):
                raise FTPReplyError("502", "PASV is for IPv4 only; use EPSV.")
        port = self._listenForData()
        return ftp.ENTERING_PASV_MODE, ftp.encodeHostPort(announced, port)

    def ftp_EPSV(self, protocol=""):
        if protocol.upper() == "ALL":
            self._extendedPassiveOnly = True
            return ftp.EPSV_ALL_OK
        if protocol:
            family = 1 if isinstance(ipaddress.ip_address(self._localHost()), ipaddress.IPv4Address) else 2
            if protocol != str(family):
                raise FTPReplyError("522", f"Network protocol not supported, use ({family})")
        return ftp.ENTERING_EPSV_MODE, self._listenForData()

    def _connectForData(self, host: str, port: int, command: str):
        """
        Connect the data connection to the client's C{host} and C{port},
        refusing any other address (FTP bounce) and ports below 1024.
        """
        if self._extendedPassiveOnly:
            raise FTPReplyError("503", f"{command} is not allowed after EPSV ALL.")
        if normalisedHost(host) != self.peerHost or not 1024 <= port <= 65535:
            self.log.warn(
                "refused {command} to {host} port {port} from {peer} (FTP bounce)",
                command=command, host=host, port=port, peer=self.peerHost,
            )
            raise FTPReplyError("501", f"{command} may only name your own address and a port from 1024 up.")
        self.cleanupDTP()
        factory = DataConnectionFactory(self, self.peerHost, self.reactor, self._dataTLS(), passive=False)
        factory.setTimeout(self.factory.dataTimeout)
        connector = self.reactor.connectTCP(host, port, factory, timeout=self.factory.dataTimeout)
        self._prepareData(factory, connector)
        return ftp.ENTERING_PORT_MODE

    def ftp_PORT(self, address=""):
        try:
            numbers = [int(n) for n in address.split(",")]
            if len(numbers) != 6 or not all(0 <= n <= 255 for n in numbers):
                raise ValueError(address)
        except ValueError:
            raise FTPReplyError("501", "PORT wants h1,h2,h3,h4,p1,p2.") from None
        host = ".".join(str(n) for n in numbers[:4])
        return self._connectForData(host, numbers[4] << 8 | numbers[5], "PORT")

    def ftp_EPRT(self, extendedAddress=""):
        try:
            family, host, port = ftp.decodeExtendedAddress(extendedAddress)
            ipaddress.ip_address(host)
        except (ValueError, IndexError):
            raise FTPReplyError("501", "EPRT wants |family|address|port|.") from None
        if family not in ("1", "2"):
            raise FTPReplyError("522", "Network protocol not supported, use (1,2)")
        return self._connectForData(host, port, "EPRT")

    async def _dataConnection(self) -> DataConnection:
        """
        Wait for the data connection announced by the last PASV, EPSV, PORT
        or EPRT.

        @raise FTPReplyError: 425 when there was none or it did not come.
        """
        ready = self._dataReady
        if ready is None:
            raise FTPReplyError("425", "Use PASV, EPSV, PORT or EPRT first.")
        connected = await ready
        if not connected or self.dtpInstance is None or self.disconnected:
            self.cleanupDTP()
            raise FTPReplyError(
                "425", f"Can't open data connection (none within {self.factory.dataTimeout:g} seconds)."
            )
        return self.dtpInstance

    def _transferStarts(self) -> None:
        self.reply(ftp.DATA_CNX_ALREADY_OPEN_START_XFR)

    async def _closeData(self, data: DataConnection, command: str) -> None:
        """
        Close the data connection after sending and wait until it is gone.

        @raise FTPReplyError: 426 when the client broke it.
        """
        data.transport.loseConnection()
        reason = await data.closed
        self.cleanupDTP()
        if not isinstance(reason, ConnectionDone):
            raise FTPReplyError("426", f"Data connection broken; {command} aborted.")

    def cleanupDTP(self):
        """
        Forget the data connection: stop listening or connecting, close it.
        """
        port, self.dtpPort = self.dtpPort, None
        if interfaces.IListeningPort.providedBy(port):
            port.stopListening()
        elif interfaces.IConnector.providedBy(port):
            port.disconnect()
        if self.dtpFactory is not None:
            self.dtpFactory.stopFactory()
            self.dtpFactory = None
        data, self.dtpInstance = self.dtpInstance, None
        if data is not None and data.isConnected:
            data.transport.abortConnection()
        ready, self._dataReady = self._dataReady, None
        if ready is not None and not ready.called:
            ready.callback(False)

    # -- transfers ----------------------------------------------------------

    def ftp_LIST(self, path=""):
        return defer.Deferred.fromCoroutine(self._list(path, namesOnly=False))

    def ftp_NLST(self, path=""):
        return defer.Deferred.fromCoroutine(self._list(path, namesOnly=True))

    async def _list(self, path: str, namesOnly: bool):
        # Clients add ls flags (LIST -la, LIST -a /pub): ignore them.
        words = path.split(" ")
        while words and words[0].startswith("-"):
            words.pop(0)
        segments = self._segments(" ".join(words))
        glob = None
        if namesOnly and segments and _GLOB.search(segments[-1]):
            glob = segments.pop()
        keys = () if namesOnly else ("size", "directory", "permissions", "hardlinks", "modified", "owner", "group")
        entries = await self.shell.list(segments, keys)
        data = await self._dataConnection()
        self._transferStarts()
        for name, attributes in entries:
            self.resetTimeout()
            if namesOnly:
                if glob is None or fnmatch.fnmatch(name, glob):
                    data.sendLine(name.encode("utf-8"))
            else:
                data.sendListResponse(name.encode("utf-8"), attributes)
        await self._closeData(data, "listing")
        return ftp.TXFR_COMPLETE_OK

    def ftp_RETR(self, path=""):
        return defer.Deferred.fromCoroutine(self._retrieve(path))

    async def _retrieve(self, path: str):
        segments = self._segments(path)
        published = await self.shell.openForReading(segments)
        data = await self._dataConnection()
        self._transferStarts()
        consumer = _DownloadConsumer(data, None if self.binary else CRLFLineEnds(), self.resetTimeout)
        try:
            await published.send(consumer)
            consumer.finish()
        except Exception:
            # The client closed or broke the data connection early.
            self.cleanupDTP()
            raise FTPReplyError("426", "Data connection broken; transfer aborted.") from None
        reason = await data.closed
        self.cleanupDTP()
        if not isinstance(reason, ConnectionDone):
            raise FTPReplyError("426", "Data connection broken; transfer aborted.")
        return ftp.TXFR_COMPLETE_OK

    def ftp_STOR(self, path=""):
        return defer.Deferred.fromCoroutine(self._store(path))

    async def _store(self, path: str):
        segments = self._segments(path)
        uid = self.shell.uid
        try:
            upload = await self.shell.openForWriting(segments)
        except FTPReplyError as e:
            self._rejected(uid, segments, e.reason)
            raise
        self._upload = upload
        try:
            data = await self._dataConnection()
            self._transferStarts()
            await self._receive(data, upload)
            if self.disconnected:
                raise FTPReplyError("426", "The session ended; nothing was stored.")
            created = await upload.close()
        except FTPReplyError as e:
            upload.abort()
            self._rejected(uid, segments, e.reason)
            raise
        except BaseException:
            upload.abort()
            self._rejected(uid, segments, "aborted")
            raise
        finally:
            self._upload = None
            self.cleanupDTP()
        self.log.info(
            "published {path} as {uid} over FTP ({size} bytes)",
            fbEvent="publish", uid=uid, protocol="ftp", path="/".join(upload.path), size=upload.size,
        )
        return "226", f"Transfer complete: {viewPath(segments)} {'created' if created else 'replaced'}."

    async def _receive(self, data: DataConnection, upload) -> None:
        """
        Write what arrives on C{data} into C{upload} until the client closes
        the data connection.

        @raise FTPReplyError: 552 past the size limit (the data connection is
            closed at once), 426 when the data connection broke.
        """
        lineEnds = None if self.binary else CRLFLineEnds()
        refused = []

        def received(chunk: bytes) -> None:
            if refused:
                return
            self.resetTimeout()
            if lineEnds is not None:
                chunk = lineEnds.convert(chunk)
            try:
                upload.write(chunk)
            except FTPReplyError as e:
                refused.append(e)
                data.transport.abortConnection()

        data.receive(received)
        reason = await data.closed
        if refused:
            raise refused[0]
        if not isinstance(reason, ConnectionDone):
            raise FTPReplyError("426", "Data connection broken; nothing was stored.")
        tail = lineEnds.flush() if lineEnds is not None else b""
        if tail:
            upload.write(tail)

    def _rejected(self, uid, segments, reason: str) -> None:
        # The store path where there is one (as HTTP logs it), else the
        # path the client named.
        inTree = [s.lower() for s in segments[: len(VIEW_ROOT)]] == list(VIEW_ROOT) and len(segments) > len(VIEW_ROOT)
        path = "/".join(segments[len(VIEW_ROOT):]) if inTree else viewPath(segments)
        self.log.info(
            "refused to store {path} for {uid} over FTP: {reason}",
            fbEvent="publish-rejected", uid=uid, protocol="ftp", path=path, reason=reason,
        )


class TooManyConnections(protocol.Protocol):
    """
    Answers a connection over a cap (per address, or the process's
    connection budget) with 421 and closes it.
    """

    reply = b"421 Too many connections from your address; try again later."

    def connectionMade(self):
        self.transport.write(self.reply + b"\r\n")
        self.transport.loseConnection()


class CalendarFTPFactory(ftp.FTPFactory):
    """
    Makes L{CalendarFTP} sessions on one portal.

    @ivar passivePorts: A C{range} of passive data ports, or C{None} for
        any free port.
    @ivar passiveHost: The IPv4 address PASV announces, or C{None} for the
        address the client connected to.
    @ivar sessions: Client address to its number of open sessions.
    @ivar tlsOptions: The server's TLS options for explicit FTPS
        (C{AUTH TLS}), or C{None} when it is off.
    @ivar tlsRequired: Whether USER needs AUTH TLS first and data
        connections must be protected.
    @ivar budget: The L{ConnectionBudget} its sessions count against
        (shared with the HTTP site).
    """

    protocol = CalendarFTP
    log = Logger()
    welcomeMessage = "fbtwist free/busy FTP: publish to /pub/calendar/<login>.vfb"

    def __init__(self, portal, reactor, allowAnonymous: bool = False, passivePorts: Optional[range] = None,
                 passiveHost: Optional[str] = None, idleTimeout: float = 300.0, dataTimeout: float = 10.0,
                 maxConnectionsPerAddress: int = 8, tlsOptions=None, tlsRequired: bool = False,
                 budget: Optional[ConnectionBudget] = None):
        super().__init__(portal)
        self.budget = budget if budget is not None else ConnectionBudget(clock=lambda: reactor.seconds())
        self.tlsOptions = tlsOptions
        self.tlsRequired = tlsRequired
        self.reactor = reactor
        self.allowAnonymous = allowAnonymous
        self.passivePorts = passivePorts
        self.passiveHost = passiveHost
        self.timeOut = idleTimeout
        self.dataTimeout = dataTimeout
        self.maxConnectionsPerAddress = maxConnectionsPerAddress
        self.sessions = {}
        self.instances = []
        self._descriptorWarning = RareWarning(
            "out of file descriptors: {count} FTP command(s) refused with 421 (raise the limit, LimitNOFILE)",
            clock=lambda: reactor.seconds(), log=self.log, fbEvent="out-of-descriptors", protocol="ftp",
        )

    def buildProtocol(self, addr):
        host = normalisedHost(addr.host)
        if self.budget.full():
            p = TooManyConnections()
            p.reply = b"421 The server is too busy right now; try again shortly."
            p.factory = self
            return p
        if self.sessions.get(host, 0) >= self.maxConnectionsPerAddress:
            self.log.warn("refused an FTP session from {peer}: {count} open already", peer=host,
                          count=self.sessions[host])
            p = TooManyConnections()
            p.factory = self
            return p
        p = self.protocol()
        p.factory = self
        p.portal = self.portal
        p.timeOut = self.timeOut
        p.dtpTimeout = self.dataTimeout
        return p

    def sessionOpened(self, session: CalendarFTP) -> None:
        self.sessions[session.peerHost] = self.sessions.get(session.peerHost, 0) + 1
        self.instances.append(session)
        self.budget.opened()
        self.log.info("FTP session from {peer}", fbEvent="ftp-session", change=1, peer=session.peerHost)

    def sessionClosed(self, session: CalendarFTP) -> None:
        count = self.sessions.get(session.peerHost, 1) - 1
        if count:
            self.sessions[session.peerHost] = count
        else:
            self.sessions.pop(session.peerHost, None)
        if session in self.instances:
            self.instances.remove(session)
            self.budget.closed()
        self.log.info("FTP session from {peer} closed", fbEvent="ftp-session", change=-1, peer=session.peerHost)

    def outOfDescriptors(self) -> None:
        """
        A command was refused with 421 for want of file descriptors: warn
        once a minute at most, saying how many commands were refused.
        """
        self._descriptorWarning.warn()

    def stopFactory(self):
        # The listener stops (server shutdown): tell the sessions.
        for session in list(self.instances):
            if not session.disconnected and session.transport is not None:
                session.close("421 The server is shutting down.")


def makeFTPFactory(config, portal, reactor, budget: Optional[ConnectionBudget] = None) -> CalendarFTPFactory:
    """
    The FTP listener's factory for C{config} (a L{fbtwist.config.Config}),
    logging in through C{portal} (whose realm has the FTP avatar factory,
    L{fbtwist.ftp.shell.ftpAvatarFactory}: see L{fbtwist.tap.buildPortal}).

    @param budget: The connection budget shared with the HTTP site.
    """
    from fbtwist.ftp.tls import serverTLSOptions

    tlsOptions = None
    if config.ftpTLSCertificate is not None:
        tlsOptions = serverTLSOptions(config.ftpTLSCertificate, config.ftpTLSKey)
    return CalendarFTPFactory(
        portal, reactor,
        allowAnonymous=config.ftpAnonymous,
        passivePorts=config.ftpPassivePorts,
        passiveHost=config.ftpPassiveHost,
        idleTimeout=config.ftpIdleTimeout,
        dataTimeout=config.ftpDataTimeout,
        maxConnectionsPerAddress=config.ftpMaxConnectionsPerAddress,
        tlsOptions=tlsOptions,
        tlsRequired=config.ftpTLSRequired,
        budget=budget,
    )
