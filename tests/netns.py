"""
Network namespaces (C{ip netns}, Debian package C{iproute2}; root only) for
tests that need several machines on one: each L{Namespace} has its own
loopback and its own ports, and L{link} joins two with a veth pair, a
private link that exists only inside namespaces the test created.  Nothing
here sends traffic out of the machine.

L{Namespace.call} runs a function in a thread that entered the namespace:
the sockets it opens and the processes it starts (C{subprocess} forks from
the calling thread) live there.  The filesystem stays shared, mounts
included.
"""

import ctypes
import os
import subprocess
import threading

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def run(*argv: str, timeout: float = 30.0) -> str:
    """
    Run a command; its output.

    @raise RuntimeError: When it fails, with the command and its error
        output.
    """
    done = subprocess.run(argv, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        output = (done.stderr or done.stdout).decode("utf-8", "replace").strip()
        raise RuntimeError(f"{' '.join(argv)} exited with {done.returncode}: {output}")
    return done.stdout.decode("utf-8", "replace")


class Namespace:
    """
    A network namespace of its own, its loopback up.

    @ivar name: Its name under C{/run/netns}.
    """

    def __init__(self, name: str):
        self.name = name
        self.created = False

    def create(self) -> "Namespace":
        run("ip", "netns", "add", self.name)
        self.created = True
        run("ip", "-n", self.name, "link", "set", "lo", "up")
        return self

    def delete(self) -> None:
        """
        Remove the namespace and its interfaces (the veth pairs go with
        it); safe to call twice, so it suits C{addCleanup}.
        """
        if self.created:
            self.created = False
            run("ip", "netns", "delete", self.name)

    def call(self, function, *args, **kwargs):
        """
        Call C{function} in a new thread that entered this namespace, and
        wait for it.

        @return: What C{function} returned.
        @raise Exception: What C{function} raised.
        """
        outcome = {}

        def enter():
            try:
                fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY | os.O_CLOEXEC)
                try:
                    # setns(2) on this thread alone: the rest of the
                    # process stays where it is.
                    if _libc.setns(fd, CLONE_NEWNET) != 0:
                        number = ctypes.get_errno()
                        raise OSError(number, f"setns {self.name}: {os.strerror(number)}")
                finally:
                    os.close(fd)
                outcome["value"] = function(*args, **kwargs)
            except BaseException as e:
                outcome["error"] = e

        thread = threading.Thread(target=enter, name=f"in {self.name}", daemon=True)
        thread.start()
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]


def link(first: Namespace, second: Namespace, subnet: str) -> tuple:
    """
    Join two namespaces with a veth pair on the private C{subnet} (three
    dotted numbers, a /24): C{first} gets C{.1}, C{second} C{.2}; the ends are
    called C{vNa} and C{vNb}, N the subnet's last number.

    @return: The two addresses.
    """
    firstEnd, secondEnd = f"v{subnet.rsplit('.', 1)[1]}a", f"v{subnet.rsplit('.', 1)[1]}b"
    run("ip", "-n", first.name, "link", "add", firstEnd, "type", "veth", "peer", "name", secondEnd,
        "netns", second.name)
    addresses = (f"{subnet}.1", f"{subnet}.2")
    for namespace, end, address in ((first, firstEnd, addresses[0]), (second, secondEnd, addresses[1])):
        run("ip", "-n", namespace.name, "addr", "add", f"{address}/24", "dev", end)
        run("ip", "-n", namespace.name, "link", "set", end, "up")
    return addresses
