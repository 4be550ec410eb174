"""Rules on who holds and who sells the capacity: hoarding and concentration. They read the
capacity positions as they are now (the engine keeps them), at most once per interval."""

from __future__ import annotations

import time

from django.db import connection

from exchange.db import pg_array
from supervision.surveillance.context import Context, Finding
from supervision.surveillance.rule_base import Rule

HOLDINGS_SQL = """
    SELECT p.instrument_id, o.beneficial_owner_id, array_agg(p.organisation_id ORDER BY p.organisation_id),
           SUM(p.bought - p.sold)::bigint
    FROM exchange_capacityposition p JOIN accounts_organisation o ON o.id = p.organisation_id
    WHERE p.instrument_id = ANY(%s::bigint[]) AND p.bought > 0
    GROUP BY 1, 2
"""
# Sold capacity of instruments not yet delivered, per class, hub and seller's owner.
SOLD_SQL = """
    SELECT i.compute_class_id, c.code, i.hub_id, h.code, o.beneficial_owner_id,
           array_agg(DISTINCT p.organisation_id), SUM(p.sold)::bigint
    FROM exchange_capacityposition p
    JOIN exchange_instrument i ON i.id = p.instrument_id
    JOIN marketplace_computeclass c ON c.id = i.compute_class_id
    JOIN marketplace_hub h ON h.id = i.hub_id
    JOIN accounts_organisation o ON o.id = p.organisation_id
    WHERE p.sold > 0 AND i.delivery_end > now()
    GROUP BY 1, 2, 3, 4, 5
"""


class Hoarding(Rule):
    code = "hoarding"

    def __init__(self):
        self.checked: dict[int, float] = {}  # instrument → when last checked (monotonic)
        self.pending: set[int] = set()

    def forget(self, instrument_id: int) -> None:
        self.checked.pop(instrument_id, None)
        self.pending.discard(instrument_id)

    def on_pass_end(self, ctx: Context, p: dict, now: float) -> None:
        self.pending |= ctx.traded
        clock = time.monotonic()
        due = [i for i in self.pending if clock - self.checked.get(i, float("-inf")) >= p["interval_s"]]
        if not due:
            return
        for inst in due:
            self.checked[inst] = clock
            self.pending.discard(inst)
        with connection.cursor() as c:
            c.execute(HOLDINGS_SQL, [pg_array(due)])
            rows = c.fetchall()
        by_instrument: dict[int, list] = {}
        for inst, owner, orgs, held in rows:
            if held > 0:
                by_instrument.setdefault(inst, []).append((owner, orgs, held))
        for inst, holders in by_instrument.items():
            total = sum(held for _, _, held in holders)
            if total < p["min_sold_scu_h"] or len(holders) < p["min_holders"]:
                continue
            for owner, orgs, held in holders:
                share = held * 100 / total
                if share <= p["max_share_pct"]:
                    continue
                bought = [t for t in ctx.owner_trades.get((owner, inst), ()) if t.side == "buy"][-50:]
                ctx.found(Finding(
                    self.code, f"{owner}:{inst}", "medium", now,
                    figures={"held_scu_h": held, "held_by_buyers_scu_h": total, "share_pct": round(share, 1),
                             "max_share_pct": p["max_share_pct"], "holders": len(holders)},
                    organisation_ids=list(orgs), instrument_id=inst,
                    orders=[t.trade.buy_order_id for t in bought], trades=[t.trade.id for t in bought]))


class Concentration(Rule):
    code = "concentration"

    def __init__(self):
        self.computed = float("-inf")
        self.last: dict[str, int] = {}  # key → index last reported

    def on_pass_end(self, ctx: Context, p: dict, now: float) -> None:
        clock = time.monotonic()
        if clock - self.computed < p["interval_s"]:
            return
        self.computed = clock
        with connection.cursor() as c:
            c.execute(SOLD_SQL)
            rows = c.fetchall()
        markets: dict[tuple, list] = {}
        for class_id, class_code, hub_id, hub_code, owner, orgs, sold in rows:
            markets.setdefault((class_id, class_code, hub_id, hub_code), []).append((owner, orgs, sold))
        for (class_id, class_code, hub_id, hub_code), sellers in markets.items():
            total = sum(sold for _, _, sold in sellers)
            if total < p["min_sold_scu_h"]:
                continue
            hhi = round(sum((sold * 100 / total) ** 2 for _, _, sold in sellers))
            level = "high" if hhi > p["high_hhi"] else "moderate" if hhi > p["moderate_hhi"] else None
            if level is None:
                continue
            key = f"{class_id}:{hub_id}:{level}"
            if abs(self.last.get(key, -10**6) - hhi) < 100:
                continue  # reported at about this level already
            self.last[key] = hhi
            top = sorted(sellers, key=lambda s: -s[2])[:10]
            ctx.found(Finding(
                self.code, key, "high" if level == "high" else "medium", now,
                figures={"hhi": hhi, "level": level, "threshold": p[f"{level}_hhi"], "compute_class": class_code,
                         "hub": hub_code, "sold_scu_h": total, "sellers": len(sellers),
                         "top": [{"beneficial_owner_id": owner, "organisation_ids": sorted(orgs), "sold_scu_h": sold,
                                  "share_pct": round(sold * 100 / total, 1)} for owner, orgs, sold in top]},
                organisation_ids=sorted({o for _, orgs, _ in top for o in orgs})))
