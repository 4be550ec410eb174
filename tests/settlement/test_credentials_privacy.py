"""Delivery credentials reach the holder's members and no one else: not another party's API
answer, not an event on any private stream, not a log line, not the admin, not the database
in plaintext. One whole flow (delivery, access, metering, a dispute, its resolution,
settlement) runs with every party reading everything it can after each step."""

import json
import logging

import pytest
from django.db import connection
from django.test import Client

from exchange.events import organisation_group
from settlement.models import Delivery
from tests.channel_layer import listen, received
from tests.factories import UserFactory
from tests.settlement.parties import BASE, parties_make, post, window_open

pytestmark = pytest.mark.django_db

SECRET = "user alice / key sk-7f3a9c-NEVER-SHOWN"
READERS = ("provider", "provider_read", "holder", "holder_read", "other_provider", "other_buyer", "viewer", "regulator")
HOLDERS = ("holder", "holder_read")


@pytest.fixture
def parties(market, provider, regulator):
    made = parties_make(market, provider, regulator)
    window_open(market)
    return made


PAGES = ["/settlement/deliveries/", "/settlement/capacity/", "/settlement/sla/", "/settlement/statements/",
         "/settlement/statements.csv"]


def text_of(response) -> str:
    assert response.status_code in (200, 403), response.status_code  # the deliveries desk is for providers
    if response.streaming:  # the statement's CSV
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


def signed_in(parties) -> dict[str, Client]:
    clients = {}
    for name in ("provider", "holder", "other_provider", "other_buyer", "viewer", "regulator"):
        clients[name] = Client()
        clients[name].force_login(parties.members[name].user)
    return clients


def read_everything(parties, ids, browsers) -> dict[str, list[str]]:
    """Every settlement read each party can make, over the API and as pages, as the text it
    was answered: the API's detail is the second, the capacity page the ninth."""
    seen: dict[str, list[str]] = {}
    paths = ["allocations/", f"allocations/{ids['a']}/", "disputes/", "disputes/?state=open", "settlements/",
             "sla-schedule/"]
    for name in READERS:
        seen[name] = [parties[name].get(BASE + path).content.decode() for path in paths]
        seen[name].append(parties[name].get("/api/v1/allocations/").content.decode())
        if name in browsers:
            seen[name] += [text_of(browsers[name].get(page)) for page in PAGES]
    return seen


def test_credentials_reach_only_the_holders_members(parties, caplog, django_capture_on_commit_callbacks):
    ids = {"a": parties.allocation.id}
    holder_org, provider_org = parties.members["holder"].organisation_id, parties.members["provider"].organisation_id
    channel = listen([organisation_group(org_id) for org_id in
                      (holder_org, provider_org, parties.members["regulator"].organisation_id)])
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django.db.backends")
    connection.force_debug_cursor = True  # every statement and its parameters in the log
    answers: list[tuple[str, str]] = []
    browsers = signed_in(parties)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            started = post(parties["provider"], f"allocations/{ids['a']}/delivery/",
                           {"endpoint": "ssh://gpu-9.example:22", "credentials": SECRET}, key="start")
            answers.append(("provider", started.content.decode()))
            replay = post(parties["provider"], f"allocations/{ids['a']}/delivery/",
                          {"endpoint": "ssh://gpu-9.example:22", "credentials": SECRET}, key="start")
            answers.append(("provider", replay.content.decode()))
            too_long = post(parties["provider"], f"allocations/{ids['a']}/delivery/",
                            {"endpoint": "ssh://gpu-9.example:22", "credentials": SECRET * 200})
            assert too_long.status_code == 400
            answers.append(("provider", too_long.content.decode()))
            steps = [
                ("holder", f"allocations/{ids['a']}/delivery/answer/", {"working": True, "note": "works"}),
                ("provider", f"allocations/{ids['a']}/metering/", {"device_hours": "90"}),
                ("holder", f"allocations/{ids['a']}/disputes/", {"reason": "Only 80 device-hours"}),
            ]
            reads = [read_everything(parties, ids, browsers)]
            for actor, path, body in steps:
                response = post(parties[actor], path, body)
                assert response.status_code in (200, 201), response.json()
                answers.append((actor, response.content.decode()))
                reads.append(read_everything(parties, ids, browsers))
            dispute_id = json.loads(answers[-1][1])["id"]
            resolved = post(parties["regulator"], f"disputes/{dispute_id}/resolve/",
                            {"outcome": "adjust", "note": "80 it is", "delivered_device_hours": "80"})
            answers.append(("regulator", resolved.content.decode()))
            parties.market.end_window()
            assert parties.market.settle() == 2
            reads.append(read_everything(parties, ids, browsers))
    finally:
        connection.force_debug_cursor = False

    # The API and the pages: the holder's members read it in the allocation's detail and on their
    # capacity page, and nowhere else.
    for seen in reads:
        for name, texts in seen.items():
            for n, text in enumerate(texts):
                if name not in HOLDERS or n not in (1, 8):
                    assert SECRET not in text, (name, n, text[:300])
    after_start = reads[1]
    assert all(SECRET in after_start[name][1] for name in HOLDERS) and SECRET in after_start["holder"][8]
    holder_detail = parties["holder"].get(BASE + f"allocations/{ids['a']}/").json()
    assert holder_detail["credentials"] == SECRET
    for name in READERS:
        if name not in HOLDERS:
            detail = parties[name].get(BASE + f"allocations/{ids['a']}/")
            assert detail.status_code == 404 or "credentials" not in detail.json(), name
    assert all(SECRET not in text for _, text in answers)

    # The private streams: the events were published, and none carries them.
    events = received(channel)
    types = {event["type"] for event in events}
    assert {"delivery.started", "delivery.confirmed", "metering.reported", "dispute.opened", "dispute.resolved"} <= types
    assert SECRET not in json.dumps(events)

    # The logs, statements included.
    assert "settlement_delivery" in caplog.text and "delivery/" in caplog.text
    assert SECRET not in caplog.text

    # The database: encrypted in the row, and nowhere in plaintext (the idempotency record keeps a hash).
    with connection.cursor() as cursor:
        for table in ("settlement_delivery", "exchange_idempotencyrecord", "marketplace_provenanceevent",
                      "settlement_dispute", "settlement_meterreport"):
            cursor.execute(f"SELECT coalesce(string_agg(t::text, ' '), '') FROM {table} t")
            assert SECRET not in cursor.fetchone()[0], table
    delivery = Delivery.objects.get()
    assert delivery.credentials_encrypted and SECRET not in delivery.credentials_encrypted
    assert SECRET not in repr(delivery) and SECRET not in str(delivery)


def test_the_delivery_admin_shows_neither_the_credentials_nor_their_ciphertext(parties):
    post(parties["provider"], f"allocations/{parties.allocation.id}/delivery/",
         {"endpoint": "ssh://gpu-9.example:22", "credentials": SECRET})
    ciphertext = Delivery.objects.get().credentials_encrypted
    admin = Client()
    admin.force_login(UserFactory(is_staff=True, is_superuser=True))
    pages = ["/admin/settlement/delivery/", f"/admin/settlement/delivery/{parties.allocation.id}/change/",
             f"/admin/settlement/delivery/?q={parties.allocation.id}"]
    for page in pages:
        response = admin.get(page)
        assert response.status_code == 200, page
        text = response.content.decode()
        assert "ssh://gpu-9.example:22" in text, page  # the page does show the delivery
        assert SECRET not in text and ciphertext not in text and "credentials_encrypted" not in text, page
    # Saving the change form cannot write them either (the admin is read-only for deliveries).
    response = admin.post(pages[1], {"state": "started", "endpoint": "x", "credentials_encrypted": "forged"})
    assert response.status_code == 403 and Delivery.objects.get().credentials_encrypted == ciphertext
