"""Static files at the ASGI layer, from the collected ``STATIC_ROOT``.

Under ASGI, WhiteNoise's middleware answers through Django with a synchronous file iterator,
which Django's ASGI handler consumes a chunk at a time on its thread pool (and warns about
each time): a page's half-dozen scripts and styles cost more than the page. Here they are
read once into memory (the collected files do not change while a process runs) and sent in
one message, with what WhiteNoise would send: a year's ``immutable`` caching for the
hashed names of the manifest, a minute for the others, the ``.gz`` copy when the browser
takes gzip, and 304 for a matching ``ETag``. Anything not found in ``STATIC_ROOT`` (a file
only the finders know, in DEBUG) goes on to Django as before.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
from pathlib import Path

# A hashed name of ManifestStaticFilesStorage: "site.a55abe358b89.css".
HASHED = re.compile(r"\.[0-9a-f]{12}\.[^./]+$")


class StaticFile:
    __slots__ = ("body", "gzip", "etag", "headers")

    def __init__(self, path: Path, name: str):
        self.body = path.read_bytes()
        gz = path.with_name(path.name + ".gz")
        self.gzip = gz.read_bytes() if gz.is_file() else None
        self.etag = f'"{hashlib.sha1(self.body).hexdigest()[:16]}"'.encode()
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type == "application/javascript":
            content_type += "; charset=utf-8"
        cache = "public, max-age=31536000, immutable" if HASHED.search(name) else "public, max-age=60"
        self.headers = [(b"content-type", content_type.encode()), (b"cache-control", cache.encode()),
                        (b"etag", self.etag)]
        if self.gzip is not None:
            self.headers.append((b"vary", b"Accept-Encoding"))


class StaticFiles:
    """ASGI: GET and HEAD under ``prefix`` from ``root``; everything else to ``app``."""

    def __init__(self, app, *, root: Path, prefix: str):
        self.app = app
        self.root = root.resolve()
        self.prefix = "/" + prefix.strip("/") + "/"
        self._files: dict[str, StaticFile | None] = {}

    def _file(self, name: str) -> StaticFile | None:
        if name in self._files:
            return self._files[name]
        found = None
        if name and "\x00" not in name and not name.startswith("/"):
            path = (self.root / name).resolve()
            if path.is_relative_to(self.root) and path.is_file():
                found = StaticFile(path, name)
        if len(self._files) < 10_000:  # names that miss are remembered too, up to a bound
            self._files[name] = found
        return found

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path.startswith(self.prefix) and scope.get("method") in ("GET", "HEAD"):
            static = self._file(path[len(self.prefix):])
            if static is not None:
                return await self._send(static, scope, send)
        return await self.app(scope, receive, send)

    async def _send(self, static: StaticFile, scope, send) -> None:
        headers = dict(scope.get("headers") or ())
        if headers.get(b"if-none-match") == static.etag:
            await send({"type": "http.response.start", "status": 304, "headers": static.headers})
            await send({"type": "http.response.body", "body": b""})
            return
        body, extra = static.body, []
        if static.gzip is not None and b"gzip" in headers.get(b"accept-encoding", b""):
            body, extra = static.gzip, [(b"content-encoding", b"gzip")]
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*static.headers, *extra, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
