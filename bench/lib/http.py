"""A small HTTP/1.1 keep-alive client on asyncio (uvloop) for the order-entry benchmarks.

* ``open_loop``: requests at a constant rate, each at its scheduled time on a free
  connection of a pool (or queued for the next free one); latency is measured from the
  scheduled time, so a slow server cannot slow the generator down and hide its own delay
  (no coordinated omission). How late the generator itself sent is reported separately.
* ``closed_loop``: N connections, each sending the next prepared request as soon as the
  previous one is answered (for batch submission).

Responses must carry Content-Length (uvicorn and Django set it); no chunked encoding.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import deque
from dataclasses import dataclass, field

perf = time.perf_counter


class Connection(asyncio.Protocol):
    def __init__(self):
        self.transport = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future | None = None

    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data):
        self.buffer += data
        if self.waiter is None:
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        start = head.find(b"content-length:")
        length = int(head[start + 15: head.find(b"\r\n", start) if head.find(b"\r\n", start) > 0 else None]) if start >= 0 else 0
        total = end + 4 + length
        if len(self.buffer) < total:
            return
        status = int(head[9:12])
        body = bytes(self.buffer[end + 4: total])
        del self.buffer[:total]
        waiter, self.waiter = self.waiter, None
        if not waiter.done():
            waiter.set_result((status, body))

    def connection_lost(self, exc):
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed by the server"))

    def request(self, data: bytes) -> asyncio.Future:
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.waiter


async def connect(port: int) -> Connection:
    _, protocol = await asyncio.get_running_loop().create_connection(Connection, "127.0.0.1", port)
    return protocol


def post(port: int, path: str, token: str, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Token {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


@dataclass
class OpenLoopResult:
    latencies_ms: list[float] = field(default_factory=list)  # from scheduled time, after warm-up
    latency_statuses: list[int] = field(default_factory=list)  # the HTTP status of each of latencies_ms
    lateness_ms: list[float] = field(default_factory=list)  # send time - scheduled time, after warm-up
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    sent: int = 0
    duration_s: float = 0.0
    max_queue: int = 0


async def open_loop(port: int, make_request, *, rate: float, duration: float, warmup: float = 2.0,
                    connections: int = 64) -> OpenLoopResult:
    """``make_request(i) -> bytes`` for the i-th request; ``rate`` per second for ``duration`` s
    (the first ``warmup`` seconds are sent but not counted)."""
    pool = [await connect(port) for _ in range(connections)]
    idle = deque(pool)
    queued: deque = deque()
    result = OpenLoopResult()
    total = int(rate * duration)
    t0 = perf() + 0.05
    counted_from = t0 + warmup
    outstanding = set()

    async def run(conn: Connection, i: int, scheduled: float) -> None:
        while True:
            sent = perf()
            try:
                status, _ = await conn.request(make_request(i))
            except ConnectionError:
                result.errors += 1
                return
            done = perf()
            if scheduled >= counted_from:
                result.latencies_ms.append((done - scheduled) * 1000)
                result.latency_statuses.append(status)
                result.lateness_ms.append((sent - scheduled) * 1000)
                result.statuses[status] = result.statuses.get(status, 0) + 1
            if not queued:
                idle.append(conn)
                return
            i, scheduled = queued.popleft()

    i = 0
    while i < total:
        now = perf()
        while i < total and t0 + i / rate <= now:
            scheduled = t0 + i / rate
            if idle:
                task = asyncio.ensure_future(run(idle.popleft(), i, scheduled))
                outstanding.add(task)
                task.add_done_callback(outstanding.discard)
            else:
                queued.append((i, scheduled))
                result.max_queue = max(result.max_queue, len(queued))
            i += 1
        result.sent = i
        if i < total:
            await asyncio.sleep(max(0.0, t0 + i / rate - perf()))
    while outstanding:
        await asyncio.gather(*list(outstanding))
    result.duration_s = duration - warmup
    for conn in pool:
        conn.transport.close()
    return result


@dataclass
class ClosedLoopResult:
    responses: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    bodies: list[bytes] = field(default_factory=list)  # a few, for diagnosis
    elapsed_s: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)


async def closed_loop(port: int, requests: list[bytes], *, connections: int, duration: float,
                      count_tokens: tuple[bytes, ...] = ()) -> ClosedLoopResult:
    """Send ``requests`` over ``connections`` keep-alive connections, each waiting for its
    answer before the next, until all are sent or ``duration`` seconds have passed; count
    occurrences of each of ``count_tokens`` in the response bodies."""
    pool = [await connect(port) for _ in range(connections)]
    result = ClosedLoopResult(counts={t.decode(): 0 for t in count_tokens})
    pending = iter(requests)
    started = perf()
    deadline = started + duration

    async def worker(conn: Connection) -> None:
        for data in pending:
            status, body = await conn.request(data)
            result.responses += 1
            result.statuses[status] = result.statuses.get(status, 0) + 1
            for token in count_tokens:
                result.counts[token.decode()] += body.count(token)
            if status >= 300 and len(result.bodies) < 3:
                result.bodies.append(body[:500])
            if perf() > deadline:
                return

    await asyncio.gather(*(worker(conn) for conn in pool))
    result.elapsed_s = perf() - started
    for conn in pool:
        conn.transport.close()
    return result


def run(coro):
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:  # pragma: no cover - uvloop is in requirements.txt
        return asyncio.run(coro)
