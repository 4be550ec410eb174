import logging
import signal

from django.core.management.base import BaseCommand, CommandError

from exchange.engine import EngineRunner
from exchange.runners import shard_parse

log = logging.getLogger("exchange.engine")


class Command(BaseCommand):
    help = "Run the matching engine for one shard of the instruments (K/N; default 0/1)."

    def add_arguments(self, parser):
        parser.add_argument("--shard", default="0/1", help="K/N: this runner owns instruments whose id %% N == K")
        parser.add_argument("--batch-size", type=int, default=None,
                            help="most inbox commands per batch (default: the ENGINE_BATCH_SIZE setting)")

    def handle(self, *args, shard: str, batch_size: int, **options):
        try:
            k, n = shard_parse(shard)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        try:
            runner = EngineRunner(shard=k, shards=n, batch_size=batch_size)
        except ValueError as exc:  # the batch size, from --batch-size or ENGINE_BATCH_SIZE
            raise CommandError(str(exc)) from None
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
        signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
        if not runner.acquire_shard(wait=False):
            self.stdout.write(f"shard {k}/{n} is owned by another runner; waiting for it …")
            runner.acquire_shard(wait=True)
        runner.load()
        self.stdout.write(f"engine shard {k}/{n}: {len(runner.books)} books, {len(runner.live)} resting orders")
        runner.run(stop=lambda: bool(stopping))
