"""Exchange-wide records. Trading models join this module as the trading loop lands."""

from django.conf import settings
from django.db import models


class IdempotencyRecord(models.Model):
    """The first response to a POST that carried an ``Idempotency-Key``, kept for replays."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    key = models.CharField(max_length=255)
    path = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True)
    response_body = models.JSONField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotency_user_key")]


# ---------------------------------------------------------------------------------------
# Trading. Money is integer fen (0.01 CNY); quantities are integer SCU·h.
#
# Journals, legs, trades and allocations are written by the engine thousands per batch,
# referring only to rows it read or created in the same transaction, and nothing deletes
# rows they refer to (PROTECT). Their references carry no database foreign-key constraint
# (``db_constraint=False``): checking one per row at commit was about a third of the
# engine's PostgreSQL time. ``invariants_check`` proves that every reference resolves.
# ---------------------------------------------------------------------------------------


class FeeTier(models.Model):
    """Maker and taker fees in basis points. Organisations without a tier pay the default."""

    code = models.SlugField(unique=True)
    name = models.CharField(max_length=100)
    maker_bps = models.PositiveSmallIntegerField()
    taker_bps = models.PositiveSmallIntegerField()
    is_default = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["is_default"], condition=models.Q(is_default=True), name="one_default_tier"),
            # Bids hold the taker fee; no fee may exceed it.
            models.CheckConstraint(
                condition=models.Q(maker_bps__lte=models.F("taker_bps"), taker_bps__lte=1000), name="fee_bps_sane"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.maker_bps}/{self.taker_bps} bps)"


class MemberTier(models.Model):
    organisation = models.OneToOneField("accounts.Organisation", on_delete=models.CASCADE, related_name="fee_tier")
    tier = models.ForeignKey(FeeTier, on_delete=models.PROTECT)


class Instrument(models.Model):
    """compute class × hub × delivery window, e.g. ``AI80.NX.2026-11-24``."""

    class State(models.TextChoices):
        PRE_OPEN = "pre_open", "Pre-open (opening auction)"
        CONTINUOUS = "continuous", "Continuous trading"
        AUCTION = "auction", "Volatility auction"
        HALTED = "halted", "Halted"
        CLOSED = "closed", "Closed"

    code = models.CharField(max_length=40, unique=True)
    compute_class = models.ForeignKey("marketplace.ComputeClass", on_delete=models.PROTECT, related_name="instruments")
    hub = models.ForeignKey("marketplace.Hub", on_delete=models.PROTECT, related_name="instruments")
    delivery_start = models.DateTimeField()
    delivery_end = models.DateTimeField()
    gate_closure_at = models.DateTimeField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.PRE_OPEN)
    # When the current call auction (opening or volatility) uncrosses by itself.
    auction_ends_at = models.DateTimeField(null=True, blank=True)
    tick_fen = models.PositiveIntegerField(default=1)
    lot_scu_h = models.PositiveIntegerField(default=1)
    reference_price_fen = models.BigIntegerField(null=True, blank=True)
    band_bps = models.PositiveIntegerField(default=1000)
    last_price_fen = models.BigIntegerField(null=True, blank=True)
    best_bid_fen = models.BigIntegerField(null=True, blank=True)
    best_ask_fen = models.BigIntegerField(null=True, blank=True)
    # Market-data sequence: one step per published change, so clients can detect gaps.
    md_seq = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["delivery_start", "compute_class_id", "hub_id"]
        constraints = [
            models.UniqueConstraint(fields=["compute_class", "hub", "delivery_start"], name="instrument_unique_window"),
        ]
        indexes = [models.Index(fields=["state", "gate_closure_at"])]

    def __str__(self) -> str:
        return self.code


class LedgerAccount(models.Model):
    """A balance in fen. ``balance`` is a cache of the sum of legs; `check_ledger` proves it."""

    class Kind(models.TextChoices):
        AVAILABLE = "available", "Available"
        HELD = "held", "Held for open bids"
        ESCROW = "escrow", "Escrow for traded, undelivered capacity"
        PAYABLE = "payable", "Provider payable"
        FEES = "fees", "Exchange fees"
        EXTERNAL = "external", "External funds"
        # What an organisation owes from settlement (never above zero) and is owed (never below).
        DEBT = "debt", "Debt from settlement"
        RECEIVABLE = "receivable", "Credits owed to you"

    organisation = models.ForeignKey(
        "accounts.Organisation", on_delete=models.PROTECT, null=True, blank=True, related_name="ledger_accounts"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    balance = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organisation", "kind"], name="ledger_account_unique"),
            models.UniqueConstraint(
                fields=["kind"], condition=models.Q(organisation__isnull=True), name="ledger_house_account_unique"
            ),
            # Customer money accounts never go negative; payable may (fees owed before delivery).
            models.CheckConstraint(
                condition=~models.Q(kind__in=["available", "held", "escrow", "receivable"]) | models.Q(balance__gte=0),
                name="ledger_customer_nonnegative",
            ),
            models.CheckConstraint(condition=~models.Q(kind="debt") | models.Q(balance__lte=0),
                                   name="ledger_debt_nonpositive"),
        ]

    def __str__(self) -> str:
        return f"{self.organisation or 'exchange'}:{self.kind}"


class Journal(models.Model):
    """One money movement; its legs sum to zero."""

    class Kind(models.TextChoices):
        DEPOSIT = "deposit", "Deposit"
        WITHDRAWAL = "withdrawal", "Withdrawal"
        HOLD = "hold", "Hold for a bid"
        RELEASE = "release", "Hold released"
        TRADE = "trade", "Trade"
        SETTLEMENT = "settlement", "Settlement: the seller paid from escrow"
        REFUND = "refund", "Refund of undelivered capacity"
        SLA_CREDIT = "sla_credit", "SLA credit"
        DEBT = "debt", "Debt recorded"
        DEBT_REPAYMENT = "debt_repayment", "Debt repaid from proceeds"
        PAYOUT = "payout", "Payout to owners"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    # Order and allocation are each empty on most journals: indexed where set (below), so a
    # settlement's journals put no empty order in an index, nor a trade's an empty allocation.
    order = models.ForeignKey("Order", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                              db_constraint=False, db_index=False)
    trade = models.ForeignKey("Trade", on_delete=models.PROTECT, null=True, blank=True, related_name="journals",
                              db_constraint=False)
    # Settlement journals name the allocation they settle.
    allocation = models.ForeignKey("Allocation", on_delete=models.PROTECT, null=True, blank=True, related_name="journals",
                                   db_constraint=False, db_index=False)
    memo = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["order"], condition=models.Q(order__isnull=False), name="journal_order_idx"),
            models.Index(fields=["allocation"], condition=models.Q(allocation__isnull=False),
                         name="journal_allocation_idx"),
        ]


class LedgerLeg(models.Model):
    journal = models.ForeignKey(Journal, on_delete=models.PROTECT, related_name="legs", db_constraint=False)
    account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="legs", db_constraint=False)
    amount_fen = models.BigIntegerField()


class Order(models.Model):
    class Side(models.TextChoices):
        BUY = "buy", "Buy"
        SELL = "sell", "Sell"

    class Type(models.TextChoices):
        LIMIT = "limit", "Limit"
        MARKET = "market", "Market"

    class Tif(models.TextChoices):
        GTC = "GTC", "Good till cancelled (gate closure)"
        GTD = "GTD", "Good till date"
        IOC = "IOC", "Immediate or cancel"
        FOK = "FOK", "Fill or kill"

    class Status(models.TextChoices):
        ACCEPTED = "accepted", "Accepted, waiting for the engine"
        OPEN = "open", "Open"
        PARTIALLY_FILLED = "partially_filled", "Partially filled"
        FILLED = "filled", "Filled"
        CANCELLED = "cancelled", "Cancelled"
        EXPIRED = "expired", "Expired"
        REJECTED = "rejected", "Rejected by the engine"

    LIVE = (Status.ACCEPTED, Status.OPEN, Status.PARTIALLY_FILLED)

    # Orders are written only by cx_place_orders, which reads the token, organisation and
    # instrument of each order before inserting it; a database constraint would check each
    # again at commit (deferred triggers: about 40 % of order entry's time in PostgreSQL).
    # invariants.references_check verifies them instead, like the engine's rows.
    # No index of its own: order_live_idx serves the engine's and the depth snapshot's reads.
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="orders", db_index=False,
                                   db_constraint=False)
    # No index of its own: the two indexes below that start with it serve every lookup.
    organisation = models.ForeignKey("accounts.Organisation", on_delete=models.PROTECT, related_name="orders",
                                     db_index=False, db_constraint=False)
    # Copied from the organisation at entry: self-trade prevention compares owners.
    owner_id = models.BigIntegerField()
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+",
                             db_constraint=False)
    client_order_id = models.CharField(max_length=64)
    side = models.CharField(max_length=4, choices=Side.choices)
    type = models.CharField(max_length=6, choices=Type.choices)
    tif = models.CharField(max_length=3, choices=Tif.choices)
    post_only = models.BooleanField(default=False)
    price_fen = models.BigIntegerField(null=True)
    # The limit as entered: price_fen follows amendments, and the audit trail and the replay
    # of an instrument's commands need the price each order came in with. Empty for market
    # orders (and for orders entered before it was kept).
    entry_price_fen = models.BigIntegerField(null=True, blank=True)
    qty = models.BigIntegerField()
    remaining = models.BigIntegerField()
    filled = models.BigIntegerField(default=0)
    expires_at = models.DateTimeField(null=True, blank=True)
    protect_ticks = models.BigIntegerField(default=0)
    # Bids: fen still held for this order, and fen held per lot (price + max taker fee).
    held_fen = models.BigIntegerField(default=0)
    hold_per_lot_fen = models.BigIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACCEPTED)
    reason = models.CharField(max_length=32, blank=True)
    # Inbox sequence of the command that gave the order its current time priority.
    priority_seq = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organisation", "client_order_id"], name="order_client_id_unique"),
            models.CheckConstraint(condition=models.Q(remaining__gte=0, filled__gte=0, held_fen__gte=0), name="order_nonnegative"),
        ]
        indexes = [
            models.Index(fields=["organisation", "-id"]),
            models.Index(fields=["instrument", "status"], condition=models.Q(status__in=["accepted", "open", "partially_filled"]), name="order_live_idx"),
        ]


class InboxCommand(models.Model):
    """Commands for the engine, in sequence. A row is processed exactly once (``processed_at``)."""

    class Action(models.TextChoices):
        NEW = "new", "New order"
        CANCEL = "cancel", "Cancel"
        AMEND = "amend", "Amend"
        UNCROSS = "uncross", "Uncross the call auction"
        AUCTION = "auction", "Start a call auction"
        CLOSE = "close", "Gate closure: cancel everything"
        EXPIRE = "expire", "Expire due GTD orders"

    seq = models.BigAutoField(primary_key=True)
    # Written with the order (same reason as Order's references); no indexes of their own:
    # every lookup is of pending commands, which inbox_pending_idx serves.
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="+", db_constraint=False,
                                   db_index=False)
    action = models.CharField(max_length=8, choices=Action.choices)
    order = models.ForeignKey(Order, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                              db_constraint=False, db_index=False)
    new_price_fen = models.BigIntegerField(null=True, blank=True)
    new_qty = models.BigIntegerField(null=True, blank=True)
    # An amend that needs more funds holds them at entry; the engine adds them to the order
    # (or gives them back if the amend is refused).
    extra_hold_fen = models.BigIntegerField(default=0)
    new_hold_per_lot_fen = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["seq"], condition=models.Q(processed_at__isnull=True), name="inbox_pending_idx"),
            # An instrument's commands, for the audit trail and its replay. Only processed rows:
            # a row gets its entry when the engine marks it (that UPDATE writes every index
            # anyway), not also when it is inserted; pending ones are few and inbox_pending_idx
            # finds them.
            models.Index(fields=["instrument", "seq"], condition=models.Q(processed_at__isnull=False),
                         name="inbox_instrument_idx"),
            # Amendments, cancels and the instruments' own commands, newest first and by order
            # (the audit trail). Order entry's NEW rows, most of the inbox, are in neither.
            models.Index(fields=["seq"], condition=~models.Q(action="new"), name="inbox_change_idx"),
            models.Index(fields=["order", "seq"], condition=~models.Q(action="new"), name="inbox_change_order_idx"),
        ]


class Trade(models.Model):
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="trades", db_constraint=False,
                                   db_index=False)
    # The inbox command that produced it and its place among that command's fills: a
    # replayed command can never write the same trade twice.
    inbox_seq = models.BigIntegerField()
    match_index = models.IntegerField()
    price_fen = models.BigIntegerField()
    qty = models.BigIntegerField()
    # Nothing looks trades up by order: no index to maintain per trade.
    buy_order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="+", db_constraint=False, db_index=False)
    sell_order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="+", db_constraint=False,
                                   db_index=False)
    # Indexed with the id below (an organisation's trades newest first: fills, the audit trail).
    buyer = models.ForeignKey("accounts.Organisation", on_delete=models.PROTECT, related_name="+", db_constraint=False,
                              db_index=False)
    seller = models.ForeignKey("accounts.Organisation", on_delete=models.PROTECT, related_name="+", db_constraint=False,
                               db_index=False)
    aggressor = models.CharField(max_length=7, choices=[("buy", "Buy"), ("sell", "Sell"), ("auction", "Auction")])
    buyer_fee_fen = models.BigIntegerField()
    seller_fee_fen = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["inbox_seq", "match_index"], name="trade_once")]
        indexes = [models.Index(fields=["instrument", "-id"]), models.Index(fields=["buyer", "id"], name="trade_buyer_idx"),
                   models.Index(fields=["seller", "id"], name="trade_seller_idx")]


class CapacityPosition(models.Model):
    """An organisation's capacity in one instrument, beyond what its listings give.

    Sellable = listed (from marketplace listing periods) + bought − sold − held.
    """

    organisation = models.ForeignKey("accounts.Organisation", on_delete=models.PROTECT, related_name="+")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="+")
    held = models.BigIntegerField(default=0)
    sold = models.BigIntegerField(default=0)
    bought = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organisation", "instrument"], name="capacity_position_unique"),
            models.CheckConstraint(condition=models.Q(held__gte=0, sold__gte=0, bought__gte=0), name="capacity_nonnegative"),
        ]


class Allocation(models.Model):
    """Which asset and device type deliver (part of) a trade, and how many device-hours."""

    trade = models.ForeignKey(Trade, on_delete=models.PROTECT, related_name="allocations", db_constraint=False)
    holder = models.ForeignKey("accounts.Organisation", on_delete=models.PROTECT, related_name="allocations",
                               db_constraint=False)
    listing_period = models.ForeignKey("marketplace.ListingPeriod", on_delete=models.PROTECT, related_name="allocations",
                                       db_constraint=False)
    # A resale passes on part of an earlier allocation; the chain leads back to the listing.
    # Indexed where set (below): most allocations are no resale.
    source = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="resales",
                               db_constraint=False, db_index=False)
    scu_h = models.BigIntegerField()
    device_hours = models.DecimalField(max_digits=18, decimal_places=4)
    # SCU·h of this allocation passed on by resale.
    resold_scu_h = models.BigIntegerField(default=0)
    # Set by the settlement runner in the transaction that settles it (settlement.Settlement).
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(scu_h__gt=0, resold_scu_h__gte=0), name="allocation_positive")]
        indexes = [
            models.Index(fields=["id"], condition=models.Q(settled_at__isnull=True), name="allocation_unsettled_idx"),
            models.Index(fields=["source"], condition=models.Q(source__isnull=False), name="allocation_resale_idx"),
        ]


class EventSequence(models.Model):
    """The last sequence number of an organisation's private event stream."""

    organisation = models.OneToOneField("accounts.Organisation", on_delete=models.CASCADE, primary_key=True, related_name="+")
    seq = models.BigIntegerField(default=0)


class FundsRequest(models.Model):
    """A member's request to pay money in (a bank transfer quoting ``reference``) or out (to
    ``bank_account``). The operator's treasury completes it once the money has moved — which
    writes the deposit or withdrawal journal — or refuses it with a note."""

    class Direction(models.TextChoices):
        DEPOSIT = "deposit", "Deposit"
        WITHDRAWAL = "withdrawal", "Withdrawal"

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        COMPLETED = "completed", "Completed"
        REFUSED = "refused", "Refused"
        CANCELLED = "cancelled", "Cancelled"

    organisation = models.ForeignKey("accounts.Organisation", on_delete=models.PROTECT, related_name="funds_requests")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    direction = models.CharField(max_length=10, choices=Direction.choices)
    amount_fen = models.BigIntegerField()
    bank_account = models.CharField(max_length=64, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    note = models.CharField(max_length=500, blank=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    journal = models.OneToOneField(Journal, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(amount_fen__gt=0), name="funds_request_positive"),
            models.CheckConstraint(condition=~models.Q(state="completed") | models.Q(journal__isnull=False),
                                   name="funds_request_completed_has_journal"),
        ]
        indexes = [models.Index(fields=["organisation", "-id"]),
                   models.Index(fields=["id"], condition=models.Q(state="pending"), name="funds_request_pending_idx")]

    @property
    def reference(self) -> str:
        """What a deposit's bank transfer quotes, so the treasury can match it."""
        return f"CX-{self.id:08d}"
