"""
Fixtures for the WebDAV tests: a server with the demo admin group, and
WebDAV requests over treq.
"""

from twisted.logger import globalLogPublisher

from tests.helpers import ADMIN_GROUP, basicAuth, httpClient, startServer

LOCKINFO = (
    b'<?xml version="1.0" encoding="utf-8"?>'
    b'<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:%s/></D:lockscope>'
    b"<D:locktype><D:write/></D:locktype><D:owner><D:href>%s</D:href></D:owner></D:lockinfo>"
)

WIN32_PROPPATCH = (
    b'<?xml version="1.0" encoding="utf-8" ?>'
    b'<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:schemas-microsoft-com:"><D:set><D:prop>'
    b"<Z:Win32CreationTime>Tue, 24 Nov 2026 15:00:00 GMT</Z:Win32CreationTime>"
    b"<Z:Win32LastAccessTime>Tue, 24 Nov 2026 15:00:00 GMT</Z:Win32LastAccessTime>"
    b"<Z:Win32LastModifiedTime>Tue, 24 Nov 2026 15:00:00 GMT</Z:Win32LastModifiedTime>"
    b"<Z:Win32FileAttributes>00000020</Z:Win32FileAttributes>"
    b"</D:prop></D:set></D:propertyupdate>"
)


def lockBody(scope: str = "exclusive", owner: str = "someone") -> bytes:
    return LOCKINFO % (scope.encode("ascii"), owner.encode("utf-8"))


def propfindBody(*props: str) -> bytes:
    """
    A PROPFIND body asking for C{props} (each C{"{ns}name"} or C{"name"}).
    """
    inner = []
    for i, key in enumerate(props):
        if key.startswith("{"):
            ns, _, name = key[1:].partition("}")
            inner.append(f'<p{i}:{name} xmlns:p{i}="{ns}"/>')
        else:
            inner.append(f'<{key} xmlns=""/>')
    return (
        '<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop>'
        + "".join(inner) + "</D:prop></D:propfind>"
    ).encode("utf-8")


class DAVClient:
    """
    WebDAV requests to a running fbtwist over treq.
    """

    def __init__(self, testCase, server, http=None):
        self.server = server
        self.http = httpClient(testCase) if http is None else http

    async def request(self, method, path, login="alice", body=None, headers=None):
        """
        @return: (response, body bytes).
        """
        h = basicAuth(login) if login else {}
        for name, value in (headers or {}).items():
            h[name if isinstance(name, bytes) else name.encode("ascii")] = [
                value if isinstance(value, bytes) else value.encode("utf-8")
            ]
        url = path if path.startswith("http") else self.server.url(path)
        response = await self.http.request(method, url, data=body, headers=h)
        return response, await response.content()


async def startDAVServer(testCase, *args):
    return await startServer(testCase, "--admin-group", ADMIN_GROUP, *args)


def startMemoryDAVServer(testCase, *args):
    """
    A started L{tests.memory.MemoryServer} with the demo admin group, and
    a L{DAVClient} of it.
    """
    from tests.memory import startMemoryServer

    server = startMemoryServer(testCase, "--admin-group", ADMIN_GROUP, *args)
    return server, DAVClient(testCase, server, server.client())


def recordEvents(testCase):
    """
    @return: A list that receives every log event carrying C{fbEvent}
        until the test ends.
    """
    events = []

    def observer(event):
        if "fbEvent" in event:
            events.append(event)

    globalLogPublisher.addObserver(observer)
    testCase.addCleanup(globalLogPublisher.removeObserver, observer)
    return events
