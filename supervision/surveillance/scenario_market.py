"""The market a surveillance scenario trades in: its own organisations (verified, funded,
with attested capacity listed through the marketplace services), its own instruments on
free days well ahead, and order entry through the exchange's order services.

Nothing here bypasses a rule a participant faces: orders pass funds and capacity holds,
tick and lot, instrument state. The engine is either run here (no engine process holds
shard 0/1: the command and the tests) or the running one is waited for.
"""

from __future__ import annotations

import hashlib
import random
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.db import connection
from django.utils import timezone

from accounts.access import Actor, actor_from_user
from accounts.models import BeneficialOwner, Membership, Organisation, User
from accounts.services import membership_add, organisation_create
from exchange import ledger, services
from exchange.engine.runner import ADVISORY_LOCK_CLASS
from exchange.models import FeeTier, InboxCommand, Instrument, Order
from exchange.money import cny
from marketplace.catalogue import catalogue_load
from marketplace.models import Cluster, ComputeClass, Hub
from marketplace.periods import china_midnight, china_today
from marketplace.services import (
    asset_register, attestation_add, attestor_key_register, device_type_register, listing_create,
)
from marketplace.signing import public_key_b64, sign

CLASS_CODE = "AI80"
CLASS_CODES = ("AI80", "AI24")  # classes the scenario's accelerator qualifies for
FIRST_DAY = 40  # days ahead: beyond the listed horizon, so no other market shares these instruments
REFERENCE_FEN = 2000
FUNDS_FEN = 10**10  # 100 million CNY each: funds never limit a scenario


@dataclass(frozen=True)
class Party:
    name: str
    organisation: Organisation
    actor: Actor

    @property
    def id(self) -> int:
        return self.organisation.id


class InlineEngine:
    """The engine run in this process (holds shard 0/1's lock while the scenario runs)."""

    def __init__(self):
        from exchange.engine import EngineRunner

        self.runner = EngineRunner()
        self.runner.load()

    def settle(self, instruments=()) -> None:
        while self.runner.step():
            pass

    def close(self) -> None:
        self.runner.close()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, 0)", [ADVISORY_LOCK_CLASS])


class RunningEngine:
    """An engine process runs: wait until it has processed the scenario's commands."""

    def settle(self, instruments=(), timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while InboxCommand.objects.filter(instrument_id__in=instruments, processed_at__isnull=True).exists():
            if time.monotonic() > deadline:
                raise RuntimeError("the running engine did not process the scenario's orders within a minute")
            time.sleep(0.02)

    def close(self) -> None:
        pass


def engine_for_scenario():
    """Inline if no engine process owns shard 0 of 1 (the lock is then held here), else the running one."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, 0)", [ADVISORY_LOCK_CLASS])
        free = cursor.fetchone()[0]
    return InlineEngine() if free else RunningEngine()


class ScenarioMarket:
    def __init__(self, *, engine, seed: int = 1, tag: str | None = None):
        self.engine = engine
        self.random = random.Random(seed)
        self.tag = tag or uuid.uuid4().hex[:6]
        self.instruments: list[Instrument] = []
        self.parties: list[Party] = []
        self._days: set = set()
        catalogue_load(hub_model=Hub, cluster_model=Cluster, class_model=ComputeClass)
        FeeTier.objects.get_or_create(code="standard", defaults=dict(name="Standard", maker_bps=2, taker_bps=5,
                                                                      is_default=True))
        self.classes = {c.code: c for c in ComputeClass.objects.filter(code__in=CLASS_CODES)}
        self._attestor()

    # --- participants ------------------------------------------------------------------

    def _attestor(self) -> None:
        name = f"Scenario {self.tag} Benchmark Lab"
        self.attestor = organisation_create(name=name, kind=Organisation.Kind.ATTESTOR,
                                            kyc_status=Organisation.Kyc.VERIFIED, city="Beijing")
        # A key anyone can rebuild from the lab's name: a scenario's attestations prove nothing.
        self._key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"scenario key, not secret: {name}".encode())
                                                         .digest())
        self._key_row = attestor_key_register(organisation=self.attestor, public_key=public_key_b64(self._key))
        self.device_type = None

    def _party(self, name: str, kind: str, owner: BeneficialOwner | None) -> Party:
        full = f"Scenario {self.tag} {name}"
        organisation = organisation_create(name=full, kind=kind, kyc_status=Organisation.Kyc.VERIFIED,
                                           city="Shanghai", beneficial_owner=owner)
        user = User.objects.create_user(email=f"{name.lower().replace(' ', '-')}.{self.tag}@scenario.example",
                                        password=None)
        role = Membership.Role.PROVIDER_ADMIN if kind == Organisation.Kind.PROVIDER else Membership.Role.TRADER
        party = Party(name, organisation, actor_from_user(membership_add(user=user, organisation=organisation,
                                                                         role=role).user))
        ledger.deposit(organisation=organisation, amount_fen=FUNDS_FEN)
        self.parties.append(party)
        return party

    def owner(self, name: str) -> BeneficialOwner:
        return BeneficialOwner.objects.create(name=f"Scenario {self.tag} {name}")

    def buyer(self, name: str, *, owner: BeneficialOwner | None = None) -> Party:
        return self._party(name, Organisation.Kind.BUYER, owner)

    def provider(self, name: str, *, hub: str = "NX", class_code: str = CLASS_CODE, devices: int = 40,
                 owner: BeneficialOwner | None = None) -> Party:
        """A provider with ``devices`` attested accelerators listed in ``class_code`` on every scenario
        day of ``hub`` (``devices`` × 24 SCU·h per day); create the days first (``day``)."""
        party = self._party(name, Organisation.Kind.PROVIDER, owner)
        if self.device_type is None:
            self.device_type = device_type_register(
                organisation=party.organisation, vendor="Scenario Silicon", model=f"S80-{self.tag}", memory_gb=80,
                interconnect_gbps=400, peak_fp16_pflops="1.2000")
            payload = {"key_id": self._key_row.key_id, "device_type": self.device_type.hardware_facts(),
                       "method": "Dense BF16 GEMM, 30 min sustained",
                       "measured_on": (china_today(timezone.now()) - timedelta(days=5)).isoformat(),
                       "sustained_pflops": {"fp16": "1.0000", "fp32": None, "fp64": None}}
            attestation_add(attestor=self.attestor, payload=payload, signature=sign(self._key, payload))
        asset = asset_register(provider=party.organisation, name=f"{party.organisation.name} hall",
                               cluster=Cluster.objects.filter(hub__code=hub).order_by("code").first(), pue="1.20",
                               green_share="60.00", inventory=[(self.device_type, devices)])
        days = sorted(start for code, hub_code, start in self._days if (code, hub_code) == (class_code, hub))
        if not days:
            return party  # no instrument in the hub (yet): nothing to list
        listing_create(asset=asset, device_type=self.device_type, compute_class=self.classes[class_code],
                       device_count=devices, window_start=days[0], window_end=days[-1] + timedelta(days=1),
                       reserve_price="1.00")
        return party

    # --- instruments -------------------------------------------------------------------

    def day(self, hub: str = "NX", *, state: str = Instrument.State.CONTINUOUS,
            class_code: str = CLASS_CODE) -> Instrument:
        """A new daily instrument of ``class_code`` in ``hub`` on the first free day ahead."""
        hub_row, compute_class = Hub.objects.get(code=hub), self.classes[class_code]
        day = china_today(timezone.now()) + timedelta(days=FIRST_DAY)
        while True:
            start = china_midnight(day)
            if (class_code, hub, start) not in self._days and not Instrument.objects.filter(
                    compute_class=compute_class, hub=hub_row, delivery_start=start).exists():
                break
            day += timedelta(days=1)
        self._days.add((class_code, hub, start))
        instrument = Instrument.objects.create(
            code=f"{class_code}.{hub}.{day.isoformat()}", compute_class=compute_class, hub=hub_row,
            delivery_start=start, delivery_end=start + timedelta(days=1), gate_closure_at=start - timedelta(hours=2),
            state=state, reference_price_fen=REFERENCE_FEN, band_bps=1000,
            # An opening auction is uncrossed by the scenario (instrument_open), never by the clock.
            auction_ends_at=start - timedelta(days=1) if state == Instrument.State.PRE_OPEN else None)
        self.instruments.append(instrument)
        return instrument

    def quiet_markets(self, count: int, *, besides=(("AI80", "NX"),)) -> list[tuple[str, str]]:
        """``count`` class × hub markets where no capacity to be delivered has been sold (so that
        what the scenario sells there alone decides their concentration)."""
        from exchange.models import CapacityPosition

        busy = set(CapacityPosition.objects.filter(sold__gt=0, instrument__delivery_end__gt=timezone.now())
                   .values_list("instrument__compute_class__code", "instrument__hub__code").distinct())
        hubs = Hub.objects.filter(clusters__isnull=False).distinct().order_by("sort_order").values_list("code", flat=True)
        quiet = [(c, h) for c in CLASS_CODES for h in hubs if (c, h) not in busy and (c, h) not in besides]
        if len(quiet) < count:
            raise RuntimeError("every class × hub the scenario can use has sold capacity still to be delivered, "
                               "from earlier runs: its concentration pattern needs a quiet one (a fresh database)")
        return quiet[:count]

    # --- orders ------------------------------------------------------------------------

    def place(self, party: Party, instrument: Instrument, side: str, price_fen: int, qty: int, *,
              tif: str = "GTC") -> Order:
        order, _ = services.order_place(actor=party.actor, data={
            "instrument": instrument.code, "side": side, "price": cny(price_fen), "qty": qty, "tif": tif,
            "client_order_id": uuid.uuid4().hex})
        return order

    def cancel(self, party: Party, order: Order) -> None:
        services.order_cancel(actor=party.actor, order_id=order.id)

    def settle(self) -> None:
        self.engine.settle([i.id for i in self.instruments])

    def top(self, instrument: Instrument) -> tuple[int | None, int | None]:
        instrument.refresh_from_db(fields=["best_bid_fen", "best_ask_fen", "last_price_fen", "state"])
        return instrument.best_bid_fen, instrument.best_ask_fen

    def pull_all(self, instrument: Instrument) -> None:
        """Every scenario participant cancels its resting orders in ``instrument``."""
        actors = {p.id: p for p in self.parties}
        for order in Order.objects.filter(instrument=instrument, status__in=Order.LIVE):
            if order.organisation_id in actors:
                self.cancel(actors[order.organisation_id], order)
        self.settle()
