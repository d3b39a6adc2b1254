"""
The embedded demo directory: ldaptor's in-memory LDAP server, loaded from an
LDIF file and listening on loopback, so that C{twistd freebusy} works with no
set-up.  The checker talks to it over TCP exactly as to a real server.

It has no access control (an anonymous client can read every attribute):
it is for trying fbtwist out, never for real users.
"""

from ldaptor import inmemory
from ldaptor import interfaces as ldapinterfaces
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
