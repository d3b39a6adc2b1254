#!/usr/bin/env python3
"""
What one PROPFIND Depth 1 of a large folder costs fbtwist: CPU time per
request and per listed entry, counted rather than timed, so that a busy
machine changes it little.

As C{bench/publishcost.py --in-process}: no server process, slapd or
client program.  The whole site (C{makeService} with the demo directory,
on an in-memory network, as the fast tests run it) holds a folder of
C{--files} files (written as C{bench/run} writes its PROPFIND folders, with
their ETag attributes); the administrator lists it C{--requests} times on
one connection, in this process and this thread, with each of the bodies
clients send (C{--only} picks some):

  - C{outlook}: Outlook's calendar publisher, C{DAV:resourcetype} only;
  - C{bench}: what C{bench/run}'s PROPFIND row asks (resourcetype,
    getcontentlength, getlastmodified);
  - C{windows}: the Windows WebDAV redirector listing a folder (creation
    date, display name, length, modification time, resource type and the
    C{Win32*} properties it stores as dead properties);
  - C{allprop}: an empty body (every property, each file's ETag included).

It prints, per body, the CPU time per PROPFIND and per entry (the client
and the in-memory network included: run it before and after a change);
with C{--profile PREFIX} it runs the requests again under cProfile, writes
C{PREFIX-<body>.prof} and prints the Python function calls per entry.  Run
it under C{valgrind --tool=callgrind} for instruction counts (twice, with
two C{--requests}: the difference over the difference in requests is the
cost of one).

With C{--user alice}, the files are in the tree's top folder (among
them alice's own C{alice.vfb}) and alice, who is no administrator, lists
it: what Outlook's publisher asks as it publishes, and sees only its
user's file.

    .venv/bin/python bench/propfindcost.py [--files 10000] [--requests 5] [--only bench] [--profile /tmp/pf]
"""

import argparse
import base64
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from bench.compare import PROPFIND_BODY, calendarBody, writeFiles  # noqa: E402
from bench.publishcost import timedLoop  # noqa: E402

WINDOWS_BODY = (
    '<?xml version="1.0" encoding="utf-8" ?><D:propfind xmlns:D="DAV:">'
    '<D:prop xmlns:Z="urn:schemas-microsoft-com:"><D:creationdate/><D:displayname/><D:getcontentlength/>'
    "<D:getlastmodified/><D:resourcetype/><Z:Win32CreationTime/><Z:Win32FileAttributes/>"
    "<Z:Win32LastAccessTime/><Z:Win32LastModifiedTime/></D:prop></D:propfind>"
)

#: The bodies, by name.
BODIES = {
    "outlook": '<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop>'
               "<D:resourcetype/></D:prop></D:propfind>",
    "bench": PROPFIND_BODY,
    "windows": WINDOWS_BODY,
    "allprop": "",
}

FOLDER = "folder"


def inProcess(files: int, requests: int, only, profilePrefix: str = None, user: str = "admin") -> None:
    """
    C{requests} PROPFINDs of a folder of C{files} files with each body,
    through the whole site in this process; see the module's description.
    """
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

    from tests.helpers import PASSWORDS
    from tests.memory import AnswerClient, MemoryServer, ScratchOwner


    owner = ScratchOwner("fbtwist-propfindcost-")
    server = MemoryServer(owner).start()
    folder = FOLDER if user == "admin" else ""
    names = [f"file{i:06d}.vfb" for i in range(files - (user != "admin"))] + ([] if user == "admin" else
                                                                             [f"{user}.vfb"])
    writeFiles(os.path.join(server.root.path, folder), names, calendarBody("folder"))
    network, client = server.network, AnswerClient()
    network.run(connectProtocol(TCP4ClientEndpoint(network, "127.0.0.1", server.port), client))
    credentials = f"{user}:{PASSWORDS[user]}".encode("utf-8")
    authorization = b"Authorization: Basic " + base64.b64encode(credentials) + b"\r\n"

    for name, body in BODIES.items():
        if only and name not in only:
            continue
        encoded = body.encode("utf-8")
        href = f"/pub/calendar/{folder}/" if folder else "/pub/calendar/"
        requestBytes = (f"PROPFIND {href} HTTP/1.1\r\nHost: 127.0.0.1\r\nDepth: 1\r\n"
                        "User-Agent: Microsoft-WebDAV-MiniRedir/10.0.19045\r\n"
                        "Content-Type: text/xml; charset=utf-8\r\n".encode() + authorization
                        + b"Content-Length: %d\r\n\r\n" % len(encoded) + encoded)
        status = network.run(client.send(requestBytes)).result  # logged in, caches warm
        size = client.size
        assert status.split()[1] == b"207", (name, status, b"".join(client.received)[:2000])

        def loop(requestBytes=requestBytes):
            for _ in range(requests):
                network.run(client.send(requestBytes))

        user, system, calls = timedLoop(loop, f"{profilePrefix}-{name}.prof" if profilePrefix else None)
        cpu = (user + system) / requests
        print(f"{name:8} {files} files x {requests}: CPU per PROPFIND {cpu * 1000:.1f} ms "
              f"(user {user / requests * 1000:.1f}, system {system / requests * 1000:.1f}), "
              f"per entry {cpu / files * 1e6:.2f} us; answer {size / 2**20:.2f} MB")
        if calls is not None:
            print(f"{name:8} Python function calls per entry {calls / requests / files:.1f} "
                  f"(written to {profilePrefix}-{name}.prof)")
    server.stop()
    subprocess.run(["rm", "-rf", owner.directory])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10000, help="files in the folder listed")
    parser.add_argument("--requests", type=int, default=5, help="PROPFINDs per body")
    parser.add_argument("--only", action="append", choices=sorted(BODIES), help="only these bodies (repeatable)")
    parser.add_argument("--profile", metavar="PREFIX", help="write cProfiles of the loops")
    parser.add_argument("--user", default="admin", help="who lists (another than admin lists the top folder)")
    args = parser.parse_args()
    inProcess(args.files, args.requests, args.only, args.profile, args.user)


if __name__ == "__main__":
    main()
