"""
fbtwist's settings: one frozen L{Config}, built from the command line and an
optional INI file (the command line wins).

Each setting is declared once, as a field of L{Config} whose metadata gives
its option name, help text and parser; L{fbtwist.tap.Options} and the config
file reader are both generated from these declarations.

The config file is INI with one section, C{[freebusy]}, whose keys are the
long option names (C{max-upload = 2M}); a repeatable option takes one value
per line.  Secrets are never values: options such as C{bind-password-file}
name a file to read them from.
"""

import configparser
import os
from dataclasses import dataclass, field, fields
from typing import Dict, List, Optional, Tuple

from twisted.python.filepath import FilePath

from fbtwist.ldapurl import LDAPURLError, parseLDAPURL

CONFIG_SECTION = "freebusy"
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
        raise ValueError(f"not a usable endpoint description ({e})") from None
    return text


def parseOptionalEndpoint(text: str) -> Optional[str]:
    return None if text.strip().lower() == "none" else parseEndpoint(text)


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


def parseWorkerCount(text: str) -> int:
    """
    How many worker processes C{--workers} asks for (0: serve in this
    process).
    """
    try:
        count = int(text)
    except ValueError:
        raise ValueError("expected a number of processes") from None
    if not 0 <= count <= 64:
        raise ValueError("must be between 0 and 64")
    return count


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
        raise ValueError(f"cannot read {path}: {e.strerror}") from None
    if not secret:
        raise ValueError(f"{path} is empty")
    return secret


def readableFile(path: str) -> FilePath:
    fp = FilePath(path)
    if not fp.isfile():
        raise ValueError(f"{path} is not a readable file")
    return fp


def setting(option: str, default, parse, help: str, repeatable: bool = False, secret: bool = False, metavar: str = ""):
    """
    Declare a L{Config} field as an option.

    @param parse: Turns one text value into the setting's value, raising
        L{ValueError} with a short reason.
    """
    return field(
        default=default,
        repr=not secret,
        metadata=dict(option=option, parse=parse, help=help, repeatable=repeatable, metavar=metavar),
    )


@dataclass(frozen=True)
class Config:
    """
    Every setting of a running fbtwist.
    """

    http: Tuple[str, ...] = setting(
        "http", ("tcp:8080",), parseEndpoint,
        "Listen for HTTP on this endpoint (repeatable), e.g. tcp:8080:interface=127.0.0.1 or "
        "ssl:8443:privateKey=key.pem:certKey=cert.pem.",
        repeatable=True, metavar="ENDPOINT",
    )
    ftp: Optional[str] = setting(
        "ftp", "tcp:2121", parseOptionalEndpoint,
        "Listen for FTP on this endpoint, or 'none'.", metavar="ENDPOINT",
    )
    root: FilePath = setting(
        "root", FilePath("var/freebusy"), lambda t: FilePath(os.path.abspath(parseText(t))),
        "The calendar tree (created if missing).", metavar="DIR",
    )
    ldap: Optional[object] = setting(
        "ldap", None, parseLDAP,
        "The directory, as an RFC 4516 URL: ldap://host:port/BASE?ATTR?SCOPE?FILTER "
        "(ATTR default uid, SCOPE default sub). Without it a built-in demo directory is used.",
        metavar="URL",
    )
    bindDN: Optional[str] = setting(
        "bind-dn", None, parseDN, "Search the directory as this DN (anonymously when absent).", metavar="DN",
    )
    bindPassword: Optional[str] = setting(
        "bind-password-file", None, readSecretFile,
        "Read the search account's password from the first line of this file.",
        secret=True, metavar="FILE",
    )
    adminGroup: Optional[str] = setting(
        "admin-group", None, parseDN, "Members of this group may manage the whole tree.", metavar="DN",
    )
    maxUpload: int = setting(
        "max-upload", 1 << 20, parseSize, "The largest upload accepted (bytes; K and M suffixes).", metavar="BYTES",
    )
    ldapTimeout: float = setting(
        "ldap-timeout", 5.0, parsePositiveSeconds, "Give up on a directory call after this long.", metavar="SECONDS",
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

    # --- Multi-process mode (fbtwist/workers.py) ---
    workers: int = setting(
        "workers", 0, parseWorkerCount,
        "Serve HTTP from this many worker processes sharing the listening sockets (0: serve in this "
        "process). Each --http endpoint must then be a tcp: one.", metavar="N",
    )


def settings() -> List:
    """
    @return: The L{Config} fields, in declaration order.
    """
    return list(fields(Config))


def _optionKey(f) -> str:
    return f.metadata["option"]


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
    unknownSections = [s for s in parser.sections() if s != CONFIG_SECTION]
    if unknownSections:
        raise ConfigError(f"{path}: unknown section [{unknownSections[0]}] (settings go under [{CONFIG_SECTION}])")
    values = {}
    if parser.has_section(CONFIG_SECTION):
        for key, value in parser.items(CONFIG_SECTION):
            if key not in known:
                raise ConfigError(f"{path}: unknown setting {key!r}")
            lines = [line.strip() for line in value.splitlines() if line.strip()]
            if len(lines) > 1 and not known[key].metadata["repeatable"]:
                raise ConfigError(f"{path}: {key} takes one value")
            values[key] = lines
    return values


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
        if given is not None and given != []:
            source, texts = f"--{option}", given if isinstance(given, list) else [given]
        elif option in fromFile:
            source, texts = f"{option} in {configFile}", fromFile[option]
        else:
            continue
        parse = f.metadata["parse"]
        try:
            parsed = [parse(t) for t in texts]
        except ValueError as e:
            raise ConfigError(f"{source}: {e}") from None
        values[f.name] = tuple(parsed) if f.metadata["repeatable"] else parsed[-1]
    return Config(**values)
