"""
What every process of fbtwist starts from: its options (L{Options}, the
C{twistd freebusy} command line and C{--config} file) and its directory
(L{buildDirectory}).  Apart from L{fbtwist.tap}, which builds the whole
service from them, so that the short-lived process building the name
index (C{python -m fbtwist.worker --build-name-index}), which needs only
these, starts without importing the protocols (half a second of its
start at a million users).
"""

import ipaddress
import shutil
import sys
import textwrap
from typing import List, Optional

from twisted.logger import Logger
from twisted.python import usage

from fbtwist.config import (
    MISTAKEN_NAMES,
    OTHER_TOPIC,
    TOPICS,
    ConfigError,
    buildConfig,
    caCertificates,
    makeCalendarRoot,
    settings,
    unknownSetting,
)
from fbtwist.directory.filters import defaultGroupBase
from fbtwist.directory.ldapdirectory import LDAPDirectory
from fbtwist.directory.ldapurl import parseLDAPURL
from fbtwist.directory.loginforms import LoginForms
from fbtwist.directory.rooms import RoomSearch
from fbtwist.logs import useUnderTwistd

log = Logger()

#: The directory the demo users live in (see fbtwist/data/demo.ldif).
DEMO_URL = "ldap://127.0.0.1:389/ou=people,dc=example,dc=com?uid?one"

def _repeatableOption(option: str, help: str):
    def opt(self, value):
        self[option].append(value)

    opt.__doc__ = help
    return opt


def _helpText(f) -> str:
    text = f.metadata["help"]
    default = f.default
    if default not in (None, ()) and f.repr and not f.metadata["flag"]:
        shown = getattr(default, "path", default)
        if isinstance(shown, tuple):
            shown = ",".join(map(str, shown))
        text += f" [default: {shown}]"
    return text


#: The options that are not settings, listed first in --help.
_GENERAL = (
    ("-c, --config=FILE", "Read settings from this INI file (section [freebusy], keys as the long option names); "
                      "the command line wins."),
    ("--help", "Show this help and exit."),
    ("--version", "Show fbtwist's and Twisted's versions and exit."),
)


def helpText(width: int) -> str:
    """
    The options of C{twistd freebusy}, grouped by topic (L{TOPICS}), each
    with its help wrapped to C{width} columns between words only: endpoint
    descriptions, URLs and DNs are never cut.
    """
    wrap = textwrap.TextWrapper(width=max(width, 60), break_long_words=False, break_on_hyphens=False)
    column = 30

    def entry(name: str, text: str) -> List[str]:
        wrap.initial_indent = wrap.subsequent_indent = " " * column
        lines = wrap.wrap(text)
        label = "  " + name
        if len(label) < column - 1:
            lines[0] = label.ljust(column) + lines[0][column:]
        else:
            lines.insert(0, label)
        return lines

    byTopic = {}
    for f in settings():
        byTopic.setdefault(f.metadata["topic"], []).append(f)
    lines = ["General"]
    for name, text in _GENERAL:
        lines.extend(entry(name, text))
    for topic in [t for t, _ in TOPICS] + [OTHER_TOPIC]:
        if topic not in byTopic:
            continue
        lines.extend(["", topic])
        for f in byTopic[topic]:
            name = "--" + f.metadata["option"]
            if not f.metadata["flag"]:
                name += "=" + (f.metadata["metavar"] or "VALUE")
            text = _helpText(f)
            if f.metadata["repeatable"]:
                text = text.replace(" [default:", " May be given more than once. [default:", 1)
            lines.extend(entry(name, text))
    return "\n".join(lines) + "\n"


class Options(usage.Options):
    """
    C{twistd freebusy} options; every one may also be set in the
    C{--config} file.

    @ivar failed: Whether parsing failed: then L{getUsage} is empty, so that
        twistd, which prints the usage before the error, shows the error
        alone.
    """

    synopsis = "[options]"
    longdesc = (
        "fbtwist: publish free/busy files over HTTP/WebDAV and FTP, look them up over HTTP, "
        "users checked against LDAP. Every option may also be set in an INI file given with "
        "--config (section [freebusy], keys as the long option names); the command line wins."
    )
    optParameters = [["config", "c", None, "Read settings from this INI file."]] + [
        [f.metadata["option"], None, None, _helpText(f)]
        for f in settings() if not (f.metadata["repeatable"] or f.metadata["flag"])
    ]
    optFlags = [[f.metadata["option"], None, f.metadata["help"]] for f in settings() if f.metadata["flag"]]
    failed = False

    def __init__(self):
        super().__init__()
        for f in settings():
            if f.metadata["repeatable"]:
                self[f.metadata["option"]] = []

    def parseOptions(self, options=None):
        """
        Parse the command line; a mistake raises L{usage.UsageError} with one
        sentence (an unknown option says which known one is close).
        """
        args = sys.argv[1:] if options is None else list(options)
        try:
            self._refuseMistakenNames(args)
            super().parseOptions(options)
        except usage.UsageError as e:
            self.failed = True
            unknown = self._unknownOption(args)
            if unknown is not None and "not recognized" in str(e):
                raise usage.UsageError(unknownSetting(unknown, "--")) from None
            raise

    def _refuseMistakenNames(self, args: List[str]) -> None:
        # getopt takes an option's unambiguous prefix for the option:
        # "--bind-password hunter2" would read a file named hunter2.
        for arg in args:
            if arg == "--":
                break
            name = arg[2:].partition("=")[0] if arg.startswith("--") else None
            if name in MISTAKEN_NAMES:
                raise usage.UsageError(unknownSetting(name, "--"))

    def _unknownOption(self, args: List[str]) -> Optional[str]:
        """
        The first long option in C{args} that names no option (nor the
        prefix of one).
        """
        names = [o.rstrip("=") for o in self.longOpt]
        for arg in args:
            if arg == "--":
                break
            if arg.startswith("--"):
                name = arg[2:].partition("=")[0]
                if not any(n.startswith(name) for n in names):
                    return name
        return None

    def getUsage(self, width: Optional[int] = None) -> str:
        if self.failed:
            return ""
        width = width or shutil.get_terminal_size().columns
        return "\n" + helpText(width) + "\n" + "\n".join(textwrap.wrap(self.longdesc, max(width, 60))) + "\n"

    def opt_version(self):
        """
        Show fbtwist's and Twisted's versions and exit.
        """
        import fbtwist
        import twisted

        print(f"fbtwist {fbtwist.__version__} (Twisted {twisted.__version__})")
        sys.exit(0)

    def postOptions(self):
        try:
            self.config = buildConfig(self, self["config"])
            federationSettings(self.config)
            makeCalendarRoot(self.config)
        except ConfigError as e:
            raise usage.UsageError(str(e)) from None
        if self.config.ftpTLSRequired and self.config.ftpTLSCertificate is None:
            raise usage.UsageError("--ftp-tls-required needs --ftp-tls-certificate")
        if self.config.ftpTLSCertificate is not None:
            from fbtwist.ftp.tls import serverTLSOptions

            try:
                serverTLSOptions(self.config.ftpTLSCertificate, self.config.ftpTLSKey)
            except ValueError as e:
                raise usage.UsageError(f"--ftp-tls-certificate: {e}") from None
        twistdOptions = getattr(self, "parent", None)
        if twistdOptions is not None:
            useUnderTwistd(twistdOptions, self.config.logFormat)
        if self.config.workers and any(d.split(":", 1)[0] not in ("tcp", "tcp6") for d in self.config.http):
            raise usage.UsageError("--workers needs plain tcp: (or tcp6:) --http endpoints")


for _f in settings():
    if _f.metadata["repeatable"]:
        setattr(Options, "opt_" + _f.metadata["option"].replace("-", "_"),
                _repeatableOption(_f.metadata["option"], _helpText(_f)))
del _f


def federationSettings(config) -> tuple:
    """
    The templates of C{--federate} and C{--federate-group} and the
    credentials of C{--federation-credentials}, checked and read.

    @return: C{(templates, credentials, groupTemplates)}, each by domain.
    @raise ConfigError: Naming the setting at fault.
    """
    from fbtwist.remote.federation import parseCredentialsOption, parseFederationOption

    found = ({}, {}, {})
    for option, values, parse, index in (("federate", config.federate, parseFederationOption, 0),
                                         ("federation-credentials", config.federationCredentials,
                                          parseCredentialsOption, 1),
                                         ("federate-group", config.federateGroup, parseFederationOption, 2)):
        for domain, value in values:
            try:
                parsed = parse(f"{domain} = {value}")
            except ValueError as e:
                raise ConfigError(f"--{option} {domain}={value}: {e}") from None
            key = parsed[0] if index == 1 else parsed.domain
            if key in found[index]:
                raise ConfigError(f"--{option}: {key} is given twice")
            found[index][key] = parsed[1] if index == 1 else parsed
    return found


def isLoopback(host: str) -> bool:
    """
    Whether C{host} (an address or C{localhost}) is this machine's loopback.
    """
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host.lower() == "localhost"


def buildDirectory(config, reactor, top) -> LDAPDirectory:
    """
    The directory of C{--ldap}, with a warning when passwords would cross
    the network in clear text; without C{--ldap}, the demo directory, whose
    service is added to C{top} (stopped late) and points the directory at
    the address it listens on.

    @param top: The L{fbtwist.ops.shutdown.GracefulService} the demo
        directory's service joins.
    """
    url = config.ldap if config.ldap is not None else parseLDAPURL(DEMO_URL)
    directory = LDAPDirectory(
        url, reactor, bindDN=config.bindDN, bindPassword=config.bindPassword, timeout=config.ldapTimeout,
        trustRoot=_trustRoot(config.ldapCA) if config.ldapCA else None,
        startTLS=config.ldapStartTLS, loginAttributes=config.ldapLoginAttributes,
        mailAttributes=config.mailAttributes, poolSize=config.ldapPoolSize, retryMax=config.ldapRetryMax,
        bindPoolSize=config.ldapBindPoolSize, queueSize=config.ldapQueueSize,
        queueTimeout=config.ldapQueueTimeout,
        loginForms=LoginForms(config.ldapNetBIOSDomain, config.ldapUPNSuffixes),
    )
    buildRooms(config, directory)
    if config.ldap is not None and not (url.tls or directory.startTLS) and not isLoopback(url.host):
        log.warn(
            "the directory {server} is reached without TLS: passwords cross the network in clear text "
            "(use ldaps:// or --ldap-starttls)",
            server=directory.server,
        )
    if config.ldap is None:
        # Here, not at the top: the name index's build process imports this
        # module and needs no demo directory (ldaptor's in-memory server,
        # some 0.15 s of its start).
        from fbtwist.directory.demo import DemoDirectoryService

        def pointDirectoryAt(host, port):
            directory.url = url.withAddress(host, port)

        demo = DemoDirectoryService(config.demoLDIF, config.demoLDAP, reactor, pointDirectoryAt)
        demo.setServiceParent(top)
        top.stopLate(demo)
    return directory


def buildRooms(config, directory: LDAPDirectory) -> None:
    """
    Let C{directory} find rooms as C{--room-filter} and the other
    C{--room-...} settings say (unless C{--room-filter none}).
    """
    if config.roomFilter is None:
        return
    directory.configureRooms(RoomSearch(
        base=config.roomBase or defaultGroupBase(directory.url.base), filter=config.roomFilter,
        capacityAttribute=config.roomCapacityAttribute, equipmentAttribute=config.roomEquipmentAttribute,
        delegateAttribute=config.roomDelegateAttribute,
    ))


def _trustRoot(paths):
    # Imported when needed: TLS to the directory is the exception.
    from twisted.internet.ssl import trustRootFromCertificates

    return trustRootFromCertificates(caCertificates(paths))
