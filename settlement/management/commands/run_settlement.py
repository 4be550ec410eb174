import logging
import signal

from django.core.management.base import BaseCommand, CommandError

from exchange.runners import shard_parse
from settlement.runner import SettlementRunner

log = logging.getLogger("settlement.runner")


class Command(BaseCommand):
    help = ("Settle allocations continuously as their windows pass, for one shard of the instruments (K/N; "
            "default 0/1). A second runner for a shard waits until the first stops.")

    def add_arguments(self, parser):
        parser.add_argument("--shard", default="0/1", help="K/N: this runner settles instruments whose id %% N == K")
        parser.add_argument("--batch-size", type=int, default=None,
                            help="most allocations per transaction (default: SETTLEMENT_BATCH_SIZE)")

    def handle(self, *args, shard: str, batch_size: int | None, **options):
        try:
            k, n = shard_parse(shard)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        try:
            runner = SettlementRunner(shard=k, shards=n, batch_size=batch_size)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
        signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
        if not runner.acquire_shard(wait=False):
            self.stdout.write(f"settlement shard {k}/{n} is owned by another runner; waiting for it …")
            runner.acquire_shard(wait=True)
        self.stdout.write(f"settlement shard {k}/{n} running")
        runner.run(stop=lambda: bool(stopping))
