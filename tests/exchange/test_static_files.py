"""Static files at the ASGI layer: caching by name, gzip, 304, and whatever it does not
serve goes on to the application."""

import asyncio
import gzip

import pytest

from exchange.static_asgi import StaticFiles


async def fallback(scope, receive, send):
    await send({"type": "http.response.start", "status": 418, "headers": []})
    await send({"type": "http.response.body", "body": b"app"})


def call(app, path, *, method="GET", headers=()):
    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "method": method, "path": path, "headers": list(headers)}
    asyncio.run(app(scope, receive, send))
    start, body = sent
    return start["status"], dict(start["headers"]), body["body"]


@pytest.fixture
def app(tmp_path):
    (tmp_path / "css").mkdir()
    (tmp_path / "css" / "site.a55abe358b89.css").write_bytes(b"body{}" * 100)
    (tmp_path / "css" / "site.a55abe358b89.css.gz").write_bytes(gzip.compress(b"body{}" * 100))
    (tmp_path / "js").mkdir()
    (tmp_path / "js" / "market.js").write_text("//")
    (tmp_path.parent / "secret.txt").write_text("no")
    return StaticFiles(fallback, root=tmp_path, prefix="static/")


def test_a_hashed_name_is_cached_for_a_year_and_sent_compressed(app):
    status, headers, body = call(app, "/static/css/site.a55abe358b89.css")
    assert status == 200 and body == b"body{}" * 100
    assert headers[b"cache-control"] == b"public, max-age=31536000, immutable"
    assert headers[b"content-type"] == b"text/css; charset=utf-8"
    status, headers, body = call(app, "/static/css/site.a55abe358b89.css", headers=[(b"accept-encoding", b"gzip, br")])
    assert headers[b"content-encoding"] == b"gzip" and gzip.decompress(body) == b"body{}" * 100
    assert int(headers[b"content-length"]) == len(body)


def test_an_unhashed_name_for_a_minute_and_304_when_unchanged(app):
    status, headers, _ = call(app, "/static/js/market.js")
    assert status == 200 and headers[b"cache-control"] == b"public, max-age=60"
    status, _, body = call(app, "/static/js/market.js", headers=[(b"if-none-match", headers[b"etag"])])
    assert status == 304 and body == b""
    status, _, body = call(app, "/static/js/market.js", method="HEAD")
    assert status == 200 and body == b""


@pytest.mark.parametrize("path, method", [
    ("/static/js/nothing.js", "GET"),       # not collected: Django (the finders in DEBUG, else its 404)
    ("/static/../secret.txt", "GET"),        # outside the root
    ("/static/js/../../secret.txt", "GET"),
    ("/static/js/market.js\x00", "GET"),
    ("/static/js/market.js", "POST"),
    ("/markets/", "GET"),
])
def test_anything_else_goes_on_to_the_application(app, path, method):
    assert call(app, path, method=method)[0] == 418
