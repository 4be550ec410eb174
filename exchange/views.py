"""Site-wide pages: home, health, error pages."""

from __future__ import annotations

import asyncio
import time

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import render


def site_context(request):
    return {"DEMO_MODE": settings.DEMO_MODE}


def home(request):
    return render(request, "home.html")


def _database_ok() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # reported, not raised: this is the health check
        return f"{type(exc).__name__}: {exc}"
    return None


async def _channel_layer_ok() -> str | None:
    layer = get_channel_layer()
    try:
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "health.ping"})
        message = await asyncio.wait_for(layer.receive(channel), timeout=2)
        if message.get("type") != "health.ping":
            return "channel layer returned the wrong message"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


async def healthz(request):
    """Database and channel layer both reachable → 200, else 503 naming what failed."""
    started = time.monotonic()
    problems = {}
    if error := await sync_to_async(_database_ok)():
        problems["database"] = error
    if error := await _channel_layer_ok():
        problems["channel_layer"] = error
    body = {
        "status": "ok" if not problems else "unavailable",
        "database": "ok" if "database" not in problems else problems["database"],
        "channel_layer": "ok" if "channel_layer" not in problems else problems["channel_layer"],
        "elapsed_ms": round((time.monotonic() - started) * 1000, 1),
    }
    return JsonResponse(body, status=200 if not problems else 503)


def _wants_json(request) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", "")


def page_not_found(request, exception=None):
    if _wants_json(request):
        return JsonResponse({"code": "not_found", "detail": f"No API endpoint at {request.path}.", "fields": {}}, status=404)
    return render(request, "404.html", status=404)


def server_error(request):
    if _wants_json(request):
        return JsonResponse(
            {"code": "server_error", "detail": "Something failed on our side; nothing was changed. Try again, "
             "and contact the operator if it persists.", "fields": {}},
            status=500,
        )
    return render(request, "500.html", status=500)


def csrf_failure(request, reason=""):
    return render(request, "403_csrf.html", status=403)
