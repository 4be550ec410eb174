import logging
import signal

from django.core.management.base import BaseCommand, CommandError

from supervision.surveillance.runner import SurveillanceRunner

log = logging.getLogger("supervision.surveillance")


class Command(BaseCommand):
    help = ("Run market surveillance continuously beside the engine: every processed order, amendment, cancel "
            "and trade goes through the rules once. A second runner waits until the first stops.")

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=None,
                            help="most inbox commands per pass (default: SURVEILLANCE_BATCH_SIZE)")

    def handle(self, *args, batch_size: int | None, **options):
        try:
            runner = SurveillanceRunner(batch_size=batch_size)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
        signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
        if not runner.acquire(wait=False):
            self.stdout.write("surveillance is run by another process; waiting for it …")
            runner.acquire(wait=True)
        runner.load()
        self.stdout.write("surveillance running", ending="\n")
        self.stdout.flush()
        runner.run(stop=lambda: bool(stopping))
