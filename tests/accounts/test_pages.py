import pytest

from accounts.models import ApiToken, Membership, Organisation, User
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def test_sign_in_page_and_good_credentials(client, buyer):
    assert client.get("/accounts/sign-in/").status_code == 200
    response = client.post("/accounts/sign-in/", {"username": buyer.user.email.upper(), "password": PASSWORD})
    assert response.status_code == 302
    assert client.get("/accounts/tokens/").status_code == 200


def test_sign_in_with_wrong_password_explains_and_stays(client, buyer):
    response = client.post("/accounts/sign-in/", {"username": buyer.user.email, "password": "wrong"})
    assert response.status_code == 200
    assert "correct email" in response.content.decode().lower() or "correct e-mail" in response.content.decode().lower()
    assert "_auth_user_id" not in client.session


def test_sign_out(client, buyer):
    client.force_login(buyer.user)
    assert client.post("/accounts/sign-out/").status_code == 302
    assert client.get("/accounts/tokens/").status_code == 302


def test_sign_up_creates_person_and_pending_organisation(client):
    response = client.post(
        "/accounts/sign-up/",
        {"email": "New@Example.com", "password": "a-long-pass-phrase", "organisation_name": "Nova GPU", "kind": "provider"},
    )
    assert response.status_code == 302
    user = User.objects.get(email="new@example.com")
    membership = Membership.objects.get(user=user)
    assert membership.role == Membership.Role.PROVIDER_ADMIN
    assert membership.organisation.kyc_status == Organisation.Kyc.PENDING
    assert client.get("/accounts/tokens/").status_code == 200


@pytest.mark.parametrize(
    "changes, field_text",
    [
        ({"email": "not-an-email"}, "enter a valid e"),
        ({"password": "short"}, "too short"),
        ({"organisation_name": ""}, "required"),
        ({"kind": "regulator"}, "valid choice"),
        ({"organisation_name": "Taken Org"}, "already registered"),
        ({"email": "taken@example.com"}, "sign in instead"),
    ],
)
def test_bad_sign_up_is_400_with_a_message_and_writes_nothing(client, changes, field_text):
    from tests.factories import OrganisationFactory, UserFactory

    OrganisationFactory(name="Taken Org")
    UserFactory(email="taken@example.com")
    users, orgs = User.objects.count(), Organisation.objects.count()
    body = {"email": "fresh@example.com", "password": "a-long-pass-phrase", "organisation_name": "Fresh", "kind": "buyer"}
    body.update(changes)
    response = client.post("/accounts/sign-up/", body)
    assert response.status_code == 400
    assert field_text in response.content.decode().lower()
    assert (User.objects.count(), Organisation.objects.count()) == (users, orgs)


def test_tokens_page_offers_only_the_scopes_the_role_allows(client, buyer):
    client.force_login(buyer.user)
    offered = [value for value, _ in client.get("/accounts/tokens/").context["form"].fields["scopes"].choices]
    assert offered == ["read", "trade"]
    refused = client.post("/accounts/tokens/", {"name": "money", "scopes": ["funds"]})
    assert refused.status_code == 400 and not ApiToken.objects.exists()


def test_tokens_page_shows_secret_once_and_revokes(client, buyer):
    client.force_login(buyer.user)
    response = client.post("/accounts/tokens/", {"name": "laptop", "scopes": ["read", "trade"]})
    assert response.status_code == 200
    secret = response.context["created_secret"]
    assert secret and secret in response.content.decode()
    again = client.get("/accounts/tokens/")
    assert secret not in again.content.decode() and "laptop" in again.content.decode()
    token = ApiToken.objects.get(name="laptop")
    assert client.post(f"/accounts/tokens/{token.id}/revoke/").status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_tokens_page_rejects_bad_input(client, buyer):
    client.force_login(buyer.user)
    response = client.post("/accounts/tokens/", {"name": "", "scopes": ["nope"]})
    assert response.status_code == 400
    assert not ApiToken.objects.exists()


def test_cannot_revoke_another_persons_token_from_the_page(client, buyer, provider):
    from accounts.services import token_create

    token, _ = token_create(membership=provider, name="theirs", scopes=["read"])
    client.force_login(buyer.user)
    assert client.post(f"/accounts/tokens/{token.id}/revoke/").status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


def test_pages_render_in_simplified_chinese(client):
    response = client.get("/accounts/sign-in/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 200
    assert 'lang="zh-hans"' in response.content.decode()
    assert "登录" in response.content.decode()
