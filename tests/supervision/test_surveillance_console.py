"""The console's surveillance pages and API: regulators read and act, everyone else is refused;
filters, pages, evidence, the workflow, the rules' settings, idempotency and bad input."""

import pytest

from accounts.models import Membership, Organisation
from supervision.models import Alert, Rule, SupervisionAction
from supervision.surveillance.params import rules_ensure
from supervision.surveillance.runner import SurveillanceRunner
from supervision.surveillance.scenario_market import REFERENCE_FEN as REF
from supervision.surveillance.scenario_market import ScenarioMarket, engine_for_scenario
from tests.conftest import token_client
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

API = "/api/v1/supervision/"


@pytest.fixture
def wash_alert():
    """A real alert: two organisations trade, then turn out to share one beneficial owner."""
    engine = engine_for_scenario()
    try:
        m = ScenarioMarket(engine=engine)
        instrument = m.day()
        seller, buyer = m.provider("Seller"), m.buyer("Buyer")
        ask = m.place(seller, instrument, "sell", REF, 10)
        bid = m.place(buyer, instrument, "buy", REF, 10)
        m.settle()
    finally:
        engine.close()
    Organisation.objects.filter(pk=buyer.id).update(beneficial_owner_id=seller.organisation.beneficial_owner_id)
    SurveillanceRunner().drain()
    alert = Alert.objects.get()
    alert.parties = (seller, buyer, ask, bid)
    return alert


@pytest.fixture
def many_alerts():
    rules_ensure()
    rules = {r.code: r for r in Rule.objects.all()}
    alerts = []
    for i in range(30):
        alerts.append(Alert.objects.create(
            rule=rules["hoarding" if i % 2 else "price_move"], key=f"k{i}", severity="medium" if i % 2 else "info",
            state="closed" if i % 3 == 0 else "open", evidence={"figures": {}, "orders": [], "trades": []}))
    return alerts


@pytest.fixture
def operator():
    return MembershipFactory(organisation__kind=Organisation.Kind.OPERATOR, role=Membership.Role.VIEWER)


PAGES = ["/supervision/alerts/", "/supervision/alerts/{id}/", "/supervision/rules/"]
POSTS = ["/supervision/alerts/{id}/review/", "/supervision/alerts/{id}/close/", "/supervision/rules/spoofing/"]


def test_pages_are_for_regulators_only(client, wash_alert, regulator, buyer, provider, operator, admin_user):
    urls = [u.format(id=wash_alert.id) for u in PAGES]
    posts = [u.format(id=wash_alert.id) for u in POSTS]
    for url in urls + posts:
        response = client.post(url) if url in posts else client.get(url)
        assert response.status_code == 302 and "/accounts/sign-in/" in response["Location"], url
    for member in (buyer.user, provider.user, operator.user, admin_user):
        client.force_login(member)
        for url in urls:
            assert client.get(url).status_code == 403, (member, url)
        for url in posts:
            assert client.post(url, {"note": "x", "reason": "x"}).status_code == 403, (member, url)
    assert Alert.objects.get().state == "open" and not SupervisionAction.objects.exists()
    client.force_login(regulator.user)
    for url in urls:
        assert client.get(url).status_code == 200, url


def test_the_alert_page_shows_the_evidence(client, wash_alert, regulator):
    client.force_login(regulator.user)
    seller, buyer, ask, bid = wash_alert.parties
    page = client.get(f"/supervision/alerts/{wash_alert.id}/").content.decode()
    for text in (seller.organisation.name, buyer.organisation.name, f"<td>{ask.id}</td>", f"<td>{bid.id}</td>",
                 f"<td>{wash_alert.evidence['trades'][0]}</td>", "one beneficial owner", "<th>Beneficial owner</th>",
                 "<th>Volume (SCU·h)</th>"):
        assert text in page, text
    chinese = client.get(f"/supervision/alerts/{wash_alert.id}/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "<th>受益所有人</th>" in chinese and "<th>成交量（SCU·h）</th>" in chinese
    # The orders' and trades' sides, types and states in the reader's language, not their codes.
    assert ">卖出</td>" in chinese and ">买入</td>" in chinese and "<td>限价 GTC</td>" in chinese
    assert ">sell</td>" not in chinese and ">buy</td>" not in chinese and ">filled</td>" not in chinese
    listing = client.get("/supervision/alerts/").content.decode()
    assert f'href="/supervision/alerts/{wash_alert.id}/"' in listing and seller.organisation.name in listing


def test_the_list_filters_and_pages(client, many_alerts, regulator):
    client.force_login(regulator.user)
    page = client.get("/supervision/alerts/?state=closed&rule=price_move")
    shown = page.context["page"].object_list
    assert page.status_code == 200 and {a.state for a in shown} == {"closed"} and {a.rule.code for a in shown} == {"price_move"}
    assert len(shown) == len([a for a in many_alerts if a.state == "closed" and a.rule.code == "price_move"])
    first, second = client.get("/supervision/alerts/"), client.get("/supervision/alerts/?page=2")
    assert len(first.context["page"].object_list) == 25 and len(second.context["page"].object_list) == 5
    assert client.get("/supervision/alerts/?page=99").status_code == 200  # the last page
    bad = client.get("/supervision/alerts/?rule=nonsense&severity=extreme")
    assert bad.status_code == 400 and len(bad.context["page"].object_list) == 25


def test_the_workflow_on_the_pages_is_recorded(client, wash_alert, regulator):
    client.force_login(regulator.user)
    url = f"/supervision/alerts/{wash_alert.id}/"
    assert client.post(url + "review/", {"note": "Looking at the owner group."}).status_code == 302
    wash_alert.refresh_from_db()
    assert wash_alert.state == "under_review" and wash_alert.note == "Looking at the owner group."
    response = client.post(url + "close/", {"note": "  "})
    assert response.status_code == 400 and "needs a note" in response.content.decode()
    assert client.post(url + "close/", {"note": "Same group; referred to enforcement."}).status_code == 302
    wash_alert.refresh_from_db()
    assert wash_alert.state == "closed" and wash_alert.note == "Same group; referred to enforcement."
    assert client.post(url + "close/", {"note": "again"}).status_code == 409
    actions = list(SupervisionAction.objects.order_by("id").values_list("action", "reason", "actor_id"))
    assert actions == [("alert_review", "Looking at the owner group.", regulator.user.id),
                       ("alert_close", "Same group; referred to enforcement.", regulator.user.id)]
    assert SupervisionAction.objects.last().details["organisation_ids"] == wash_alert.organisation_ids


def test_rules_are_tuned_on_the_page(client, regulator):
    client.force_login(regulator.user)
    page = client.get("/supervision/rules/").content.decode()
    assert "Spoofing and layering" in page and 'name="large_qty"' in page
    bad = client.post("/supervision/rules/spoofing/", {"enabled": "on", "large_qty": "lots", "reason": "tighter"})
    assert bad.status_code == 400 and "whole number" in bad.content.decode()
    out_of_range = client.post("/supervision/rules/spoofing/", {"enabled": "on", "large_qty": "0", "reason": "x"})
    assert out_of_range.status_code == 400
    no_reason = client.post("/supervision/rules/spoofing/", {"enabled": "on", "large_qty": "30"})
    assert no_reason.status_code == 400
    assert client.post("/supervision/rules/spoofing/", {"large_qty": "30", "reason": "Smaller lots now."}).status_code == 302
    rule = Rule.objects.get(code="spoofing")
    assert rule.parameters["large_qty"] == 30 and rule.enabled is False  # the box was left unticked
    action = SupervisionAction.objects.get()
    assert action.action == "rule_update" and action.reason == "Smaller lots now."
    assert action.details["before"]["parameters"]["large_qty"] == 50 and action.details["after"]["enabled"] is False
    assert client.post("/supervision/rules/nonsense/", {"reason": "x"}).status_code == 404


def test_the_pages_speak_chinese(client, wash_alert, regulator):
    client.force_login(regulator.user)
    client.cookies["django_language"] = "zh-hans"
    assert "监控警报" in client.get("/supervision/alerts/").content.decode()
    assert "监控规则" in client.get("/supervision/rules/").content.decode()


# ---------------------------------------------------------------------------------------- API


def test_the_api_is_for_regulators_only(api, wash_alert, buyer, provider, operator):
    urls = [f"{API}alerts/", f"{API}alerts/{wash_alert.id}/", f"{API}rules/", f"{API}rules/spoofing/"]
    for url in urls:
        assert api.get(url).status_code == 401
    for member in (buyer, provider, operator):
        client = token_client(member, ("read",))
        for url in urls:
            assert client.get(url).status_code == 403, (member, url)
    reader = token_client(MembershipFactory(organisation__kind="regulator", role="regulator"), ("read",))
    assert all(reader.get(url).status_code == 200 for url in urls)
    # A read-only token cannot act.
    assert reader.post(f"{API}alerts/{wash_alert.id}/review/", {}, format="json").status_code == 403
    assert reader.patch(f"{API}rules/spoofing/", {"enabled": False, "reason": "x"}, format="json").status_code == 403


def test_alerts_through_the_api(wash_alert, regulator):
    client = token_client(regulator, ("read", "supervise"))
    listing = client.get(f"{API}alerts/?state=open&rule=wash_same_owner").json()
    (row,) = listing["results"]
    seller, buyer, ask, bid = wash_alert.parties
    assert row["id"] == wash_alert.id and row["severity"] == "high" and row["instrument"] == wash_alert.instrument.code
    assert {o["name"] for o in row["organisations"]} == {seller.organisation.name, buyer.organisation.name}
    assert set(row["evidence"]["orders"]) == {ask.id, bid.id} and "one beneficial owner" in row["summary"]
    assert client.get(f"{API}alerts/?state=closed").json()["results"] == []
    assert client.get(f"{API}alerts/?state=nonsense").json()["code"] == "invalid"
    assert client.get(f"{API}alerts/?organisation={buyer.id}").json()["results"][0]["id"] == wash_alert.id
    assert client.get(f"{API}alerts/999999999/").status_code == 404

    review = f"{API}alerts/{wash_alert.id}/review/"
    first = client.post(review, {"note": "on it"}, format="json", HTTP_IDEMPOTENCY_KEY="r1")
    again = client.post(review, {"note": "on it"}, format="json", HTTP_IDEMPOTENCY_KEY="r1")
    assert first.status_code == again.status_code == 200 and first.json() == again.json()
    assert first.json()["state"] == "under_review" and again["Idempotent-Replay"] == "true"
    assert client.post(review, {}, format="json").json()["code"] == "wrong_state"
    close = f"{API}alerts/{wash_alert.id}/close/"
    assert client.post(close, {}, format="json").json()["fields"] == {"note": "This field is required."}
    assert client.post(close, {"note": ["a"]}, format="json").status_code == 400
    closed = client.post(close, {"note": "Referred."}, format="json")
    assert closed.status_code == 200 and closed.json()["state"] == "closed" and closed.json()["note"] == "Referred."
    assert client.post(close, {"note": "again"}, format="json").status_code == 409
    assert SupervisionAction.objects.filter(action__in=["alert_review", "alert_close"]).count() == 2


def test_rules_through_the_api(regulator):
    client = token_client(regulator, ("read", "supervise"))
    rules = client.get(f"{API}rules/").json()
    assert {r["code"] for r in rules} >= {"wash_same_owner", "wash_circular", "spoofing", "marking_close", "hoarding",
                                          "withholding", "concentration", "price_move", "volatility_auction"}
    url = f"{API}rules/concentration/"
    for body, field in (({"parameters": {"high_hhi": 20000}, "reason": "x"}, "high_hhi"),
                        ({"parameters": {"nonsense": 1}, "reason": "x"}, "nonsense"),
                        ({"parameters": {"high_hhi": "many"}, "reason": "x"}, "parameters.high_hhi"),
                        ({"enabled": False}, "reason"),
                        ({"reason": "nothing"}, "parameters")):
        response = client.patch(url, body, format="json")
        assert response.status_code == 400 and field in response.json()["fields"], (body, response.json())
    changed = client.patch(url, {"parameters": {"high_hhi": 3000}, "reason": "Policy of 2027."}, format="json",
                           HTTP_IDEMPOTENCY_KEY="p1")
    assert changed.status_code == 200
    values = {p["name"]: p["value"] for p in changed.json()["parameters"]}
    assert values["high_hhi"] == 3000 and values["moderate_hhi"] == 1800
    replay = client.patch(url, {"parameters": {"high_hhi": 3000}, "reason": "Policy of 2027."}, format="json",
                          HTTP_IDEMPOTENCY_KEY="p1")
    assert replay.json() == changed.json() and SupervisionAction.objects.filter(action="rule_update").count() == 1
    assert client.patch(f"{API}rules/nonsense/", {"reason": "x", "enabled": True}, format="json").status_code == 404
    assert client.get(f"{API}rules/nonsense/").status_code == 404


def test_the_spoofing_summary_names_the_side_in_the_readers_language():
    from django.utils import translation

    from supervision.models import Rule
    from supervision.surveillance.params import rules_ensure
    from supervision.surveillance.selectors import alert_summary

    rules_ensure()
    alert = Alert(rule=Rule.objects.get(code="spoofing"), evidence={"figures": {
        "orders": 3, "side": "buy", "qty_scu_h": 300, "longest_life_s": 4, "least_behind_touch_bps": 120,
        "opposite_trades": 2}})
    assert "3 large buy orders" in alert_summary(alert)
    with translation.override("zh-hans"):
        summary = alert_summary(alert)
    assert "buy" not in summary and "买" in summary
