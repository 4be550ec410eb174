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

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.access import Actor
from exchange.db import pg_array, pg_bool_array, pg_text_array
from exchange.errors import AppError
from exchange.models import Instrument, Order
from exchange.money import fen_from_cny

MAX_QTY = 10**9
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


class InstrumentDirectory:
    """code → InstrumentInfo, cached in the process (instruments are never edited)."""

    def __init__(self):
        self._by_code: dict[str, InstrumentInfo] = {}

    def cached(self, code: str) -> InstrumentInfo | None:
        return self._by_code.get(code)

    def get(self, code: str) -> InstrumentInfo | None:
        info = self._by_code.get(code)
        if info is None:
            row = Instrument.objects.filter(code=code).values_list("id", "code", "tick_fen", "lot_scu_h").first()
            if row is None:
                return None
            info = self._by_code[code] = InstrumentInfo(*row)
        return info


instruments = InstrumentDirectory()


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

    @property
    def ok(self) -> bool:
        return self.code in ("accepted", "duplicate")


# code → (HTTP status, message). Codes come from cx_place_orders.
REJECTIONS: dict[str, tuple[int, str]] = {
    "token_revoked": (401, "The API token was revoked or no longer exists."),
    "token_expired": (401, "The API token has expired; create a new one."),
    "user_inactive": (401, "The account placing the order is deactivated."),
    "membership_changed": (403, "Your membership moved to another organisation or was removed; sign in or connect again."),
    "scope_missing": (403, "This needs the 'trade' scope, and a role that allows trading."),
    "organisation_suspended": (403, "Your organisation is suspended by the regulator; contact the exchange operator."),
    "kyc_pending": (403, "Your organisation is awaiting KYC verification; trading opens once it is verified."),
    "instrument_halted": (409, "Trading in this instrument is halted by the regulator; new orders are refused until it resumes."),
    "gate_closed": (409, "Gate closure has passed for this delivery window; it no longer trades."),
    "auction_in_progress": (409, "The instrument is in a call auction; market orders are refused until it uncrosses — send a limit order."),
    "no_reference_price": (409, "The instrument has no reference price yet; send a limit order."),
    "insufficient_funds": (422, "Available funds do not cover price × quantity plus the maximum taker fee."),
    "insufficient_capacity": (422, "The order exceeds your attested, listed and unsold capacity (or capacity you bought) for this class, hub and window."),
}


def _invalid(fields: dict[str, str]) -> AppError:
    summary = "; ".join(f"{k}: {v}" for k, v in fields.items())
    return AppError("invalid", f"The order is not valid. {summary}", fields=fields)


def order_request_parse(data: dict, *, actor: Actor, lookup=None) -> OrderRequest:
    """Check one order's fields; the caller has already checked the actor may trade.

    ``lookup`` finds instruments by code (default: the directory, which may query once).
    """
    lookup = lookup or instruments.get
    if not isinstance(data, dict):
        raise _invalid({"non_field_errors": "Each order must be a JSON object."})
    fields: dict[str, str] = {}
    code = data.get("instrument")
    info = lookup(code) if isinstance(code, str) else None
    if info is None:
        fields["instrument"] = f"Unknown instrument {code!r}; list them at /api/v1/instruments/." if code else "Required."
    side = data.get("side")
    if side not in ("buy", "sell"):
        fields["side"] = "Must be 'buy' or 'sell'."
    order_type = data.get("type", "limit")
    if order_type not in ("limit", "market"):
        fields["type"] = "Must be 'limit' or 'market'."
    tif = data.get("tif", "IOC" if order_type == "market" else "GTC")
    if tif not in TIFS:
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
            try:
                price_fen = fen_from_cny(raw_price)
            except ValueError as exc:
                fields["price"] = str(exc).capitalize() + "."
            else:
                if price_fen <= 0:
                    fields["price"] = "Must be greater than zero."
                elif info and price_fen % info.tick_fen:
                    fields["price"] = f"Must be a multiple of the tick, {info.tick_fen / 100:.2f} CNY."
    elif data.get("price") is not None:
        fields["price"] = "A market order takes no price; use protect_ticks to bound it."

    qty = data.get("qty")
    if isinstance(qty, bool) or not isinstance(qty, int) or qty <= 0 or qty > MAX_QTY:
        fields["qty"] = f"A whole number of SCU·h between 1 and {MAX_QTY}."
    elif info and qty % info.lot_scu_h:
        fields["qty"] = f"Must be a multiple of the lot, {info.lot_scu_h} SCU·h."

    expires_at = None
    if tif == "GTD":
        raw = data.get("expires_at")
        expires_at = parse_datetime(raw) if isinstance(raw, str) else None
        if expires_at is None or timezone.is_naive(expires_at):
            fields["expires_at"] = "A GTD order needs expires_at as an ISO 8601 time with a zone."
        elif expires_at <= timezone.now():
            fields["expires_at"] = "Must be in the future."
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
    unknown = data.keys() - ORDER_FIELDS
    if unknown:
        fields["non_field_errors"] = f"Unknown field(s): {', '.join(sorted(unknown))}."
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


def batch_outcomes(plan: BatchPlan, results: list[OrderResult]) -> list[dict]:
    """Each item's result, in the order sent."""
    for i, request, result in zip(plan.positions, plan.requests, results):
        if result.ok:
            plan.outcomes[i] = {"index": i, "status": "accepted" if result.code == "accepted" else "duplicate",
                                "order_id": result.order_id, "client_order_id": request.client_order_id}
        else:
            plan.outcomes[i] = {"index": i, "status": "rejected", **rejection(result).as_dict()}
    return plan.outcomes


PLACE_SQL = ("SELECT idx, order_id, code FROM cx_place_orders(%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], "
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
    for idx, order_id, code in rows:
        results[idx] = OrderResult(order_id=order_id, code=code)
    return results  # type: ignore[return-value]


def orders_submit(requests: list[OrderRequest]) -> list[OrderResult]:
    """Place a batch in one statement on Django's connection (commits with the caller's transaction)."""
    if not requests:
        return []
    with connection.cursor() as cursor:
        cursor.execute(PLACE_SQL, place_params(requests))
        return results_from_rows(cursor.fetchall(), len(requests))
