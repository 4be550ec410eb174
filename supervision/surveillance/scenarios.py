"""Clean trading among many participants, and each abuse pattern the rules look for, played
through the order services and the engine; then what surveillance made of it.

``scenario_run`` is the core of ``manage.py surveillance_scenarios`` and of the tests: each
pattern returns what it expects surveillance to flag (``Expect``: the rule, the instrument,
the organisations, the order and trade ids the evidence must hold, a check of its figures);
``Outcome`` matches the alerts against them. An alert no pattern expects means clean
trading was flagged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import connection
from django.utils import timezone

from exchange.instruments import instrument_open
from exchange.models import InboxCommand, Instrument, Order, Trade
from supervision.surveillance.scenario_market import REFERENCE_FEN, Party, ScenarioMarket, engine_for_scenario

PATTERNS = ("wash_same_owner", "wash_circular", "spoofing", "spoofing_group", "marking_close", "marking_auction",
            "hoarding", "withholding", "concentration", "volatility")
REF = REFERENCE_FEN


@dataclass
class Expect:
    pattern: str
    rule: str
    organisation_ids: set[int]
    instrument_id: int | None = None
    key: str | None = None
    orders: set[int] = field(default_factory=set)
    trades: set[int] = field(default_factory=set)
    check: Callable[[dict], bool] = lambda figures: True

    def matches(self, alert) -> bool:
        evidence = alert.evidence
        return (alert.rule.code == self.rule
                and (self.instrument_id is None or alert.instrument_id == self.instrument_id)
                and (self.key is None or alert.key == self.key)
                and self.organisation_ids <= set(alert.organisation_ids)
                and self.orders <= set(evidence.get("orders", ())) and self.trades <= set(evidence.get("trades", ()))
                and self.check(evidence.get("figures", {})))


@dataclass
class Outcome:
    expected: list[Expect]
    alerts: list
    seconds: float = 0.0
    trades: int = 0  # made in the scenario's instruments
    participants: int = 0

    @property
    def missing(self) -> list[Expect]:
        return [e for e in self.expected if not any(e.matches(a) for a in self.alerts)]

    @property
    def unexpected(self) -> list:
        return [a for a in self.alerts if not any(e.matches(a) for e in self.expected)]

    @property
    def ok(self) -> bool:
        return not self.missing and not self.unexpected

    def report(self) -> str:
        lines = []
        for e in self.expected:
            found = [a.id for a in self.alerts if e.matches(a)]
            lines.append(f"{'flagged' if found else 'MISSED '}  {e.pattern:<16} {e.rule:<18} alerts {found}")
        for a in self.unexpected:
            lines.append(f"UNEXPECTED alert {a.id}: {a.rule.code} {a.key} {a.evidence.get('figures')}")
        lines.append(f"{self.participants} participants made {self.trades} trades; {len(self.alerts)} alert(s); "
                     f"{'every pattern flagged, nothing else' if self.ok else 'FAILED'} ({self.seconds:.1f} s)")
        return "\n".join(lines)


class Scenario:
    def __init__(self, market: ScenarioMarket, *, buyers: int = 10, providers: int = 10, rounds: int = 40):
        self.m = market
        self.rounds = rounds
        self.n_buyers, self.n_providers = buyers, providers
        self.rng = market.random
        self.resting: dict[int, list[tuple[Party, Order]]] = {}
        self.expected: list[Expect] = []

    # --- clean trading -----------------------------------------------------------------

    def clean_round(self, instrument: Instrument, *, sell_pressure: float = 0.5, drift: int = 2) -> None:
        """Makers quote around a drifting mid, a taker crosses now and then, old quotes are pulled."""
        m, rng = self.m, self.rng
        mid = self.mid[instrument.id] = self.mid.get(instrument.id, REF) + rng.randint(-drift, drift)
        resting = self.resting.setdefault(instrument.id, [])
        buyer, seller = rng.choice(self.buyers), rng.choice(self.providers)
        resting.append((buyer, m.place(buyer, instrument, "buy", mid - rng.randint(3, 10), rng.randint(1, 20))))
        resting.append((seller, m.place(seller, instrument, "sell", mid + rng.randint(3, 10), rng.randint(1, 20))))
        if rng.random() < 0.8:
            if rng.random() < sell_pressure:
                m.place(rng.choice(self.providers), instrument, "sell", mid - 12, rng.randint(5, 25), tif="IOC")
            else:
                m.place(rng.choice(self.buyers), instrument, "buy", mid + 12, rng.randint(5, 25), tif="IOC")
        while len(resting) > 12:
            party, order = resting.pop(0)
            order.refresh_from_db(fields=["status"])
            if order.status in Order.LIVE:
                m.cancel(party, order)

    def clean_trading(self, instruments: list[Instrument], *, rounds: int, profiles: dict | None = None) -> None:
        """``rounds`` of ``clean_round`` in each instrument (``profiles``: its keyword arguments by instrument id)."""
        for _ in range(rounds):
            for instrument in instruments:
                self.clean_round(instrument, **(profiles or {}).get(instrument.id, {}))
            self.m.settle()

    def clean_auction(self, instrument: Instrument, *, participants: int = 6) -> None:
        for party in self.rng.sample(self.buyers, participants):
            self.m.place(party, instrument, "buy", REF + self.rng.randint(-8, 8), self.rng.randint(5, 15))
        for party in self.rng.sample(self.providers, participants):
            self.m.place(party, instrument, "sell", REF + self.rng.randint(-8, 8), self.rng.randint(5, 15))

    def uncross(self, instrument: Instrument) -> None:
        self.m.settle()
        instrument_open(instrument=instrument)
        self.m.settle()

    def close(self, instrument: Instrument) -> None:
        """Gate closure now: the engine cancels everything (as its housekeeping does at the time)."""
        Instrument.objects.filter(pk=instrument.pk).update(gate_closure_at=timezone.now())
        if hasattr(self.m.engine, "runner"):
            InboxCommand.objects.create(instrument=instrument, action=InboxCommand.Action.CLOSE)
        else:  # the running engine's housekeeping enqueues it within a second or so
            deadline = time.monotonic() + 30
            while not Instrument.objects.filter(pk=instrument.pk, state=Instrument.State.CLOSED).exists():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{instrument.code} was not closed by the running engine")
                time.sleep(0.1)
        self.m.settle()

    # --- the run -----------------------------------------------------------------------

    def run(self, patterns=PATTERNS, *, clean_instruments: int = 2) -> list[Expect]:
        m = self.m
        unknown = set(patterns) - set(PATTERNS)
        if unknown:
            raise ValueError(f"unknown patterns: {', '.join(sorted(unknown))}")
        auctions = {"wash_same_owner", "marking_auction"}
        days = {p: m.day(state=Instrument.State.PRE_OPEN if p in auctions else Instrument.State.CONTINUOUS)
                for p in patterns if p != "concentration"}
        clean = [m.day() for _ in range(clean_instruments)]
        opening = m.day(state=Instrument.State.PRE_OPEN) if clean_instruments else None
        quiet = m.quiet_markets(2) if "concentration" in patterns else []
        markets = {(c, h): m.day(h, class_code=c) for c, h in quiet}
        self.buyers = [m.buyer(f"Buyer {i:02d}") for i in range(self.n_buyers)]
        self.providers = [m.provider(f"Provider {i:02d}") for i in range(self.n_providers)]
        self.mid: dict[int, int] = {}
        if opening is not None:
            self.clean_auction(opening)
            self.uncross(opening)
            clean.append(opening)
        continuous = clean + [i for p, i in days.items() if p not in auctions]
        # Before the close is marked, sellers take the bids at a steady mid: no buyer but the marker
        # lifts offers in that instrument (in a scenario minutes long, the whole day is in the window).
        profiles = {days[p].id: {"sell_pressure": 1.0, "drift": 0} for p in ("marking_close",) if p in days}
        self.clean_trading(continuous, rounds=self.rounds, profiles=profiles)
        if opening is not None:
            self.close(opening)  # clean trading into the close: nothing to flag
        for pattern in patterns:
            getattr(self, f"play_{pattern}")(markets if pattern == "concentration" else days[pattern])
        return self.expected

    # --- the patterns ------------------------------------------------------------------

    def _trades(self, instrument: Instrument, **filters) -> set[int]:
        return set(Trade.objects.filter(instrument=instrument, **filters).values_list("id", flat=True))

    def play_wash_same_owner(self, instrument: Instrument) -> None:
        """Two organisations of one owner cross each other in an opening auction (where self-trade
        prevention does not apply), among clean participants."""
        m = self.m
        owner = m.owner("Wash Group")
        seller, buyer = m.provider("Wash Seller", owner=owner), m.buyer("Wash Buyer", owner=owner)
        self.clean_auction(instrument)
        m.place(seller, instrument, "sell", REF - 40, 10)  # first in either queue: they meet
        m.place(buyer, instrument, "buy", REF + 40, 10)
        self.uncross(instrument)
        self.expected.append(Expect("wash_same_owner", "wash_same_owner", {seller.id, buyer.id}, instrument.id,
                                    trades=self._trades(instrument, seller=seller.organisation,
                                                        buyer=buyer.organisation),
                                    check=lambda f: f["beneficial_owner_id"] == owner.id))

    def play_wash_circular(self, instrument: Instrument) -> None:
        """Three unrelated owners pass 10 SCU·h round: A → B → C → A, on a quiet book."""
        m = self.m
        a, b, c = m.provider("Ring A"), m.buyer("Ring B"), m.buyer("Ring C")
        m.pull_all(instrument)
        trades = set()
        for step, (seller, buyer) in enumerate(((a, b), (b, c), (c, a))):
            m.place(seller, instrument, "sell", REF + step, 10)
            m.place(buyer, instrument, "buy", REF + step, 10)
            m.settle()
            trades |= self._trades(instrument, seller=seller.organisation, buyer=buyer.organisation)
        self.expected.append(Expect("wash_circular", "wash_circular", {a.id, b.id, c.id}, instrument.id,
                                    trades=trades, check=lambda f: f["legs"] == 3))

    def play_spoofing(self, instrument: Instrument) -> None:
        """Three large bids well behind the best bid, each pulled within a second, while the
        same provider sells into the bids."""
        spoofer = self.m.provider("Spoofer")
        self._spoof(instrument, "spoofing", spoofer, spoofer)

    def play_spoofing_group(self, instrument: Instrument) -> None:
        """The same split between two organisations of one beneficial owner: a buyer places and
        pulls the bids, a provider of the group sells into the bids meanwhile."""
        owner = self.m.owner("Spoof Group")
        spoofer = self.m.buyer("Group Spoofer", owner=owner)
        seller = self.m.provider("Group Seller", owner=owner)
        self._spoof(instrument, "spoofing_group", spoofer, seller, key=f"{owner.id}:{instrument.id}:buy")

    def _spoof(self, instrument: Instrument, pattern: str, spoofer: Party, seller: Party, *,
               key: str | None = None) -> None:
        m = self.m
        self.clean_trading([instrument], rounds=2)
        spoofs = set()
        for _ in range(3):
            best_bid, _ = m.top(instrument)
            bid = m.place(spoofer, instrument, "buy", best_bid - 30, 60)
            m.settle()
            m.place(seller, instrument, "sell", best_bid, 5, tif="IOC")
            m.settle()
            m.cancel(spoofer, bid)
            m.settle()
            spoofs.add(bid.id)
        trades = self._trades(instrument, seller=seller.organisation)
        self.expected.append(Expect(pattern, "spoofing", {spoofer.id, seller.id}, instrument.id, key=key,
                                    orders=spoofs, trades=trades,
                                    check=lambda f: f["side"] == "buy" and f["orders"] >= 3))

    def play_marking_close(self, instrument: Instrument) -> None:
        """One buyer lifts the offers 3 % above any price of the day in the minutes before gate closure."""
        m = self.m
        marker = m.buyer("Close Marker")
        m.pull_all(instrument)
        top = max(Trade.objects.filter(instrument=instrument).values_list("price_fen", flat=True), default=REF) + 60
        for step, party in enumerate(self.rng.sample(self.providers, 3)):
            m.place(party, instrument, "sell", top - 20 * step, 40)
        m.settle()
        m.place(marker, instrument, "buy", top, 120, tif="IOC")
        m.settle()
        trades = self._trades(instrument, buyer=marker.organisation)
        self.close(instrument)
        self.expected.append(Expect("marking_close", "marking_close", {marker.id}, instrument.id, trades=trades,
                                    check=lambda f: f["at"] == "gate_closure" and f["move_bps"] >= 200))

    def play_marking_auction(self, instrument: Instrument) -> None:
        """A provider's large cheap offer entered just before the uncross drags the clearing price 3 % down."""
        m = self.m
        marker = m.provider("Auction Marker")
        self.clean_auction(instrument)
        ask = m.place(marker, instrument, "sell", REF - 60, 200)
        self.uncross(instrument)
        self.expected.append(Expect("marking_auction", "marking_close", {marker.id}, instrument.id, orders={ask.id},
                                    check=lambda f: f["at"] == "auction" and f["move_bps"] <= -100))

    def play_hoarding(self, instrument: Instrument) -> None:
        """One buyer takes as much again as the whole market bought so far: half of what buyers hold."""
        m = self.m
        hoarder = m.buyer("Hoarder")
        m.pull_all(instrument)
        bought = sum(Trade.objects.filter(instrument=instrument).values_list("qty", flat=True))
        lot = max(20, bought // 5 + 1)
        for step, party in enumerate(self.rng.sample(self.providers, 5), start=1):
            m.place(party, instrument, "sell", REF + 5 * step, lot)
        m.settle()
        m.place(hoarder, instrument, "buy", REF + 30, 5 * lot, tif="IOC")
        m.settle()
        self.expected.append(Expect("hoarding", "hoarding", {hoarder.id}, instrument.id,
                                    trades=self._trades(instrument, buyer=hoarder.organisation),
                                    check=lambda f: f["share_pct"] > 40))

    def play_withholding(self, instrument: Instrument) -> None:
        """A provider's offers stand well above; as buyers lift the price 3 % above the day's, it pulls them."""
        m = self.m
        holder = m.provider("Withholder")
        m.pull_all(instrument)
        top = max(Trade.objects.filter(instrument=instrument).values_list("price_fen", flat=True), default=REF) + 60
        asks = [m.place(holder, instrument, "sell", top + 60, 50) for _ in range(3)]
        for step, party in enumerate(self.rng.sample(self.providers, 3)):
            m.place(party, instrument, "sell", top - 20 * step, 20)
        m.settle()
        for party in self.rng.sample(self.buyers, 3):
            m.place(party, instrument, "buy", top, 20, tif="IOC")
        m.settle()
        for ask in asks:
            m.cancel(holder, ask)
        m.settle()
        self.expected.append(Expect("withholding", "withholding", {holder.id}, instrument.id,
                                    orders={a.id for a in asks}, check=lambda f: f["withdrawn_scu_h"] >= 100))

    def play_volatility(self, instrument: Instrument) -> None:
        """A bid 12 % up meets an offer there: the band stops it, a call auction clears it."""
        m = self.m
        m.pull_all(instrument)
        seller, buyer = self.rng.choice(self.providers), self.rng.choice(self.buyers)
        m.place(seller, instrument, "sell", REF + 240, 10)
        m.place(buyer, instrument, "buy", REF + 240, 10)
        m.settle()
        self.uncross(instrument)
        trades = self._trades(instrument, buyer=buyer.organisation, price_fen=REF + 240)
        self.expected.append(Expect("volatility", "volatility_auction", set(), instrument.id, trades=trades,
                                    check=lambda f: f["kind"] == "volatility" and f["move_bps"] >= 1000))
        self.expected.append(Expect("volatility", "price_move", set(), instrument.id,
                                    check=lambda f: f["move_bps"] >= f["band_bps"]))

    def play_concentration(self, markets: dict[tuple[str, str], Instrument]) -> None:
        """In one quiet class × hub a provider sells 80 % (HHI 6,600: high); in another five sell
        30/20/20/15/15 % (2,150: moderate)."""
        m = self.m
        for ((class_code, hub), instrument), shares in zip(markets.items(), ((160, 20, 20), (60, 40, 40, 30, 30))):
            sellers = [m.provider(f"{class_code} {hub} Seller {i}", hub=hub, class_code=class_code)
                       for i in range(len(shares))]
            for seller, qty in zip(sellers, shares):
                m.place(seller, instrument, "sell", REF, qty)
            m.settle()
            for party in self.rng.sample(self.buyers, 8):
                m.place(party, instrument, "buy", REF + 10, 25, tif="IOC")
            m.settle()
            level = "high" if len(shares) == 3 else "moderate"
            self.expected.append(Expect(
                "concentration", "concentration", {sellers[0].id},
                key=f"{instrument.compute_class_id}:{instrument.hub_id}:{level}",
                check=(lambda f: f["hhi"] > 2500) if level == "high" else (lambda f: 1800 < f["hhi"] <= 2500)))


def surveil(*, timeout: float = 120.0) -> None:
    """Bring surveillance up to date: here if no surveillance process runs, else wait for it."""
    from supervision.models import SurveillanceCursor
    from supervision.surveillance.runner import SurveillanceRunner

    runner = SurveillanceRunner()
    if runner.acquire(wait=False):
        try:
            runner.drain()
        finally:
            runner.release()
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT max(seq) FROM exchange_inboxcommand")
        last = cursor.fetchone()[0] or 0
    deadline = time.monotonic() + timeout
    while not SurveillanceCursor.objects.filter(seq__gte=last, waiting=[]).exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the running surveillance process did not catch up within the timeout")
        time.sleep(0.2)


def scenario_run(patterns=PATTERNS, *, seed: int = 1, rounds: int = 40, buyers: int = 10, providers: int = 10,
                 clean_instruments: int = 2, settle_s: float = 0.0) -> Outcome:
    """Play the scenario, bring surveillance up to date, and match its alerts with what was expected."""
    from supervision.models import Alert

    started = time.monotonic()
    since = timezone.now()
    engine = engine_for_scenario()
    try:
        market = ScenarioMarket(engine=engine, seed=seed)
        expected = Scenario(market, buyers=buyers, providers=providers, rounds=rounds).run(
            patterns, clean_instruments=clean_instruments)
    finally:
        engine.close()
    time.sleep(settle_s)  # a running surveillance process's market-wide rules run on their own interval
    surveil()
    orgs = {p.id for p in market.parties}
    instruments = {i.id for i in market.instruments}
    alerts = [a for a in Alert.objects.filter(created_at__gte=since).select_related("rule").order_by("id")
              if a.instrument_id in instruments or orgs & set(a.organisation_ids)]
    return Outcome(expected, alerts, time.monotonic() - started, Trade.objects.filter(instrument_id__in=instruments).count(),
                   len(market.parties))
