"""HTTP requests through the project's ASGI application, as the server sends them: the order
route's fast path is only reached this way (Django's test client goes straight to Django),
and under ASGI every request is an execution context of its own."""

from __future__ import annotations

import asyncio
import json

from exchange.asgi import application


async def asgi_call(method: str, path: str, *, body: bytes = b"", headers=()) -> tuple[int, dict[str, str], bytes]:
    """One request as uvicorn would send it: (status, headers with lower-case names, body)."""
    sent = []
    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "root_path": "",
             "scheme": "http", "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 5000),
             "headers": [(b"host", b"127.0.0.1"), (b"content-length", str(len(body)).encode()), *headers],
             "query_string": b"", "asgi": {"version": "3.0"}, "http_version": "1.1"}
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()  # the client stays until the answer (Django stops on a disconnect)

    async def send(message):
        sent.append(message)

    await application(scope, receive, send)
    start = sent[0]
    answer = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}, answer


async def asgi_request(method: str, path: str, body: dict | None, token: str | None,
                       headers=()) -> tuple[int, dict]:
    """A JSON request, with ``Authorization: Token <token>`` unless ``token`` is None: (status, JSON answer)."""
    status, answer, _ = await asgi_json(method, path, body, token, headers)
    return status, answer


async def asgi_json(method: str, path: str, body, token: str | None, headers=()) -> tuple[int, dict, dict]:
    """As ``asgi_request``, with the answer's headers: (status, JSON answer, headers)."""
    authorization = [(b"authorization", f"Token {token}".encode())] if token is not None else []
    status, answer_headers, answer = await asgi_call(
        method, path, body=json.dumps(body).encode() if body is not None else b"",
        headers=[*authorization, (b"content-type", b"application/json"), *headers])
    return status, json.loads(answer) if answer else {}, answer_headers
