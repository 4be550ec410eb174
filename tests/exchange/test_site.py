import pytest
from django.core.management import call_command

from accounts.models import ApiToken, BeneficialOwner, Membership, Organisation, User

pytestmark = pytest.mark.django_db


def test_healthz_reports_database_and_channel_layer(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["database"] == "ok" and response.json()["channel_layer"] == "ok"


def test_healthz_is_503_when_the_channel_layer_is_unreachable(client, settings):
    from channels.layers import channel_layers

    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]}}
    }
    channel_layers.backends.clear()
    try:
        response = client.get("/healthz")
    finally:
        channel_layers.backends.clear()
    assert response.status_code == 503
    assert response.json()["database"] == "ok"
    assert response.json()["channel_layer"] != "ok"


def test_healthz_is_503_when_the_engine_is_not_keeping_up(client, settings):
    from datetime import timedelta

    from django.utils import timezone

    from exchange.models import InboxCommand
    from tests.exchange.conftest import make_instrument

    settings.HEALTH_ENGINE_LAG_SECONDS = 30
    command = InboxCommand.objects.create(instrument=make_instrument(), action=InboxCommand.Action.EXPIRE)
    InboxCommand.objects.filter(pk=command.pk).update(created_at=timezone.now() - timedelta(seconds=20))
    assert client.get("/healthz").status_code == 200  # waiting, but within the threshold

    InboxCommand.objects.filter(pk=command.pk).update(created_at=timezone.now() - timedelta(seconds=90))
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable" and response.json()["database"] == "ok"
    assert response.json()["engine"].startswith("behind:")
    assert 90 <= response.json()["engine_lag_s"] < 120

    InboxCommand.objects.filter(pk=command.pk).update(processed_at=timezone.now())
    assert client.get("/healthz").json()["engine"] == "ok"


def test_unknown_api_url_is_a_json_404(client):
    response = client.get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_unknown_page_says_what_to_do(client, settings):
    settings.DEBUG = False
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert "home page" in response.content.decode()


def test_server_error_page_says_nothing_changed(rf):
    from exchange.views import server_error

    response = server_error(rf.get("/somewhere/"))
    assert response.status_code == 500
    assert "Nothing you submitted was changed" in response.content.decode()
    api = server_error(rf.get("/api/v1/orders/"))
    assert api.status_code == 500 and b"server_error" in api.content


def test_seed_demo_is_idempotent():
    call_command("seed_demo")
    counts = [m.objects.count() for m in (User, Organisation, Membership, BeneficialOwner, ApiToken)]
    hashes = dict(User.objects.values_list("email", "password"))
    call_command("seed_demo")
    assert [m.objects.count() for m in (User, Organisation, Membership, BeneficialOwner, ApiToken)] == counts
    assert dict(User.objects.values_list("email", "password")) == hashes
    kinds = set(Organisation.objects.values_list("kind", flat=True))
    assert {"operator", "regulator", "buyer", "provider"} <= kinds
    # Verified: the trading demo's; the KYC queue's applications wait beside them (tests/supervision).
    assert Organisation.objects.filter(kind="buyer", kyc_status="verified").count() == 2
    assert Organisation.objects.filter(kind="provider", kyc_status="verified").count() == 3
    assert Membership.objects.filter(role="regulator").exists()


def test_openapi_schema_is_served(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert "/api/v1/tokens/" in response.json()["paths"]


def test_healthz_is_503_naming_the_database_when_its_query_fails(client):
    from django.db import connection

    with connection.cursor() as cursor:  # undone with the test's transaction
        cursor.execute("ALTER TABLE exchange_inboxcommand RENAME TO exchange_inboxcommand_away")
    response = client.get("/healthz")
    assert response.status_code == 503
    assert "exchange_inboxcommand" in response.json()["database"] and response.json()["engine"] == "unknown"
