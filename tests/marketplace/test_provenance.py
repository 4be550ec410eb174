import json
import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, connections, transaction

from marketplace.models import ZERO_HASH, ProvenanceEvent
from marketplace.selectors import asset_provenance_events, event_hash, provenance_check, provenance_verify
from marketplace.services import provenance_append

pytestmark = pytest.mark.django_db


def _tamper(sql: str, params: list) -> None:
    """What someone with database access could do: the trigger off, a row changed, the trigger on."""
    with connection.cursor() as cursor:
        # ALTER TABLE waits for no deferred foreign-key checks of this transaction.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("ALTER TABLE marketplace_provenanceevent DISABLE TRIGGER provenance_append_only")
        cursor.execute(sql, params)
        cursor.execute("ALTER TABLE marketplace_provenanceevent ENABLE TRIGGER provenance_append_only")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def test_every_event_links_to_the_previous_one(listing):
    events = list(ProvenanceEvent.objects.order_by("seq"))
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[0].prev_hash == ZERO_HASH
    for previous, event in zip(events, events[1:]):
        assert event.prev_hash == previous.hash
    assert all(event_hash(e) == e.hash for e in events)
    report = provenance_verify()
    assert report.ok and report.checked == len(events) and report.head_hash == events[-1].hash


def test_an_edited_payload_is_found_at_its_event(listing):
    target = ProvenanceEvent.objects.get(kind="listing_created")
    _tamper("UPDATE marketplace_provenanceevent SET payload = jsonb_set(payload, '{device_count}', '400') WHERE id = %s",
            [target.id])
    report = provenance_verify()
    assert not report.ok
    assert report.first_broken.seq == target.seq and report.first_broken.reason == "hash_mismatch"
    assert report.checked == target.seq


def test_a_rewritten_event_with_a_recomputed_hash_breaks_the_next_link(listing):
    target = ProvenanceEvent.objects.get(kind="asset_registered")
    target.payload["pue"] = "1.01"
    forged = event_hash(target)
    _tamper("UPDATE marketplace_provenanceevent SET payload = %s::jsonb, hash = %s WHERE id = %s",
            [json.dumps(target.payload), forged, target.id])
    report = provenance_verify()
    assert report.first_broken.seq == target.seq + 1 and report.first_broken.reason == "prev_hash_mismatch"


def test_a_deleted_event_is_a_gap(listing):
    target = ProvenanceEvent.objects.get(kind="asset_registered")
    _tamper("DELETE FROM marketplace_provenanceevent WHERE id = %s", [target.id])
    assert provenance_verify().first_broken.reason == "sequence_gap"


def test_the_asset_timeline_flags_the_tampered_event(listing, asset):
    target = ProvenanceEvent.objects.get(kind="listing_created")
    _tamper("UPDATE marketplace_provenanceevent SET recorded_at = recorded_at + interval '1 second' WHERE id = %s", [target.id])
    entries = provenance_check(asset_provenance_events(asset=asset))
    kinds = [e.event.kind for e in entries]
    assert kinds[0] == "attestation_added" and "asset_registered" in kinds
    assert {e.event.kind: e.problem for e in entries}["listing_created"] == "hash_mismatch"
    assert [e.problem for e in entries if e.event.kind != "listing_created"] == [None] * (len(entries) - 1)


def test_the_database_refuses_updates_and_deletes_of_events(listing):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        ProvenanceEvent.objects.filter(kind="listing_created").update(payload={})
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        ProvenanceEvent.objects.all().delete()


def test_verify_provenance_command_reports_the_first_broken_link(listing, capsys):
    call_command("verify_provenance")
    assert "intact" in capsys.readouterr().out
    target = ProvenanceEvent.objects.get(kind="listing_created")
    _tamper("UPDATE marketplace_provenanceevent SET kind = 'listing_changed' WHERE id = %s", [target.id])
    with pytest.raises(CommandError, match=f"#{target.seq} .*hash_mismatch"):
        call_command("verify_provenance")


def test_unknown_kinds_are_refused():
    with pytest.raises(ValueError):
        provenance_append(asset=None, kind="made_up", payload={})


@pytest.mark.django_db(transaction=True)
def test_parallel_appends_never_fork_the_chain():
    barrier = threading.Barrier(4)
    failures = []

    def append(n):
        try:
            barrier.wait(timeout=10)
            for i in range(5):
                with transaction.atomic():
                    provenance_append(asset=None, kind="capacity_delivered", payload={"writer": n, "i": i})
        except Exception as exc:  # reported below: the assertion shows which writer failed
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=append, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    report = provenance_verify()
    assert report.ok and report.checked == 20
