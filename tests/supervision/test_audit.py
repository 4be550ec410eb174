"""The audit trail: every kind of record, once; the filters select exactly what they say;
pages of any size walk the whole trail; the API answers in UTC, the page in China time, the
CSV both; delivery credentials never appear; only regulators read it."""

import csv
import io
from collections import Counter
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from exchange.errors import AppError
from exchange.models import InboxCommand, Order, Trade
from settlement.models import Delivery
from supervision.models import SupervisionAction
from supervision.audit import KINDS, AuditFilters, audit_page, audit_rows
from tests.conftest import token_client
from tests.exchange.conftest import fee_tier  # noqa: F401 (a fixture)
from tests.factories import MembershipFactory
from tests.settlement.conftest import market, sla_schedule  # noqa: F401 (fixtures)
from tests.supervision.audit_world import ENDPOINT, SECRET, audit_world

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(market, provider, regulator):
    return audit_world(market, provider, regulator)


def everything(filters=AuditFilters()) -> list:
    return [row for rows in audit_rows(filters=filters, chunk=4) for row in rows]


def walk(filters=AuditFilters(), *, limit: int) -> list:
    rows, cursor = [], None
    while True:
        page = audit_page(filters=filters, cursor=cursor, limit=limit)
        assert len(page.rows) <= limit
        rows += page.rows
        if page.next_cursor is None:
            return rows
        cursor = page.next_cursor


def keys(rows) -> Counter:
    return Counter(row.record for row in rows)


def test_every_kind_of_record_is_in_the_trail_once(world):
    rows = everything()
    kinds = Counter(row.kind for row in rows)
    assert set(kinds) == set(KINDS)
    assert kinds["order"] == Order.objects.count() and kinds["trade"] == Trade.objects.count() == 2
    for action in ("amend", "cancel", "auction", "uncross", "close", "expire"):
        assert kinds[action] == InboxCommand.objects.filter(action=action).count() >= 1, action
    # The two recorded here, and the dispute's resolution (the console records its decisions).
    assert kinds["supervision"] == SupervisionAction.objects.count() >= 3
    assert kinds["settlement"] == 2 and kinds["payout"] == 2
    assert max(keys(rows).values()) == 1  # nothing twice
    assert [row.at for row in rows] == sorted((row.at for row in rows), reverse=True)
    # The amended order is shown as it was entered, with where it stands now.
    (order,) = [row for row in rows if row.kind == "order" and row.detail["order"] == world.amended.id]
    assert order.detail["price"] == "18.00" and order.detail["price_now"] == "18.50"
    assert order.detail["status"] == "cancelled" and order.user == world.amended.user.email


@pytest.mark.parametrize("limit", [1, 4, 50])
def test_pages_of_any_size_walk_the_whole_trail(world, limit):
    assert keys(walk(limit=limit)) == keys(everything())


@pytest.mark.parametrize("limit", [1, 4])
def test_pages_back_are_the_pages_seen_on_the_way(world, limit):
    forward, cursor = [], None
    while True:
        page = audit_page(filters=AuditFilters(), cursor=cursor, limit=limit)
        forward.append((cursor, [row.record for row in page.rows]))
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert not audit_page(filters=AuditFilters(), limit=limit).has_previous
    back = []
    while True:
        page = audit_page(filters=AuditFilters(), cursor=cursor, limit=limit)
        back.append([row.record for row in page.rows])
        if not page.has_previous:
            break
        cursor = page.previous_cursor  # None: the first page
        if cursor is None:
            back.append([row.record for row in audit_page(filters=AuditFilters(), limit=limit).rows])
            break
    assert back == [records for _, records in reversed(forward)]


def test_the_filters_select_exactly_the_records_of_an_organisation_an_instrument_and_a_time(world):
    rows = everything()
    organisations = {row.organisation_id for row in rows} | {row.counterparty_id for row in rows}
    for organisation in organisations - {None}:
        expected = [row for row in rows if organisation in (row.organisation_id, row.counterparty_id)]
        filters = AuditFilters(organisation_id=organisation)
        assert keys(walk(filters, limit=3)) == keys(everything(filters)) == keys(expected), organisation
    for instrument in {row.instrument_id for row in rows} - {None}:
        expected = [row for row in rows if row.instrument_id == instrument]
        filters = AuditFilters(instrument_id=instrument)
        assert keys(walk(filters, limit=3)) == keys(everything(filters)) == keys(expected), instrument
        holder = world.parties.members["holder"].organisation_id
        both = AuditFilters(organisation_id=holder, instrument_id=instrument)
        assert keys(everything(both)) == keys(row for row in expected if holder in (row.organisation_id,
                                                                                      row.counterparty_id))
    # A trade and an order moved a day back: a window around then holds just them.
    trade, order = Trade.objects.order_by("id").first(), Order.objects.order_by("id").first()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE exchange_trade SET created_at = created_at - interval '1 day' WHERE id = %s", [trade.id])
        cursor.execute("UPDATE exchange_order SET created_at = created_at - interval '1 day' WHERE id = %s", [order.id])
    trade.refresh_from_db()
    filters = AuditFilters(start=trade.created_at - timedelta(hours=2), end=trade.created_at + timedelta(minutes=1))
    assert {(row.kind, row.key[1]) for row in walk(filters, limit=1)} == {("trade", trade.id), ("order", order.id)}
    kinds = AuditFilters(kinds=frozenset({"trade", "cancel", "payout"}))
    assert {row.kind for row in everything(kinds)} == {"trade", "cancel", "payout"}
    recent = AuditFilters(start=trade.created_at + timedelta(hours=1))
    assert keys(everything(recent)) == keys(row for row in everything() if row.at >= recent.start)


def test_a_cursor_serves_only_its_own_search(world):
    page = audit_page(filters=AuditFilters(), limit=2)
    with pytest.raises(AppError) as refused:
        audit_page(filters=AuditFilters(kinds=frozenset({"trade"})), cursor=page.next_cursor, limit=2)
    assert refused.value.code == "invalid_cursor"
    with pytest.raises(AppError) as refused:
        audit_page(filters=AuditFilters(), cursor=page.next_cursor[:-3] + "xyz", limit=2)
    assert refused.value.code == "invalid_cursor"


def test_the_api_pages_in_utc_and_the_csv_has_both_times(world, regulator):
    api = token_client(regulator, scopes=("read",))
    seen, url = [], "/api/v1/supervision/audit/?page_size=5"
    while url:
        response = api.get(url)
        assert response.status_code == 200, response.json()
        seen += response.json()["results"]
        previous, url = response.json()["previous"], response.json()["next"]
    back = api.get(previous).json()  # the page before the last
    assert back["next"] and len(back["results"]) == 5
    assert len(seen) == len(everything()) and all(row["at"].endswith("Z") for row in seen)
    trade = next(row for row in seen if row["kind"] == "trade")
    assert trade["details"]["price"] == "20.00" and "price_fen" not in trade["details"]
    response = api.get("/api/v1/supervision/audit.csv", {"kind": "trade,settlement"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode().lstrip("\ufeff"))))
    assert len(table) == 4 and {row["kind"] for row in table} == {"trade", "settlement"}
    row = next(r for r in table if r["kind"] == "trade")
    utc, china = row["time_utc"], row["time_china"]
    assert utc.endswith("Z") and china.replace(" ", "T") == _china(utc)


def _china(utc: str) -> str:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.fromisoformat(utc).astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%dT%H:%M:%S")


def test_the_page_shows_china_time_and_pages_back(world, regulator):
    client = Client()
    client.force_login(regulator.user)
    trade = Trade.objects.order_by("id").first()
    response = client.get("/supervision/audit/", {"kind": "trade"})
    assert response.status_code == 200
    assert _china(trade.created_at.isoformat()).replace("T", " ").encode() in response.content
    first = client.get("/supervision/audit/", {"page_size": 3})
    assert first.status_code == 200 and b'id="audit-older"' in first.content
    older = first.context["older"]
    second = client.get(f"/supervision/audit/?{older}")
    assert second.status_code == 200 and second.context["rows"] and b'id="audit-newer"' in second.content
    assert client.get(f"/supervision/audit/?{second.context['newer']}").context["rows"] == first.context["rows"]
    local = client.get("/supervision/audit/", {"from": "2026-12-07T08:00", "to": "2026-12-07T09:00"})
    assert local.context["params"]["from"] == "2026-12-07T08:00"
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    assert "审计追踪" in client.get("/supervision/audit/").content.decode()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    bad = client.get("/supervision/audit/", {"from": "yesterday"})
    assert bad.status_code == 400 and b"ISO 8601" in bad.content
    csv_page = client.get("/supervision/audit.csv", {"instrument": world.other_instrument.code})
    text = b"".join(csv_page.streaming_content).decode()
    assert csv_page.status_code == 200 and text.count("\n") == 1 + len(everything(
        AuditFilters(instrument_id=world.other_instrument.id)))


@pytest.mark.parametrize(("params", "field"), [
    ({"from": "not a time"}, "from"), ({"to": "2026-13-01T00:00:00Z"}, "to"),
    ({"from": "1999-12-31T00:00:00Z"}, "from"),
    ({"from": "2026-12-07T10:00:00Z", "to": "2026-12-07T09:00:00Z"}, "to"), ({"kind": "trade,bribe"}, "kind"),
    ({"organisation": "99999999"}, "organisation"), ({"organisation": "-1"}, "organisation"),
    ({"instrument": "NO.SUCH.THING"}, "instrument"), ({"page_size": "0"}, "page_size"),
    ({"page_size": "201"}, "page_size"),
    # Digits that str.isdigit() takes and int() does not, and more digits than int() reads.
    ({"organisation": "\u00b2"}, "organisation"), ({"organisation": "9" * 5000}, "organisation"),
    ({"page_size": "\u00b2"}, "page_size"), ({"page_size": "9" * 5000}, "page_size"),
])
def test_bad_input_is_refused_with_the_field_named(regulator, params, field):
    response = token_client(regulator, scopes=("read",)).get("/api/v1/supervision/audit/", params)
    assert response.status_code == 400 and response.json()["code"] == "invalid"
    assert field in response.json()["fields"]
    if field != "page_size":
        response = token_client(regulator, scopes=("read",)).get("/api/v1/supervision/audit.csv", params)
        assert response.status_code == 400 and field in response.json()["fields"]


@pytest.mark.parametrize("params", [{"organisation": "\u00b2"}, {"page_size": "\u00b2"}, {"page_size": "9" * 5000}])
def test_the_console_page_refuses_bad_numbers_with_a_400(regulator, params):
    client = Client()
    client.force_login(regulator.user)
    assert client.get("/supervision/audit/", params).status_code == 400


def test_a_bad_cursor_is_a_400(regulator):
    response = token_client(regulator, scopes=("read",)).get("/api/v1/supervision/audit/", {"cursor": "made-up"})
    assert response.status_code == 400 and response.json()["code"] == "invalid_cursor"


def test_regulators_never_see_delivery_credentials(world, regulator):
    ciphertext = Delivery.objects.get().credentials_encrypted
    api = token_client(regulator, scopes=("read", "supervise"))
    client = Client()
    client.force_login(regulator.user)
    texts = [api.get("/api/v1/supervision/audit/", {"page_size": 200}).content.decode(),
             b"".join(api.get("/api/v1/supervision/audit.csv").streaming_content).decode(),
             client.get("/supervision/audit/", {"page_size": 200}).content.decode(),
             b"".join(client.get("/supervision/audit.csv").streaming_content).decode()]
    assert all("delivery_started" in text or "Delivery started" in text for text in texts)
    for text in texts:
        assert SECRET not in text and ciphertext not in text and ENDPOINT not in text


CONSOLE = ["/supervision/audit/", "/supervision/audit.csv", "/supervision/replay/", "/supervision/provenance/"]
API = ["/api/v1/supervision/audit/", "/api/v1/supervision/audit.csv", "/api/v1/supervision/provenance/"]


def test_only_regulators_read_the_audit_replay_and_provenance(buyer, provider, regulator, admin_user):
    from accounts.models import Membership, Organisation

    operator = MembershipFactory(organisation__kind=Organisation.Kind.OPERATOR, role=Membership.Role.VIEWER)
    regulator_viewer = MembershipFactory(organisation=regulator.organisation, role=Membership.Role.VIEWER)
    for url in CONSOLE:
        assert Client().get(url).status_code == 302, url  # sign in first
        for member in (buyer, provider, operator, regulator_viewer):
            client = Client()
            client.force_login(member.user)
            assert client.get(url).status_code == 403, (url, member)
        client = Client()
        client.force_login(admin_user)
        assert client.get(url).status_code == 403, url
        client.force_login(regulator.user)
        assert client.get(url).status_code == 200, url
    for url in API + ["/api/v1/supervision/replay/X/", "/api/v1/supervision/provenance/assets/1/"]:
        assert APIClient().get(url).status_code == 401, url
        for member, scopes in ((buyer, ("read", "trade")), (provider, ("read", "provide")), (operator, ("read",)),
                               (regulator_viewer, ("read",)), (regulator, ("supervise",))):
            response = token_client(member, scopes=scopes).get(url)
            assert response.status_code == 403, (url, member, response.json())
    for url in API:
        assert token_client(regulator, scopes=("read",)).get(url).status_code == 200, url
