"""Order entry: one service behind every edge (REST, the fast ASGI route, WebSocket commands).

An order passes two stages:

1. ``order_request_parse`` — static checks in Python with no database access: fields,
   tick and lot, time in force. Bad input raises AppError with per-field messages.
2. ``orders_submit`` — one call of the SQL function ``cx_place_orders`` for a whole batch
   (exchange/sql/place_orders.sql): credentials and organisation status, instrument
   state and gate closure, duplicate ``client_order_id``, and the funds or capacity hold,
   all in the transaction that writes the order and its inbox command. Each order gets
   its own result.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.access import Actor
from exchange.db import pg_array, pg_bool_array, pg_text_array
from exchange.errors import AppError
from exchange.models import Instrument, Order
from exchange.money import fen_from_cny
from exchange.wire import text_problem

# Bounds that keep every amount an order can make inside PostgreSQL's bigint with room to
# spare: a bid's hold is price × qty × (1 + taker fee), and fee tiers are capped at 1,000
# bps (exchange_feetier's CHECK), so the largest hold is 10^8 fen × 10^9 × 1.1 ≈ 1.1 × 10^17
# fen, 1/84 of bigint's 9.2 × 10^18. A single order beyond these is a typing error, not
# a trade: 1,000,000.00 CNY per SCU·h is some 50,000 times the prices seen, and 10^9 SCU·h
# is more than all the capacity a hub lists for a day.
MAX_PRICE_FEN = 100_000_000
MAX_QTY = 10**9
MAX_CODE = 64
MAX_BATCH = 1000
TIFS = frozenset(Order.Tif.values)
ORDER_FIELDS = frozenset({"instrument", "side", "type", "tif", "post_only", "price", "qty", "expires_at",
                          "protect_ticks", "client_order_id"})


@dataclass(frozen=True, slots=True)
class InstrumentInfo:
    """The facts about an instrument that never change after listing."""

    id: int
    code: str
    tick_fen: int
    lot_scu_h: int
    gate_closure_at: datetime


class InstrumentDirectory:
    """code → InstrumentInfo, cached in the process (instruments are never edited)."""

    def __init__(self):
        self._by_code: dict[str, InstrumentInfo] = {}

    def cached(self, code: str) -> InstrumentInfo | None:
        return self._by_code.get(code)

    def get(self, code: str) -> InstrumentInfo | None:
        info = self._by_code.get(code)
        if info is None:
            if len(code) > MAX_CODE or text_problem(code):
                return None  # no such code exists, and PostgreSQL could not take this one
            row = (Instrument.objects.filter(code=code)
                   .values_list("id", "code", "tick_fen", "lot_scu_h", "gate_closure_at").first())
            if row is None:
                return None
            info = self._by_code[code] = InstrumentInfo(*row)
        return info


instruments = InstrumentDirectory()
log = logging.getLogger("exchange.gateway")


@dataclass(frozen=True, slots=True)
class OrderRequest:
    token_id: int | None
    organisation_id: int
    user_id: int | None
    instrument_id: int
    client_order_id: str
    side: str
    type: str
    tif: str
    post_only: bool
    price_fen: int | None
    qty: int
    expires_at: datetime | None
    protect_ticks: int


@dataclass(frozen=True, slots=True)
class OrderResult:
    order_id: int | None
    code: str
    held_fen: int | None = None  # an accepted order's hold, and when it was placed
    created_at: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.code in ("accepted", "duplicate")


# An order the placing statement could not take although it passed order_request_parse:
# a server fault, reported for that order alone (its neighbours in the batch are placed).
FAILED = "server_error"

# code → (HTTP status, message). Codes come from cx_place_orders, and FAILED.
REJECTIONS: dict[str, tuple[int, str]] = {
    FAILED: (500, "The order could not be processed; nothing was placed for it. Try again."),
    "unknown_instrument": (400, "No such instrument; list them at /api/v1/instruments/."),
    "token_revoked": (401, "The API token was revoked or no longer exists."),
    "token_expired": (401, "The API token has expired; create a new one."),
    "user_inactive": (401, "The account placing the order is deactivated."),
    "membership_changed": (403, "Your membership moved to another organisation or was removed; sign in or connect again."),
    "scope_missing": (403, "This needs the 'trade' scope, and a role that allows trading."),
    "organisation_suspended": (403, "Your organisation is suspended by the regulator; contact the exchange operator."),
    "kyc_pending": (403, "Your organisation is awaiting KYC verification; trading opens once it is verified."),
    "instrument_halted": (409, "Trading in this instrument is halted by the regulator; new orders are refused until it resumes."),
    "gate_closed": (409, "Gate closure has passed for this delivery window; it no longer trades."),
    "auction_in_progress": (409, "The instrument is in a call auction; market, IOC and FOK orders are refused until it uncrosses — send a GTC or GTD limit order."),
    "no_reference_price": (409, "The instrument has no reference price yet; send a limit order."),
    "insufficient_funds": (422, "Available funds do not cover price × quantity plus the maximum taker fee."),
    "insufficient_capacity": (422, "The order exceeds your attested, listed and unsold capacity (or capacity you bought) for this class, hub and window."),
}


def _invalid(fields: dict[str, str]) -> AppError:
    summary = "; ".join(f"{k}: {v}" for k, v in fields.items())
    return AppError("invalid", f"The order is not valid. {summary}", fields=fields)


def price_fen_parse(raw, *, tick_fen: int | None) -> tuple[int | None, str | None]:
    """A limit price (a decimal string of CNY per SCU·h) → (fen, None), or (None, why not)."""
    try:
        price_fen = fen_from_cny(raw)
    except ValueError as exc:
        return None, str(exc).capitalize() + "."
    if price_fen <= 0:
        return None, "Must be greater than zero."
    if price_fen > MAX_PRICE_FEN:
        return None, f"At most {MAX_PRICE_FEN // 100:,} CNY per SCU·h."
    if tick_fen and price_fen % tick_fen:
        return None, f"Must be a multiple of the tick, {tick_fen / 100:.2f} CNY."
    return price_fen, None


def _expires_at_parse(raw, info: InstrumentInfo | None) -> tuple[datetime | None, str | None]:
    if not isinstance(raw, str) or len(raw) > MAX_CODE:
        return None, "A GTD order needs expires_at as an ISO 8601 time with a zone."
    try:
        expires_at = parse_datetime(raw)
    except ValueError as exc:  # well formed but impossible: month 13, an offset of 99 hours
        return None, f"Not a real time ({exc})."
    if expires_at is None or timezone.is_naive(expires_at):
        return None, "A GTD order needs expires_at as an ISO 8601 time with a zone."
    if expires_at <= timezone.now():
        return None, "Must be in the future."
    # An order expires at gate closure whatever it asks for; a later time would only be a
    # value the store, the engine and the answer must carry (year 9999 and beyond).
    if info is not None and expires_at > info.gate_closure_at:
        return None, f"Must be at or before the instrument's gate closure, {info.gate_closure_at.isoformat()}."
    return expires_at, None


def _choice(value, choices) -> bool:
    return isinstance(value, str) and value in choices


def order_request_parse(data: dict, *, actor: Actor, lookup=None) -> OrderRequest:
    """Check one order's fields; the caller has already checked the actor may trade.

    Any JSON value in any field ends in an OrderRequest or an AppError 400 naming the
    field, and nothing that passes can fail in SQL: text is storable, amounts are bounded.
    ``lookup`` finds instruments by code (default: the directory, which may query once).
    """
    lookup = lookup or instruments.get
    if not isinstance(data, dict):
        raise _invalid({"non_field_errors": "Each order must be a JSON object."})
    fields: dict[str, str] = {}
    code = data.get("instrument")
    storable = isinstance(code, str) and len(code) <= MAX_CODE and text_problem(code) is None
    info = lookup(code) if storable else None
    if info is None:
        fields["instrument"] = (f"Unknown instrument {code!r:.80}; list them at /api/v1/instruments/." if code
                                else "Required.")
    side = data.get("side")
    if not _choice(side, ("buy", "sell")):
        fields["side"] = "Must be 'buy' or 'sell'."
    order_type = data.get("type", "limit")
    if not _choice(order_type, ("limit", "market")):
        fields["type"] = "Must be 'limit' or 'market'."
    tif = data.get("tif", "IOC" if order_type == "market" else "GTC")
    if not _choice(tif, TIFS):
        fields["tif"] = "Must be one of GTC, GTD, IOC, FOK."
    elif order_type == "market" and tif not in ("IOC", "FOK"):
        fields["tif"] = "A market order is IOC or FOK."
    post_only = data.get("post_only", False)
    if not isinstance(post_only, bool):
        fields["post_only"] = "Must be true or false."
    elif post_only and (order_type == "market" or tif in ("IOC", "FOK")):
        fields["post_only"] = "Post-only applies to resting limit orders (GTC or GTD)."

    price_fen = None
    if order_type == "limit":
        raw_price = data.get("price")
        if raw_price is None:
            fields["price"] = "A limit order needs a price in CNY per SCU·h, e.g. \"18.50\"."
        else:
            price_fen, problem = price_fen_parse(raw_price, tick_fen=info.tick_fen if info else None)
            if problem:
                fields["price"] = problem
    elif data.get("price") is not None:
        fields["price"] = "A market order takes no price; use protect_ticks to bound it."

    qty = data.get("qty")
    if isinstance(qty, bool) or not isinstance(qty, int) or qty <= 0 or qty > MAX_QTY:
        fields["qty"] = f"A whole number of SCU·h between 1 and {MAX_QTY}."
    elif info and qty % info.lot_scu_h:
        fields["qty"] = f"Must be a multiple of the lot, {info.lot_scu_h} SCU·h."

    expires_at = None
    if tif == "GTD":
        expires_at, problem = _expires_at_parse(data.get("expires_at"), info)
        if problem:
            fields["expires_at"] = problem
    elif data.get("expires_at") is not None:
        fields["expires_at"] = "Only GTD orders take expires_at."

    protect = data.get("protect_ticks", 0 if order_type == "limit" else 1000)
    if isinstance(protect, bool) or not isinstance(protect, int) or protect < 0 or protect > 10**7:
        fields["protect_ticks"] = "A whole number of ticks from 0 to 10,000,000."

    client_order_id = data.get("client_order_id")
    if client_order_id is None:
        client_order_id = uuid.uuid4().hex
    elif not isinstance(client_order_id, str) or not (1 <= len(client_order_id) <= 64):
        fields["client_order_id"] = "A string of 1 to 64 characters."
    elif problem := text_problem(client_order_id):
        fields["client_order_id"] = problem
    unknown = data.keys() - ORDER_FIELDS
    if unknown:
        names = ", ".join(sorted(repr(name) if text_problem(name) else name for name in unknown))
        fields["non_field_errors"] = f"Unknown field(s): {names:.200}."
    if fields:
        raise _invalid(fields)
    return OrderRequest(
        token_id=actor.token.id if actor.token else None,
        organisation_id=actor.membership.organisation_id,
        user_id=actor.user.id,
        instrument_id=info.id,
        client_order_id=client_order_id,
        side=side,
        type=order_type,
        tif=tif,
        post_only=post_only,
        price_fen=price_fen,
        qty=qty,
        expires_at=expires_at,
        protect_ticks=protect,
    )


def rejection(result: OrderResult) -> AppError:
    status, message = REJECTIONS.get(result.code, (400, result.code))
    return AppError(result.code, message, status_code=status)


@dataclass(slots=True)
class BatchPlan:
    """A batch after parsing: outcomes so far (refused items), and what goes to the database."""

    outcomes: list
    requests: list
    positions: list


def batch_plan(items, *, actor: Actor, lookup=None) -> BatchPlan:
    """Parse a batch body's ``orders``; each bad item gets its own refusal, the rest go on."""
    if not isinstance(items, list) or not items:
        raise AppError("invalid", "Send {\"orders\": [...]} with at least one order.", fields={"orders": "Required."})
    if len(items) > MAX_BATCH:
        raise AppError("invalid", f"At most {MAX_BATCH} orders per batch.", fields={"orders": f"At most {MAX_BATCH}."})
    plan = BatchPlan(outcomes=[None] * len(items), requests=[], positions=[])
    for i, item in enumerate(items):
        try:
            plan.requests.append(order_request_parse(item, actor=actor, lookup=lookup))
            plan.positions.append(i)
        except AppError as exc:
            plan.outcomes[i] = {"index": i, "status": "rejected", **exc.as_dict()}
    return plan


# Refusals that depend only on the credentials, not on any order: every order of a request
# gets the same one, so it refuses the request whole (as the DRF path does before reading
# any order), and the fast route forgets a token it had cached.
CREDENTIAL_REFUSALS = frozenset({"token_revoked", "token_expired", "user_inactive", "membership_changed",
                                 "scope_missing"})


def batch_outcomes(plan: BatchPlan, results: list[OrderResult]) -> list[dict]:
    """Each item's result, in the order sent.

    Credentials that no longer hold are no order's fault: they refuse the whole request,
    as on the DRF path. Every order of a batch carries the same token, so none of them
    was written.
    """
    for result in results:
        if result.code in CREDENTIAL_REFUSALS:
            raise rejection(result)
    for i, request, result in zip(plan.positions, plan.requests, results):
        if result.ok:
            plan.outcomes[i] = {"index": i, "status": "accepted" if result.code == "accepted" else "duplicate",
                                "order_id": result.order_id, "client_order_id": request.client_order_id}
        else:
            plan.outcomes[i] = {"index": i, "status": "rejected", **rejection(result).as_dict()}
    return plan.outcomes


PLACE_SQL = ("SELECT idx, order_id, code, held_fen, created_at FROM cx_place_orders(%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], "
             "%s::text[], %s::text[], %s::text[], %s::text[], %s::boolean[], %s::bigint[], %s::bigint[], "
             "%s::timestamptz[], %s::bigint[])")


def place_params(requests: list[OrderRequest]) -> list[str]:
    """PLACE_SQL's arrays as PostgreSQL array literals: far cheaper to send than lists the
    driver adapts element by element."""
    return [
        pg_array([r.token_id for r in requests]),
        pg_array([r.organisation_id for r in requests]),
        pg_array([r.user_id for r in requests]),
        pg_array([r.instrument_id for r in requests]),
        pg_text_array([r.client_order_id for r in requests]),
        pg_text_array([r.side for r in requests]),
        pg_text_array([r.type for r in requests]),
        pg_text_array([r.tif for r in requests]),
        pg_bool_array([r.post_only for r in requests]),
        pg_array([r.price_fen for r in requests]),
        pg_array([r.qty for r in requests]),
        pg_text_array([r.expires_at.isoformat() if r.expires_at else None for r in requests]),
        pg_array([r.protect_ticks for r in requests]),
    ]


def results_from_rows(rows, count: int) -> list[OrderResult]:
    results: list[OrderResult | None] = [None] * count
    for idx, order_id, code, held_fen, created_at in rows:
        results[idx] = OrderResult(order_id=order_id, code=code, held_fen=held_fen, created_at=created_at)
    return results  # type: ignore[return-value]


def orders_submit(requests: list[OrderRequest]) -> list[OrderResult]:
    """Place a batch in one statement on Django's connection (commits with the caller's transaction)."""
    if not requests:
        return []
    with connection.cursor() as cursor:
        cursor.execute(PLACE_SQL, place_params(requests))
        return results_from_rows(cursor.fetchall(), len(requests))


def orders_submit_isolating(requests: list[OrderRequest]) -> list[OrderResult]:
    """orders_submit for a batch, where one order the statement cannot take fails alone.

    Each statement runs in a savepoint; one that fails is tried again in halves until
    the order that breaks it is alone, and that order gets FAILED (as the fast route's
    group commit does). A lost connection fails the whole batch: that is no order's fault.
    Call inside a transaction.
    """
    results: list[OrderResult | None] = [None] * len(requests)
    parts = [(0, len(requests))] if requests else []
    while parts:
        lo, hi = parts.pop()
        try:
            with transaction.atomic():
                results[lo:hi] = orders_submit(requests[lo:hi])
        except (OperationalError, InterfaceError):
            raise
        except Exception as exc:
            if hi - lo > 1:
                log.warning("order batch refused (%s); trying its halves", exc)
                mid = (lo + hi) // 2
                parts += [(mid, hi), (lo, mid)]
            else:
                log.exception("order refused by the database past validation: %r", requests[lo])
                results[lo] = OrderResult(order_id=None, code=FAILED)
    return results  # type: ignore[return-value]
