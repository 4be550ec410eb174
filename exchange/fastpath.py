"""The order-placement hot path: a thin ASGI handler in front of Django.

``POST /api/v1/orders/`` and ``POST /api/v1/orders/batch/`` with an API token come here;
everything else (and these paths with a session cookie or an ``Idempotency-Key``) goes
to Django. The handler uses the same order-entry service as the DRF views and the
WebSocket commands — ``order_request_parse`` for fields, ``cx_place_orders`` for
credentials, organisation status, instrument state, duplicates and holds — and
acknowledges each order only after the commit of the batch that wrote it.

Group commit: one batch in flight per process, on its own connection; orders arriving
while it is being written wait and go in the next batch together, in one statement and one
commit. An order alone, or the first of a burst, is written at once; only after a batch of
at least ``BUSY`` orders does the next one gather for ``COALESCE_S`` (1 ms) first. Both make
batches larger where it pays: PostgreSQL's fixed cost per statement (about 0.8 ms of CPU,
mostly the executor's start and the commit) is shared by more orders. On two cores
(bench/gateway.py, 256 connections) two connections per process gave 9,300 orders/s, one
connection 9,300–12,000, and the pause under load 12,350–12,570 with PostgreSQL's CPU per
order down from 66 to 44 µs, while the acknowledgement p99 at 1,000 orders/s stayed 6–7 ms. STACK.md measures why this shape (Django's per-request thread hops cost
more than PostgreSQL does).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging

import psycopg
from asgiref.sync import sync_to_async

from exchange import ratelimit
from exchange.db import conninfo

from accounts.access import Actor, actor_from_token
from exchange.api import order_out, order_out_placed
from exchange.errors import AppError
from exchange.gateway import (
    CREDENTIAL_REFUSALS,
    FAILED,
    MAX_BATCH,
    PLACE_SQL,
    OrderRequest,
    OrderResult,
    batch_outcomes,
    batch_plan,
    instruments,
    order_request_parse,
    place_params,
    rejection,
    results_from_rows,
)
from exchange.wire import json_parse

log = logging.getLogger("exchange.fastpath")

PATHS = {"/api/v1/orders/": "single", "/api/v1/orders/batch/": "batch"}
MAX_BODY = 2 * 1024 * 1024
TOKEN_CACHE_SIZE = 10_000
# Group commit under load (GroupCommitBatcher._drain): after a batch of at least BUSY orders,
# the next one gathers for COALESCE_S before it is written.
BUSY = 8
COALESCE_S = 0.001
JSON_CONTENT_TYPE = (b"content-type", b"application/json")
_json_encode = json.JSONEncoder(separators=(",", ":")).encode




class ActorStale(Exception):
    """cx_place_orders found the token's membership in another organisation than the cached one."""


class TokenCache:
    """Token → Actor, for tokens that may trade.

    The cached facts (scopes, user, membership, organisation) only say whom to place the
    order for: cx_place_orders re-reads every one of them with each batch and refuses an
    order when any has changed, and such a refusal drops the entry (:meth:`drop`). A token
    that may not trade is not cached, so a scope or role granted later reaches the next
    request.
    """

    def __init__(self):
        self._by_hash: dict[str, Actor] = {}
        self._hash_by_token: dict[int, str] = {}

    async def actor(self, raw: str) -> Actor:
        key = hashlib.sha256(raw.encode()).hexdigest()
        actor = self._by_hash.get(key)
        if actor is None:
            actor = await sync_to_async(actor_from_token)(raw)
            if "trade" not in actor.scopes:
                raise rejection(OrderResult(order_id=None, code="scope_missing"))
            if len(self._by_hash) >= TOKEN_CACHE_SIZE:
                self._by_hash.clear()
                self._hash_by_token.clear()
            self._by_hash[key] = actor
            self._hash_by_token[actor.token.id] = key
        return actor

    def drop(self, token_id: int) -> None:
        key = self._hash_by_token.pop(token_id, None)
        if key is not None:
            self._by_hash.pop(key, None)


class GroupCommitBatcher:
    def __init__(self, dsn: str, connections: int = 1):
        self._dsn = dsn
        self._queue: list[tuple[OrderRequest, asyncio.Future]] = []
        self._idle: list[psycopg.AsyncConnection | None] = [None] * connections

    async def submit(self, requests: list[OrderRequest]) -> list[OrderResult]:
        loop = asyncio.get_running_loop()
        futures = []
        for request in requests:
            future = loop.create_future()
            self._queue.append((request, future))
            futures.append(future)
        if self._idle:
            loop.create_task(self._drain(self._idle.pop()))
        if len(futures) == 1:
            return [await futures[0]]
        return list(await asyncio.gather(*futures))

    async def _pause(self) -> None:
        await asyncio.sleep(COALESCE_S)

    async def aclose(self) -> None:
        for conn in self._idle:
            if conn is not None:
                await conn.close()
        self._idle = [None] * len(self._idle)

    async def _drain(self, conn: psycopg.AsyncConnection | None) -> None:
        last = 0
        try:
            while self._queue:
                if last >= BUSY and len(self._queue) < MAX_BATCH:
                    # Busy: the batch just written was large, so more orders are on their way.
                    # Waiting a moment for them halves the statements (and PostgreSQL's fixed
                    # cost) per order; an order alone, or the first of a burst, never waits.
                    await self._pause()
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                last = len(batch)
                conn = await self._place(conn, batch)
        finally:
            self._idle.append(conn)

    async def _place(self, conn: psycopg.AsyncConnection | None, batch: list) -> psycopg.AsyncConnection | None:
        """Write ``batch`` and settle each order's future; return the connection to keep.

        The batch is one statement, so one order the statement cannot take would fail all
        the organisations sharing it. A statement that fails on its content is tried again
        in halves until the order that breaks it is alone: it gets ``server_error`` (the
        statement was refused, so nothing of it was written) and the rest are placed, at
        the cost of about 2 × log2(batch size) statements. A lost connection or an
        unavailable server is not an order's fault: the part in flight fails as a whole
        (whether it committed is unknown) and is not split.
        """
        parts = [batch]
        while parts:
            part = parts.pop()
            requests = [request for request, _ in part]
            try:
                if conn is None or conn.closed:
                    # Autocommit: the one statement is its own transaction, and psycopg returns only
                    # after PostgreSQL reports the commit — no separate BEGIN and COMMIT round trips.
                    conn = await psycopg.AsyncConnection.connect(self._dsn, autocommit=True)
                cursor = await conn.execute(PLACE_SQL, place_params(requests))
                rows = await cursor.fetchall()
                results = results_from_rows(rows, len(requests))
            except Exception as exc:
                if conn is None or conn.broken or isinstance(exc, psycopg.OperationalError):
                    log.exception("order batch failed on its connection (%d orders)", len(part))
                    if conn is not None and conn.broken:
                        conn = None
                    for _, future in part:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                if len(part) > 1:
                    log.warning("order batch refused (%s); trying its halves", exc)
                    half = len(part) // 2
                    parts += [part[half:], part[:half]]
                    continue
                log.exception("order refused by the database past validation: %r", requests[0])
                results = [OrderResult(order_id=None, code=FAILED)]
            for (_, future), result in zip(part, results):
                if not future.done():
                    future.set_result(result)
        return conn


class OrderEntryRouter:
    """ASGI: the order hot path to the lean handler, everything else to ``fallback``."""

    def __init__(self, fallback):
        self.fallback = fallback
        self.tokens = TokenCache()
        self._batcher: GroupCommitBatcher | None = None

    @property
    def batcher(self) -> GroupCommitBatcher:
        if self._batcher is None:
            self._batcher = GroupCommitBatcher(conninfo())
        return self._batcher

    async def aclose(self) -> None:
        if self._batcher is not None:
            await self._batcher.aclose()
            self._batcher = None

    async def __call__(self, scope, receive, send):
        kind = PATHS.get(scope.get("path", "")) if scope["type"] == "http" and scope.get("method") == "POST" else None
        if kind is not None:
            headers = dict(scope.get("headers") or ())
            auth = headers.get(b"authorization", b"").decode("latin-1").split()
            if len(auth) == 2 and auth[0].lower() == "token" and b"idempotency-key" not in headers:
                return await self._handle(kind, auth[1], receive, send)
        return await self.fallback(scope, receive, send)

    async def _respond(self, send, status: int, body: dict, headers: dict | None = None) -> None:
        payload = _json_encode(body).encode()
        extra = [(name.lower().encode(), str(value).encode()) for name, value in (headers or {}).items()]
        await send({"type": "http.response.start", "status": status,
                    "headers": [JSON_CONTENT_TYPE, (b"content-length", str(len(payload)).encode()), *extra]})
        await send({"type": "http.response.body", "body": payload})

    async def _read(self, receive) -> bytes:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ConnectionError("client went away")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:
                raise AppError("too_large", f"The request body exceeds {MAX_BODY // 1024} KiB.", status_code=413)
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    async def _handle(self, kind: str, raw_token: str, receive, send) -> None:
        try:
            body = await self._read(receive)
            actor = await self.tokens.actor(raw_token)
            data = json_parse(body) if body else None
            ratelimit.take_orders(actor, data, batch=kind == "batch")
            place = self._single if kind == "single" else self._batch
            try:
                await place(actor, data, send)
            except ActorStale:
                # The membership moved since the token was cached and nothing was placed: once
                # more, for the organisation the token acts for now (or refused as it is now).
                try:
                    await place(await self.tokens.actor(raw_token), data, send)
                except ActorStale:
                    raise rejection(OrderResult(order_id=None, code="membership_changed")) from None
        except ConnectionError:
            return
        except AppError as exc:
            await self._respond(send, exc.status_code, exc.as_dict(), exc.headers)
        except Exception:
            log.exception("order entry failed")
            error = rejection(OrderResult(order_id=None, code=FAILED))
            await self._respond(send, error.status_code, error.as_dict())

    async def _submit(self, actor: Actor, requests: list[OrderRequest]) -> list[OrderResult]:
        results = await self.batcher.submit(requests)
        for result in results:
            if result.code in CREDENTIAL_REFUSALS:
                # One token per request: every order of it got the same answer.
                self.tokens.drop(actor.token.id)
                if result.code == "membership_changed":
                    raise ActorStale
                break
        return results

    async def _warm(self, items) -> None:
        """Look up, off the event loop, the instruments the directory has not seen yet."""
        for item in items if isinstance(items, list) else ():
            code = item.get("instrument") if isinstance(item, dict) else None
            if isinstance(code, str) and instruments.cached(code) is None:
                await sync_to_async(instruments.get)(code)

    async def _single(self, actor: Actor, data, send) -> None:
        await self._warm([data])
        request = order_request_parse(data, actor=actor, lookup=instruments.cached)
        (result,) = await self._submit(actor, [request])
        if not result.ok:
            error = rejection(result)
            await self._respond(send, error.status_code, error.as_dict())
            return
        # The order as the DRF view and a later GET give it (OrderOut): a new one from the
        # statement's results, a repeated client_order_id's first order as it is now.
        if result.code == "accepted":
            await self._respond(send, 201, order_out_placed(code=data["instrument"], request=request, result=result))
        else:
            await self._respond(send, 200, await sync_to_async(order_out)(result.order_id))

    async def _batch(self, actor: Actor, data, send) -> None:
        items = data.get("orders") if isinstance(data, dict) else None
        await self._warm(items)
        plan = batch_plan(items, actor=actor, lookup=instruments.cached)
        results = await self._submit(actor, plan.requests) if plan.requests else []
        await self._respond(send, 200, {"results": batch_outcomes(plan, results)})
