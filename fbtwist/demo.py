"""
The embedded demo directory: ldaptor's in-memory LDAP server, loaded from an
LDIF file and listening on loopback, so that C{twistd freebusy} works with no
set-up.  The checker talks to it over TCP exactly as to a real server.

It has no access control (an anonymous client can read every attribute):
it is for trying fbtwist out, never for real users.
"""

from ldaptor import inmemory, interfaces as ldapinterfaces
from ldaptor.protocols.ldap.ldapserver import LDAPServer
from twisted.application.service import Service
from twisted.internet import endpoints, protocol
from twisted.logger import Logger
from twisted.python import components
from twisted.python.filepath import FilePath


class DemoLDAPFactory(protocol.ServerFactory):
    """
    Serves one in-memory LDAP tree.
    """

    protocol = LDAPServer

    def __init__(self, root):
        self.root = root


components.registerAdapter(lambda factory: factory.root, DemoLDAPFactory, ldapinterfaces.IConnectedLDAPEntry)


def loadLDIF(path: FilePath):
    """
    @return: The in-memory tree built from the LDIF file at C{path}.
    """
    with path.open("rb") as f:
        d = inmemory.fromLDIFFile(f)
    result = []
    d.addBoth(result.append)
    # The in-memory loader works synchronously.
    (tree,) = result
    if hasattr(tree, "raiseException"):
        tree.raiseException()
    return tree


class DemoDirectoryService(Service):
    """
    Listens with the demo LDAP server and tells C{onListening} the address
    once it does.
    """

    log = Logger()
    name = "ldap-demo"

    def __init__(self, ldif: FilePath, description: str, reactor, onListening):
        self.ldif = ldif
        self.description = description
        self.reactor = reactor
        self.onListening = onListening
        self.port = None

    def startService(self):
        super().startService()
        factory = DemoLDAPFactory(loadLDIF(self.ldif))
        endpoint = endpoints.serverFromString(self.reactor, self.description)
        d = endpoint.listen(factory)
        d.addCallback(self._listening)
        d.addErrback(lambda f: self.log.failure("demo directory failed to start", f))

    def _listening(self, port):
        self.port = port
        address = port.getHost()
        self.log.warn(
            "DEMO DIRECTORY: using the built-in demo users from {ldif} on ldap://{host}:{port}/ "
            "(no access control; for trying fbtwist out only, pass --ldap for real users)",
            ldif=self.ldif.path,
            host=address.host,
            port=address.port,
        )
        self.onListening(address.host, address.port)

    def stopService(self):
        super().stopService()
        if self.port is not None:
            port, self.port = self.port, None
            return port.stopListening()


#: What C{bin/serve} listens on unless its arguments say otherwise.
SERVE_DEFAULTS = (("http", "tcp:8080:interface=127.0.0.1"), ("ftp", "tcp:2121:interface=127.0.0.1"))


def serveArguments(args):
    """
    The C{twistd freebusy} arguments of C{bin/serve ARGS}: C{args} with the
    loopback listeners of L{SERVE_DEFAULTS} added for each listener option
    they do not give (nor a C{--config} file, whose settings would lose to
    them).  So C{bin/serve --lookup-auth} still listens on loopback only.
    """
    args = list(args)
    given = set()
    for arg in args:
        if arg == "--":
            break
        if arg.startswith("--"):
            given.add(arg[2:].partition("=")[0])
        elif arg.startswith("-c"):
            given.add("config")
    if "config" in given:
        return args
    defaults = []
    for option, description in SERVE_DEFAULTS:
        if option not in given:
            defaults += [f"--{option}", description]
    return defaults + args


def serve(args=None) -> None:
    """
    C{bin/serve}: replace this process with C{twistd --nodaemon freebusy}
    and L{serveArguments}.
    """
    import os
    import sys

    args = sys.argv[1:] if args is None else args
    # The twistd script installed beside this Python (the virtualenv's).
    twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
    os.execv(twistd, [twistd, "--nodaemon", "--pidfile=", "freebusy", *serveArguments(args)])


if __name__ == "__main__":
    serve()
