"""
A constant-rate (open-loop, wrk2-like) HTTP load generator for the mixed
Outlook-like workload, which wrk cannot pace.

Each request kind has its own schedule (request I is due at start + I/rate);
a request's latency is measured from when it was due, not from when a
connection was free, so a server that falls behind shows it in its
percentiles instead of silently getting fewer requests (no coordinated
omission).  Connections are kept alive and reused.
"""

import asyncio
import gc
import random
import time
from typing import Callable, Dict, List, Tuple

#: Requests allowed in flight before the generator itself counts as
#: overloaded (the rest are reported as errors, not queued forever).
MAX_IN_FLIGHT = 2000

#: Seconds between the generator's checks of its own event loop, and how
#: late one may wake before it counts: a generator that stalls makes every
#: request due meanwhile late, which would be blamed on the server.
LAG_INTERVAL = 0.005
LAG_THRESHOLD = 0.010


class PacedResults(list):
    """
    One C{(kind, latency seconds, status or error text)} per request, and
    in C{late} the generator's own stalls: C{(seconds since the start, how
    late its loop woke)} for each wake-up later than L{LAG_THRESHOLD}.
    """

    late: List[Tuple[float, float]]
    #: The generator's own CPU seconds over the run (it shares the cores).
    cpu: float


class _Connections:
    """
    At most C{limit} keep-alive connections; a request waits for a free
    one (the wait counts in its latency) rather than opening thousands.
    """

    def __init__(self, port: int, limit: int):
        self.port = port
        self.idle: List[Tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.slots = asyncio.Semaphore(limit)

    async def get(self):
        """
        @return: C{(reader, writer, reused)}.
        """
        await self.slots.acquire()
        if self.idle:
            return (*self.idle.pop(), True)
        return await self.fresh()

    async def fresh(self):
        try:
            return (*await asyncio.open_connection("127.0.0.1", self.port), False)
        except BaseException:
            self.slots.release()
            raise

    def put(self, connection) -> None:
        self.idle.append(connection)
        self.slots.release()

    def discard(self, connection) -> None:
        connection[1].close()
        self.slots.release()

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle = []


async def _readResponse(reader: asyncio.StreamReader) -> Tuple[int, bool]:
    """
    Read one response; the status and whether the connection may be reused.
    """
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if b":" in line:
            name, value = line.split(b":", 1)
            headers[name.strip().lower()] = value.strip()
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif b"content-length" in headers:
        await reader.readexactly(int(headers[b"content-length"]))
    return status, headers.get(b"connection", b"").lower() != b"close"


async def _one(connections: _Connections, data: bytes, due: float, results: List, kind: str, timeout: float):
    connection = None
    try:
        reader, writer, reused = await asyncio.wait_for(connections.get(), timeout)
        connection = (reader, writer)
        try:
            writer.write(data)
            status, reusable = await asyncio.wait_for(_readResponse(reader), timeout)
        except (OSError, asyncio.IncompleteReadError):
            if not reused:
                raise
            # The server closed an idle keep-alive connection (Apache's
            # KeepAliveTimeout): a browser or Outlook would open a new one.
            writer.close()
            connection = None  # its slot passes to the fresh connection
            reader, writer, _ = await asyncio.wait_for(connections.fresh(), timeout)
            connection = (reader, writer)
            writer.write(data)
            status, reusable = await asyncio.wait_for(_readResponse(reader), timeout)
        if reusable:
            connections.put(connection)
        else:
            connections.discard(connection)
        connection = None
        results.append((kind, time.monotonic() - due, status))
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as e:
        if connection is not None:
            connections.discard(connection)
        results.append((kind, time.monotonic() - due, type(e).__name__))


async def _schedule(connections, kind: str, rate: float, makeRequest: Callable[[int], bytes], start: float,
                    duration: float, results: List, tasks: set, timeout: float):
    index = 0
    while True:
        due = start + index / rate
        if due - start >= duration:
            return
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(tasks) >= MAX_IN_FLIGHT:
            results.append((kind, 0.0, "generator overloaded"))
        else:
            task = asyncio.ensure_future(_one(connections, makeRequest(index), due, results, kind, timeout))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        index += 1


async def _watchLoop(start: float, late: List[Tuple[float, float]]):
    """
    Note each time this event loop wakes more than L{LAG_THRESHOLD} late
    (its own garbage collection, or no core for it), until cancelled.
    """
    while True:
        due = time.monotonic() + LAG_INTERVAL
        await asyncio.sleep(LAG_INTERVAL)
        lag = time.monotonic() - due
        if lag > LAG_THRESHOLD:
            late.append((due - start, lag))


async def _run(port: int, kinds: Dict[str, Tuple[float, Callable[[int], bytes]]], duration: float,
               timeout: float, connections: int):
    connections = _Connections(port, connections)
    results = PacedResults()
    results.late = []
    cpu = time.process_time()
    tasks: set = set()
    start = time.monotonic() + 0.1
    watch = asyncio.ensure_future(_watchLoop(start, results.late))
    await asyncio.gather(*[
        _schedule(connections, kind, rate, make, start, duration, results, tasks, timeout)
        for kind, (rate, make) in kinds.items() if rate > 0
    ])
    if tasks:
        await asyncio.wait(list(tasks), timeout=timeout + 5)
    watch.cancel()
    results.cpu = time.process_time() - cpu
    connections.close()
    return results, time.monotonic() - start


def runPaced(port: int, kinds: Dict[str, Tuple[float, Callable[[int], bytes]]], duration: float,
             timeout: float = 10.0, connections: int = 64):
    """
    Send each kind of request at its own constant rate for C{duration}
    seconds.

    @param kinds: A name to (requests per second, a function from the
        request's index to its raw bytes).
    @return: C{(results, elapsed)}: the L{PacedResults}.
    """
    # What exists before the run (this process's modules, the caller's
    # data) is left out of the garbage collector's walks meanwhile: a
    # collection stalling the generator would count against the server.
    gc.collect()
    gc.freeze()
    try:
        return asyncio.run(_run(port, kinds, duration, timeout, connections))
    finally:
        gc.unfreeze()


def summarize(results, elapsed: float) -> dict:
    """
    Requests per second, p50 and p99 latency (ms) and the errors (anything
    but 2xx/3xx) over all kinds; when the generator itself stalled (see
    L{PacedResults}), the longest stall in the note, and all of them in
    C{generatorLate} (ms).
    """
    latencies = sorted(latency for _, latency, _ in results)
    failed = [str(status) for _, _, status in results if not (isinstance(status, int) and status < 400)]
    errors = len(failed)
    kinds = {}
    for status in failed:
        kinds[status] = kinds.get(status, 0) + 1

    def percentile(p):
        if not latencies:
            return float("nan")
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000

    summary = dict(rps=len(results) / elapsed, p50=percentile(50), p99=percentile(99), errors=errors,
                   requests=len(results))
    notes = []
    if kinds:
        notes.append("errors: " + ", ".join(f"{n} × {k}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1])))
    late = [lag * 1000 for _, lag in getattr(results, "late", [])]
    if late:
        summary["generatorLate"] = late
        if max(late) > 20:
            notes.append(f"the generator itself stalled {len(late)} times, up to {max(late):.0f} ms")
    if notes:
        summary["note"] = "; ".join(notes)
    return summary


def pick(count: int, seed: int = 1) -> Callable[[int], int]:
    """
    A reproducible random user index for request I.
    """
    generator = random.Random(seed)
    cache: List[int] = []

    def choose(index: int) -> int:
        while len(cache) <= index:
            cache.append(generator.randrange(count))
        return cache[index]

    return choose
