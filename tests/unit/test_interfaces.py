"""
Every class of fbtwist that declares an interface (C{@implementer}) provides
it, as L{verifyObject} checks on a real instance, and so does the twistd
plugin.  The classes are found by walking the fbtwist package, so a new one
without an entry in L{BUILDERS} fails L{ImplementerTests.test_everyClassBuilt}.
"""

import importlib
import inspect
import io
import pkgutil

from twisted.application.service import IServiceMaker
from twisted.internet.task import Cooperator
from twisted.internet.testing import MemoryReactorClock
from twisted.plugin import IPlugin
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementedBy
from zope.interface.verify import verifyObject

import fbtwist
import tests.helpers  # noqa: F401 (ldaptor's import-time warnings)
from fbtwist.directory.ldapurl import parseLDAPURL


def declaringClasses() -> dict:
    """
    Every class defined in a module of fbtwist that declares an interface,
    by its dotted name.
    """
    found = {}
    for info in pkgutil.walk_packages(fbtwist.__path__, "fbtwist."):
        module = importlib.import_module(info.name)
        for name, cls in vars(module).items():
            if inspect.isclass(cls) and cls.__module__ == module.__name__ and list(implementedBy(cls).declared):
                found[f"{module.__name__}.{name}"] = cls
    return found


def _store(testCase):
    from fbtwist.store.tree import CalendarStore

    return CalendarStore(FilePath(testCase.mktemp()))


def _directory(testCase):
    from fbtwist.directory.ldapdirectory import LDAPDirectory

    directory = LDAPDirectory(parseLDAPURL("ldap://127.0.0.1:389/dc=example,dc=com"), MemoryReactorClock())
    testCase.addCleanup(directory.close)
    return directory


def _avatar(testCase):
    from fbtwist.access.avatar import CalendarAvatar

    return CalendarAvatar("alice", False, _store(testCase))


def _upload(testCase):
    upload = _store(testCase).openUpload(("alice.vfb",))
    testCase.addCleanup(upload.abort)
    return upload


def _uploadFile(testCase, cls):
    return cls(_upload(testCase), ["pub", "calendar", "alice.vfb"], 1024)


def _taskProducer(testCase, cls):
    clock = MemoryReactorClock()
    cooperator = Cooperator(scheduler=lambda work: clock.callLater(0, work))
    return cls(cooperator.cooperate(iter(())))


#: How to build an instance of each class that declares an interface:
#: C{dotted name: f(testCase, cls)}.
def _visibility(testCase):
    from fbtwist.access.visibility import FreeBusyVisibility

    return FreeBusyVisibility(_store(testCase), _directory(testCase), MemoryReactorClock())


def _addressPolicy():
    from fbtwist.remote.policy import AddressPolicy

    return AddressPolicy()


def _tlsPolicy():
    from fbtwist.remote.connect import FailClosedTLSPolicy

    return FailClosedTLSPolicy()


BUILDERS = {
    "fbtwist.access.avatar.CalendarAvatar": lambda t, cls: cls("alice", False, _store(t)),
    "fbtwist.access.checker.DirectoryChecker": lambda t, cls: cls(_directory(t)),
    "fbtwist.access.realm.FreeBusyRealm": lambda t, cls: cls(_store(t), _directory(t)),
    "fbtwist.directory.client.DirectoryClient": lambda t, cls: cls(),
    "fbtwist.directory.ldapdirectory.LDAPDirectory": lambda t, cls: _directory(t),
    "fbtwist.tlsclient.VerifyingClientTLS": lambda t, cls: cls("ldap.example.com"),
    "fbtwist.access.avatar.FreeBusyReader": lambda t, cls: cls(None, _visibility(t)),
    "fbtwist.remote.connect.FailClosedTLSPolicy": lambda t, cls: cls(),
    "fbtwist.remote.connect.PinnedEndpoint": lambda t, cls: cls(
        MemoryReactorClock(), None, _addressPolicy(), "example.com", 443),
    "fbtwist.remote.connect.PinnedEndpointFactory": lambda t, cls: cls(
        MemoryReactorClock(), None, _addressPolicy(), _tlsPolicy()),
    "fbtwist.remote.metrics.CountingMetrics": lambda t, cls: cls(),
    "fbtwist.remote.metrics.NoMetrics": lambda t, cls: cls(),
    "fbtwist.remote.metrics.EventMetrics": lambda t, cls: cls(),
    "fbtwist.web.caldav.resource._CalDAVRealm": lambda t, cls: cls(None),
    "fbtwist.ftp.server._DownloadConsumer": lambda t, cls: cls(io.BytesIO(), None, lambda: None),
    "fbtwist.ftp.shell._PublishedFile": lambda t, cls: cls(b"BEGIN:VCALENDAR\r\n"),
    "fbtwist.ftp.shell.UploadFile": _uploadFile,
    "fbtwist.ftp.shell.CalendarFTPShell": lambda t, cls: cls(_avatar(t), 1024),
    "fbtwist.logs.JSONLinesObserver": lambda t, cls: cls(io.StringIO()),
    "fbtwist.logs.TextLinesObserver": lambda t, cls: cls(io.StringIO()),
    "fbtwist.logs.InfoAndUp": lambda t, cls: cls(lambda event: None),
    "fbtwist.ops.metrics.MetricsObserver": lambda t, cls: cls(),
    "fbtwist.store.tree.CalendarStore": lambda t, cls: _store(t),
    "fbtwist.store.uploads.Upload": lambda t, cls: _upload(t),
    "fbtwist.web.dav.propfind._TaskProducer": _taskProducer,
}


class ImplementerTests(SynchronousTestCase):
    """
    The classes that declare interfaces provide them.
    """

    def test_everyClassBuilt(self):
        """
        Every class of fbtwist declaring an interface has a builder here
        (and every builder a class), so none goes unchecked.
        """
        self.assertEqual(sorted(declaringClasses()), sorted(BUILDERS))

    def test_verifyObject(self):
        """
        An instance of each class provides every interface its class
        declares, with the declared methods and attributes.
        """
        for name, cls in sorted(declaringClasses().items()):
            instance = BUILDERS[name](self, cls)
            self.assertIsInstance(instance, cls, name)
            for interface in implementedBy(cls).declared:
                self.assertTrue(verifyObject(interface, instance), f"{name} {interface.__name__}")


class PluginTests(SynchronousTestCase):
    """
    The twistd plugin.
    """

    def test_serviceMaker(self):
        """
        The plugin's object provides IPlugin and IServiceMaker, names the
        freebusy tap and leads to fbtwist.tap's Options and makeService.
        """
        from fbtwist import tap
        from twisted.plugins import fbtwist_plugin

        maker = fbtwist_plugin.freebusy
        self.assertTrue(verifyObject(IPlugin, maker))
        self.assertTrue(verifyObject(IServiceMaker, maker))
        self.assertEqual(maker.tapname, "freebusy")
        self.assertIs(maker.options, tap.Options)
        self.assertIs(maker.makeService, tap.makeService)
