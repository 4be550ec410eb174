"""Delivery credentials at rest: Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``).

Keys come from ``settings.CREDENTIALS_KEYS``; the first encrypts, any decrypts, so a key is
rotated by putting a new one first. Nothing here logs or returns plaintext except
``decrypt``, which only ``settlement.selectors.delivery_credentials`` calls.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in keys])


def encrypt(plaintext: str) -> str:
    if not plaintext:
        return ""
    return _fernet(tuple(settings.CREDENTIALS_KEYS)).encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str | None:
    """The plaintext, or None when no configured key opens it (a key was retired)."""
    if not token:
        return ""
    try:
        return _fernet(tuple(settings.CREDENTIALS_KEYS)).decrypt(token.encode()).decode()
    except InvalidToken:
        return None
