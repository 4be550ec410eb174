"""The order-placement hot path: a thin ASGI handler in front of Django.

``POST /api/v1/orders/`` and ``POST /api/v1/orders/batch/`` with an API token come here;
everything else (and these paths with a session cookie or an ``Idempotency-Key``) goes
to Django. The handler uses the same order-entry service as the DRF views and the
WebSocket commands — ``order_request_parse`` for fields, ``cx_place_orders`` for
credentials, organisation status, instrument state, duplicates and holds — and
acknowledges each order only after the commit of the batch that wrote it.

Group commit: up to two batches in flight per process, each on its own connection; orders
arriving while both are busy wait and go in the next batch together, in one statement and
one commit. No timer: an order alone is written at once. STACK.md measures why this shape (Django's per-request thread hops cost
more than PostgreSQL does).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass

import psycopg
from asgiref.sync import sync_to_async

from exchange import ratelimit
from exchange.db import conninfo

from accounts.access import Actor, actor_from_token
from exchange.errors import AppError
from exchange.gateway import (
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

log = logging.getLogger("exchange.fastpath")

PATHS = {"/api/v1/orders/": "single", "/api/v1/orders/batch/": "batch"}
MAX_BODY = 2 * 1024 * 1024
TOKEN_CACHE_SIZE = 10_000
JSON_CONTENT_TYPE = (b"content-type", b"application/json")
_json_encode = json.JSONEncoder(separators=(",", ":")).encode


@dataclass(frozen=True, slots=True)
class CachedActor:
    """What never changes about a token. Revocation, expiry and suspension are re-checked
    by cx_place_orders for every order, so caching these facts delays nothing."""

    actor: Actor
    can_trade: bool


class TokenCache:
    def __init__(self):
        self._by_hash: dict[str, CachedActor] = {}

    async def get(self, raw: str) -> CachedActor:
        key = hashlib.sha256(raw.encode()).hexdigest()
        cached = self._by_hash.get(key)
        if cached is None:
            actor = await sync_to_async(actor_from_token)(raw)
            cached = CachedActor(actor=actor, can_trade="trade" in actor.scopes)
            if len(self._by_hash) >= TOKEN_CACHE_SIZE:
                self._by_hash.clear()
            self._by_hash[key] = cached
        return cached


class GroupCommitBatcher:
    def __init__(self, dsn: str, connections: int = 2):
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

    async def aclose(self) -> None:
        for conn in self._idle:
            if conn is not None:
                await conn.close()
        self._idle = [None] * len(self._idle)

    async def _drain(self, conn: psycopg.AsyncConnection | None) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                requests = [request for request, _ in batch]
                try:
                    if conn is None or conn.closed:
                        # Autocommit: the one statement is its own transaction, and psycopg returns only
                        # after PostgreSQL reports the commit — no separate BEGIN and COMMIT round trips.
                        conn = await psycopg.AsyncConnection.connect(self._dsn, autocommit=True)
                    cursor = await conn.execute(PLACE_SQL, place_params(requests))
                    rows = await cursor.fetchall()
                    results = results_from_rows(rows, len(requests))
                except Exception as exc:  # nothing was committed: every order in the batch fails alike
                    log.exception("order batch failed")
                    if conn is not None and conn.broken:
                        conn = None
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._idle.append(conn)


def _error_body(code: str, detail: str, fields: dict | None = None) -> dict:
    return {"code": code, "detail": detail, "fields": fields or {}}


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
            cached = await self.tokens.get(raw_token)
            if not cached.can_trade:
                raise AppError("scope_missing", "This needs the 'trade' scope.", status_code=403)
            try:
                data = json.loads(body or b"null")
            except ValueError:
                raise AppError("invalid", "The body is not valid JSON.") from None
            ratelimit.take_orders(cached.actor, data, batch=kind == "batch")
            if kind == "single":
                await self._single(cached.actor, data, send)
            else:
                await self._batch(cached.actor, data, send)
        except ConnectionError:
            return
        except AppError as exc:
            await self._respond(send, exc.status_code, exc.as_dict(), exc.headers)
        except Exception:
            log.exception("order entry failed")
            await self._respond(send, 500, _error_body(
                "server_error", "The order could not be processed; nothing was placed. Try again."))

    async def _warm(self, items) -> None:
        """Look up, off the event loop, the instruments the directory has not seen yet."""
        for item in items if isinstance(items, list) else ():
            code = item.get("instrument") if isinstance(item, dict) else None
            if isinstance(code, str) and instruments.cached(code) is None:
                await sync_to_async(instruments.get)(code)

    async def _single(self, actor: Actor, data, send) -> None:
        await self._warm([data])
        request = order_request_parse(data, actor=actor, lookup=instruments.cached)
        (result,) = await self.batcher.submit([request])
        if not result.ok:
            error = rejection(result)
            await self._respond(send, error.status_code, error.as_dict())
            return
        await self._respond(send, 201 if result.code == "accepted" else 200, {
            "id": result.order_id, "client_order_id": request.client_order_id, "instrument_id": request.instrument_id,
            "status": "accepted" if result.code == "accepted" else "duplicate",
        })

    async def _batch(self, actor: Actor, data, send) -> None:
        items = data.get("orders") if isinstance(data, dict) else None
        await self._warm(items)
        plan = batch_plan(items, actor=actor, lookup=instruments.cached)
        results = await self.batcher.submit(plan.requests) if plan.requests else []
        await self._respond(send, 200, {"results": batch_outcomes(plan, results)})
