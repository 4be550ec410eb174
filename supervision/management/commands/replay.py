from django.core.management.base import BaseCommand, CommandError

from exchange.models import Instrument
from supervision.replay import Replay, difference_text


class Command(BaseCommand):
    help = ("Rerun an instrument's stored inbox commands through a fresh matching book and compare the fills "
            "with the stored trades; exit 1 naming the first difference.")

    def add_arguments(self, parser):
        parser.add_argument("instrument", help="instrument code, e.g. AI80.NX.2026-11-24")

    def handle(self, *args, instrument, **options):
        found = Instrument.objects.filter(code=instrument).first()
        if found is None:
            raise CommandError(f"No instrument {instrument!r}.")
        replay = Replay(found)
        for done, total in replay.run():
            if options["verbosity"] > 1:
                self.stderr.write(f"{done} of {total} commands replayed")
        report = replay.report
        if report.error:
            raise CommandError(f"{found.code}: the replay stopped after {report.commands} commands: {report.error}")
        if not report.exact:
            raise CommandError(f"{found.code}: {difference_text(report.first_difference)} "
                               f"({report.trades} fills agreed before it).")
        self.stdout.write(self.style.SUCCESS(
            f"{found.code}: Fills reproduce exactly: {report.commands} commands, {report.trades} trades "
            f"(started {report.started_as})."))
