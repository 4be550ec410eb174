"""Settlement runner benchmark: ended allocations → journals, payouts, events, in batches.

    .venv/bin/python bench/settlement.py [--allocations 100000] [--batch-size N (default: SETTLEMENT_BATCH_SIZE)]
                                         [--profile-allocations 10000]

Set-up (not timed): a throw-away database (see bench/lib/harness.py); 4 instruments, 32 funded
buyers, 24 providers each with one asset listed in every instrument; a third of the assets
owned by three organisations with uneven shares (50 / 33.33 / 16.67 %, and a later share set
that must not be used), a third by the provider on record, a third with no record. Then
``--allocations`` trades with their allocations and metering, written in bulk as the engine
and the providers would have left them (bench/lib/allocations.py): about 5 % metered short
(by 0.3 % to 60 %, so every step of the SLA credit schedule), 1 % with nothing metered, the
rest in full; the delivery windows ended just over the dispute window ago. ``check_ledger``'s
invariants must hold before the timed pass.

Timed: one ``SettlementRunner().settle_pass()`` (what ``run_settlement`` does every
SETTLEMENT_INTERVAL_SECONDS), batch by batch, each one transaction that writes the journals,
settlements, payouts, debts, provenance and event numbers, then publishes the private events
on the channel layer after its commit.

Figures:
  settlement.allocations_per_s   allocations settled per second of wall time.
Afterwards, before the figure: every allocation settled to what was metered (delivered,
refunded, paid at its price), payouts by the share set in force when delivery started, no
escrow left, and ``check_ledger``'s invariants (exchange/invariants.py); any problem ends the
benchmark with exit status 1 and the problems on stderr.
On stderr: the CPU split (this process vs PostgreSQL) and the top costs (cProfile) of a
second pass over ``--profile-allocations`` more allocations.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[1])

from bench.lib.harness import CpuMeter, Environment, describe_cpu, emit, log  # noqa: E402


def check_invariants(when: str) -> None:
    """``check_ledger``'s invariants; any problem stops the benchmark with exit status 1."""
    from exchange.invariants import invariants_check

    started = time.perf_counter()
    problems = invariants_check()
    if problems:
        log(f"FAILED: {len(problems)} invariant problem(s) {when}:\n" + "\n".join(f"- {p}" for p in problems[:20]))
        raise SystemExit(1)
    log(f"invariants hold {when} (check_ledger's checks, {time.perf_counter() - started:.1f} s)")


def check_outcome(expected) -> None:
    """Each allocation settled as its metering says, credited by the schedule, its owners paid by the right share set."""
    from django.db import connection

    problems = []
    with connection.cursor() as cursor:
        cursor.execute("SELECT allocation_id, scu_h, delivered_scu_h, refunded_scu_h, price_fen, paid_fen, refund_fen, "
                       "sla_credit_bp, sla_credit_fen, payout_fen FROM settlement_settlement "
                       "WHERE allocation_id = ANY(%s)", [list(expected.allocations)])
        settled = {row[0]: row[1:] for row in cursor.fetchall()}
        cursor.execute("SELECT below_bp, credit_bp FROM settlement_slacreditstep")
        steps = cursor.fetchall()
        cursor.execute("SELECT p.settlement_id, p.organisation_id, p.share_bp FROM settlement_payout p "
                       "WHERE p.settlement_id = ANY(%s)", [list(expected.allocations)])
        shares: dict[int, set] = {}
        for allocation_id, org, bp in cursor.fetchall():
            shares.setdefault(allocation_id, set()).add((org, bp))
        cursor.execute("SELECT COALESCE(SUM(balance), 0) FROM exchange_ledgeraccount WHERE kind = 'escrow'")
        escrow = cursor.fetchone()[0]
    if escrow:
        problems.append(f"{escrow} fen left in escrow")
    for allocation_id, (scu_h, delivered, price, asset) in expected.allocations.items():
        row = settled.get(allocation_id)
        if row is None:
            problems.append(f"allocation {allocation_id} was not settled")
            continue
        # The published schedule: the largest credit whose threshold the delivered share is below.
        credit_bp = max((credit for below, credit in steps if delivered * 10000 < below * scu_h), default=0)
        want = (scu_h, delivered, scu_h - delivered, price, delivered * price, (scu_h - delivered) * price, credit_bp,
                (2 * scu_h * price * credit_bp + 10000) // 20000)
        if row[:8] != want:
            problems.append(f"allocation {allocation_id}: settled {row[:8]}, metering and the schedule say {want}")
        if row[8] and shares.get(allocation_id) != set(expected.owners[asset]):
            problems.append(f"allocation {allocation_id}: paid {sorted(shares.get(allocation_id, ()))}, the share set "
                            f"in force was {expected.owners[asset]}")
        if len(problems) >= 20:
            break
    if problems:
        log(f"FAILED: {len(problems)} settlement problem(s):\n" + "\n".join(f"- {p}" for p in problems))
        raise SystemExit(1)
    log(f"every allocation settled as metered: {len(expected.allocations):,}, SLA credits by the schedule, payouts "
        "by the share set in force, escrow empty")


def counts() -> dict[str, int]:
    from django.db import connection

    out = {}
    with connection.cursor() as cursor:
        for name, sql in (("journals", "SELECT count(*) FROM exchange_journal WHERE kind <> 'trade' AND kind <> 'deposit'"),
                          ("payouts", "SELECT count(*) FROM settlement_payout"),
                          ("debts", "SELECT count(*) FROM settlement_debt"),
                          ("SLA credits", "SELECT count(*) FROM settlement_settlement WHERE sla_credit_fen > 0"),
                          ("events", "SELECT COALESCE(SUM(seq), 0) FROM exchange_eventsequence")):
            cursor.execute(sql)
            out[name] = cursor.fetchone()[0]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--allocations", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--profile-allocations", type=int, default=10_000)
    args = parser.parse_args()

    with Environment("settlement") as env:
        from django.conf import settings

        from bench.lib.allocations import allocations_create, owners_create, windows_end
        from bench.lib.market import market_create
        from settlement.runner import SettlementRunner

        market = market_create(instruments=4, buyers=32, providers=24)
        owners = owners_create(market)
        # Past the dispute window by a few minutes: due now, and not yet overdue for check_ledger.
        windows_end(market, ago=timedelta(seconds=settings.DISPUTE_WINDOW_SECONDS + 300))
        expected = allocations_create(market, args.allocations, seed=1, tag="s", owners=owners)
        check_invariants("before settlement")

        runner = SettlementRunner(batch_size=args.batch_size)
        # The whole server's CPU counts everything else it serves too (on a shared server); the
        # runner's own backends (its two connections: settlement.pipeline) are the part this
        # pass alone caused.
        meter = CpuMeter({"bench process (Python)": lambda: [os.getpid()], "PostgreSQL": env.postgres_pids,
                          "of which the runner's backends": env.database_backend_pids}).start()
        started = time.perf_counter()
        settled = runner.settle_pass()
        elapsed = time.perf_counter() - started
        usage = meter.stop()
        if settled != args.allocations:
            log(f"FAILED: the pass settled {settled:,} allocations, {args.allocations:,} were due")
            raise SystemExit(1)
        check_outcome(expected)
        check_invariants("after settlement")  # before the figure: no figure for a wrong outcome
        emit("settlement.allocations_per_s", settled / elapsed, "allocations/s")
        written = counts()
        log(f"settlement: {settled:,} allocations in {elapsed:.2f} s with batch_size {runner.batch_size}; "
            + ", ".join(f"{n:,} {name}" for name, n in written.items()))
        log(describe_cpu(usage, per=settled, what="allocation"))

        if args.profile_allocations:
            more = allocations_create(market, args.profile_allocations, seed=2, tag="p", owners=owners)
            profile = cProfile.Profile()
            started = time.perf_counter()
            profile.enable()
            settled = runner.settle_pass()
            profile.disable()
            elapsed = time.perf_counter() - started
            log(f"profiled pass: {settled:,} allocations in {elapsed:.2f} s ({settled / elapsed:,.0f}/s under cProfile; "
                "the profiler slows Python, not PostgreSQL)")
            sections = (("tottime", "own time", (18,)),
                        ("cumulative", "cumulative time, project code only", (r"/(exchange|marketplace|settlement)/", 20)))
            for key, title, restrictions in sections:
                out = io.StringIO()
                pstats.Stats(profile, stream=out).sort_stats(key).print_stats(*restrictions)
                text = out.getvalue()
                log(f"---- top functions by {title}\n" + text[text.find("   ncalls"):].rstrip())
            check_outcome(more)
            check_invariants("after the profiled pass")


if __name__ == "__main__":
    main()
