"""Database connections of a real web process stay bounded under concurrent requests
(issue 16, item 8: under ASGI, persistent connections piled up, one per request thread)."""

import concurrent.futures

import pytest
import requests
from django.db import connection

from exchange import serve
from tests import processes
from tests.conftest import token_client

pytestmark = pytest.mark.django_db(transaction=True)



def server_connections() -> int:
    """Backends of the web process (libpq names a child's after PGAPPNAME; it is the only child here)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND application_name = %s", [processes.CHILD_APPLICATION_NAME])
        return cursor.fetchone()[0]


def rounds(base_url: str, token: str, *, rounds: int = 6, concurrency: int = 20) -> list[int]:
    """``rounds`` of ``concurrency`` simultaneous reads that each use the database; the
    connections held after each round."""
    paths = ["/api/v1/me/", "/api/v1/orders/", "/api/v1/balances/", "/api/v1/tokens/"]
    held = []
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        for _ in range(rounds):
            answers = list(pool.map(lambda i: requests.get(
                base_url + paths[i % len(paths)], headers={"Authorization": f"Token {token}"}, timeout=30).status_code,
                range(concurrency)))
            assert answers == [200] * concurrency
            held.append(server_connections())
    return held


def test_concurrent_requests_hold_no_more_connections_than_the_pool(buyer):
    """Unpooled, 20 concurrent requests left 20 to 51 connections behind: more than the pool."""
    token = token_client(buyer).raw_token
    process, base_url = processes.serve(DB_POOL_TIMEOUT="30")
    try:
        held = rounds(base_url, token)
        print(f"connections held after each round: {held}")
        assert max(held) <= serve.DB_POOL_MAX_SIZE < 20
    finally:
        processes.stop(process)
