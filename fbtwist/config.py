"""
fbtwist's settings: one frozen L{Config}, built from the command line and an
optional INI file (the command line wins).

Each setting is declared once, as a field of L{Config} whose metadata gives
its option name, help text and parser; L{fbtwist.tap.Options} and the config
file reader are both generated from these declarations.

The config file is INI with a section C{[freebusy]}, whose keys are the
long option names (C{max-upload = 2M}); a repeatable option takes one value
per line.  An optional C{[federation]} section lists other organisations'
free/busy servers, C{DOMAIN = URL-TEMPLATE} (the C{federate} setting).
Secrets are never values: options such as C{bind-password-file} name a file
to read them from.
"""

import configparser
import difflib
import os
from dataclasses import dataclass, field, fields
from typing import Dict, List, Optional, Tuple

from twisted.python.filepath import FilePath

from fbtwist.directory.ldapurl import LDAPURLError, parseLDAPURL
from fbtwist.store.pool import DEFAULT_THREADS as DEFAULT_STORE_THREADS

CONFIG_SECTION = "freebusy"
#: The section of other organisations' free/busy servers, DOMAIN = URL-TEMPLATE.
FEDERATION_SECTION = "federation"
DEMO_LDIF = FilePath(__file__).sibling("data").child("demo.ldif")


class ConfigError(ValueError):
    """
    A setting has a bad value; the message names the setting and says why.
    """


def parseEndpoint(text: str) -> str:
    """
    Check a Twisted server endpoint description (C{tcp:8080},
    C{ssl:8443:privateKey=key.pem:certKey=cert.pem}, ...).
    """
    from twisted.internet import endpoints

    try:
        endpoints.serverFromString(None, text)
    except Exception as e:
        raise ValueError(f"not a usable endpoint description ({e}): write one such as tcp:8080 or "
                         "tcp:8080:interface=127.0.0.1") from None
    return text


def parseOptionalEndpoint(text: str) -> Optional[str]:
    return None if text.strip().lower() == "none" else parseEndpoint(text)


def parseSizeOrNone(text: str) -> int:
    """
    L{parseSize}, or 0 (none at all).
    """
    return 0 if text.strip().upper().removesuffix("B") in ("0", "0K", "0M", "0G") else parseSize(text)


def parseSize(text: str) -> int:
    """
    A size in bytes, with an optional K, M or G suffix (powers of 1024).
    """
    text = text.strip().upper().removesuffix("B")
    factor = 1
    for suffix, multiple in (("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30)):
        if text.endswith(suffix):
            text, factor = text[:-1], multiple
    try:
        size = int(text) * factor
    except ValueError:
        raise ValueError("expected a size in bytes such as 1048576 or 1M") from None
    if size <= 0:
        raise ValueError("must be more than 0 bytes")
    return size


def parsePositiveSeconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise ValueError("expected a number of seconds") from None
    if not 0 < seconds <= 3600:
        raise ValueError("must be between 0 and 3600 seconds")
    return seconds


def parsePortRange(text: str) -> range:
    """
    A TCP port range C{LOW-HIGH} (both included), or one port.
    """
    low, dash, high = text.strip().partition("-")
    try:
        first, last = int(low), int(high if dash else low)
    except ValueError:
        raise ValueError("expected a port range such as 50000-50100") from None
    if not 1024 <= first <= last <= 65535:
        raise ValueError("expected ports between 1024 and 65535, the lower one first")
    return range(first, last + 1)


def parseIPv4Address(text: str) -> str:
    import ipaddress

    try:
        return str(ipaddress.IPv4Address(text.strip()))
    except ValueError:
        raise ValueError("expected an IPv4 address such as 192.0.2.10 (PASV can only announce IPv4)") from None


def parseLDAP(text: str):
    try:
        return parseLDAPURL(text)
    except LDAPURLError as e:
        raise ValueError(str(e)) from None


def parseDN(text: str) -> str:
    from ldaptor.protocols.ldap.distinguishedname import DistinguishedName

    try:
        DistinguishedName(text)
    except Exception as e:
        raise ValueError(f"not a DN ({e})") from None
    return text


def parseText(text: str) -> str:
    if not text.strip():
        raise ValueError("may not be empty")
    return text


def readSecretFile(path: str) -> str:
    """
    A secret from the first line of a file (the line end stripped).
    """
    try:
        with open(path, encoding="utf-8") as f:
            secret = f.readline().rstrip("\r\n")
    except OSError as e:
        raise ValueError(
            f"cannot read the file ({e.strerror}): name a file whose first line is the password"
        ) from None
    if not secret:
        raise ValueError("the file's first line is empty: it must hold the password")
    return secret


def calendarRoot(text: str) -> FilePath:
    """
    The calendar tree's directory: it must be a directory, or be creatable
    as far as can be told without creating it (L{makeCalendarRoot} does).
    """
    path = os.path.abspath(parseText(text))
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise ValueError("this is a file, not a directory")
        if not os.access(path, os.W_OK | os.X_OK):
            raise ValueError(f"fbtwist may not write in {path}: name a directory it may write to")
        return FilePath(path)
    parent = os.path.dirname(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not (os.path.isdir(parent) and os.access(parent, os.W_OK | os.X_OK)):
        raise ValueError(f"{path} does not exist and cannot be created in {parent}: "
                         "name a directory fbtwist may write to")
    return FilePath(path)


def makeCalendarRoot(config: "Config") -> None:
    """
    Create the calendar tree's directory (and its parents) if missing:
    trying is the only sure test (C{/proc/x} looks creatable).

    @raise ConfigError: Naming the directory and why it cannot be made.
    """
    try:
        config.root.makedirs(ignoreExistingDirectory=True)
    except OSError as e:
        raise ConfigError(f"--root {config.root.path}: cannot create it ({e.strerror}): "
                          "name a directory fbtwist may write to") from None


def readableFile(path: str) -> FilePath:
    fp = FilePath(path)
    if not fp.isfile():
        raise ValueError(f"{path} is not a readable file")
    return fp


def parseFlag(text: str) -> bool:
    """
    A yes/no setting (C{yes}, C{true}, C{on}, C{1} or C{no}, C{false},
    C{off}, C{0}).
    """
    lowered = text.strip().lower()
    if lowered in ("yes", "true", "on", "1"):
        return True
    if lowered in ("no", "false", "off", "0"):
        return False
    raise ValueError("expected yes or no")


def parseSeconds(text: str) -> float:
    """
    A number of seconds, 0 allowed (meaning "off" where the help says so).
    """
    try:
        seconds = float(text)
    except ValueError:
        raise ValueError("expected a number of seconds") from None
    if not 0 <= seconds <= 86400:
        raise ValueError("must be between 0 and 86400 seconds")
    return seconds


def parseCount(low: int, high: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError("expected a whole number") from None
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")
        return value

    return parse


def parseAttributeList(text: str) -> Tuple[str, ...]:
    """
    A comma-separated list of LDAP attribute names.
    """
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise ValueError("expected attribute names separated by commas")
    for name in names:
        if not (name[0].isascii() and name[0].isalpha()) or not all(
                c.isascii() and (c.isalnum() or c == "-") for c in name):
            raise ValueError(f"{name!r} is not an attribute name")
    return names


def parseAttributeName(text: str) -> str:
    """
    One LDAP attribute name.
    """
    names = parseAttributeList(text)
    if len(names) != 1:
        raise ValueError("give one attribute name")
    return names[0]


def parseRoomFilter(text: str) -> Optional[str]:
    """
    An LDAP filter matching rooms, or C{none}: no rooms.
    """
    from ldaptor import ldapfilter

    text = text.strip()
    if text.lower() == "none":
        return None
    try:
        ldapfilter.parseFilter(text)
    except Exception:
        raise ValueError("is not an LDAP filter such as (objectClass=room)") from None
    return text


def parseBindName(text: str) -> str:
    """
    The search account: a DN, or a name Active Directory binds with
    (C{user@domain} or C{DOMAIN\\user}).
    """
    if "=" not in text and ("@" in text or "\\" in text) and text.strip() == text and text:
        return text
    return parseDN(text)


def parseNetBIOSDomain(text: str) -> str:
    """
    An Active Directory NetBIOS domain name (C{CORP}): 1 to 15 characters,
    none of them a space, a dot or one Windows forbids.
    """
    name = text.strip()
    if not 0 < len(name) <= 15 or any(c in '\\/:*?"<>|,. @=' or not c.isprintable() for c in name):
        raise ValueError("expected a NetBIOS domain name such as CORP (up to 15 characters, no dots)")
    return name


def parseDomainList(text: str) -> Tuple[str, ...]:
    """
    A comma-separated list of DNS domain names (C{corp.example.com,example.com}).
    """
    names = tuple(n.strip().lower() for n in text.split(",") if n.strip())
    if not names:
        raise ValueError("expected domain names separated by commas")
    for name in names:
        labels = name.split(".")
        if len(name) > 253 or not all(
            0 < len(label) <= 63 and all(c.isalnum() or c == "-" for c in label) for label in labels
        ):
            raise ValueError(f"{name!r} is not a domain name")
    return names


def parseDomainAssignment(text: str) -> Tuple[str, str]:
    """
    C{DOMAIN=VALUE} (C{partner.example=https://...}), as C{(domain,
    value)}; what the value must be is checked where it is used
    (L{fbtwist.tap.federationSettings}).
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise ValueError("expected DOMAIN=VALUE, e.g. partner.example=https://fb.partner.example/%NAME%.vfb")
    return key.strip(), value.strip()


def parseCACertificates(text: str) -> FilePath:
    """
    A PEM file holding one or more CA certificates.
    """
    path = readableFile(text)
    if not caCertificates(path):
        raise ValueError(f"{text} holds no PEM certificate")
    return path


def caCertificates(path: FilePath) -> list:
    """
    The certificates in a PEM file (L{twisted.internet.ssl.Certificate}s).

    @raise ValueError: When one does not parse.
    """
    from twisted.internet.ssl import Certificate

    data = path.getContent()
    marker = b"-----BEGIN CERTIFICATE-----"
    certificates = []
    for chunk in data.split(marker)[1:]:
        try:
            certificates.append(Certificate.loadPEM(marker + chunk))
        except Exception as e:
            raise ValueError(f"{path.path} holds a certificate that does not parse ({e})") from None
    return certificates


def parseNetworks(text: str) -> tuple:
    """
    Comma-separated networks in CIDR notation (C{10.0.0.0/8,::1/128}).
    """
    import ipaddress

    networks = []
    for part in text.split(","):
        if not part.strip():
            continue
        try:
            networks.append(ipaddress.ip_network(part.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{part.strip()!r} is not a network such as 192.168.0.0/16") from None
    if not networks:
        raise ValueError("give at least one network")
    return tuple(networks)


def parseZone(text: str):
    """
    An IANA time zone name (C{Europe/Berlin}, C{UTC}).
    """
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(text.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{text.strip()!r} is not a time zone name such as Europe/Berlin") from None


def parseWorkingHoursText(text: str) -> str:
    """
    Working hours such as C{Mon-Fri 08:00-18:00}, checked (their zone,
    C{--default-tz}, is applied where they are used: L{workingHours}).
    """
    from datetime import timezone

    from fbtwist.availability.workhours import parseWorkingHours

    parseWorkingHours(text, timezone.utc)  # raises WorkingHoursError, a ValueError, with one sentence
    return text.strip()


def workingHours(config: "Config"):
    """
    The site's default working hours (C{--working-hours}) on the wall clock
    of C{--default-tz}, as an L{fbtwist.availability.model.Availability}.
    """
    from fbtwist.availability.workhours import parseWorkingHours

    return parseWorkingHours(config.workingHours, config.defaultTZ)


def parseDays(text: str) -> int:
    days = parseCount(1, 731)(text)
    return days


def parseLogFormat(text: str) -> str:
    value = text.strip().lower()
    if value not in LOG_FORMATS:
        raise ValueError("expected " + " or ".join(LOG_FORMATS))
    return value


def parseMetrics(text: str) -> Optional[str]:
    """
    C{http} (C{/metrics} on the HTTP listeners), C{none}, or an endpoint
    description for a listener of its own.
    """
    value = text.strip()
    if value.lower() in ("http", "none"):
        return value.lower()
    return parseEndpoint(value)


def parseGraceSeconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise ValueError("expected a number of seconds") from None
    if not 0 <= seconds <= 3600:
        raise ValueError("must be between 0 and 3600 seconds")
    return seconds


#: The default of C{--http-unlimited-networks}.
_LOOPBACK_NETWORKS = parseNetworks("127.0.0.0/8,::1/128")


def parsePublicURL(text: str) -> str:
    """
    An C{http://} or C{https://} URL of a host (and port), without a path
    other than C{/}; returned without the trailing slash.
    """
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError as e:
        raise ValueError(f"not a URL ({e})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected http://host[:port] or https://host[:port]")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("expected only a scheme, a host and a port, e.g. https://freebusy.example.com")
    del port
    return f"{parts.scheme}://{parts.netloc}"


#: What C{--visibility} accepts (a site default cannot name groups: users
#: choose theirs).
VISIBILITY_AUDIENCES = ("everyone", "signed-in", "nobody")
#: What C{--visibility-detail} accepts.
VISIBILITY_DETAILS = ("full", "busy")


def _oneOf(choices: Tuple[str, ...]):
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in choices:
            raise ValueError("expected " + ", ".join(choices[:-1]) + " or " + choices[-1])
        return value

    return parse


#: What C{--log-format} accepts.
LOG_FORMATS = ("combined", "json")


#: The topics --help groups the settings under, in its order, each with the
#: option names or name prefixes that belong to it (see L{topicOf}; a
#: setting may also name its topic).
TOPICS = (
    ("Listeners", ("http", "ftp", "workers", "public-url")),
    ("Directory (LDAP)", ("ldap", "bind-", "admin-group", "mail-attributes", "auth-cache-", "login-",
                          "name-index-", "demo-", "ad-", "room-")),
    ("Lookups (/calendar/, /caldav/)", ("lookup-", "trusted-networks", "default-tz", "group-", "caldav-",
                                        "working-hours", "apply-working-hours", "visibility")),
    ("Publishing (WebDAV, the calendar tree)", ("root", "max-upload", "realm", "dav-", "expand-")),
    ("FTP", ("ftp-",)),
    ("Operations", ("log-", "access-log", "metrics", "shutdown-")),
    ("Federation and feeds (free/busy from elsewhere)", ("federate", "federation-", "feed-", "feeds-")),
)

#: Where a setting matching no topic's prefixes is listed.
OTHER_TOPIC = "Other settings"


def topicOf(option: str) -> str:
    """
    The topic of an option that does not name one: the one in L{TOPICS}
    with the longest name or prefix it matches (C{ftp} itself is a
    listener, but C{ftp-anonymous} is FTP).
    """
    best, length = OTHER_TOPIC, 0
    for topic, prefixes in TOPICS:
        for prefix in prefixes:
            if (option == prefix or option.startswith(prefix if prefix.endswith("-") else prefix + "-")) \
                    and len(prefix) > length:
                best, length = topic, len(prefix)
    return best


def setting(option: str, default, parse, help: str, repeatable: bool = False, secret: bool = False, metavar: str = "",
            flag: bool = False, topic: str = ""):
    """
    Declare a L{Config} field as an option.

    @param parse: Turns one text value into the setting's value, raising
        L{ValueError} with a short reason.
    @param flag: Whether the option is a command-line flag (no value); in
        the config file it takes C{yes} or C{no}.
    @param topic: The heading of L{TOPICS} it is listed under in C{--help};
        by default the one its name's prefix gives (L{topicOf}).
    """
    return field(
        default=default,
        repr=not secret,
        metadata=dict(option=option, parse=parse, help=help, repeatable=repeatable, metavar=metavar, flag=flag,
                      topic=topic or topicOf(option)),
    )


@dataclass(frozen=True)
class Config:
    """
    Every setting of a running fbtwist.
    """

    http: Tuple[str, ...] = setting(
        "http", ("tcp:8080",), parseEndpoint,
        "Listen for HTTP on this endpoint, e.g. tcp:8080:interface=127.0.0.1 or "
        "ssl:8443:privateKey=key.pem:certKey=cert.pem.",
        repeatable=True, metavar="ENDPOINT",
    )
    ftp: Optional[str] = setting(
        "ftp", "tcp:2121", parseOptionalEndpoint,
        "Listen for FTP on this endpoint, or 'none'.", metavar="ENDPOINT",
    )
    root: FilePath = setting(
        "root", FilePath("var/freebusy"), calendarRoot,
        "The calendar tree (created if missing).", metavar="DIR",
    )
    ldap: Optional[object] = setting(
        "ldap", None, parseLDAP,
        "The directory, as an RFC 4516 URL: ldap://host:port/BASE?ATTR?SCOPE?FILTER "
        "(ATTR default uid, SCOPE default sub). Without it a built-in demo directory is used, its user admin "
        "an administrator, and listeners without an interface= listen on loopback only.",
        metavar="URL",
    )
    bindDN: Optional[str] = setting(
        "bind-dn", None, parseBindName,
        "Search the directory as this DN, or user@domain for Active Directory (anonymously when absent).",
        metavar="DN",
    )
    bindPassword: Optional[str] = setting(
        "bind-password-file", None, readSecretFile,
        "Read the search account's password from the first line of this file.",
        secret=True, metavar="FILE",
    )
    adminGroup: Optional[str] = setting(
        "admin-group", None, parseDN, "Members of this group may manage the whole tree.", metavar="DN",
    )
    storeThreads: int = setting(
        "store-threads", DEFAULT_STORE_THREADS, parseCount(1, 64),
        "Threads writing, fsyncing and renaming publishes (the store's pool); fewer mean fewer fsyncs "
        "at once, directory fsyncs are shared whatever the number.",
        metavar="N", topic="Publishing (WebDAV, the calendar tree)",
    )
    commitProcess: bool = setting(
        "commit-process", True, parseFlag,
        "Commit publishes sent in one piece without conditions in a child process with --store-threads "
        "threads of its own, so that waiting for the disk never holds up the server's reactor (yes or no: "
        "no commits every publish in the server's own threads).",
        metavar="YES|NO", topic="Publishing (WebDAV, the calendar tree)",
    )
    warmNames: bool = setting(
        "warm-names", True, parseFlag,
        "At start, have a child process at the lowest priority ask the kernel once for the names every "
        "lookup asks for (<uid>.vfb and <uid>.ics at the top of the tree), so that first lookups after a "
        "restart do not wait for the folder's lock behind publishes (yes or no).",
        metavar="YES|NO", topic="Publishing (WebDAV, the calendar tree)",
    )
    maxUpload: int = setting(
        "max-upload", 1 << 20, parseSize, "The largest upload accepted (bytes; K and M suffixes).", metavar="BYTES",
    )
    # --- HTTP connections: deadlines and limits (fbtwist/web/connection.py) ---
    httpIdleTimeout: float = setting(
        "http-idle-timeout", 60.0, parsePositiveSeconds,
        "Close an HTTP connection when no new request starts within this long.", metavar="SECONDS",
    )
    httpHeaderTimeout: float = setting(
        "http-header-timeout", 20.0, parsePositiveSeconds,
        "Answer 408 and close when a request's line and headers have not all arrived this long after its "
        "first byte; a body gets as long again plus a second per --http-min-body-rate bytes.",
        metavar="SECONDS",
    )
    httpMinBodyRate: int = setting(
        "http-min-body-rate", 500, parseCount(1, 1 << 30),
        "The slowest upload accepted, in bytes per second (after --http-header-timeout seconds of grace).",
        metavar="BYTES",
    )
    httpMaxConnectionsPerAddress: int = setting(
        "http-max-connections-per-address", 32, parseCount(0, 1000000),
        "Answer 503 to more simultaneous HTTP connections than this from one client address; 0 = no limit. "
        "Per process with --workers.", metavar="N",
    )
    httpMaxConnections: int = setting(
        "http-max-connections", 0, parseCount(0, 10000000),
        "Answer 503 (FTP: 421) to more simultaneous connections than this (per process, HTTP and FTP "
        "together); 0 = as many as the "
        "descriptor limit (ulimit -n, LimitNOFILE) leaves after a reserve of an eighth (at least 40).",
        metavar="N",
    )
    httpUnlimitedNetworks: tuple = setting(
        "http-unlimited-networks", _LOOPBACK_NETWORKS, parseNetworks,
        "Clients in these networks (e.g. a reverse proxy) have no per-address connection limit.",
        metavar="CIDR,...",
    )
    publicURL: Optional[str] = setting(
        "public-url", None, parsePublicURL,
        "The server's address as users reach it (e.g. https://freebusy.example.com); /setup shows URLs "
        "under it. Without it they are built from each request's Host header.", metavar="URL",
    )
    ldapTimeout: float = setting(
        "ldap-timeout", 1.5, parsePositiveSeconds,
        "Give up on a directory call after this long (clients then get 503).", metavar="SECONDS",
    )
    realm: str = setting(
        "realm", "fbtwist free/busy", parseText, "The HTTP Basic authentication realm.", metavar="NAME",
    )
    demoLDAP: str = setting(
        "demo-ldap", "tcp:0:interface=127.0.0.1", parseEndpoint,
        "Where the demo directory listens when --ldap is not given.", metavar="ENDPOINT",
    )
    demoLDIF: FilePath = setting(
        "demo-ldif", DEMO_LDIF, readableFile, "The demo directory's entries.", metavar="FILE",
    )

    # --- Directory: rooms ---
    roomFilter: Optional[str] = setting(
        "room-filter", "(objectClass=room)", parseRoomFilter,
        "The LDAP filter matching rooms and other bookable resources (below --room-base), e.g. "
        "(objectClass=room) or, in Active Directory, (msExchResourceMetaData=ResourceType:Room); "
        "none: no rooms.", metavar="FILTER",
    )
    roomBase: Optional[str] = setting(
        "room-base", None, parseDN,
        "Where rooms are searched (default: the domain of the directory URL's base, as for groups).",
        metavar="DN",
    )
    roomCapacityAttribute: str = setting(
        "room-capacity-attribute", "msExchResourceCapacity", parseAttributeName,
        "The attribute holding how many people a room seats.", metavar="ATTRIBUTE",
    )
    roomEquipmentAttribute: str = setting(
        "room-equipment-attribute", "msExchResourceMetaData", parseAttributeName,
        "The attribute holding what a room has, one item a value (ResourceType:... values are ignored).",
        metavar="ATTRIBUTE",
    )
    roomDelegateAttribute: str = setting(
        "room-delegate-attribute", "owner", parseAttributeName,
        "The attribute of a room naming (by DN or login) the people who may publish its free/busy, "
        "e.g. owner or manager; administrators always may.", metavar="ATTRIBUTE",
    )

    # --- Directory: TLS, connections, names, bind cache, throttling ---
    ldapStartTLS: bool = setting(
        "ldap-starttls", False, parseFlag,
        "Switch ldap:// connections to TLS with StartTLS (also the URL extension !starttls, as in "
        "ldap://host/BASE?uid?sub??!starttls); "
        "never falls back to plain text.", flag=True,
    )
    ldapCA: Optional[FilePath] = setting(
        "ldap-ca", None, parseCACertificates,
        "Trust only the CA certificates in this PEM file for the directory's TLS certificate "
        "(default: the system's CAs). The certificate must name the URL's host.", metavar="FILE",
    )
    ldapLoginAttributes: Tuple[str, ...] = setting(
        "ldap-login-attributes", (), parseAttributeList,
        "Match a login against any of these attributes, e.g. sAMAccountName,userPrincipalName "
        "for Active Directory [default: the URL's attribute].", metavar="ATTRS",
    )
    ldapNetBIOSDomain: Optional[str] = setting(
        "ldap-netbios-domain", None, parseNetBIOSDomain,
        "Active Directory: accept DOMAIN\\user logins of this NetBIOS domain, as the account whose "
        "sAMAccountName is user.", metavar="DOMAIN",
    )
    ldapUPNSuffixes: Tuple[str, ...] = setting(
        "ldap-upn-suffixes", (), parseDomainList,
        "Active Directory: accept user@SUFFIX logins with these suffixes, as the account whose "
        "sAMAccountName is user when no userPrincipalName is that login.", metavar="DOMAINS",
    )
    mailAttributes: Tuple[str, ...] = setting(
        "mail-attributes", ("mail",), parseAttributeList,
        "Attributes holding mail addresses, for lookup names (e.g. mail,mailAlternateAddress).",
        metavar="ATTRS",
    )
    ldapPoolSize: int = setting(
        "ldap-pool-size", 2, parseCount(1, 32), "Persistent connections used for directory searches.",
        metavar="N",
    )
    ldapRetryMax: float = setting(
        "ldap-retry-max", 30.0, parsePositiveSeconds,
        "After directory failures, wait at most this long before reconnecting (the wait starts at "
        "0.25 s and doubles; requests meanwhile get 503).", metavar="SECONDS",
    )
    authCacheTTL: float = setting(
        "auth-cache-ttl", 300.0, parseSeconds,
        "Remember a successful login (as a salted hash) for this long; 0 switches the cache off.",
        metavar="SECONDS",
    )
    authCacheSize: int = setting(
        "auth-cache-size", 1000, parseCount(1, 1000000), "Logins the bind cache remembers at most.", metavar="N",
    )
    loginFailures: int = setting(
        "login-failures", 5, parseCount(0, 1000000),
        "Failed logins for one login name within --login-window that lock it out; 0 = no limit.", metavar="N",
    )
    loginFailuresPerAddress: int = setting(
        "login-failures-per-address", 20, parseCount(0, 1000000),
        "Failed logins from one client address within --login-window that lock it out; 0 = no limit.",
        metavar="N",
    )
    loginWindow: float = setting(
        "login-window", 300.0, parsePositiveSeconds, "The window over which failed logins are counted.",
        metavar="SECONDS",
    )
    loginLockout: float = setting(
        "login-lockout", 300.0, parsePositiveSeconds,
        "How long a locked-out login name or address is refused (HTTP 429, FTP 421).", metavar="SECONDS",
    )
    loginFailureDelay: float = setting(
        "login-failure-delay", 0.2, parseSeconds,
        "Answer a failed login no sooner than this after it arrived (plus up to half of it at random), so "
        "that the answer's timing does not tell whether the login exists; 0 switches it off.",
        metavar="SECONDS",
    )

    # --- lookup: /calendar/ ---
    lookupAuth: bool = setting(
        "lookup-auth", False, parseFlag,
        "Require HTTP Basic authentication (a directory login) for /calendar/ lookups.", flag=True,
    )
    trustedNetworks: tuple = setting(
        "trusted-networks", (), parseNetworks,
        "With --lookup-auth, clients in these networks may still look up anonymously, "
        "e.g. 10.0.0.0/8,192.168.0.0/16.",
        metavar="CIDR,...",
    )
    defaultTZ: object = setting(
        "default-tz", parseZone("UTC"), parseZone,
        "The time zone of all-day events in published calendars without X-WR-TIMEZONE, "
        "and of the lookup page's week grid.",
        metavar="ZONE",
    )
    workingHours: str = setting(
        "working-hours", "Mon-Fri 08:00-18:00", parseWorkingHoursText,
        "The site's working hours on the wall clock of --default-tz, e.g. 'Mon-Fri 08:00-18:00' or "
        "'Mon-Thu 08:00-12:00,13:00-17:00; Fri 08:00-12:00', for people who publish none of their own "
        "(<login>.avail.ics); lookups with workhours=1 mark time outside them BUSY-UNAVAILABLE.",
        metavar="HOURS",
    )
    applyWorkingHours: bool = setting(
        "apply-working-hours", False, parseFlag,
        "Mark time outside each person's working hours BUSY-UNAVAILABLE in every lookup, "
        "as if each asked for workhours=1.", flag=True,
    )
    visibility: str = setting(
        "visibility", "everyone", _oneOf(VISIBILITY_AUDIENCES),
        "Who may see the free/busy times of people who chose nothing on /settings: everyone "
        "(anonymous readers too, where lookups are anonymous), signed-in (users who log in) or nobody. "
        "Users may choose otherwise there (also: members of chosen directory groups).",
        metavar="WHO",
    )
    visibilityDetail: str = setting(
        "visibility-detail", "full", _oneOf(VISIBILITY_DETAILS),
        "The detail shown of people who chose nothing on /settings: full (busy, tentative and "
        "out-of-office times as published) or busy (every period shown as BUSY).",
        metavar="DETAIL",
    )
    visibilityFixed: bool = setting(
        "visibility-fixed", False, parseFlag,
        "Users may only make --visibility and --visibility-detail stricter for themselves, never "
        "looser (a looser choice made before holds as the site's).", flag=True,
    )
    groupBase: Optional[str] = setting(
        "group-base", None, parseDN,
        "Where the groups for /calendar/group/<cn>.vfb are (default: the parent of the directory URL's base).",
        metavar="DN",
    )
    caldavMaxAttendees: int = setting(
        "caldav-max-attendees", 100, parseCount(1, 10000),
        "The most attendees one CalDAV free/busy request (an outbox POST) may name.", metavar="N",
    )
    groupMaxMembers: int = setting(
        "group-max-members", 50, parseCount(1, 100000), "The largest group whose free/busy is merged.", metavar="N",
    )
    lookupWindow: int = setting(
        "lookup-window", 42, parseDays,
        "Days of free/busy served from a lookup's start when it gives no end (and derived from a full calendar).",
        metavar="DAYS",
    )
    keepAnswers: bool = setting(
        "keep-answers", True, parseFlag,
        "Keep a lookup's rendered answer with the version of the file it was made of (an extended attribute of "
        "the file, shared by every worker and node), so that later lookups of that version, in any process, "
        "neither read its times nor render them again (yes or no).",
        metavar="YES|NO", topic="Lookups (/calendar/, /caldav/)",
    )
    answerMemory: int = setting(
        "answer-memory", 512 * 2**20, parseSizeOrNone,
        "Remember up to this much of anonymous lookups' answers in memory, in each process that serves them, "
        "while the files they were made of are unchanged (the kernel tells each change, so only for a tree on "
        "a local filesystem: on NFS, GlusterFS and other filesystems shared by several machines every lookup "
        "looks at the files); 0 switches it off (K, M or G suffixes).",
        metavar="SIZE", topic="Lookups (/calendar/, /caldav/)",
    )
    lookupMissDelay: float = setting(
        "lookup-miss-delay", 0.05, parseSeconds,
        "Answer a lookup that finds nothing published no sooner than this after it arrived (plus up to half "
        "of it at random), so that its timing does not tell a directory member from a name nobody has; "
        "0 switches it off.", metavar="SECONDS",
    )
    expandLimit: int = setting(
        "expand-limit", 500_000, parseCount(1000, 100_000_000),
        "The most recurrence rule steps expanding a published full calendar (.ics) may take; "
        "a calendar needing more is refused.",
        metavar="STEPS",
    )

    # --- FTP (Outlook 98 publishing; see fbtwist.ftp.server) ---
    ftpAnonymous: bool = setting(
        "ftp-anonymous", False, parseFlag,
        "Let anonymous FTP users (login anonymous or ftp) list and download the published files; "
        "they can never write.", flag=True,
    )
    ftpPassivePorts: Optional[range] = setting(
        "ftp-passive-ports", None, parsePortRange,
        "Listen for passive FTP data connections (PASV, EPSV) on ports in this range only, e.g. "
        "50000-50100 (any free port when absent).", metavar="LOW-HIGH",
    )
    ftpPassiveHost: Optional[str] = setting(
        "ftp-passive-host", None, parseIPv4Address,
        "The IPv4 address to announce in PASV replies, for a server behind NAT (the address the "
        "client connected to when absent).", metavar="ADDRESS",
    )
    ftpIdleTimeout: float = setting(
        "ftp-idle-timeout", 300.0, parsePositiveSeconds,
        "Close an FTP session after this long without a command or data.", metavar="SECONDS",
    )
    ftpDataTimeout: float = setting(
        "ftp-data-timeout", 10.0, parsePositiveSeconds,
        "Give up on an FTP data connection that has not been made after this long.", metavar="SECONDS",
    )
    ftpMaxConnectionsPerAddress: int = setting(
        "ftp-max-connections-per-address", 8, parseCount(1, 100000),
        "Refuse (with 421) more simultaneous FTP sessions than this from one client address.",
        metavar="N",
    )
    ftpTLSCertificate: Optional[FilePath] = setting(
        "ftp-tls-certificate", None, readableFile,
        "Offer explicit FTPS (AUTH TLS) with this PEM certificate (which may hold the key too).",
        metavar="FILE",
    )
    ftpTLSKey: Optional[FilePath] = setting(
        "ftp-tls-key", None, readableFile,
        "The PEM private key of --ftp-tls-certificate, when it is not in the same file.", metavar="FILE",
    )
    ftpTLSRequired: bool = setting(
        "ftp-tls-required", False, parseFlag,
        "Refuse FTP logins before AUTH TLS, and unprotected data connections (needs "
        "--ftp-tls-certificate; Outlook 98 cannot do TLS).", flag=True,
    )

    # --- Operations: logs, metrics, shutdown ---
    logFormat: str = setting(
        "log-format", "combined", parseLogFormat,
        "How access lines are logged: combined (Apache's combined format, in twistd's log) or json "
        "(one JSON object per line for every log event, on twistd's log file or standard output).",
        metavar="FORMAT",
    )
    accessLog: Optional[FilePath] = setting(
        "access-log", None, lambda t: FilePath(os.path.abspath(parseText(t))),
        "Also write one line per request in Apache's combined format to this file (for log analysers).",
        metavar="FILE",
    )
    metrics: str = setting(
        "metrics", "http", parseMetrics,
        "Where Prometheus metrics are served: http (GET /metrics on the HTTP listeners), none, or an "
        "endpoint of their own such as tcp:9464:interface=127.0.0.1 (then not on the HTTP listeners).",
        metavar="ENDPOINT",
    )
    shutdownGrace: float = setting(
        "shutdown-grace", 10.0, parseGraceSeconds,
        "On SIGTERM, let requests and uploads in flight finish for up to this long, then drop them.",
        metavar="SECONDS",
    )

    # --- Multi-process mode (fbtwist/ops/workers.py) ---
    workers: int = setting(
        "workers", 0, parseCount(0, 64),
        "Serve HTTP from this many worker processes sharing the listening sockets (0: serve in this "
        "process; FTP and a metrics listener stay in the master). Each --http endpoint must then be "
        "a tcp: one.", metavar="N",
    )

    # --- directory name index ---
    nameIndexRefresh: float = setting(
        "name-index-refresh", 600.0, parseSeconds,
        "Keep every user's lookup names (uids, mail addresses) in memory, loaded from the directory with "
        "one paged search and reloaded this often, so lookups need no directory search; 0 switches the "
        "index off. Names added since the last load are still found in the directory; removed or changed "
        "ones may answer as before for up to this long.",
        metavar="SECONDS",
    )
    nameIndexDir: str = setting(
        "name-index-dir", "auto", parseText,
        "Write the name index to a file in this directory (only this user may write to it), mapped into "
        "memory by every process of this host: one copy for all --workers (built by a short-lived child "
        "process; kept between runs, and mapped at start when younger than --name-index-refresh). auto: "
        "$RUNTIME_DIRECTORY, else fbtwist-names-UID in the temporary directory; none: each process keeps "
        "its own copy in its memory.", metavar="DIR",
    )

    # --- directory bind connections ---
    ldapBindPoolSize: int = setting(
        "ldap-bind-pool-size", 4, parseCount(1, 64),
        "Connections kept open for checking users' passwords (LDAP binds), never used for searches; "
        "also how many binds run at once (more wait their turn).",
        metavar="N",
    )
    ldapQueueSize: int = setting(
        "ldap-queue-size", 1000, parseCount(0, 1000000),
        "Directory searches and binds allowed to wait for their turn (at most 4 searches per "
        "--ldap-pool-size connection and --ldap-bind-pool-size binds run at once); one more is answered "
        "503 (busy) at once, without taking the directory for down.", metavar="N",
    )
    ldapQueueTimeout: float = setting(
        "ldap-queue-timeout", 10.0, parsePositiveSeconds,
        "How long a directory search or bind may wait for its turn before the client gets 503 (busy); "
        "--ldap-timeout only starts when the request is sent to the directory.", metavar="SECONDS",
    )


    # --- Federation and feeds (fbtwist/remote, fbtwist/web/federated.py) ---
    federate: tuple = setting(
        "federate", (), parseDomainAssignment,
        "Look up addresses of DOMAIN at another organisation's free/busy server: DOMAIN=URL-TEMPLATE, "
        "%NAME% and %SERVER% standing for the address's parts, e.g. "
        "partner.example=https://fb.partner.example/calendar/%NAME%@%SERVER%.vfb (repeatable; or one "
        "line each in the config file's [federation] section).",
        repeatable=True, metavar="DOMAIN=TEMPLATE",
    )
    federateGroup: tuple = setting(
        "federate-group", (), parseDomainAssignment,
        "Look up the groups of DOMAIN (/calendar/group/CN@DOMAIN.vfb) at another organisation's server: "
        "DOMAIN=URL-TEMPLATE, %NAME% standing for the group's name, e.g. "
        "partner.example=https://fb.partner.example/calendar/group/%NAME%.vfb (repeatable).",
        repeatable=True, metavar="DOMAIN=TEMPLATE",
    )
    federationCalFBURL: bool = setting(
        "federation-calfburl", False, parseFlag,
        "For an address no template and no user of ours answers, look for a directory entry with that "
        "mail address and a calFBURL attribute (RFC 2739), and fetch its free/busy from there.", flag=True,
    )
    federationCredentials: tuple = setting(
        "federation-credentials", (), parseDomainAssignment,
        "Fetch DOMAIN's free/busy with HTTP Basic credentials read from FILE's first line "
        "(username:password): DOMAIN=FILE (repeatable).",
        repeatable=True, metavar="DOMAIN=FILE",
    )
    federationAllowNetworks: tuple = setting(
        "federation-allow-networks", (), parseNetworks,
        "Networks that fetches (federation and feeds) may reach although they are not public, comma "
        "separated, e.g. 10.20.0.0/16 for a partner on the internal network (loopback, private, "
        "link-local and multicast addresses are refused otherwise).", metavar="NETWORKS",
    )
    federationCA: Optional[FilePath] = setting(
        "federation-ca", None, lambda t: parseCACertificates(t),
        "Verify the HTTPS certificates of federation and feed servers against the CAs in this PEM file "
        "instead of the system's.", metavar="FILE",
    )
    federationTimeout: float = setting(
        "federation-timeout", 2.0, parsePositiveSeconds,
        "The longest one fetch (federation or feed) may take, connecting and reading included.",
        metavar="SECONDS",
    )
    federationMaxSize: int = setting(
        "federation-max-size", 1 << 20, parseSize,
        "The largest answer a fetch accepts, in bytes (K, M and G suffixes).", metavar="SIZE",
    )
    federationTTL: float = setting(
        "federation-ttl", 900.0, parsePositiveSeconds,
        "How long another organisation's answer is reused before its server is asked again (conditionally); "
        "longer when the answer's Cache-Control max-age says so.",
        metavar="SECONDS",
    )
    federationMaxStale: float = setting(
        "federation-max-stale", 3600.0, parseSeconds,
        "While another organisation's server cannot be asked, its last answer is still served, marked "
        "stale (headers Warning: 110 and X-Fbtwist-Stale: 1), for up to this long after it expired; "
        "then lookups answer 503 with Retry-After.", metavar="SECONDS",
    )
    feedsPerUser: int = setting(
        "feeds-per-user", 5, parseCount(0, 50),
        "How many calendar feed URLs (ICS) each user may register on /calendar/feeds (0: none).",
        metavar="N",
    )
    feedInterval: float = setting(
        "feed-interval", 900.0, parsePositiveSeconds,
        "How often each registered calendar feed is fetched (conditionally, with ETag and "
        "If-Modified-Since).", metavar="SECONDS",
    )



def settings() -> List:
    """
    @return: The L{Config} fields, in declaration order.
    """
    return list(fields(Config))


def _optionKey(f) -> str:
    return f.metadata["option"]


#: Names that are not settings but that people try, with what to do instead.
MISTAKEN_NAMES = {
    "bind-password": "passwords are only read from files: use bind-password-file, naming a file whose "
                     "first line is the password",
}


def unknownSetting(name: str, prefix: str = "") -> str:
    """
    What to tell someone who used a setting name that does not exist.

    @param name: The name given, without C{--}.
    @param prefix: How settings are written where it was given: C{"--"} on
        the command line, C{""} in the config file.
    @return: A sentence naming it and, when one is close, the setting they
        probably meant.
    """
    if name in MISTAKEN_NAMES:
        return MISTAKEN_NAMES[name].replace("use ", "use " + prefix, 1)
    known = [_optionKey(f) for f in settings()] + (["config"] if prefix else [])
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {prefix}{close[0]}?" if close else "twistd freebusy --help lists the settings"
    return f"unknown setting {prefix}{name}: {hint}"


def readConfigFile(path: str) -> Dict[str, List[str]]:
    """
    Read an INI config file.

    @return: Option name to its values (one, or several for a repeatable
        option).
    @raise ConfigError: When the file cannot be read or has an unknown key.
    """
    parser = configparser.ConfigParser(interpolation=None, empty_lines_in_values=False)
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except OSError as e:
        raise ConfigError(f"cannot read the config file {path}: {e.strerror}") from None
    except configparser.Error as e:
        raise ConfigError(f"the config file {path} is not valid INI: {' '.join(str(e).split())}") from None
    known = {_optionKey(f): f for f in settings()}
    unknownSections = [s for s in parser.sections() if s not in (CONFIG_SECTION, FEDERATION_SECTION)]
    if unknownSections:
        raise ConfigError(f"{path}: unknown section [{unknownSections[0]}] (settings go under [{CONFIG_SECTION}])")
    values = {}
    if parser.has_section(FEDERATION_SECTION):
        values.update(_federationSection(path, parser))
    if parser.has_section(CONFIG_SECTION):
        for key, value in parser.items(CONFIG_SECTION):
            if key not in known:
                raise ConfigError(f"{path}: {unknownSetting(key)}")
            lines = [line.strip() for line in value.splitlines() if line.strip()]
            if len(lines) > 1 and not known[key].metadata["repeatable"]:
                raise ConfigError(f"{path}: {key} takes one value")
            if key == "federate" and "federate" in values:
                raise ConfigError(f"{path}: federate is given both in [{CONFIG_SECTION}] and as "
                                  f"[{FEDERATION_SECTION}]: use one")
            values[key] = lines
    return values


def _federationSection(path: str, parser) -> Dict[str, List[str]]:
    """
    The C{[federation]} section, one C{DOMAIN = URL-TEMPLATE} a line: the
    values of the repeatable C{federate} setting.
    """
    lines = []
    for domain, template in parser.items(FEDERATION_SECTION):
        if len(template.splitlines()) > 1:
            raise ConfigError(f"{path}: [{FEDERATION_SECTION}] {domain} takes one URL template")
        lines.append(f"{domain} = {template.strip()}")
    return {"federate": lines}


def buildConfig(commandLine: Dict[str, object], configFile: Optional[str] = None) -> Config:
    """
    Merge the command line over the config file over the defaults.

    @param commandLine: Option name to the text given (a list of texts for
        a repeatable option), C{None} (or an empty list) where not given.
    @raise ConfigError: Naming the first bad setting and its source.
    """
    fromFile = readConfigFile(configFile) if configFile else {}
    values = {}
    for f in settings():
        option = _optionKey(f)
        given = commandLine.get(option)
        if f.metadata["flag"]:
            # A flag not given on the command line is 0, not None.
            given = "yes" if given else None
        if given is not None and given != []:
            texts = given if isinstance(given, list) else [given]
            where = "--{option} {value}"
        elif option in fromFile:
            texts = fromFile[option]
            where = f"{{option}} = {{value}} in {configFile}"
        else:
            continue
        parse = f.metadata["parse"]
        parsed = []
        for text in texts:
            try:
                parsed.append(parse(text))
            except ValueError as e:
                shown = "yes" if f.metadata["flag"] else _quoted(text)
                raise ConfigError(f"{where.format(option=option, value=shown)}: {e}") from None
        values[f.name] = tuple(parsed) if f.metadata["repeatable"] else parsed[-1]
    config = Config(**values)
    checkDirectorySettings(config)
    return config


def _quoted(text: str) -> str:
    """
    A value as the operator would type it: bare when it is one plain word.
    """
    return text if text and not any(c.isspace() or c in "'\"" for c in text) else repr(text)


def checkDirectorySettings(config: Config) -> None:
    """
    Refuse directory settings that contradict each other.

    @raise ConfigError: Saying which, and what to do.
    """
    url = config.ldap
    if config.bindDN and not config.bindPassword:
        raise ConfigError("--bind-dn needs --bind-password-file (the search account's password)")
    if config.bindPassword and not config.bindDN:
        raise ConfigError("--bind-password-file needs --bind-dn (the search account)")
    if url is not None and url.tls and config.ldapStartTLS:
        raise ConfigError("--ldap-starttls is for ldap:// URLs; an ldaps:// URL is TLS already")
    if config.ldapCA is not None and not (url is not None and (url.tls or url.startTLS or config.ldapStartTLS)):
        raise ConfigError("--ldap-ca is given but the directory connection is not TLS: "
                          "use an ldaps:// URL or --ldap-starttls")
