"""Sign-in lockout after repeated wrong passwords."""

import pytest
from django.core.cache import cache

from tests.factories import PASSWORD, MembershipFactory

pytestmark = pytest.mark.django_db

URL = "/accounts/sign-in/"


@pytest.fixture(autouse=True)
def _fresh_counts(settings):
    settings.SIGN_IN_MAX_FAILURES = 3
    settings.SIGN_IN_LOCKOUT_SECONDS = 600
    cache.clear()
    yield
    cache.clear()


def sign_in(client, email, password, address="10.0.0.1"):
    return client.post(URL, {"username": email, "password": password}, REMOTE_ADDR=address)


def test_wrong_passwords_lock_the_account_even_for_the_right_one(client):
    user = MembershipFactory().user
    for _ in range(3):
        response = sign_in(client, user.email, "wrong-password-1")
        assert response.status_code == 200 and "_auth_user_id" not in client.session
    response = sign_in(client, user.email, PASSWORD)
    assert response.status_code == 429
    assert "Too many wrong passwords" in response.content.decode() and "_auth_user_id" not in client.session
    # From another address too: the account is what was attacked.
    assert sign_in(client, user.email, PASSWORD, address="10.0.0.2").status_code == 429


def test_the_lock_ends_with_its_window(client, settings):
    user = MembershipFactory().user
    settings.SIGN_IN_LOCKOUT_SECONDS = 1
    for _ in range(3):
        sign_in(client, user.email, "wrong-password-1")
    assert sign_in(client, user.email, PASSWORD).status_code == 429
    import time

    time.sleep(2.1)
    assert sign_in(client, user.email, PASSWORD).status_code == 302


def test_a_right_password_before_the_limit_starts_the_count_again(client):
    user = MembershipFactory().user
    for _ in range(2):
        sign_in(client, user.email, "wrong-password-1")
    assert sign_in(client, user.email, PASSWORD).status_code == 302
    client.logout()
    for _ in range(2):
        sign_in(client, user.email, "wrong-password-1")
    assert sign_in(client, user.email, PASSWORD).status_code == 302


def test_one_address_trying_many_accounts_is_locked_out(client):
    for n in range(12):  # 4 × the per-account limit, spread so no account reaches its own
        sign_in(client, f"nobody{n}@example.com", "wrong-password-1")
    user = MembershipFactory().user
    assert sign_in(client, user.email, PASSWORD).status_code == 429
    assert sign_in(client, user.email, PASSWORD, address="10.0.0.9").status_code == 302


def test_concurrent_wrong_passwords_each_count(settings):
    # Many clients guessing one account at once, through the cache web processes share
    # (Redis): every failure must count, or a burst of parallel guesses gets past the limit.
    import threading
    import uuid

    from accounts import lockout

    settings.CACHES = {"default": {"BACKEND": "exchange.cache.SharedPoolRedisCache",
                                   "LOCATION": settings.REDIS_URL, "KEY_PREFIX": f"t{uuid.uuid4().hex[:8]}"}}
    settings.SIGN_IN_MAX_FAILURES = 10_000
    threads, per_thread = 8, 50
    start = threading.Barrier(threads)

    def guess():
        start.wait()
        for _ in range(per_thread):
            lockout.failed(email="target@example.com", address="")

    workers = [threading.Thread(target=guess) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert lockout.failures(email="target@example.com") == threads * per_thread
    settings.SIGN_IN_MAX_FAILURES = threads * per_thread
    assert lockout.locked_for(email="target@example.com", address="") > 0
    lockout.succeeded(email="target@example.com")
    assert lockout.failures(email="target@example.com") == 0


def test_the_admin_sign_in_is_locked_by_the_same_counts(client):
    """Wrong passwords on /admin/login/ count as on the site's sign-in, and lock even the right one."""
    staff = MembershipFactory().user
    staff.is_staff = True
    staff.save(update_fields=["is_staff"])
    for _ in range(3):
        response = client.post("/admin/login/", {"username": staff.email, "password": "wrong-password-1"},
                               REMOTE_ADDR="10.0.0.1")
        assert response.status_code == 200 and "_auth_user_id" not in client.session
    response = client.post("/admin/login/?next=/admin/", {"username": staff.email, "password": PASSWORD},
                           REMOTE_ADDR="10.0.0.1")
    assert "_auth_user_id" not in client.session and "Too many wrong passwords" in response.content.decode()
    # The site's sign-in shares the count.
    assert sign_in(client, staff.email, PASSWORD).status_code == 429


def test_the_admin_sign_in_still_signs_staff_in(client):
    staff = MembershipFactory().user
    staff.is_staff = True
    staff.save(update_fields=["is_staff"])
    response = client.post("/admin/login/?next=/admin/", {"username": staff.email, "password": PASSWORD},
                           REMOTE_ADDR="10.0.0.1")
    assert response.status_code == 302 and client.session["_auth_user_id"] == str(staff.pk)
