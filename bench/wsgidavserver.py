"""
WsgiDAV (on cheroot) set up like the free/busy servers in the benchmark:
anonymous read-only lookups under /calendar, Basic-auth WebDAV publishing
under /pub/calendar, on one directory.

This runs in a virtualenv of its own (bench/compare.py makes it in the
benchmark's work directory), not in fbtwist's: fbtwist does not depend on
WsgiDAV.  WsgiDAV 4 has no LDAP domain controller, so the users are the
benchmark's generated ones (C{user000000}, password C{pw-000000}, ...)
held in memory by its SimpleDomainController: it does not ask LDAP.

Usage: python wsgidavserver.py PORT TREE USERS [THREADS]
"""

import logging
import sys

from cheroot import wsgi
from wsgidav.error_printer import ErrorPrinter
from wsgidav.http_authenticator import HTTPAuthenticator
from wsgidav.mw.base_mw import BaseMiddleware
from wsgidav.request_resolver import RequestResolver
from wsgidav.wsgidav_app import WsgiDAVApp

#: The benchmark directory's one administrator (may write anywhere).
ADMINISTRATOR = "user000000"
READING = {"GET", "HEAD", "OPTIONS", "PROPFIND"}


class OwnFileOnly(BaseMiddleware):
    """
    The rule Apache's configuration and fbtwist apply: a user writes only
    /pub/calendar/<login>.vfb; the administrator anything; everyone reads.
    """

    def __call__(self, environ, start_response):
        user = environ.get("wsgidav.auth.user_name") or ""
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        if environ["REQUEST_METHOD"] in READING or user == ADMINISTRATOR or path == f"/pub/calendar/{user}.vfb":
            return self.next_app(environ, start_response)
        start_response("403 Forbidden", [("Content-Type", "text/plain"), ("Content-Length", "10")])
        return [b"Forbidden\n"]


def main(port: int, tree: str, users: int, threads: int = 32) -> None:
    people = {f"user{i:06d}": {"password": f"pw-{i:06d}"} for i in range(users)}
    config = {
        "host": "127.0.0.1",
        "port": port,
        "provider_mapping": {
            "/calendar": {"root": tree, "readonly": True},
            "/pub/calendar": {"root": tree, "readonly": False},
        },
        "simple_dc": {"user_mapping": {"/calendar": True, "/pub/calendar": people}},
        "http_authenticator": {"accept_basic": True, "accept_digest": False, "default_to_digest": False},
        "middleware_stack": [ErrorPrinter, HTTPAuthenticator, OwnFileOnly, RequestResolver],
        "lock_storage": True,
        "property_manager": None,
        "dir_browser": {"enable": False},
        "verbose": 1,
        "logging": {"enable": True, "enable_loggers": []},
    }
    logging.basicConfig(level=logging.WARNING)
    app = WsgiDAVApp(config)
    server = wsgi.Server(("127.0.0.1", port), app, numthreads=threads)
    print(f"wsgidav listening on 127.0.0.1:{port} with {threads} threads, {users} users", flush=True)
    try:
        server.start()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), *(int(a) for a in sys.argv[4:5]))
