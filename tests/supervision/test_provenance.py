"""Provenance in the console: the whole chain or one asset's events verified, the first
broken link shown with what is wrong; a tampered row found wherever it is."""

import json

import pytest
from django.test import Client

from marketplace.models import ProvenanceEvent
from marketplace.selectors import event_hash
from marketplace.services import asset_register, listing_create
from tests.conftest import token_client
from tests.factories import MembershipFactory
from tests.marketplace.test_provenance import _tamper

pytestmark = pytest.mark.django_db

CHAIN = "/api/v1/supervision/provenance/"


@pytest.fixture
def other_asset(device_type, catalogue, tomorrow):
    """Another provider's asset, listed after the ``listing`` fixture's: later in the chain."""
    from datetime import timedelta

    from marketplace.models import Cluster

    provider = MembershipFactory(organisation__kind="provider", role="provider_admin")
    asset = asset_register(provider=provider.organisation, name="Gui'an Hall B",
                           cluster=Cluster.objects.get(code="NX-ZW"), pue="1.20", green_share="70.00",
                           inventory=[(device_type, 20)])
    listing_create(asset=asset, device_type=device_type, compute_class=catalogue["classes"]["AI80"], device_count=10,
                   window_start=tomorrow, window_end=tomorrow + timedelta(days=1), reserve_price="15.00")
    return asset


@pytest.fixture
def api(regulator):
    return token_client(regulator, scopes=("read",))


@pytest.fixture
def console(regulator):
    client = Client()
    client.force_login(regulator.user)
    return client


def test_an_intact_chain_and_asset(listing, asset, api, console):
    answer = api.get(CHAIN).json()
    assert answer["ok"] and answer["checked"] == ProvenanceEvent.objects.count() and answer["first_broken"] is None
    mine = api.get(f"{CHAIN}assets/{asset.id}/").json()
    assert mine["ok"] and mine["scope"] == "asset" and mine["asset"] == asset.id and mine["checked"] >= 3
    page = console.get("/supervision/provenance/", {"chain": 1})
    assert page.status_code == 200 and b"Intact" in page.content


def test_an_edited_event_is_the_first_broken_link_of_the_chain_and_of_its_asset(listing, asset, other_asset, api,
                                                                              console):
    target = ProvenanceEvent.objects.get(kind="listing_created", asset=asset)
    _tamper("UPDATE marketplace_provenanceevent SET payload = jsonb_set(payload, '{device_count}', '400') "
            "WHERE id = %s", [target.id])
    chain = api.get(CHAIN).json()
    broken = chain["first_broken"]
    assert not chain["ok"] and chain["checked"] == target.seq
    assert (broken["seq"], broken["event_id"], broken["reason"], broken["kind"], broken["asset"]) == (
        target.seq, target.id, "hash_mismatch", "listing_created", asset.id)
    assert "changed after it was recorded" in broken["problem"]
    assert api.get(f"{CHAIN}assets/{asset.id}/").json()["first_broken"]["seq"] == target.seq
    assert api.get(f"{CHAIN}assets/{other_asset.id}/").json()["ok"]  # its own events are intact
    page = console.get("/supervision/provenance/", {"asset": asset.id})
    assert page.status_code == 200 and f"Broken at event #{target.seq}".encode() in page.content
    assert b"hash_mismatch" in page.content


def test_a_rewritten_event_breaks_the_link_after_it(listing, asset, other_asset, api):
    target = ProvenanceEvent.objects.filter(asset=asset).order_by("-seq").first()
    target.payload["forged"] = True
    _tamper("UPDATE marketplace_provenanceevent SET payload = %s::jsonb, hash = %s WHERE id = %s",
            [json.dumps(target.payload), event_hash(target), target.id])
    following = ProvenanceEvent.objects.get(seq=target.seq + 1)
    broken = api.get(CHAIN).json()["first_broken"]
    assert (broken["seq"], broken["reason"]) == (following.seq, "prev_hash_mismatch")
    assert "does not link to the event before it" in broken["problem"]
    assert api.get(f"{CHAIN}assets/{asset.id}/").json()["ok"]  # its events match their hashes
    other = api.get(f"{CHAIN}assets/{following.asset_id}/").json()["first_broken"] if following.asset_id else None
    assert other is None or other["seq"] == following.seq


def test_a_deleted_event_is_a_gap(listing, asset, api, console):
    target = ProvenanceEvent.objects.order_by("seq")[1]  # not the last: the one after it finds it gone
    _tamper("DELETE FROM marketplace_provenanceevent WHERE id = %s", [target.id])
    broken = api.get(CHAIN).json()["first_broken"]
    assert (broken["seq"], broken["reason"]) == (target.seq + 1, "sequence_gap")
    assert b"the event before it is missing" in console.get("/supervision/provenance/", {"chain": 1}).content


def test_an_unknown_asset(api, console):
    assert api.get(f"{CHAIN}assets/999999/").status_code == 404
    assert console.get("/supervision/provenance/", {"asset": "999999"}).status_code == 404
    assert console.get("/supervision/provenance/", {"asset": "not-a-number"}).status_code == 404
    assert console.get("/supervision/provenance/", {"asset": "\u00b2"}).status_code == 404  # isdigit(), not int()
    assert console.get("/supervision/provenance/", {"asset": "9" * 5000}).status_code == 404
