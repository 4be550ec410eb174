import os
import uuid

# Each test run talks to its own channel-layer keys, so a shared Redis carries nothing over.
os.environ.setdefault("CHANNEL_PREFIX", f"t{uuid.uuid4().hex[:8]}")

import pytest  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from accounts.models import Membership, Organisation  # noqa: E402
from accounts.services import token_create  # noqa: E402
from tests.factories import MembershipFactory, OrganisationFactory  # noqa: E402

PASSWORD = "correct-horse-battery-9"


@pytest.fixture(autouse=True)
def _plain_static_storage(settings):
    # The manifest storage needs `collectstatic`; pages under test only need the URLs.
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}


@pytest.fixture
def buyer() -> Membership:
    return MembershipFactory(organisation__kind=Organisation.Kind.BUYER, role=Membership.Role.TRADER)


@pytest.fixture
def provider() -> Membership:
    return MembershipFactory(organisation__kind=Organisation.Kind.PROVIDER, role=Membership.Role.PROVIDER_ADMIN)


@pytest.fixture
def regulator() -> Membership:
    return MembershipFactory(organisation__kind=Organisation.Kind.REGULATOR, role=Membership.Role.REGULATOR)


@pytest.fixture
def api() -> APIClient:
    return APIClient()


def token_client(membership: Membership, scopes=("read", "trade")) -> APIClient:
    """An API client authenticated with a fresh token of ``membership``."""
    _, raw = token_create(membership=membership, name="test", scopes=list(scopes))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw}")
    client.raw_token = raw
    return client


@pytest.fixture
def buyer_api(buyer) -> APIClient:
    return token_client(buyer)


@pytest.fixture
def provider_api(provider) -> APIClient:
    return token_client(provider, scopes=("read", "trade", "provide"))
