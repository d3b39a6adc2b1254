"""
C{twistd freebusy}: options and the service tree.
"""

from twisted.application import service, strports
from twisted.cred.checkers import AllowAnonymousAccess
from twisted.cred.portal import Portal
from twisted.logger import Logger
from twisted.python import usage
from twisted.web.resource import IResource

from fbtwist.checker import DirectoryChecker
from fbtwist.config import ConfigError, buildConfig, settings
from fbtwist.dav.resource import CalendarTreeResource
from fbtwist.demo import DemoDirectoryService
from fbtwist.directory import LDAPDirectory
from fbtwist.ldapurl import parseLDAPURL
from fbtwist.realm import FreeBusyRealm
from fbtwist.store import CalendarStore
from fbtwist.web import makeSite
from fbtwist.workers import AdoptedPortService, WorkerMaster, workerArguments

log = Logger()

#: The directory the demo users live in (see etc/demo.ldif).
DEMO_URL = "ldap://127.0.0.1:389/ou=people,dc=example,dc=com?uid?one"


def _repeatableOption(option: str, help: str):
    def opt(self, value):
        self[option].append(value)

    opt.__doc__ = help
    return opt


def _helpText(f) -> str:
    text = f.metadata["help"]
    default = f.default
    if default not in (None, ()) and f.repr:
        shown = getattr(default, "path", default)
        if isinstance(shown, tuple):
            shown = ", ".join(shown)
        text += f" [default: {shown}]"
    return text


class Options(usage.Options):
    """
    C{twistd freebusy} options; every one may also be set in the
    C{--config} file.
    """

    synopsis = "[options]"
    longdesc = (
        "fbtwist: publish free/busy files over HTTP/WebDAV and FTP, look them up over HTTP, "
        "users checked against LDAP. Every option may also be set in an INI file given with "
        "--config (section [freebusy], keys as the long option names); the command line wins."
    )
    optParameters = [["config", "c", None, "Read settings from this INI file."]] + [
        [f.metadata["option"], None, None, _helpText(f)] for f in settings() if not f.metadata["repeatable"]
    ]

    def __init__(self):
        super().__init__()
        for f in settings():
            if f.metadata["repeatable"]:
                self[f.metadata["option"]] = []

    def postOptions(self):
        try:
            self.config = buildConfig(self, self["config"])
        except ConfigError as e:
            raise usage.UsageError(str(e)) from None
        if self.config.workers and any(not d.split(":", 1)[0] in ("tcp", "tcp6") for d in self.config.http):
            raise usage.UsageError("--workers needs plain tcp: (or tcp6:) --http endpoints")


for _f in settings():
    if _f.metadata["repeatable"]:
        setattr(Options, "opt_" + _f.metadata["option"].replace("-", "_"),
                _repeatableOption(_f.metadata["option"], _helpText(_f)))
del _f


def makeService(options, reactor=None, adoptedFDs=None) -> service.MultiService:
    """
    Build fbtwist's services: the demo directory (when no --ldap is given),
    one HTTP service per --http endpoint, sharing one portal and one store.

    With C{--workers N} this process is only the master: it binds the
    --http endpoints and runs N workers (see L{fbtwist.workers}).

    @param adoptedFDs: In a worker, the inherited listening sockets to serve
        instead of the --http endpoints.
    """
    if reactor is None:
        from twisted.internet import reactor
    config = options.config
    top = service.MultiService()
    if config.workers and adoptedFDs is None:
        master = WorkerMaster(reactor, config.http, config.workers, workerArguments(options))
        master.setName("workers")
        master.setServiceParent(top)
        return top
    store = CalendarStore(config.root)
    store.removeStaleTemporaries()

    url = config.ldap if config.ldap is not None else parseLDAPURL(DEMO_URL)
    directory = LDAPDirectory(
        url, reactor, bindDN=config.bindDN, bindPassword=config.bindPassword, timeout=config.ldapTimeout,
    )
    if config.ldap is None:
        def pointDirectoryAt(host, port):
            directory.url = url.withAddress(host, port)

        DemoDirectoryService(config.demoLDIF, config.demoLDAP, reactor, pointDirectoryAt).setServiceParent(top)

    realm = FreeBusyRealm(store, directory, adminGroup=config.adminGroup)
    realm.registerAvatarFactory(IResource, CalendarTreeResource)
    portal = Portal(realm, [DirectoryChecker(directory), AllowAnonymousAccess()])

    site = makeSite(portal, directory, store, config.maxUpload, realmName=config.realm)
    if adoptedFDs is None:
        listeners = [strports.service(description, site, reactor=reactor) for description in config.http]
    else:
        listeners = [AdoptedPortService(reactor, fd, site) for fd in adoptedFDs]
    for index, listener in enumerate(listeners):
        listener.setName("http" if index == 0 else f"http{index + 1}")
        listener.setServiceParent(top)

    top.directory = directory
    top.store = store
    top.portal = portal
    log.info("calendar tree at {root}", root=store.root.path)
    return top
