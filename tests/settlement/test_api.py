"""The settlement API through its public edge: every write refuses bad input and callers who
may not act (writing nothing), replays a repeated Idempotency-Key, and each business rule
answers with its code."""

import pytest

from settlement.models import Delivery, Dispute, MeterReport
from settlement.services import dispute_open
from tests.settlement.parties import BASE, parties_make, post, window_open, writes

pytestmark = pytest.mark.django_db


@pytest.fixture
def parties(market, provider, regulator):
    made = parties_make(market, provider, regulator)
    window_open(market)
    return made


@pytest.fixture
def ids(parties):
    return {"a": parties.allocation.id, "o": parties.other_allocation.id}


def csv_of(*rows: str) -> str:
    return "allocation_id,device_hours,note\n" + "".join(row + "\n" for row in rows)


# Each write: who may call it, a good body and another good one, bodies that are bad
# (and the field they name), and who is refused with which status and code.
WRITES = {
    "delivery": dict(
        path="allocations/{a}/delivery/", actor="provider", status=200,
        good=lambda ids: {"endpoint": "ssh://gpu-1.example:22", "credentials": "key-1"},
        other=lambda ids: {"endpoint": "ssh://gpu-2.example:22"},
        bad=[({}, "endpoint"), ({"endpoint": ""}, "endpoint"), ({"endpoint": "x" * 301}, "endpoint"),
             ({"endpoint": ["ssh://a"]}, "endpoint"), ({"endpoint": "ssh://a", "credentials": "c" * 4001}, "credentials"),
             ({"endpoint": "ssh://a", "credentials": ["c"]}, "credentials"), ([], "non_field_errors")],
        refused=[("anonymous", 401, "not_authenticated"), ("holder", 403, "not_the_provider"),
                 ("provider_read", 403, "scope_missing"), ("other_provider", 404, "allocation_not_found"),
                 ("other_buyer", 403, "scope_missing"), ("viewer", 403, "scope_missing"),
                 ("regulator", 403, "scope_missing")]),
    "answer": dict(
        path="allocations/{a}/delivery/answer/", actor="holder", status=200,
        good=lambda ids: {"working": False, "note": "no route to host"},
        other=lambda ids: {"working": False, "note": "still nothing"},
        bad=[({}, "working"), ({"working": "perhaps"}, "working"), ({"working": None}, "working"),
             ({"working": False, "note": "n" * 501}, "note")],
        refused=[("anonymous", 401, "not_authenticated"), ("provider", 403, "not_the_holder"),
                 ("holder_read", 403, "scope_missing"), ("other_buyer", 404, "allocation_not_found"),
                 ("other_provider", 404, "allocation_not_found"), ("viewer", 403, "scope_missing"),
                 ("regulator", 403, "scope_missing")]),
    "metering": dict(
        path="allocations/{a}/metering/", actor="provider", status=201,
        good=lambda ids: {"device_hours": "10"}, other=lambda ids: {"device_hours": "11.25"},
        bad=[({}, "device_hours"), ({"device_hours": 1.5}, "device_hours"), ({"device_hours": "abc"}, "device_hours"),
             ({"device_hours": "0"}, "device_hours"), ({"device_hours": "-3"}, "device_hours"),
             ({"device_hours": "1.00001"}, "device_hours"), ({"device_hours": "NaN"}, "device_hours"),
             ({"device_hours": {"h": 1}}, "device_hours"), ({"device_hours": True}, "device_hours"),
             ({"device_hours": None}, "device_hours"), ({"device_hours": "1", "note": "n" * 201}, "note")],
        refused=[("anonymous", 401, "not_authenticated"), ("holder", 403, "not_the_provider"),
                 ("provider_read", 403, "scope_missing"), ("other_provider", 404, "allocation_not_found"),
                 ("other_buyer", 403, "scope_missing"), ("viewer", 403, "scope_missing"),
                 ("regulator", 403, "scope_missing")]),
    "csv": dict(
        path="metering/csv/", actor="provider", status=200,
        good=lambda ids: {"csv": csv_of(f"{ids['a']},10,")}, other=lambda ids: {"csv": csv_of(f"{ids['a']},12,")},
        bad=[({}, "file"), ({"csv": ""}, "csv"), ({"csv": "wrong,header\n1,2\n"}, "file"),
             ({"csv": csv_of("1,2"), "first_row": 0}, "first_row"), ({"csv": "allocation_id,device_hours\n1,2\rzz,3\n"}, "file"),
             ({"csv": "allocation_id,device_hours\n1," + "9" * 200_000 + "\n"}, "file"),
             ({"file": "not a file"}, "file"), ({"csv": csv_of("1,2"), "file": "x"}, "file")],
        refused=[("anonymous", 401, "not_authenticated"), ("provider_read", 403, "scope_missing"),
                 ("other_buyer", 403, "scope_missing"), ("viewer", 403, "scope_missing"),
                 ("regulator", 403, "scope_missing")]),
    "dispute": dict(
        path="allocations/{a}/disputes/", actor="holder", status=201,
        good=lambda ids: {"reason": "Half the nodes were down"}, other=lambda ids: {"reason": "Nothing worked"},
        bad=[({}, "reason"), ({"reason": "   "}, "reason"), ({"reason": "r" * 1001}, "reason"),
             ({"reason": "why", "report_id": 999_999}, "report_id"), ({"reason": "why", "report_id": "x"}, "report_id"),
             ({"reason": "why", "report_id": 0}, "report_id")],
        refused=[("anonymous", 401, "not_authenticated"), ("provider", 403, "not_the_holder"),
                 ("holder_read", 403, "scope_missing"), ("other_buyer", 404, "allocation_not_found"),
                 ("other_provider", 404, "allocation_not_found"), ("viewer", 403, "scope_missing"),
                 ("regulator", 403, "scope_missing")]),
    "resolve": dict(
        path="disputes/{d}/resolve/", actor="regulator", status=200,
        good=lambda ids: {"outcome": "uphold", "note": "Monitoring agrees with the metering"},
        other=lambda ids: {"outcome": "adjust", "note": "Half delivered", "delivered_device_hours": "50"},
        bad=[({}, "outcome"), ({"outcome": "maybe", "note": "n"}, "outcome"), ({"outcome": "uphold"}, "note"),
             ({"outcome": "adjust", "note": "n"}, "delivered_device_hours"),
             ({"outcome": "adjust", "note": "n", "delivered_device_hours": "abc"}, "delivered_device_hours"),
             ({"outcome": "adjust", "note": "n", "delivered_device_hours": 2.5}, "delivered_device_hours")],
        refused=[("anonymous", 401, "not_authenticated"), ("holder", 403, "scope_missing"),
                 ("provider", 403, "scope_missing"), ("regulator_read", 403, "scope_missing"),
                 ("viewer", 403, "scope_missing"), ("other_buyer", 403, "scope_missing")]),
}


def _prepare(parties, ids, name):
    if name == "resolve":
        ids["d"] = dispute_open(actor=parties.actor("holder"), allocation_id=ids["a"], reason="Nodes down").id
    return WRITES[name]


@pytest.mark.parametrize("name", list(WRITES))
def test_bad_input_is_a_400_naming_the_field_and_writes_nothing(parties, ids, name):
    spec = _prepare(parties, ids, name)
    before = writes()
    for n, (body, field) in enumerate(spec["bad"]):
        response = post(parties[spec["actor"]], spec["path"].format(**ids), body, key=f"bad-{n}")
        assert response.status_code == 400, (body, response.json())
        assert response.json()["code"] == "invalid" and field in response.json()["fields"], (body, response.json())
    assert writes() == before


@pytest.mark.parametrize("name", list(WRITES))
def test_a_caller_who_may_not_act_is_refused_with_a_code_and_nothing_is_written(parties, ids, name):
    spec = _prepare(parties, ids, name)
    before = writes()
    for client, status, code in spec["refused"]:
        response = post(parties[client], spec["path"].format(**ids), spec["good"](ids), key=f"as-{client}")
        assert (response.status_code, response.json()["code"]) == (status, code), client
    assert writes() == before
    assert post(parties[spec["actor"]], spec["path"].format(**ids), spec["good"](ids)).status_code == spec["status"]


@pytest.mark.parametrize("name", list(WRITES))
def test_a_repeated_idempotency_key_replays_the_answer_and_writes_once(parties, ids, name):
    spec = _prepare(parties, ids, name)
    client, path = parties[spec["actor"]], spec["path"].format(**ids)
    first = post(client, path, spec["good"](ids), key="once")
    assert first.status_code == spec["status"], first.json()
    after_first = writes()
    again = post(client, path, spec["good"](ids), key="once")
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert again["Idempotent-Replay"] == "true"
    reused = post(client, path, spec["other"](ids), key="once")
    assert reused.status_code == 409 and reused.json()["code"] == "idempotency_key_reused"
    assert writes() == after_first


# --------------------------------------------------------------------------- reading


def test_each_party_sees_the_allocation_with_its_roles_and_no_one_else_does(parties):
    allocation = parties.allocation
    holder = parties["holder"].get(BASE + "allocations/").json()["results"]
    assert [a["id"] for a in holder] == [allocation.id]
    assert holder[0]["roles"] == ["holder"] and holder[0]["instrument"] == parties.market.instrument.code
    assert (holder[0]["scu_h"], holder[0]["device_hours"], holder[0]["resold_scu_h"]) == (100, "100.0000", 0)
    assert holder[0]["delivery"] is None and holder[0]["settlement"] is None and holder[0]["open_dispute_id"] is None
    assert (holder[0]["metered_device_hours"], holder[0]["metered_scu_h"], holder[0]["price"]) == ("0.0000", 0, "20.00")
    assert holder[0]["window"]["end"] and "credentials" not in holder[0]
    provider = parties["provider"].get(BASE + "allocations/").json()["results"]
    assert [(a["id"], a["roles"]) for a in provider] == [(allocation.id, ["seller", "provider"])]
    for outsider in ("viewer", "regulator", "other_buyer"):
        assert allocation.id not in [a["id"] for a in parties[outsider].get(BASE + "allocations/").json()["results"]]
        response = parties[outsider].get(BASE + f"allocations/{allocation.id}/")
        assert (response.status_code, response.json()["code"]) == (404, "allocation_not_found")
    assert parties["anonymous"].get(BASE + "allocations/").status_code == 401
    assert parties["holder"].get(BASE + f"allocations/{2**63}/").status_code == 404


def test_the_allocation_shows_delivery_metering_and_the_open_dispute(parties, ids):
    post(parties["provider"], f"allocations/{ids['a']}/delivery/", {"endpoint": "ssh://gpu-1:22", "credentials": "k"})
    post(parties["holder"], f"allocations/{ids['a']}/delivery/answer/", {"working": True, "note": "fine"})
    report = post(parties["provider"], f"allocations/{ids['a']}/metering/", {"device_hours": "40.5", "note": "day 1"})
    assert report.json()["report"]["device_hours"] == "40.5000"
    assert report.json()["allocation"]["metered_scu_h"] == 41  # 40.5 SCU·h at factor 1, half up
    dispute = post(parties["holder"], f"allocations/{ids['a']}/disputes/",
                   {"reason": "Only 30 device-hours", "report_id": report.json()["report"]["id"]}).json()
    detail = parties["provider"].get(BASE + f"allocations/{ids['a']}/").json()
    assert detail["delivery"]["state"] == "confirmed" and detail["delivery"]["endpoint"] == "ssh://gpu-1:22"
    assert detail["delivery"]["holder_note"] == "fine" and "credentials" not in detail
    assert (detail["metered_device_hours"], detail["open_dispute_id"]) == ("40.5000", dispute["id"])
    again = post(parties["holder"], f"allocations/{ids['a']}/disputes/", {"reason": "Again"})
    assert (again.status_code, again.json()["code"]) == (409, "dispute_open")


def test_the_list_reads_a_page_in_the_same_number_of_queries_however_many_allocations(market, provider, regulator):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    parties = parties_make(market, provider, regulator)
    post(parties["provider"], f"allocations/{parties.allocation.id}/delivery/", {"endpoint": "ssh://a"})

    def count():
        with CaptureQueriesContext(connection) as queries:
            assert parties["provider"].get(BASE + "allocations/").status_code == 200
        return len(queries)

    one = count()
    for _ in range(3):
        market.trade(parties.members["provider"], parties.members["holder"], 5, "20.00")
    body = parties["provider"].get(BASE + "allocations/").json()["results"]
    assert len(body) == 4 and [a["id"] for a in body] == sorted((a["id"] for a in body), reverse=True)
    assert count() == one


# --------------------------------------------------------------------------- business rules


def test_metering_beyond_the_allocation_is_refused_and_nothing_is_written(parties, ids):
    assert post(parties["provider"], f"allocations/{ids['a']}/metering/", {"device_hours": "99.5"}).status_code == 201
    before = writes()
    response = post(parties["provider"], f"allocations/{ids['a']}/metering/", {"device_hours": "1"})
    assert (response.status_code, response.json()["code"]) == (422, "beyond_allocation")
    assert writes() == before


def test_metering_outside_the_window_is_refused(market, provider, regulator):
    parties = parties_make(market, provider, regulator)  # the window is two days ahead
    path = f"allocations/{parties.allocation.id}/metering/"
    early = post(parties["provider"], path, {"device_hours": "1"})
    assert (early.status_code, early.json()["code"]) == (409, "outside_window")
    market.end_window(hours_ago=25)  # and the dispute window (24 h) has passed too
    late = post(parties["provider"], path, {"device_hours": "1"})
    assert (late.status_code, late.json()["code"]) == (409, "outside_window")
    started = post(parties["provider"], f"allocations/{parties.allocation.id}/delivery/", {"endpoint": "ssh://a"})
    assert (started.status_code, started.json()["code"]) == (409, "outside_window")
    assert MeterReport.objects.count() == 0 and Delivery.objects.count() == 0


def test_access_cannot_be_confirmed_before_delivery_started_but_can_be_reported_missing(parties, ids):
    early = post(parties["holder"], f"allocations/{ids['a']}/delivery/answer/", {"working": True})
    assert (early.status_code, early.json()["code"]) == (409, "delivery_not_started")
    missing = post(parties["holder"], f"allocations/{ids['a']}/delivery/answer/", {"working": False})
    assert missing.status_code == 200 and missing.json()["delivery"]["state"] == "missing"


def test_a_csv_reports_its_good_rows_and_refuses_each_bad_row_with_its_reason(parties, ids):
    a, o = ids["a"], ids["o"]
    text = csv_of(f"{a},10,first", "abc,5,", f"{a},-2,", f"{a},1.5x,", f"{o},5,", "999999999,5,", f"{a},500,",
                  f"{a}", f"{a},20,second")
    response = post(parties["provider"], "metering/csv/", {"csv": text, "first_row": 101})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["rows"], body["reported"], body["refused"]) == (9, 2, 7)
    outcome = [(r["row"], r["ok"], r.get("code")) for r in body["results"]]
    assert outcome == [(101, True, None), (102, False, "invalid"), (103, False, "invalid"), (104, False, "invalid"),
                       (105, False, "allocation_not_found"), (106, False, "allocation_not_found"),
                       (107, False, "beyond_allocation"), (108, False, "invalid"), (109, True, None)]
    assert all(r["detail"] for r in body["results"] if not r["ok"])
    assert sorted(MeterReport.objects.values_list("device_hours", "note", "source")) == [
        (10, "first", "csv"), (20, "second", "csv")]
    # The holder's rows are its own to refuse: it sees the allocation but does not deliver it.
    as_holder = post(parties["holder"], "metering/csv/", {"csv": csv_of(f"{a},1,")}).json()
    assert [r["code"] for r in as_holder["results"]] == ["not_the_provider"]


def test_a_csv_file_upload_is_read_like_the_text_and_a_file_over_1_mb_is_refused(parties, ids):
    from django.core.files.uploadedfile import SimpleUploadedFile

    def upload(content: bytes, name="metering.csv", key=None):
        headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
        return parties["provider"].post(BASE + "metering/csv/", {"file": SimpleUploadedFile(name, content), "first_row": 3},
                                        format="multipart", **headers)

    good = upload(("\ufeff" + csv_of(f"{ids['a']},7,from a file", "x,1,")).encode(), key="file-1")
    assert good.status_code == 200 and [(r["row"], r["ok"]) for r in good.json()["results"]] == [(3, True), (4, False)]
    # The same key with another file of the same name is another request.
    other = upload(csv_of(f"{ids['a']},8,").encode(), key="file-1")
    assert (other.status_code, other.json()["code"]) == (409, "idempotency_key_reused")
    before = writes()
    big = upload(b"allocation_id,device_hours\n" + f"{ids['a']},1.5\n".encode() * 200_000)  # 1.4 MB
    assert (big.status_code, big.json()["code"]) == (413, "file_too_large")
    big_text = post(parties["provider"], "metering/csv/", {"csv": "allocation_id,device_hours\n" + "1,1\n" * 300_000})
    assert (big_text.status_code, big_text.json()["code"]) == (413, "file_too_large")
    latin = upload("allocation_id,device_hours,note\n1,1,Zhōngwèi\n".encode("latin-1", "replace") + b"\xff\n")
    assert (latin.status_code, latin.json()["fields"]) == (400, {"file": "Not UTF-8 text."})
    nul = upload(csv_of(f"{ids['a']},1,a\x00b").encode())  # PostgreSQL cannot store it: that row is refused
    assert nul.status_code == 200 and [(r["ok"], r["code"]) for r in nul.json()["results"]] == [(False, "invalid")]
    assert writes() == before and MeterReport.objects.count() == 1


def test_a_regulator_reads_every_dispute_and_each_party_its_own(parties, ids):
    mine = post(parties["holder"], f"allocations/{ids['a']}/disputes/", {"reason": "Down"}).json()
    theirs = dispute_open(actor=parties.actor("other_buyer"), allocation_id=ids["o"], reason="Also down")
    regulator = parties["regulator_read"].get(BASE + "disputes/").json()["results"]
    assert [d["id"] for d in regulator] == [theirs.id, mine["id"]]
    assert [d["id"] for d in parties["provider"].get(BASE + "disputes/").json()["results"]] == [mine["id"]]
    assert [d["id"] for d in parties["other_buyer"].get(BASE + "disputes/").json()["results"]] == [theirs.id]
    assert parties["viewer"].get(BASE + "disputes/").json()["results"] == []
    resolved = post(parties["regulator"], f"disputes/{mine['id']}/resolve/",
                    {"outcome": "adjust", "note": "Half", "delivered_device_hours": "50"})
    assert resolved.json()["state"] == "adjusted" and resolved.json()["delivered_device_hours"] == "50.0000"
    twice = post(parties["regulator"], f"disputes/{mine['id']}/resolve/", {"outcome": "uphold", "note": "No"})
    assert (twice.status_code, twice.json()["code"]) == (409, "dispute_resolved")
    unknown = post(parties["regulator"], "disputes/999999/resolve/", {"outcome": "uphold", "note": "n"})
    assert (unknown.status_code, unknown.json()["code"]) == (404, "dispute_not_found")
    open_only = parties["regulator"].get(BASE + "disputes/?state=open").json()["results"]
    assert [d["id"] for d in open_only] == [theirs.id]
    bad = parties["regulator"].get(BASE + "disputes/?state=closed")
    assert (bad.status_code, list(bad.json()["fields"])) == (400, ["state"])
    assert Dispute.objects.get(pk=mine["id"]).resolved_by == parties.members["regulator"].user


def test_a_settled_allocation_shows_its_settlement_and_refuses_changes(parties, ids):
    post(parties["provider"], f"allocations/{ids['a']}/metering/", {"device_hours": "98"})
    parties.market.end_window()
    assert parties.market.settle() == 2
    holder = parties["holder"].get(BASE + f"allocations/{ids['a']}/").json()["settlement"]
    assert (holder["delivered_scu_h"], holder["refunded_scu_h"], holder["paid"], holder["refund"]) == (
        98, 2, "1960.00", "40.00")
    assert (holder["sla_credit_bp"], holder["sla_credit"], holder["payout"]) == (2500, "500.00", None)
    seller = parties["provider"].get(BASE + f"allocations/{ids['a']}/").json()["settlement"]
    assert seller["payout"] is not None
    late = post(parties["provider"], f"allocations/{ids['a']}/metering/", {"device_hours": "1"})
    assert (late.status_code, late.json()["code"]) == (409, "allocation_settled")
    held = parties["holder"].get(BASE + "settlements/").json()["results"]
    assert [(s["allocation_id"], s["roles"], s["fee"], s["payout"], s["payouts"]) for s in held] == [
        (ids["a"], ["holder"], None, None, [])]
    sold = parties["provider"].get(BASE + "settlements/").json()["results"]
    assert [(s["allocation_id"], s["roles"]) for s in sold] == [(ids["a"], ["seller", "owner"])]
    assert sold[0]["payouts"] == [{"share_bp": 10000, "amount": sold[0]["payout"]}]
    assert parties["viewer"].get(BASE + "settlements/").json()["results"] == []


def test_the_sla_schedule_is_public(parties):
    body = parties["anonymous"].get(BASE + "sla-schedule/").json()
    assert [(s["below_percent"], s["credit_percent"]) for s in body["steps"]] == [
        ("99.90", "10.00"), ("99.00", "25.00"), ("95.00", "100.00")]
