"""
C{twistd freebusy}: options and the service tree.
"""

import gc
import re
import sys
from dataclasses import replace
from typing import Optional

from twisted.application import service
from twisted.application.internet import StreamServerEndpointService
from twisted.cred.checkers import AllowAnonymousAccess
from twisted.cred.portal import Portal
from twisted.internet import defer, endpoints
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IReactorProcess, IReactorThreads
from twisted.internet.ssl import trustRootFromCertificates
from twisted.logger import Logger
from twisted.web.resource import IResource, Resource
from twisted.web.server import Site

from fbtwist.access.checker import BindCache, DirectoryChecker
from fbtwist.access.latency import LatencyFloor
from fbtwist.access.realm import FreeBusyRealm
from fbtwist.access.settings import GroupMembership, SettingsStore, SitePolicy, WhoSees
from fbtwist.access.throttle import LoginThrottle
from fbtwist.compat.twisted import raiseListenErrorsAtStart, waitingForPort
from fbtwist.config import (
    caCertificates,
)
from fbtwist.directory.indexchild import BUILD_TIMEOUT, ChildIndexBuild
from fbtwist.directory.ldapdirectory import LDAPDirectory
from fbtwist.directory.mappedindex import (
    MappedIndexFollower,
    defaultIndexDirectory,
    indexFileName,
    privateDirectory,
)
from fbtwist.directory.nameindex import NameIndexRefresher
from fbtwist.logs import AccessLogService
from fbtwist.ops.health import HealthResource
from fbtwist.ops.listeners import cannotListen
from fbtwist.ops.metrics import MetricsObserver, MetricsResource, MetricsService
from fbtwist.ops.shutdown import GracefulService
from fbtwist.ops.workers import AdoptedPortService, WorkerMaster, workerArguments

# Options and helpText are twistd's and the tests' way in (ServiceMaker
# reads this module's Options).
from fbtwist.startup import Options, buildDirectory, federationSettings, helpText, isLoopback  # noqa: F401
from fbtwist.store.committer import CommitProcess
from fbtwist.store.locks import LOCK_DIRECTORY, LockStore, WallClock
from fbtwist.store.pool import DEFAULT_THREADS, StorePool
from fbtwist.store.tree import CalendarStore
from fbtwist.store.warmup import NameWarmup
from fbtwist.store.watch import ReactorTurns
from fbtwist.web.caldav.resource import CalDAVSettings
from fbtwist.web.connection import ConnectionLimits
from fbtwist.web.dav.resource import CalendarTreeResource
from fbtwist.web.lookup import LookupSettings, visibilityFor
from fbtwist.web.settingspage import settingsResource
from fbtwist.web.setuppage import SetupPage, endpointPort
from fbtwist.web.site import makeSite

log = Logger()

#: The demo directory's administrators (the demo user admin).
DEMO_ADMIN_GROUP = "cn=admins,ou=groups,dc=example,dc=com"

#: The loopback address a listener without interface= gets with the demo
#: directory, by endpoint type.
_LOOPBACK = {"tcp": "127.0.0.1", "ssl": "127.0.0.1", "tcp6": "\\:\\:1"}


class _DirectoryConnections(service.Service):
    """
    Keeps the directory's name index loaded (with a L{NameIndexRefresher})
    while fbtwist runs, and closes the directory's connections when it
    stops.
    """

    name = "directory"

    def __init__(self, directory, nameIndex: Optional[NameIndexRefresher] = None,
                 childBuild: Optional[ChildIndexBuild] = None):
        self.directory = directory
        self.nameIndex = nameIndex
        self.childBuild = childBuild

    def startService(self):
        super().startService()
        if self.nameIndex is not None:
            self.nameIndex.start()

    def stopService(self):
        super().stopService()
        if self.nameIndex is not None:
            self.nameIndex.stop()
        closed = [self.directory.close()]
        if self.childBuild is not None:
            closed.append(self.childBuild.stop())
        return defer.DeferredList(closed)


def demoListener(description: str) -> str:
    """
    Where a listener listens while the demo directory (whose passwords are
    in the README) is in use: on loopback, unless the description names an
    interface itself; then a warning says who can log in.
    """
    parts = re.split(r"(?<!\\):", description)
    kind = parts[0].lower()
    if kind not in _LOOPBACK:
        return description
    interfaces = [p.partition("=")[2].replace("\\", "") for p in parts[1:] if p.startswith("interface=")]
    if not interfaces:
        return f"{description}:interface={_LOOPBACK[kind]}"
    if not isLoopback(interfaces[-1]):
        log.warn(
            "the demo directory is in use and {description} listens on {interface}: anyone who can reach it may "
            "log in with the demo passwords (give --ldap for real users)",
            description=description, interface=interfaces[-1],
        )
    return description


class StartupError(Exception):
    """
    fbtwist cannot start; the message says why and what to do.
    """


def startupFailure(options) -> type:
    """
    The exception that ends a process that cannot start, with one sentence.

    In the foreground (C{twistd -n}, or no twistd) it is L{SystemExit},
    which Python prints alone.  A daemonizing twistd's parent waits for its
    child to report an L{Exception} (it prints its first line); any other
    end would leave the parent waiting for ever.
    """
    twistdOptions = getattr(options, "parent", None)
    if twistdOptions is not None and not twistdOptions.get("nodaemon", True):
        return StartupError
    return SystemExit


class ListenerService(StreamServerEndpointService):
    """
    A listener of a setting (C{--http}, C{--ftp}, C{--metrics}) that stops
    C{twistd} with one sentence when it cannot listen (port in use, address
    not on this machine, a port below 1024 without the right) rather than a
    traceback.

    @param failure: The exception raised with that sentence
        (L{startupFailure}).
    """

    def __init__(self, setting: str, description: str, factory, reactor, failure: type = SystemExit):
        super().__init__(endpoints.serverFromString(reactor, description), factory)
        self.setting = setting
        self.description = description
        self.failure = failure
        # Report the failure from privilegedStartService, where twistd
        # (and this class) can see it.
        raiseListenErrorsAtStart(self)

    def privilegedStartService(self):
        try:
            super().privilegedStartService()
        except CannotListenError as e:
            raise self.failure(cannotListen(self.setting, self.description, e)) from None

    def whenListening(self) -> defer.Deferred:
        """
        Once started: a Deferred firing with the listening port
        (C{IListeningPort}, whose C{getHost()} tells a port 0 listener's
        number).
        """
        return waitingForPort(self)


def threadRunner(reactor, threads: int = DEFAULT_THREADS, top: Optional[GracefulService] = None):
    """
    The store's C{runBlocking} for C{reactor}: a L{StorePool} of at most
    C{threads} threads, so that an fsync never stalls the reactor; C{None}
    (run in the calling thread) for a reactor without threads, such as a
    test's C{MemoryReactor}.

    @param top: When given, the pool is its child, stopped late (after the
        work in flight at shutdown is done).
    """
    if not IReactorThreads.providedBy(reactor):
        return None
    pool = StorePool(reactor, threads)
    if top is not None:
        pool.setServiceParent(top)
        top.stopLate(pool)
    return pool.runBlocking


def settleMemory() -> None:
    """
    Once a server process has started: what it built to start (modules,
    classes, the site, tens of thousands of objects) lives as long as the
    process, so it is moved out of the garbage collector's reach
    (C{gc.freeze}).  Each full collection would otherwise walk all of it,
    stalling the reactor for some 30 ms: the slowest requests of a busy
    server.
    """
    gc.collect()
    gc.freeze()


def makeService(options, reactor=None, adoptedFDs=None) -> service.MultiService:
    """
    Build fbtwist's services: the demo directory (when no --ldap is given),
    one HTTP service per --http endpoint and the FTP service (unless
    --ftp none), sharing one portal and one store, the metrics (on the HTTP
    listeners or a listener of their own, "metrics") and the access log file.

    The top service (L{GracefulService}) stops gracefully: listeners first,
    then work in flight gets C{--shutdown-grace} seconds (register more with
    C{top.onShutdown}), then the demo directory.  C{top.metrics} is the
    L{MetricsObserver}; C{top.metrics.lockCount} counts WebDAV locks.

    With C{--workers N} this process is the master: it binds the --http
    endpoints and runs N worker processes that serve them (see
    L{fbtwist.ops.workers}); it keeps FTP and the metrics listener itself.

    Each step is a builder below (L{buildStore}, L{buildDirectory}, ...),
    in the order their services are added to C{top}.

    @param reactor: The reactor; C{None} (as twistd calls it) for the
        global one, in a process of its own (see L{settleMemory}).
    @param adoptedFDs: In a worker, the inherited listening sockets to serve
        instead of the --http endpoints.
    """
    if reactor is None:
        from twisted.internet import reactor

        reactor.callWhenRunning(settleMemory)
    config = options.config
    top = GracefulService(reactor, grace=config.shutdownGrace)
    # The commit process is started with the server, except in the master
    # of --workers (its workers publish: it has one only if it is sent a
    # publish itself).
    store = buildStore(config, reactor, top, commitsEarly=not (config.workers and adoptedFDs is None))
    if config.warmNames and adoptedFDs is None:
        # One process does it for all (the kernel's cache is shared): the
        # master of --workers, or the only one.
        NameWarmup(store.root.path, reactor).setServiceParent(top)
    directory = buildDirectory(config, reactor, top)
    metrics = buildOperations(config, top)
    realm, checker, portal = buildPortal(config, store, directory, reactor)
    health = HealthResource(store.root, directory, clock=reactor)
    site = buildSite(config, portal, directory, store, metrics, health, reactor)
    top.onShutdown(site.drain)
    if site.feedService is not None and adoptedFDs is None:
        # Feeds are fetched on schedule by one process (the master with
        # --workers); workers read what it keeps in the tree.
        site.feedService.setServiceParent(top)
    listen = (lambda d: d) if config.ldap is not None else demoListener
    failure = startupFailure(options)
    buildHTTP(options, site, reactor, adoptedFDs, listen, failure, top)
    buildMetricsListener(config, metrics, health, reactor, failure, top)
    buildFTP(config, portal, reactor, listen, failure, top, budget=site.budget)
    buildDirectoryConnections(config, directory, adoptedFDs, reactor, top, options)
    top.directory = directory
    top.store = store
    top.portal = portal
    top.checker = checker
    top.site = site
    metrics.lockCount = lambda: countLocks(store)
    if portal.realm.visibility.answers is not None:
        metrics.answerCounts = portal.realm.visibility.answers.counts
    if portal.realm.visibility.federation is not None:
        metrics.beforeScrape.append(portal.realm.visibility.federation.cache.flushHits)
    if store.committer is not None:
        committer = store.committer
        metrics.commitCounts = lambda: (committer.committed, committer.fellBack)
    top.metrics = metrics
    top.health = health
    log.info("calendar tree at {root}", root=store.root.path)
    return top


def buildStore(config, reactor, top: Optional[GracefulService] = None, commitsEarly: bool = False) -> CalendarStore:
    """
    The calendar tree at C{--root}, its blocking work done in the
    C{--store-threads} threads of its pool (C{top}'s child "store-pool"), with
    the temporary files of writers that died removed.

    @param commitsEarly: Start the commit process (C{--commit-process})
        when the reactor runs, not at the first publish.
    """
    store = CalendarStore(config.root, runBlocking=threadRunner(reactor, config.storeThreads, top))
    store.removeStaleTemporaries()
    if config.commitProcess and top is not None and IReactorProcess.providedBy(reactor) \
            and IReactorThreads.providedBy(reactor):
        committer = CommitProcess(reactor, store.metadataDirectory(LOCK_DIRECTORY, create=False).path,
                                  config.storeThreads, startEarly=commitsEarly)
        committer.setServiceParent(top)
        # Stopped late: publishes in flight at shutdown finish first.
        top.stopLate(committer)
        store.committer = committer
    return store


def buildOperations(config, top: GracefulService) -> MetricsObserver:
    """
    The metrics (counting on while requests in flight finish) and the
    C{--access-log} file, as services of C{top}, stopped late.

    @return: The L{MetricsObserver}.
    """
    metrics = MetricsObserver()
    metricsService = MetricsService(metrics)
    metricsService.setServiceParent(top)
    # Keep counting while requests in flight finish.
    top.stopLate(metricsService)
    if config.accessLog is not None:
        accessLog = AccessLogService(config.accessLog, top.reactor)
        accessLog.setServiceParent(top)
        top.stopLate(accessLog)
    return metrics


def buildPortal(config, store: CalendarStore, directory: LDAPDirectory, reactor) -> tuple:
    """
    The realm (the calendar tree as each user may use it, with the avatar
    factory of every protocol: the web's L{IResource}, FTP's C{IFTPShell}),
    the directory checker with its bind cache, login throttle and failure delay, and the
    portal that joins them (anonymous access allowed).

    @return: C{(realm, checker, portal)}.
    """
    adminGroup = config.adminGroup if config.ldap is not None or config.adminGroup else DEMO_ADMIN_GROUP
    # What every avatar may see of others' free/busy times, as the lookups
    # are configured.
    # One count of the reactor's turns for every folder watched per turn.
    turns = ReactorTurns(reactor)
    visibility = visibilityFor(lookupSettingsFor(config, store, directory, reactor, turns), store, directory,
                               reactor)
    # Each person's choice of who may see them, within the site's rules.
    visibility.whoSees = WhoSees(SettingsStore(store, turns=turns), SitePolicy.fromConfig(config),
                                 GroupMembership(directory, visibility.groupBase, reactor))
    if config.answerMemory:
        visibility.rememberAnswers(config.answerMemory)
    # A login's roles are kept as long as the bind cache keeps the login.
    realm = FreeBusyRealm(store, directory, adminGroup=adminGroup, visibility=visibility, clock=reactor,
                          rolesTTL=config.authCacheTTL, rolesSize=config.authCacheSize)
    realm.registerAvatarFactory(IResource, CalendarTreeResource)
    # Imported here: twisted.protocols.ftp imports the global reactor.
    from twisted.protocols.ftp import IFTPShell

    from fbtwist.ftp.shell import ftpAvatarFactory

    realm.registerAvatarFactory(IFTPShell, ftpAvatarFactory(config.maxUpload, config.ftpAnonymous))
    checker = DirectoryChecker(
        directory,
        loginForms=directory.loginForms,
        cache=BindCache(reactor, config.authCacheTTL, config.authCacheSize) if config.authCacheTTL else None,
        throttle=LoginThrottle(
            reactor, maxFailures=config.loginFailures, maxFailuresPerAddress=config.loginFailuresPerAddress,
            window=config.loginWindow, lockout=config.loginLockout,
        ),
        failureFloor=LatencyFloor(reactor, config.loginFailureDelay),
    )
    portal = Portal(realm, [checker, AllowAnonymousAccess()])
    return realm, checker, portal


def buildSite(config, portal: Portal, directory: LDAPDirectory, store: CalendarStore, metrics: MetricsObserver,
              health: HealthResource, reactor) -> Site:
    """
    The HTTP site: WebDAV publishing, lookups, the pages, C{/healthz},
    C{/setup} and (with C{--metrics http}) C{/metrics}.
    """
    pages = {b"healthz": health, b"setup": SetupPage(lambda: endpointPort(config.ftp), publicURL=config.publicURL)}
    if config.metrics == "http":
        pages[b"metrics"] = MetricsResource(metrics)
    feeds = buildFeeds(config, portal, reactor, pages)
    pages[b"settings"] = settingsResource(portal, config.realm, config.defaultTZ)
    visibility = portal.realm.visibility
    lookupSettings = replace(LookupSettings.fromConfig(config, directory.url),
                             federation=visibility.federation, feeds=feeds)
    site = makeSite(
        portal, directory, store, config.maxUpload, realmName=config.realm,
        lookupSettings=lookupSettings, pages=pages, reactor=reactor,
        limits=connectionLimits(config), caldavSettings=CalDAVSettings.fromConfig(config),
    )
    site.feedService = feeds.service if feeds is not None else None
    return site


def buildFetcher(config, reactor):
    """
    The fetcher of free/busy from elsewhere (federation and feeds): its
    address policy (C{--federation-allow-networks}), CAs, time and size
    bounds, counting into the metrics.
    """
    from fbtwist.remote.fetcher import Fetcher
    from fbtwist.remote.metrics import EventMetrics
    from fbtwist.remote.policy import AddressPolicy

    return Fetcher(
        reactor, policy=AddressPolicy(config.federationAllowNetworks),
        trustRoot=trustRootFromCertificates(caCertificates(config.federationCA)) if config.federationCA else None,
        timeout=config.federationTimeout, maxSize=config.federationMaxSize, metrics=EventMetrics(),
    )


def buildFederation(config, directory: LDAPDirectory, reactor):
    """
    Lookups of other organisations' addresses (C{--federate},
    C{--federation-calfburl}), or C{None} when neither is configured.
    """
    if not config.federate and not config.federateGroup and not config.federationCalFBURL:
        return None
    from fbtwist.directory.calfburl import findFreeBusyURL
    from fbtwist.remote.cache import FetchCache
    from fbtwist.remote.metrics import EventMetrics
    from fbtwist.remote.source import FederatedFreeBusy, readRemoteFreeBusy

    cache = FetchCache(
        buildFetcher(config, reactor), reactor, validate=readRemoteFreeBusy, ttl=config.federationTTL,
        minTTL=config.federationTTL,
        maxStale=config.federationMaxStale, metrics=EventMetrics(),
    )
    finder = (lambda address: findFreeBusyURL(directory, address)) if config.federationCalFBURL else None
    templates, credentials, groupTemplates = federationSettings(config)
    return FederatedFreeBusy(cache, templates, credentials, findURL=finder, groupTemplates=groupTemplates)


class _FeedRefreshing(service.Service):
    """
    Runs a L{fbtwist.access.feeds.FeedRefresher} while fbtwist runs.
    """

    name = "feeds"

    def __init__(self, refresher):
        self.refresher = refresher

    def startService(self):
        super().startService()
        self.refresher.start()

    def stopService(self):
        super().stopService()
        self.refresher.stop()


def lookupSettingsFor(config, store: CalendarStore, directory: LDAPDirectory, reactor,
                      turns: Optional[ReactorTurns] = None):
    """
    The lookups' settings with other organisations' free/busy
    (L{buildFederation}) and users' calendar feeds (their store, with
    C{--feeds-per-user}, its folder looked at once per reactor turn with
    C{turns}): what the realm's visibility decision merges in.
    """
    from fbtwist.access.feeds import FeedStore

    feeds = FeedStore(store, config.feedsPerUser, turns=turns) if config.feedsPerUser else None
    return replace(LookupSettings.fromConfig(config, directory.url),
                   federation=buildFederation(config, directory, reactor), feeds=feeds)


def buildFeeds(config, portal: Portal, reactor, pages: dict):
    """
    Users' calendar feeds (C{--feeds-per-user}, C{--feed-interval}): their
    store (the realm's visibility decision's), the page C{/feeds} (added to
    C{pages}) and the refresher, whose service (the store's C{service})
    L{makeService} adds to its top service.

    @return: The L{fbtwist.access.feeds.FeedStore}, or C{None} with
        C{--feeds-per-user 0}.
    """
    feeds = portal.realm.visibility.feeds
    if feeds is None:
        return None
    from fbtwist.access.feeds import FeedRefresher
    from fbtwist.web.feeds import feedsResource

    refresher = FeedRefresher(feeds, buildFetcher(config, reactor), reactor, config.feedInterval, config.defaultTZ,
                              config.expandLimit)
    pages[b"feeds"] = feedsResource(portal, config.realm, feeds, refresher, config.feedInterval)
    feeds.service = _FeedRefreshing(refresher)
    return feeds


def buildHTTP(options, site: Site, reactor, adoptedFDs, listen, failure, top: GracefulService) -> None:
    """
    The C{--http} listeners, as services of C{top} named C{http}, C{http2},
    ...: the endpoints themselves; with C{--workers N}, the L{WorkerMaster}
    (named C{workers}) whose workers serve them; in a worker, the adopted
    sockets C{adoptedFDs}.
    """
    config = options.config
    httpDescriptions = [listen(description) for description in config.http]
    if config.workers and adoptedFDs is None:
        master = WorkerMaster(reactor, httpDescriptions, config.workers, workerArguments(options), failure=failure)
        master.setName("workers")
        master.setServiceParent(top)
        listeners = []
    elif adoptedFDs is None:
        listeners = [ListenerService("http", description, site, reactor, failure)
                     for description in httpDescriptions]
    else:
        listeners = [AdoptedPortService(reactor, fd, site) for fd in adoptedFDs]
    for index, listener in enumerate(listeners):
        listener.setName("http" if index == 0 else f"http{index + 1}")
        listener.setServiceParent(top)


def buildMetricsListener(config, metrics: MetricsObserver, health: HealthResource, reactor, failure,
                         top: GracefulService) -> None:
    """
    The listener of C{--metrics ENDPOINT} (C{/metrics} and C{/healthz}), a
    service of C{top} named C{metrics}; none for C{http} or C{none}.
    """
    if config.metrics not in ("http", "none"):
        listener = ListenerService("metrics", config.metrics, makeOperationsSite(metrics, health, reactor), reactor,
                                   failure)
        listener.setName("metrics")
        listener.setServiceParent(top)


def buildFTP(config, portal: Portal, reactor, listen, failure, top: GracefulService,
             budget=None) -> None:
    """
    The C{--ftp} listener, a service of C{top} named C{ftp}; none for
    C{--ftp none}.

    @param budget: The connection budget it shares with the HTTP site.
    """
    if config.ftp is not None:
        # Imported here: twisted.protocols.ftp imports the global reactor.
        from fbtwist.ftp.server import makeFTPFactory

        factory = makeFTPFactory(config, portal, reactor, budget)
        listener = ListenerService("ftp", listen(config.ftp), factory, reactor, failure)
        listener.setName("ftp")
        listener.setServiceParent(top)


def nameIndexFile(config, directory: LDAPDirectory) -> Optional[str]:
    """
    The file of C{--name-index-dir} the name index is shared through, or
    C{None} (C{none}, or a directory that cannot be used: a warning says
    why, and each process keeps its own index).
    """
    if config.nameIndexDir.strip().lower() == "none":
        return None
    folder = defaultIndexDirectory() if config.nameIndexDir.strip().lower() == "auto" else config.nameIndexDir
    try:
        privateDirectory(folder)
    except OSError as e:
        log.warn("not sharing the name index through {folder} ({error}): each process keeps its own",
                 folder=folder, error=str(e))
        return None
    return indexFileName(folder, f"{directory.url}|{','.join(directory.mailAttributes)}")


def buildNameIndexChild(options, directory: LDAPDirectory, path: str, reactor) -> ChildIndexBuild:
    """
    The builds of the name index file C{path} in a child process
    (C{python -m fbtwist.worker --build-name-index}) given the directory
    settings of C{options}; the file an earlier run kept is mapped at once.
    """
    timeout = max(BUILD_TIMEOUT, options.config.nameIndexRefresh)
    argv = [sys.executable, "-m", "fbtwist.worker", "--build-name-index", path, f"{timeout:g}",
            *workerArguments(options)]
    build = ChildIndexBuild(directory, reactor, path, argv, timeout)
    build.mapKept(maxAge=options.config.nameIndexRefresh)
    return build


def buildDirectoryConnections(config, directory: LDAPDirectory, adoptedFDs, reactor, top: GracefulService,
                              options=None) -> None:
    """
    The service that closes the directory's connections, stopped after the
    drain, and refreshes the name index every C{--name-index-refresh}:
    built by a child process (or, for the demo directory, in this one) into
    the file of C{--name-index-dir}, which this process and the workers map.
    """
    nameIndex = childBuild = None
    if config.nameIndexRefresh:
        path = nameIndexFile(config, directory)
        if adoptedFDs is not None and path is not None:
            # A worker of --workers maps the index file its master has built.
            nameIndex = MappedIndexFollower(directory, path, reactor, maxAge=2 * config.nameIndexRefresh + 60)
        elif path is not None and config.ldap is not None and options is not None \
                and IReactorProcess.providedBy(reactor):
            childBuild = buildNameIndexChild(options, directory, path, reactor)
            nameIndex = NameIndexRefresher(childBuild, config.nameIndexRefresh, reactor)
            # A kept file is in use: a failed build keeps it.
            nameIndex.loaded = directory.nameIndex is not None
        else:
            directory.indexFile = path
            nameIndex = NameIndexRefresher(directory, config.nameIndexRefresh, reactor)
    connections = _DirectoryConnections(directory, nameIndex, childBuild)
    connections.setServiceParent(top)
    # Work in flight when fbtwist stops may still need the directory (an
    # upload whose credentials are being checked): close it after the drain.
    top.stopLate(connections)


def connectionLimits(config) -> ConnectionLimits:
    """
    The limits of HTTP connections set by C{config}.
    """
    return ConnectionLimits(
        idleTimeout=config.httpIdleTimeout, headerTimeout=config.httpHeaderTimeout,
        minBodyRate=config.httpMinBodyRate, maxPerAddress=config.httpMaxConnectionsPerAddress,
        exemptNetworks=config.httpUnlimitedNetworks, maxConnections=config.httpMaxConnections,
    )


class _QuietSite(Site):
    """
    A site that logs no access line (scrapes every few seconds would drown
    the log).
    """

    noisy = False

    def log(self, request):
        pass


def countLocks(store) -> int:
    """
    The WebDAV locks held now (for the lock gauge).
    """
    return len(LockStore(store.metadataDirectory(LOCK_DIRECTORY, create=False), WallClock).all())


def makeOperationsSite(metrics: MetricsObserver, health: HealthResource, reactor) -> Site:
    """
    The site of the C{--metrics} listener: C{/metrics} and C{/healthz}.
    """
    root = Resource()
    root.putChild(b"metrics", MetricsResource(metrics))
    root.putChild(b"healthz", health)
    site = _QuietSite(root, reactor=reactor)
    site.displayTracebacks = False
    return site
