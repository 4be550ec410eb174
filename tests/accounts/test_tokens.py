from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import ApiToken
from accounts.services import token_create, token_hash, token_verify
from exchange.errors import AppError
from tests.conftest import token_client

pytestmark = pytest.mark.django_db


def test_created_token_secret_is_shown_once_and_only_its_hash_is_stored(buyer):
    client = token_client(buyer, scopes=("read", "trade"))
    response = client.post("/api/v1/tokens/", {"name": "bot", "scopes": ["read", "trade"]}, format="json")
    assert response.status_code == 201
    secret = response.data["token"]
    assert secret.startswith("cx_")
    stored = ApiToken.objects.get(pk=response.data["id"])
    assert stored.token_hash == token_hash(secret)
    assert secret not in {stored.prefix, stored.token_hash, stored.name}
    listing = client.get("/api/v1/tokens/")
    assert listing.status_code == 200
    assert secret not in listing.content.decode()
    assert {"id", "prefix", "scopes"} <= set(listing.data[0])


def test_token_authenticates_and_records_last_use(buyer):
    client = token_client(buyer)
    response = client.get("/api/v1/me/")
    assert response.status_code == 200
    assert response.data["organisation"]["name"] == buyer.organisation.name
    assert response.data["scopes"] == ["read", "trade"]
    assert ApiToken.objects.get(membership=buyer).last_used_at is not None


def test_revoked_token_is_refused(buyer):
    client = token_client(buyer)
    token = ApiToken.objects.get(membership=buyer)
    first = client.delete(f"/api/v1/tokens/{token.id}/")
    assert first.status_code == 200 and first.data["revoked_at"]
    response = client.get("/api/v1/me/")
    assert response.status_code == 401
    assert response.data["code"] == "token_revoked"


def test_revoking_twice_keeps_the_first_time(buyer):
    other = token_client(buyer)
    token, _ = token_create(membership=buyer, name="second", scopes=["read"])
    first = other.delete(f"/api/v1/tokens/{token.id}/")
    second = other.delete(f"/api/v1/tokens/{token.id}/")
    assert first.status_code == second.status_code == 200
    assert first.data["revoked_at"] == second.data["revoked_at"]


def test_expired_token_is_refused(buyer):
    token, raw = token_create(membership=buyer, name="short", scopes=["read"], expires_at=timezone.now() + timedelta(seconds=30))
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(AppError) as err:
        token_verify(raw)
    assert err.value.code == "token_expired"


@pytest.mark.parametrize("header", ["Token", "Token cx_nope", "Token cx_abc_def", "Token a b"])
def test_malformed_or_unknown_tokens_get_401_in_the_error_shape(api, header):
    api.credentials(HTTP_AUTHORIZATION=header)
    response = api.get("/api/v1/me/")
    assert response.status_code == 401
    assert set(response.data) == {"code", "detail", "fields"}


def test_tampered_token_is_refused(buyer):
    client = token_client(buyer)
    client.credentials(HTTP_AUTHORIZATION=f"Token {client.raw_token[:-2]}xx")
    assert client.get("/api/v1/me/").status_code == 401


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "", "scopes": ["read"]}, "name"),
        ({"name": "x", "scopes": []}, "scopes"),
        ({"name": "x", "scopes": ["admin"]}, "scopes[0]"),
        ({"name": "x", "scopes": ["provide"]}, "scopes"),  # a trader may not provide
        ({"name": "x", "scopes": ["read"], "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"name": "x", "scopes": ["read"], "expires_at": "tomorrow"}, "expires_at"),
    ],
)
def test_bad_token_requests_are_400_and_write_nothing(buyer, body, field):
    client = token_client(buyer)
    before = ApiToken.objects.count()
    response = client.post("/api/v1/tokens/", body, format="json")
    assert response.status_code == 400, response.data
    assert response.data["code"] == "invalid"
    assert any(key.startswith(field.split("[")[0]) for key in response.data["fields"]), response.data
    assert ApiToken.objects.count() == before


def test_a_person_cannot_revoke_someone_elses_token(buyer, provider):
    token, _ = token_create(membership=provider, name="theirs", scopes=["read"])
    response = token_client(buyer).delete(f"/api/v1/tokens/{token.id}/")
    assert response.status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


def test_repeated_create_with_idempotency_key_returns_the_first_token_without_secret(buyer):
    client = token_client(buyer)
    body = {"name": "bot", "scopes": ["read"]}
    first = client.post("/api/v1/tokens/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = client.post("/api/v1/tokens/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == again.status_code == 201
    assert again.data["id"] == first.data["id"]
    assert first.data["token"] and again.data["token"] is None
    assert again["Idempotent-Replay"] == "true"
    assert ApiToken.objects.filter(name="bot").count() == 1
    other = client.post("/api/v1/tokens/", {"name": "other", "scopes": ["read"]}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert other.status_code == 409
    assert other.data["code"] == "idempotency_key_reused"
    assert not ApiToken.objects.filter(name="other").exists()


def test_session_user_can_manage_tokens_without_a_token(api, buyer):
    api.force_login(buyer.user)
    response = api.post("/api/v1/tokens/", {"name": "from-browser", "scopes": ["read"]}, format="json")
    assert response.status_code == 201


@pytest.mark.parametrize("own, asked, status", [
    (("read",), ["read", "trade"], 403),
    (("read",), ["trade"], 403),
    (("read", "trade"), ["read", "trade", "provide"], 403),
    (("read",), ["read"], 201),
    (("read", "trade"), ["trade"], 201),
])
def test_a_token_creates_only_tokens_within_its_own_scopes(provider, own, asked, status):
    client = token_client(provider, scopes=own)
    before = ApiToken.objects.count()
    response = client.post("/api/v1/tokens/", {"name": "minted", "scopes": asked}, format="json")
    assert response.status_code == status, response.data
    if status == 403:
        assert response.data["code"] == "scope_escalation"
        assert ApiToken.objects.count() == before
    else:
        assert sorted(ApiToken.objects.get(pk=response.data["id"]).scopes) == sorted(asked)


def test_a_read_token_cannot_revoke_a_trading_token_but_a_trading_token_and_a_session_can(api, buyer):
    reader = token_client(buyer, scopes=("read",))
    bot, _ = token_create(membership=buyer, name="bot", scopes=["read", "trade"])
    response = reader.delete(f"/api/v1/tokens/{bot.id}/")
    assert response.status_code == 403 and response.data["code"] == "scope_escalation"
    bot.refresh_from_db()
    assert bot.revoked_at is None

    other_reader, _ = token_create(membership=buyer, name="other", scopes=["read"])
    assert reader.delete(f"/api/v1/tokens/{other_reader.id}/").status_code == 200
    assert token_client(buyer).delete(f"/api/v1/tokens/{bot.id}/").status_code == 200
    api.force_login(buyer.user)
    third, _ = token_create(membership=buyer, name="third", scopes=["read", "trade"])
    assert api.delete(f"/api/v1/tokens/{third.id}/").status_code == 200
    assert ApiToken.objects.filter(revoked_at__isnull=True, name__in=["bot", "other", "third"]).count() == 0


def test_a_session_creates_what_the_role_allows_and_no_more(api, buyer):
    api.force_login(buyer.user)
    assert api.post("/api/v1/tokens/", {"name": "bot", "scopes": ["read", "trade"]}, format="json").status_code == 201
    refused = api.post("/api/v1/tokens/", {"name": "funds", "scopes": ["funds"]}, format="json")
    assert refused.status_code == 400 and "scopes" in refused.data["fields"]
    assert not ApiToken.objects.filter(name="funds").exists()
