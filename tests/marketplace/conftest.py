import uuid

import pytest


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Every membership fixture makes a person; the production hasher costs ~0.3 s each.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _own_throttle_counters(settings):
    # Throttle counters live in the cache, which otherwise outlives the test database and is
    # shared with other runs: anonymous requests from 127.0.0.1 would add up across them.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": uuid.uuid4().hex}}
