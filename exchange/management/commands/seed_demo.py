from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts import demo as accounts_demo
from exchange import demo as exchange_demo
from marketplace import demo as marketplace_demo
from marketplace.periods import DEMO_CLASS_CODE
from supervision import demo as supervision_demo


class Command(BaseCommand):
    help = "Create the demo organisations, people and market. Running it again changes nothing."

    def handle(self, *args, **options):
        with transaction.atomic():
            organisations = accounts_demo.seed()
            market = marketplace_demo.seed(organisations)
            exchange_demo.seed(organisations)
            pending = supervision_demo.seed()
        self.stdout.write(self.style.SUCCESS(f"Demo data ready: {len(organisations)} organisations."))
        self.stdout.write(
            f"Marketplace: {market['device_types']} attested device types, {market['assets']} co-owned assets, "
            f"{market['listings_created']} new listings over the next {marketplace_demo.HORIZON_DAYS} days."
        )
        if settings.DEMO_MODE:
            self.stdout.write(
                f"Demo class {DEMO_CLASS_CODE}: {settings.DEMO_PERIOD_MINUTES}-minute delivery windows in "
                f"{len(marketplace_demo.DEMO_LISTINGS)} co-owned assets; the simulator delivers, meters and settles them.")
        self.stdout.write(f"Demo logins (password {accounts_demo.DEMO_PASSWORD}):")
        for name, _kind, _city, _owner, people in accounts_demo.ORGANISATIONS:
            for email, role in people:
                self.stdout.write(f"  {email:<32} {role:<15} {name}")
        self.stdout.write(f"KYC queue: {pending} applications waiting for the regulator at /supervision/participants/; "
                          "their people (same password, trading opens once verified):")
        for name, _kind, _city, _owner, _days, people in supervision_demo.APPLICATIONS:
            for email, role in people:
                self.stdout.write(f"  {email:<32} {role:<15} {name}")
