from django.core.management.base import BaseCommand, CommandError

from exchange.invariants import invariants_check


class Command(BaseCommand):
    help = "Verify the exchange's invariants: the ledger balances, no oversold capacity, no trade without escrow."

    def handle(self, *args, **options):
        problems = invariants_check()
        if problems:
            for problem in problems:
                self.stderr.write(f"- {problem}")
            raise CommandError(f"{len(problems)} problem(s) found")
        self.stdout.write(self.style.SUCCESS("All invariants hold."))
