from django.core.management.base import BaseCommand

from settlement.runner import settle


class Command(BaseCommand):
    help = ("Settle, once, every allocation whose delivery window and dispute window have passed "
            "(and that has no open dispute). The settlement runner (run_settlement) does this continuously.")

    def add_arguments(self, parser):
        parser.add_argument("--now", action="store_true",
                            help="do not wait for the dispute window: settle every allocation whose delivery window "
                                 "has ended and that has no open dispute (operators, tests and demos)")

    def handle(self, *args, now: bool, **options):
        settled = settle(skip_dispute_window=now)
        self.stdout.write(self.style.SUCCESS(f"Settled {settled} allocation(s)."))
