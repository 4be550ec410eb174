"""The Redis cache with one connection pool per process.

Django keeps a cache backend per execution context, and under ASGI every request is a context
of its own: with Django's ``RedisCache`` each request built a new backend, a new connection
pool and so a new connection to Redis — a TCP connect, the protocol handshake and a package
version lookup before the first ``get``, a fifth of a page's time under load. The backends
here share their pools, one per server and options, for the life of the process (redis-py's
pools are thread-safe, and open connections anew in a forked child).
"""

from __future__ import annotations

import threading

from django.core.cache.backends.redis import RedisCache, RedisCacheClient

_pools: dict[tuple[str, str], object] = {}
_pools_lock = threading.Lock()


class SharedPoolClient(RedisCacheClient):
    def _get_connection_pool(self, write):
        server = self._servers[self._get_connection_pool_index(write)]
        key = (server, repr(sorted(self._pool_options.items())))
        pool = _pools.get(key)
        if pool is None:
            with _pools_lock:
                pool = _pools.get(key)
                if pool is None:
                    pool = _pools[key] = self._pool_class.from_url(server, **self._pool_options)
        return pool


class SharedPoolRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = SharedPoolClient
