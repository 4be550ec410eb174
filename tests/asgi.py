"""HTTP requests through the project's ASGI application, as the server sends them: the order
route's fast path is only reached this way (Django's test client goes straight to Django)."""

from __future__ import annotations

import asyncio
import json

from exchange.asgi import application


async def asgi_request(method: str, path: str, body: dict | None, token: str | None) -> tuple[int, dict]:
    """One request, with ``Authorization: Token <token>`` unless ``token`` is None."""
    sent = []
    raw = json.dumps(body).encode() if body is not None else b""
    authorization = [(b"authorization", f"Token {token}".encode())] if token is not None else []
    scope = {"type": "http", "method": method, "path": path, "query_string": b"", "asgi": {"version": "3.0"},
             "headers": [*authorization, (b"content-type", b"application/json"),
                         (b"content-length", str(len(raw)).encode()), (b"host", b"localhost")]}
    messages = [{"type": "http.request", "body": raw, "more_body": False}]

    async def receive():
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()  # the client stays until the answer (Django stops on a disconnect)

    async def send(message):
        sent.append(message)

    await application(scope, receive, send)
    payload = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(payload) if payload else {}
