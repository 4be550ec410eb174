"""Bench market set-up with the project's own services and models (Django must be set up).

Instruments and listed capacity come from the test helpers ``make_instrument`` and
``list_capacity`` (tests/exchange/conftest.py), so the bench follows the schema as the
tests do. Organisations, memberships and API tokens come from ``accounts.services``,
funds from ``exchange.ledger.deposit``.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from bench.lib.harness import log


@dataclass(frozen=True)
class Trader:
    organisation_id: int
    owner_id: int
    user_id: int
    token_id: int
    token: str
    side: str  # "buy" for buyers, "sell" for providers


@dataclass(frozen=True)
class InstrumentRef:
    id: int
    code: str
    reference_fen: int


@dataclass
class Market:
    instruments: list[InstrumentRef]
    buyers: list[Trader]
    providers: list[Trader]

    @property
    def traders(self) -> list[Trader]:
        return self.buyers + self.providers


def _trader(name: str, kind: str, role: str, side: str) -> Trader:
    from accounts.models import Organisation, User
    from accounts.services import membership_add, organisation_create, token_create

    organisation = organisation_create(name=name, kind=kind, kyc_status=Organisation.Kyc.VERIFIED, city="Shanghai")
    user = User.objects.create_user(email=f"{name.lower().replace(' ', '-')}@bench.example", password=None)
    membership = membership_add(user=user, organisation=organisation, role=role)
    scopes = ["read", "trade"] + (["provide"] if role == "provider_admin" else [])
    token, raw = token_create(membership=membership, name="bench", scopes=scopes)
    return Trader(organisation.id, organisation.beneficial_owner_id, user.id, token.id, raw, side)


def market_create(*, instruments: int = 1, buyers: int = 32, providers: int = 32,
                  funds_fen: int = 10**13, capacity_scu_h: int = 10**9, reference_fen: int = 2000) -> Market:
    """``instruments`` continuous instruments (reference ``reference_fen``, tick 1 fen, lot 1,
    band ±10 %), ``buyers`` funded buyer organisations and ``providers`` provider
    organisations with ``capacity_scu_h`` listed in every instrument; one trading token each."""
    from accounts.models import Membership, Organisation
    from exchange import ledger
    from exchange.models import FeeTier, Instrument
    from tests.exchange.conftest import list_capacity, make_instrument

    started = time.monotonic()
    FeeTier.objects.get_or_create(code="standard", defaults=dict(name="Standard", maker_bps=2, taker_bps=5, is_default=True))
    refs = []
    for i in range(instruments):
        instrument = make_instrument(state=Instrument.State.CONTINUOUS, reference_fen=reference_fen, days_ahead=2 + i)
        refs.append(InstrumentRef(instrument.id, instrument.code, reference_fen))
    buyer_list = [_trader(f"Bench Buyer {i:03d}", Organisation.Kind.BUYER, Membership.Role.TRADER, "buy")
                  for i in range(buyers)]
    provider_list = [_trader(f"Bench Provider {i:03d}", Organisation.Kind.PROVIDER, Membership.Role.PROVIDER_ADMIN, "sell")
                     for i in range(providers)]
    for trader in buyer_list:
        ledger.deposit(organisation=Organisation.objects.get(pk=trader.organisation_id), amount_fen=funds_fen)
    for trader in provider_list:
        organisation = Organisation.objects.get(pk=trader.organisation_id)
        for ref in refs:
            list_capacity(organisation=organisation, instrument=Instrument.objects.get(pk=ref.id), scu_h=capacity_scu_h)
    log(f"market: {instruments} instrument(s) {', '.join(r.code for r in refs)}; {buyers} buyers with "
        f"{funds_fen / 100:,.0f} CNY each, {providers} providers with {capacity_scu_h:,} SCU·h listed per instrument "
        f"({time.monotonic() - started:.1f} s)")
    return Market(refs, buyer_list, provider_list)


# ----------------------------------------------------------------------------- direct order entry

PLACE_COLUMNS = ("token_id", "organisation_id", "user_id", "instrument_id", "client_order_id", "side", "type",
                 "tif", "post_only", "price_fen", "qty", "expires_at", "protect_ticks")


def place_direct(conn, orders: list[dict]) -> dict[str, int]:
    """Place ``orders`` (dicts with PLACE_COLUMNS keys) through ``cx_place_orders`` on a psycopg
    connection, committing each call; return result codes counted."""
    from exchange.gateway import PLACE_SQL

    counts: dict[str, int] = {}
    with conn.transaction():
        rows = conn.execute(PLACE_SQL, [[o[c] for o in orders] for c in PLACE_COLUMNS]).fetchall()
    for _, _, code, *_ in rows:
        counts[code] = counts.get(code, 0) + 1
    return counts


def order(trader: Trader, instrument: InstrumentRef, client_order_id: str, *, price_fen: int | None, qty: int,
          tif: str = "GTC", type_: str = "limit", protect_ticks: int = 0) -> dict:
    return dict(token_id=trader.token_id, organisation_id=trader.organisation_id, user_id=trader.user_id,
                instrument_id=instrument.id, client_order_id=client_order_id, side=trader.side, type=type_, tif=tif,
                post_only=False, price_fen=price_fen, qty=qty, expires_at=None, protect_ticks=protect_ticks)


def trading_mix(market: Market, count: int, *, seed: int = 1, tag: str = "m") -> list[dict]:
    """A mix that trades: GTC bids a little below to a little above the reference and asks a
    little above to a little below it (so about a third cross the other side), 10 % IOC
    limit orders priced through the touch, 4 % market IOC orders; quantities 1–20 SCU·h."""
    rng = random.Random(seed)
    out = []
    for n in range(count):
        instrument = rng.choice(market.instruments)
        buy = rng.random() < 0.5
        trader = rng.choice(market.buyers if buy else market.providers)
        mid = instrument.reference_fen
        roll = rng.random()
        qty = rng.randint(1, 20)
        cid = f"{tag}{n}"
        if roll < 0.04:
            out.append(order(trader, instrument, cid, price_fen=None, qty=qty, tif="IOC", type_="market", protect_ticks=50))
        elif roll < 0.14:
            price = mid + (15 if buy else -15)
            out.append(order(trader, instrument, cid, price_fen=price, qty=qty, tif="IOC"))
        else:
            price = mid - rng.randint(-6, 30) if buy else mid + rng.randint(-6, 30)
            out.append(order(trader, instrument, cid, price_fen=price, qty=qty))
    return out
