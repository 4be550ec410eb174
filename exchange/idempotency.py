"""``Idempotency-Key`` for API POSTs: the same key and body replays the first response.

The key is claimed by inserting a row in the same transaction as the view's writes: a
concurrent request with the same key blocks on the unique index until the first commits,
then replays its response; if the first rolled back (an error), the second runs afresh.
Errors are not stored — nothing was written, so running the request again is safe.
"""

from __future__ import annotations

import functools
import hashlib
import json

from django.db import IntegrityError, transaction
from rest_framework.response import Response

from exchange.errors import AppError
from exchange.models import IdempotencyRecord

HEADER = "Idempotency-Key"


def _value(value) -> str:
    """An uploaded file counts by its content, not its name: another file under the same
    name is another request."""
    if hasattr(value, "chunks"):
        digest = hashlib.sha256()
        for chunk in value.chunks():
            digest.update(chunk)
        value.seek(0)
        return f"file:{digest.hexdigest()}"
    return str(value)


def _request_hash(request) -> str:
    body = json.dumps(request.data, sort_keys=True, default=_value, separators=(",", ":"))
    return hashlib.sha256(f"{request.path}\n{body}".encode()).hexdigest()


def idempotent(redact: tuple[str, ...] = ()):
    """Decorate a DRF ``post``. ``redact`` lists response fields never stored (secrets)."""

    def decorator(method):
        @functools.wraps(method)
        def wrapper(self, request, *args, **kwargs):
            key = request.headers.get(HEADER)
            if key is None:
                return method(self, request, *args, **kwargs)
            if not key.strip() or len(key) > 255:
                raise AppError("invalid", f"{HEADER} must be 1 to 255 characters.", fields={HEADER: "1–255 characters."})
            request_hash = _request_hash(request)
            with transaction.atomic():
                try:
                    with transaction.atomic():
                        record = IdempotencyRecord.objects.create(
                            user=request.user, key=key, path=request.path, request_hash=request_hash
                        )
                except IntegrityError:
                    record = IdempotencyRecord.objects.get(user=request.user, key=key)
                    if record.request_hash != request_hash:
                        raise AppError(
                            "idempotency_key_reused",
                            f"This {HEADER} was used for a different request; use a new key for a new request.",
                            status_code=409,
                        ) from None
                    response = Response(record.response_body, status=record.status_code)
                    response["Idempotent-Replay"] = "true"
                    return response
                response = method(self, request, *args, **kwargs)
                body = response.data
                if isinstance(body, dict) and redact:
                    body = {k: (None if k in redact else v) for k, v in body.items()}
                record.status_code = response.status_code
                record.response_body = json.loads(json.dumps(body, default=str))
                record.save(update_fields=["status_code", "response_body"])
                return response

        wrapper.honours_idempotency_key = True
        return wrapper

    return decorator
