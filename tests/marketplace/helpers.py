from datetime import timedelta

from tests.conftest import token_client

PROVIDE = ("read", "trade", "provide")


def provide_client(membership):
    return token_client(membership, scopes=PROVIDE)


def assert_error(response, status: int, code: str | None = None) -> dict:
    """A 4xx in the shared error shape (and, given ``code``, that code)."""
    assert response.status_code == status, (response.status_code, getattr(response, "data", response.content))
    body = response.json()
    assert set(body) == {"code", "detail", "fields"}, body
    assert body["detail"]
    if code is not None:
        assert body["code"] == code, body
    return body


def day(start, n: int) -> str:
    return (start + timedelta(days=n)).isoformat()
