from django.core.management.base import BaseCommand, CommandError

from marketplace.selectors import provenance_verify


class Command(BaseCommand):
    help = "Recompute the provenance hash chain from its first event; exit 1 at the first broken link."

    def handle(self, *args, **options):
        report = provenance_verify()
        if report.ok:
            self.stdout.write(self.style.SUCCESS(
                f"Provenance chain intact: {report.checked} events, head #{report.head_seq} {report.head_hash}."))
            return
        broken = report.first_broken
        raise CommandError(
            f"Provenance chain broken at event #{broken.seq} (id {broken.event_id}): {broken.reason}. "
            f"{report.checked - 1} events before it verified."
        )
