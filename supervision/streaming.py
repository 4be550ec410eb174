"""Streamed answers (the audit trail's CSV, a replay's progress) under WSGI and ASGI alike."""

from __future__ import annotations

from collections.abc import Iterator

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse


async def _served_async(chunks: Iterator[bytes]):
    # Under ASGI, Django reads a synchronous iterator whole before sending any of it. Each
    # piece is read on the request's own thread (thread-sensitive), where the database
    # connection, its transaction and its server-side cursors live.
    take = sync_to_async(lambda: next(chunks, None), thread_sensitive=True)
    try:
        while (chunk := await take()) is not None:
            yield chunk
    finally:
        await sync_to_async(chunks.close, thread_sensitive=True)()


def streamed(request, chunks: Iterator[bytes], *, content_type: str) -> StreamingHttpResponse:
    request = getattr(request, "_request", request)  # a DRF request wraps Django's
    response = StreamingHttpResponse(_served_async(chunks) if isinstance(request, ASGIRequest) else chunks,
                                     content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response
