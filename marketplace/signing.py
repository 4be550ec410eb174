"""Canonical JSON, SHA-256 and Ed25519: the pieces anyone needs to check a record offline.

Canonical JSON is UTF-8, keys sorted, no whitespace (``json.dumps(obj, sort_keys=True,
separators=(",", ":"), ensure_ascii=False)``; ``jq -cjS .`` gives the same bytes for the
documents the exchange signs and hashes). Numbers that are not integers are carried as
strings, so no two programs can disagree about how to print them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import date, datetime, timezone
from decimal import Decimal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


# Values that are already their canonical selves: skipped without a call (a settlement
# batch's provenance payload is some fifteen thousand integers).
_PLAIN = frozenset((int, str, type(None)))


def jsonable(value):
    """Decimals and times as strings (UTC for datetimes); dicts and lists recursively."""
    if type(value) in _PLAIN:
        return value
    if isinstance(value, dict):
        return {str(k): v if type(v) in _PLAIN else jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [v if type(v) in _PLAIN else jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        raise TypeError("floats have no canonical form here; pass a Decimal or a string")
    return value


def _no_floats(value) -> None:
    if isinstance(value, float):
        raise TypeError("floats have no canonical form here; pass a Decimal or a string")
    if isinstance(value, dict):
        for item in value.values():
            if type(item) not in _PLAIN:
                _no_floats(item)
    elif isinstance(value, list):
        for item in value:
            if type(item) not in _PLAIN:
                _no_floats(item)


def canonical_json(value) -> bytes:
    _no_floats(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def public_key_raw(text: str) -> bytes:
    """An Ed25519 public key from PEM (``openssl pkey -pubout``) or base64 of the raw 32 bytes.

    Raises ValueError for anything else.
    """
    text = (text or "").strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text.encode())
        except (ValueError, TypeError) as exc:
            raise ValueError("not a PEM public key") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("the PEM key is not an Ed25519 key")
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    raw = b64decode(text)
    if len(raw) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return raw


def b64decode(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not valid base64") from exc


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode()


def key_id_for(raw_public_key: bytes) -> str:
    return sha256_hex(raw_public_key)[:16]


def signature_valid(*, public_key_b64: str, payload: dict, signature_b64: str) -> bool:
    try:
        key = Ed25519PublicKey.from_public_bytes(b64decode(public_key_b64))
        key.verify(b64decode(signature_b64), canonical_json(payload))
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def sign(private_key: Ed25519PrivateKey, payload: dict) -> str:
    """What an attestor does on its own machine; the exchange uses it for demo data and tests."""
    return b64encode(private_key.sign(canonical_json(payload)))


def public_key_b64(private_key: Ed25519PrivateKey) -> str:
    return b64encode(private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def provenance_hash(
    *, seq: int, kind: str, asset_id: int | None, device_type_id: int | None, payload: dict,
    recorded_at: datetime, prev_hash: str,
) -> str:
    """SHA-256 of a provenance event's canonical JSON, which includes the previous event's hash."""
    return sha256_hex(canonical_json({
        "seq": seq,
        "kind": kind,
        "asset": asset_id,
        "device_type": device_type_id,
        "payload": payload,
        "recorded_at": jsonable(recorded_at),
        "prev_hash": prev_hash,
    }))
