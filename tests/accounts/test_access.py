import pytest

from accounts.access import actor_from_user, check_actor
from accounts.models import ApiToken, Organisation
from accounts.services import token_create
from exchange.errors import AppError
from tests.conftest import token_client

pytestmark = pytest.mark.django_db


def test_suspended_organisation_cannot_act_through_a_token(buyer):
    client = token_client(buyer)
    assert client.get("/api/v1/me/").status_code == 200
    Organisation.objects.filter(pk=buyer.organisation_id).update(kyc_status=Organisation.Kyc.SUSPENDED)
    response = client.get("/api/v1/me/")
    assert response.status_code == 403
    assert response.data["code"] == "organisation_suspended"
    created = client.post("/api/v1/tokens/", {"name": "x", "scopes": ["read"]}, format="json")
    assert created.status_code == 403
    assert ApiToken.objects.filter(membership=buyer).count() == 1


def test_suspended_organisation_cannot_create_tokens_in_the_browser(client, buyer):
    Organisation.objects.filter(pk=buyer.organisation_id).update(kyc_status=Organisation.Kyc.SUSPENDED)
    client.force_login(buyer.user)
    response = client.post("/accounts/tokens/", {"name": "x", "scopes": ["read"]})
    assert response.status_code == 403
    assert "suspended" in response.content.decode()
    assert not ApiToken.objects.exists()


def test_pending_kyc_can_read_but_not_trade(buyer):
    Organisation.objects.filter(pk=buyer.organisation_id).update(kyc_status=Organisation.Kyc.PENDING)
    buyer.organisation.refresh_from_db()
    actor = actor_from_user(buyer.user)
    check_actor(actor, scope="read", acting=False)
    with pytest.raises(AppError) as err:
        check_actor(actor, scope="trade", acting=True)
    assert err.value.code == "kyc_pending" and err.value.status_code == 403


def test_a_token_without_the_scope_is_refused(buyer):
    _, raw = token_create(membership=buyer, name="ro", scopes=["read"])
    from accounts.access import actor_from_token

    with pytest.raises(AppError) as err:
        check_actor(actor_from_token(raw), scope="trade", acting=True)
    assert err.value.code == "scope_missing"


def test_regulator_role_is_not_a_superuser(regulator):
    assert not regulator.user.is_superuser and not regulator.user.is_staff
    actor = actor_from_user(regulator.user)
    assert actor.is_regulator
    with pytest.raises(AppError):
        check_actor(actor, scope="trade", acting=True)


def test_person_without_organisation_gets_a_clear_403(api):
    from tests.factories import UserFactory

    api.force_login(UserFactory())
    response = api.get("/api/v1/me/")
    assert response.status_code == 403
    assert response.data["code"] == "no_organisation"
