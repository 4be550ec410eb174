import pytest

from accounts.access import actor_from_user, check_actor
from accounts.models import ApiToken, Membership, Organisation, User
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


def _move(membership):
    from tests.factories import OrganisationFactory

    Membership.objects.filter(pk=membership.pk).update(organisation=OrganisationFactory())


def _deactivate(membership):
    User.objects.filter(pk=membership.user_id).update(is_active=False)


def _demote(membership):
    Membership.objects.filter(pk=membership.pk).update(role=Membership.Role.VIEWER)


def _remove(membership):
    Membership.objects.filter(pk=membership.pk).delete()


def _suspend(membership):
    Organisation.objects.filter(pk=membership.organisation_id).update(kyc_status=Organisation.Kyc.SUSPENDED)


@pytest.mark.parametrize("credentials", ["token", "session"])
@pytest.mark.parametrize("change, code", [
    (_move, "membership_changed"),
    (_deactivate, "user_inactive"),
    (_demote, "scope_missing"),
    (_suspend, "organisation_suspended"),
])
def test_actor_refresh_sees_every_change_for_tokens_and_sessions(buyer, credentials, change, code):
    from accounts.access import actor_from_token, actor_refresh

    if credentials == "token":
        actor = actor_from_token(token_create(membership=buyer, name="bot", scopes=["read", "trade"])[1])
    else:
        actor = actor_from_user(buyer.user)
    check_actor(actor_refresh(actor), scope="trade", acting=True)
    change(buyer)
    with pytest.raises(AppError) as err:
        check_actor(actor_refresh(actor), scope="trade", acting=True)
    assert err.value.code == code


@pytest.mark.parametrize("credentials, code", [("token", "token_revoked"), ("session", "membership_changed")])
def test_actor_refresh_refuses_a_removed_membership(buyer, credentials, code):
    from accounts.access import actor_from_token, actor_refresh

    if credentials == "token":
        actor = actor_from_token(token_create(membership=buyer, name="bot", scopes=["read", "trade"])[1])
    else:
        actor = actor_from_user(buyer.user)
    _remove(buyer)
    with pytest.raises(AppError) as err:
        actor_refresh(actor)
    assert err.value.code == code


def test_actor_refresh_is_one_query(buyer, django_assert_num_queries):
    from accounts.access import actor_from_token, actor_refresh

    token_actor = actor_from_token(token_create(membership=buyer, name="bot", scopes=["read", "trade"])[1])
    session_actor = actor_from_user(buyer.user)
    with django_assert_num_queries(1):
        actor_refresh(token_actor)
    with django_assert_num_queries(1):
        actor_refresh(session_actor)


@pytest.mark.django_db
def test_order_entry_knows_each_roles_scopes_as_python_does():
    # cx_place_orders decides 'trade' from cx_role_scopes, generated from ROLE_SCOPES after
    # every migrate: the two must agree for every role, and know no role Python does not.
    from django.db import connection

    from accounts.services import ROLE_SCOPES

    with connection.cursor() as cursor:
        for role, scopes in ROLE_SCOPES.items():
            cursor.execute("SELECT cx_role_scopes(%s)", [role])
            assert set(cursor.fetchone()[0]) == set(scopes), role
        cursor.execute("SELECT cx_role_scopes('no-such-role')")
        assert cursor.fetchone()[0] == []
