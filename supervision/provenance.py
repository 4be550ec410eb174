"""Provenance verification for the console: the whole chain, or one asset's events, with the
first broken link and what is wrong with it (marketplace.selectors recomputes the hashes)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice

from django.utils.translation import gettext_lazy

from marketplace.models import ComputeAsset, ProvenanceEvent
from marketplace.selectors import asset_provenance_events, provenance_check, provenance_verify

PROBLEMS = {
    "hash_mismatch": gettext_lazy("Its content does not match its hash: it was changed after it was recorded."),
    "prev_hash_mismatch": gettext_lazy("It does not link to the event before it: the previous hash it records is "
                                       "not that event's hash, so one of the two was rewritten."),
    "sequence_gap": gettext_lazy("The sequence skips here: the event before it is missing."),
}


@dataclass(frozen=True)
class BrokenLink:
    seq: int
    event_id: int
    reason: str
    kind: str
    asset_id: int | None
    recorded_at: object

    @property
    def problem(self) -> str:
        return str(PROBLEMS[self.reason])


@dataclass(frozen=True)
class ProvenanceReport:
    scope: str  # "chain" or "asset"
    asset_id: int | None
    checked: int  # events checked, up to and including the first broken one
    head_seq: int | None  # the last event checked
    first_broken: BrokenLink | None

    @property
    def ok(self) -> bool:
        return self.first_broken is None


def _broken(event: ProvenanceEvent, reason: str) -> BrokenLink:
    return BrokenLink(event.seq, event.id, reason, event.kind, event.asset_id, event.recorded_at)


def provenance_chain_report() -> ProvenanceReport:
    """Every event of the exchange's chain recomputed from the first."""
    report = provenance_verify()
    broken = None
    if report.first_broken is not None:
        event = ProvenanceEvent.objects.get(pk=report.first_broken.event_id)
        broken = _broken(event, report.first_broken.reason)
    return ProvenanceReport("chain", None, report.checked, report.head_seq or None, broken)


def _chunks(events: Iterable, size: int):
    events = iter(events)
    while chunk := list(islice(events, size)):
        yield chunk


def provenance_asset_report(*, asset: ComputeAsset, chunk: int = 2000) -> ProvenanceReport:
    """The asset's events (and its device types' attestations) in order, each checked against
    its own hash and the event before it in the chain (whatever asset that one is about)."""
    checked, head = 0, None
    events = asset_provenance_events(asset=asset).iterator(chunk_size=chunk)
    for events_chunk in _chunks(events, chunk):
        for entry in provenance_check(events_chunk):
            checked, head = checked + 1, entry.event.seq
            if entry.problem:
                return ProvenanceReport("asset", asset.id, checked, head, _broken(entry.event, entry.problem))
    return ProvenanceReport("asset", asset.id, checked, head, None)
