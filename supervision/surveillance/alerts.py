"""Findings into alerts: a new alert, or more evidence on the open alert of the same rule and
key whose last event is within the rule's ``cooldown_s``. Written in the pass's transaction;
the console hears of them after it commits."""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.db import connection
from django.utils import timezone

from supervision.events import console_publish
from supervision.surveillance.context import MAX_IDS, Finding, iso


def evidence_of(finding: Finding) -> dict:
    return {"orders": finding.orders[:MAX_IDS], "trades": finding.trades[:MAX_IDS], "figures": finding.figures,
            "findings": 1, "first_at": iso(finding.at), "last_at": iso(finding.at)}


def evidence_merge(evidence: dict, finding: Finding) -> dict:
    def joined(old: list, new: list) -> list:
        seen = set(old)
        return (old + [x for x in new if x not in seen and not seen.add(x)])[:MAX_IDS]

    figures = dict(finding.figures)
    for name in finding.sums:
        figures[name] = evidence.get("figures", {}).get(name, 0) + finding.figures.get(name, 0)
    return {**evidence, "orders": joined(evidence.get("orders", []), finding.orders),
            "trades": joined(evidence.get("trades", []), finding.trades), "figures": figures,
            "findings": evidence.get("findings", 1) + 1, "last_at": iso(finding.at)}


@dataclass(eq=False)
class Draft:
    rule: str
    key: str
    severity: str
    evidence: dict
    organisation_ids: list[int]
    instrument_id: int | None
    seq: int | None
    last_at: float
    alert_id: int | None = None  # set: an open alert to add to
    findings: list[Finding] | None = None
    created: bool = False


def event_of(alert_id: int, draft: Draft, *, created: bool) -> dict:
    return {"type": "alert" if created else "alert.updated", "id": alert_id, "rule": draft.rule, "seq": draft.seq,
            "severity": draft.severity, "state": "open", "instrument_id": draft.instrument_id,
            "organisation_ids": draft.organisation_ids, "figures": draft.evidence["figures"],
            "findings": draft.evidence["findings"], "at": draft.evidence["last_at"]}


class AlertWriter:
    def __init__(self):
        self.rule_ids: dict[str, int] = {}
        self.recent: dict[tuple[str, str], Draft] = {}  # open alerts that may still grow

    def load(self, *, reach_s: float) -> None:
        from supervision.models import Alert, Rule

        self.rule_ids = dict(Rule.objects.values_list("code", "id"))
        self.recent.clear()
        since = timezone.now() - timezone.timedelta(seconds=reach_s)
        for alert in (Alert.objects.filter(state=Alert.State.OPEN, updated_at__gte=since).select_related("rule")
                      .order_by("id")):
            last = alert.evidence.get("last_at")
            last_at = timezone.datetime.fromisoformat(last).timestamp() if last else alert.updated_at.timestamp()
            self.recent[(alert.rule.code, alert.key)] = Draft(
                alert.rule.code, alert.key, alert.severity, alert.evidence, list(alert.organisation_ids),
                alert.instrument_id, alert.seq, last_at, alert_id=alert.id)

    def write(self, findings: list[Finding], params: dict[str, dict | None]) -> int:
        """Write the pass's findings (in the caller's transaction); return how many alerts changed."""
        from supervision.models import Alert

        if not findings:
            return 0
        touched: dict[tuple[str, str], Draft] = {}
        for finding in findings:
            k = (finding.rule, finding.key)
            draft = touched.get(k) or self.recent.get(k)
            cooldown = (params.get(finding.rule) or {}).get("cooldown_s", 0)
            if draft is not None and finding.at - draft.last_at <= cooldown:
                draft.evidence = evidence_merge(draft.evidence, finding)
                draft.organisation_ids = sorted(set(draft.organisation_ids) | set(finding.organisation_ids))[:100]
                draft.last_at = finding.at
                draft.findings = (draft.findings or []) + [finding]
            else:
                draft = Draft(finding.rule, finding.key, finding.severity, evidence_of(finding),
                              sorted(set(finding.organisation_ids))[:100], finding.instrument_id, finding.seq,
                              finding.at, findings=[finding])
            touched[k] = draft
        refused = [d for d in touched.values() if d.alert_id is not None and not self._update(d)]
        for draft in refused:  # taken under review or closed meanwhile: these findings start a new alert
            first, *rest = draft.findings
            fresh = Draft(first.rule, first.key, first.severity, evidence_of(first), sorted(set(first.organisation_ids)),
                          first.instrument_id, first.seq, first.at, findings=draft.findings)
            for finding in rest:
                fresh.evidence = evidence_merge(fresh.evidence, finding)
                fresh.last_at = finding.at
            touched[(draft.rule, draft.key)] = fresh
        new = [d for d in touched.values() if d.alert_id is None]
        rows = Alert.objects.bulk_create([
            Alert(rule_id=self.rule_ids[d.rule], key=d.key, severity=d.severity, evidence=d.evidence,
                  organisation_ids=d.organisation_ids, instrument_id=d.instrument_id, seq=d.seq) for d in new])
        for draft, row in zip(new, rows):
            draft.alert_id, draft.created = row.id, True
        events = []
        for draft in touched.values():
            created, draft.created, draft.findings = draft.created, False, None
            self.recent[(draft.rule, draft.key)] = draft
            events.append(event_of(draft.alert_id, draft, created=created))
        for event in events:
            console_publish(event)
        return len(events)

    @staticmethod
    def _update(draft: Draft) -> bool:
        from psycopg.types.json import Jsonb

        with connection.cursor() as c:
            c.execute("UPDATE supervision_alert SET evidence = %s, organisation_ids = %s::bigint[], updated_at = now() "
                      "WHERE id = %s AND state = 'open'", [Jsonb(draft.evidence), draft.organisation_ids, draft.alert_id])
            return c.rowcount == 1

    def forget_older(self, *, reach_s: float) -> None:
        """Drop remembered alerts no further finding could join (memory stays bounded)."""
        limit = time.time() - reach_s
        for k in [k for k, d in self.recent.items() if d.last_at < limit]:
            del self.recent[k]
