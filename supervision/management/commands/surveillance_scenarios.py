from django.core.management.base import BaseCommand, CommandError

from supervision.surveillance.scenarios import PATTERNS, scenario_run


class Command(BaseCommand):
    help = ("Play clean trading among many participants plus each abuse pattern surveillance looks for, in the "
            "scenario's own organisations and instruments (days well ahead), through the order services and the "
            "engine; then report which patterns surveillance flagged and any alert clean trading raised. "
            "Uses the running engine and surveillance processes if there are, else runs them here.")

    def add_arguments(self, parser):
        parser.add_argument("--patterns", default=",".join(PATTERNS),
                            help=f"comma-separated, of: {', '.join(PATTERNS)} (default: all)")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--rounds", type=int, default=40, help="rounds of clean trading per instrument")
        parser.add_argument("--buyers", type=int, default=10)
        parser.add_argument("--providers", type=int, default=10)
        parser.add_argument("--clean-instruments", type=int, default=2,
                            help="instruments with clean trading only (one more opens by auction and closes)")
        parser.add_argument("--wait", type=float, default=0.0,
                            help="seconds to wait before reading the alerts, for a running surveillance "
                                 "process's market-wide rules (hoarding every 10 s, concentration every 60 s)")

    def handle(self, *args, patterns, seed, rounds, buyers, providers, clean_instruments, wait, **options):
        chosen = [p.strip() for p in patterns.split(",") if p.strip()]
        unknown = set(chosen) - set(PATTERNS)
        if unknown:
            raise CommandError(f"unknown patterns {', '.join(sorted(unknown))}; choose from {', '.join(PATTERNS)}")
        if min(rounds, buyers, providers) < 1 or buyers < 8 or providers < 6:
            raise CommandError("at least 1 round, 8 buyers and 6 providers (the patterns pick among them)")
        outcome = scenario_run(chosen, seed=seed, rounds=rounds, buyers=buyers, providers=providers,
                               clean_instruments=clean_instruments, settle_s=wait)
        self.stdout.write(outcome.report())
        if not outcome.ok:
            raise CommandError("surveillance missed a pattern or flagged clean trading (above)")
