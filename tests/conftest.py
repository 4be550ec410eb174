import uuid

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from django.db import connections
from django.conf import settings
from rest_framework.test import APIClient

from accounts.models import Membership, Organisation
from accounts.services import token_create
from tests.factories import MembershipFactory

# Settings are loaded before this file runs, so the test run's own channel-layer keys are
# set on them directly: a shared Redis carries nothing from one run (or `make run`) to another.
settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = f"t{uuid.uuid4().hex[:8]}"
# Fast hashing for the many people tests create; throttle counters per process, not in Redis.
settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

PASSWORD = "correct-horse-battery-9"


def _flush_by_delete():
    """A transactional test's teardown empties every table (Django's ``flush``): by DELETE,
    not PostgreSQL's TRUNCATE, which took half a second for a few rows in 50 tables (new
    files for every table and index) where DELETE takes 16 ms; 280 such tests spent two
    minutes on it. Tables whose own triggers refuse DELETE (the append-only provenance log)
    have them switched off for it, and a flush that resets sequences is left as Django writes
    it. The foreign keys are deferred to the flush's commit, when every table is empty.
    Content types and permissions, which the flush's post_migrate signal would only write
    again as they were (100 ms), are kept."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    truncate = DatabaseOperations.sql_flush
    kept = {"django_content_type", "auth_permission"}
    guarded: dict[str, set[str]] = {}

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        if reset_sequences or not tables:
            return truncate(self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
        name = self.connection.settings_dict["NAME"]
        if name not in guarded:
            with self.connection.cursor() as cursor:
                # tgtype bit 3 (8): the trigger fires on DELETE.
                cursor.execute("SELECT DISTINCT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                               "WHERE NOT t.tgisinternal AND t.tgtype & 8 <> 0")
                guarded[name] = {row[0] for row in cursor.fetchall()}
        statements = []
        for table in tables:
            if table in kept:
                continue
            quoted = self.quote_name(table)
            if table in guarded[name]:  # in the flush's transaction: no one else sees them off
                statements += [f"ALTER TABLE {quoted} DISABLE TRIGGER USER;", f"DELETE FROM {quoted};",
                               f"ALTER TABLE {quoted} ENABLE TRIGGER USER;"]
            else:
                statements.append(f"DELETE FROM {quoted};")
        return statements

    DatabaseOperations.sql_flush = sql_flush


_flush_by_delete()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's, and before it drops the test database, the end of any session the run
    itself left open there (an ORM call made while Playwright's event loop ran gets a
    connection of its own that no test can reach to close), so the drop is not refused."""
    yield
    with django_db_blocker.unblock(), connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    connections.close_all()


@pytest.fixture(autouse=True)
def _empty_cache():
    # The cache (local memory here) lives as long as the test process; what one test's pages
    # kept there (the market overview's table) must not show in the next test's.
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def _plain_static_storage(settings):
    # The manifest storage needs `collectstatic`; pages under test only need the URLs.
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}


@pytest.fixture(autouse=True)
def _fresh_channel_layer():
    # Each async test runs in an event loop of its own, and channels_redis keeps asyncio locks
    # that bind to the loop that first waited on them: a layer instance shared with an earlier
    # test's loop failed with "bound to a different event loop". A new instance per test.
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture(autouse=True)
def _fresh_instrument_directory():
    # Instruments are never deleted in the exchange, but each test's rows are: a code the
    # process-wide directory remembers may name another id in the next test.
    from exchange.gateway import instruments

    instruments._by_code.clear()
    yield
    instruments._by_code.clear()


@pytest_asyncio.fixture
async def asgi_closed():
    """For async tests that drive the ASGI application: the order route's connections and every
    thread's Django connection close at teardown, or they outlive the test (STACK.md)."""
    from exchange.asgi import order_entry

    yield
    await order_entry.aclose()
    await sync_to_async(connections.close_all)()


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


# --------------------------------------------------------------------------- marketplace


@pytest.fixture
def catalogue(db):
    """The hubs, clusters and classes of the data migration (re-made after a transactional test emptied them)."""
    from marketplace.catalogue import catalogue_load
    from marketplace.models import Cluster, ComputeClass, Hub

    catalogue_load(hub_model=Hub, cluster_model=Cluster, class_model=ComputeClass)
    return {"classes": {c.code: c for c in ComputeClass.objects.all()}, "hubs": {h.code: h for h in Hub.objects.all()}}


@pytest.fixture
def attestor() -> Membership:
    return MembershipFactory(organisation__kind=Organisation.Kind.ATTESTOR, role=Membership.Role.PROVIDER_ADMIN)


@pytest.fixture
def attestor_key(attestor):
    """(AttestorKey, private key) of the ``attestor`` organisation."""
    from marketplace.services import attestor_key_register
    from marketplace.signing import public_key_b64
    from tests.factories import attestor_private_key

    private_key = attestor_private_key()
    key = attestor_key_register(organisation=attestor.organisation, public_key=public_key_b64(private_key))
    return key, private_key


@pytest.fixture
def device_type(catalogue, attestor_key):
    """An 80 GB accelerator attested at 0.8000 (FP16) and 0.0520 (FP64): qualifies for AI80, AI24 and HPC64."""
    from tests.factories import DeviceTypeFactory, attest

    device_type = DeviceTypeFactory()
    key, private_key = attestor_key
    attest(device_type=device_type, attestor_key=key, private_key=private_key)
    return device_type


@pytest.fixture
def asset(provider, device_type):
    """The ``provider``'s hall in Zhongwei (NX) with 100 ``device_type`` devices, owned alone."""
    from marketplace.models import Cluster
    from marketplace.services import asset_register

    return asset_register(provider=provider.organisation, name="Zhongwei Hall A", cluster=Cluster.objects.get(code="NX-ZW"),
                          pue="1.15", green_share="86.00", inventory=[(device_type, 100)])


@pytest.fixture
def tomorrow():
    """00:00 China time tomorrow, as aware UTC: the first whole daily period to list."""
    from datetime import timedelta

    from django.utils import timezone

    from marketplace.periods import china_midnight, china_today

    return china_midnight(china_today(timezone.now()) + timedelta(days=1))


@pytest.fixture
def listing(asset, device_type, catalogue, tomorrow):
    """40 devices of the asset in AI80 for three days from tomorrow: 768 SCU·h per day."""
    from datetime import timedelta

    from marketplace.services import listing_create

    return listing_create(asset=asset, device_type=device_type, compute_class=catalogue["classes"]["AI80"],
                          device_count=40, window_start=tomorrow, window_end=tomorrow + timedelta(days=3),
                          reserve_price="15.80")
