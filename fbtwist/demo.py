"""
C{python -m fbtwist.demo} (what C{bin/serve} runs): the server in the
foreground with the demo directory (L{fbtwist.directory.demo}) and loopback
listeners.
"""


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
