import signal

from django.core.management.base import BaseCommand

from exchange.simulation import MarketSimulator


class Command(BaseCommand):
    help = "Run demo market makers and takers among the demo organisations until stopped."

    def add_arguments(self, parser):
        parser.add_argument("--instruments", type=int, default=6, help="instruments quoted per round")
        parser.add_argument("--interval", type=float, default=0.5, help="seconds between rounds")
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument("--abuse-every", type=float, default=180.0,
                            help="seconds between a wash trade or a spoofing run by a demo organisation (0: never)")

    def handle(self, *args, instruments, interval, seed, abuse_every, **options):
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
        signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
        simulator = MarketSimulator(instruments=instruments, seed=seed, abuse_every=abuse_every)
        self.stdout.write(f"simulating {len(simulator.buyers)} buyers and {len(simulator.sellers)} providers")
        simulator.run(interval=interval, stop=lambda: bool(stopping))
