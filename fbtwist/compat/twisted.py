"""
fbtwist's uses of Twisted's private names, each in one small function saying
why the public API does not suffice.  Nothing else in fbtwist may use a
private name of Twisted; C{tests/unit/test_compat.py} checks that every name in
L{PRIVATE_NAMES} still exists in the installed Twisted.
"""

from typing import Optional, Tuple

from fbtwist.compat import PrivateName

#: Every private name of Twisted used below.
PRIVATE_NAMES = (
    PrivateName("twisted.web.http.HTTPChannel", "_command", instance=True),
    PrivateName("twisted.web.http.HTTPChannel", "_path", instance=True),
    PrivateName("twisted.web.http.HTTPChannel", "_version", instance=True),
    PrivateName("twisted.application.internet.StreamServerEndpointService", "_raiseSynchronously"),
    PrivateName("twisted.internet.tcp.Port", "_fromListeningDescriptor"),
    PrivateName("twisted.web.http._GenericHTTPChannelProtocol", "_channel", instance=True),
    PrivateName("twisted.internet.abstract.FileDescriptor", "_tempDataBuffer", instance=True),
    # fbtwist.remote reads responses with Twisted's HTTP client; add its
    # functions here when it is merged (the entry is checked only once
    # that package exists).
    PrivateName("twisted.web._newclient", "ParseError", usedBy="fbtwist.remote"),
)


def channelRequestLine(channel) -> Tuple[Optional[bytes], Optional[bytes], Optional[bytes]]:
    """
    The method, URI and HTTP version of the request an C{HTTPChannel} is
    reading, or C{None} for each part not read yet.

    Why private: Twisted sets C{Request.method}, C{uri} and C{clientproto}
    only once the whole body is in (C{requestReceived}); until then the
    request line is only on the channel.  fbtwist needs it earlier, to
    refuse an oversized or unauthenticated upload before reading its body.
    """
    return (getattr(channel, "_command", None), getattr(channel, "_path", None),
            getattr(channel, "_version", None))


def raiseListenErrorsAtStart(service) -> None:
    """
    Make a C{StreamServerEndpointService} raise a failure to listen from
    C{privilegedStartService}, where twistd reports it and stops, rather
    than log it later.

    Why private: C{twisted.application.strports.service} sets this switch
    the same way; C{StreamServerEndpointService} has no public setter.
    """
    service._raiseSynchronously = True


def waitingForPort(service):
    """
    The Deferred of a started C{StreamServerEndpointService}'s
    C{endpoint.listen}, firing with its C{IListeningPort}; C{None} before it
    is started.

    Why private: the service keeps that Deferred only as C{_waitingForPort}
    and has no public way to tell where it listens (a port 0 listener's
    number is known only from it).
    """
    return service._waitingForPort


def adoptListeningPort(portClass, reactor, fd: int, addressFamily, factory):
    """
    A not yet listening C{portClass} (a subclass of C{tcp.Port}) on the
    listening socket C{fd}, as C{reactor.adoptStreamPort} makes a
    C{tcp.Port}; call C{startListening} on it.

    Why private: C{adoptStreamPort} always makes a plain C{tcp.Port}, and
    the workers need their own port class (one accept per readable event).
    """
    return portClass._fromListeningDescriptor(reactor, fd, addressFamily, factory)


def httpClientParseError() -> type:
    """
    The exception Twisted's HTTP client raises (inside C{ResponseFailed})
    for a malformed response, C{twisted.web._newclient.ParseError}.

    Why private: Twisted exports it from no public module, and telling a
    malformed answer from a broken connection needs its class.  For
    C{fbtwist.remote}; imported when called, so that nothing else pays for
    it.
    """
    from twisted.web._newclient import ParseError

    return ParseError


def restartChannelTimer(protocol) -> None:
    """
    Start the idle timer of the HTTP channel in C{protocol} (what
    C{Site.buildProtocol} gives) over, as the channel does itself for every
    read: for a request answered without the channel reading it.

    Why private: C{Site.buildProtocol} wraps the C{HTTPChannel} in a
    C{_GenericHTTPChannelProtocol} (which would switch to HTTP/2), a proxy
    of C{IProtocol} only; the channel's public C{resetTimeout} is reached
    through its C{_channel}.
    """
    channel = getattr(protocol, "_channel", protocol)
    reset = getattr(channel, "resetTimeout", None)
    if reset is not None:
        reset()


def pauseChannelTimer(protocol):
    """
    Stop the idle timer of the HTTP channel in C{protocol} (what
    C{Site.buildProtocol} gives) while a request the channel did not read is
    worked on, as the channel stops it itself for the requests it reads.
    Private for the reason L{restartChannelTimer} gives.

    @return: What L{resumeChannelTimer} needs to start it again.
    """
    channel = getattr(protocol, "_channel", protocol)
    setTimeout = getattr(channel, "setTimeout", None)
    return setTimeout(None) if setTimeout is not None else None


def resumeChannelTimer(protocol, paused) -> None:
    """
    Start the idle timer L{pauseChannelTimer} stopped again, from now.
    """
    channel = getattr(protocol, "_channel", protocol)
    setTimeout = getattr(channel, "setTimeout", None)
    if setTimeout is not None:
        setTimeout(paused)


def writeNow(transport, data: bytes) -> None:
    """
    Write C{data} to C{transport}, sending it at once when the transport is
    a plain TCP connection (either end: an HTTP answer, a request to the
    directory) with nothing else waiting to be sent (else, and for what the
    socket does not take at once, as C{transport.write}).

    C{transport.write} only queues the bytes and asks the reactor to tell
    when the socket can be written: two C{epoll_ctl} calls and one more
    event for every response (C{bench/lookupcost.py --strace}: 8.3 system
    calls a quick lookup with them, 6.1 without).  The socket of a
    connection that just sent a request can nearly always take its small
    answer at once.

    Why private: whether anything is still queued (which must go first) is
    the transport's C{dataBuffer} and its private C{_tempDataBuffer};
    C{writeSomeData} is the transport's own (public) way to send.
    """
    from twisted.internet import tcp

    if (type(transport) in (tcp.Server, tcp.Client) and not transport.TLS and transport.connected
            and not transport.disconnecting
            and not transport._tempDataBuffer and len(transport.dataBuffer) <= transport.offset):
        sent = transport.writeSomeData(data)
        if isinstance(sent, int) and sent >= 0:
            if sent == len(data):
                return
            data = data[sent:]
        # Otherwise the connection was lost: write queues nothing then, and
        # the reactor reports the loss as it would have.
    transport.write(data)
