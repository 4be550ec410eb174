"""Delivery, metering and disputes: every change to an allocation before it settles.

Each function locks the allocation row (the settlement runner takes it with SKIP LOCKED
and marks it settled in the same transaction), checks on current facts, writes, and sends
its events after commit. Errors are AppError with a code.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.access import Actor, check_actor, check_supervisor
from exchange.errors import AppError, NotFound
from exchange.events import private_events_send
from exchange.models import Allocation
from settlement import secrets
from settlement.access import check_holder, check_provider
from settlement.models import Delivery, Dispute, MeterReport
from settlement.selectors import (
    allocation_get, allocation_provider_id, allocation_window, metered_device_hours, scu_h_of,
)
from supervision.events import console_publish

DEVICE_HOURS_MAX = Decimal("100000000")


def device_hours_parse(value, *, field: str = "device_hours", zero: bool = False) -> Decimal:
    """A positive decimal (or zero, with ``zero``) with at most four places, from a string or
    an integer (never a float)."""
    if isinstance(value, float) or isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise AppError("invalid", "Send device-hours as a decimal string, e.g. \"12.5\".",
                       fields={field: "Must be a decimal string."})
    text = str(value).strip()
    try:
        amount = Decimal(text) if len(text) <= 24 else None
    except InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite():
        raise AppError("invalid", f"{text[:24]!r} is not a number of device-hours.", fields={field: "Not a number."})
    if amount < 0 or (amount == 0 and not zero) or amount > DEVICE_HOURS_MAX:
        raise AppError("invalid", f"Device-hours must be {'0 or more' if zero else 'above 0'} and at most 100,000,000.",
                       fields={field: "Out of range."})
    if amount != amount.quantize(Decimal("0.0001")):
        raise AppError("invalid", "Device-hours have at most four decimal places.", fields={field: "Too precise."})
    return amount


def _parties(allocation: Allocation) -> list[int]:
    """Holder, seller and provider, once each: who hears of a change to the allocation."""
    seen: list[int] = []
    for org_id in (allocation.holder_id, allocation.trade.seller_id, allocation_provider_id(allocation)):
        if org_id not in seen:
            seen.append(org_id)
    return seen


def _event(allocation: Allocation, type_: str, **fields) -> dict:
    return {"type": type_, "allocation_id": allocation.pk, "trade_id": allocation.trade_id,
            "instrument": allocation.trade.instrument.code, **fields}


def _send(allocation: Allocation, type_: str, *, to: list[int] | None = None, **fields) -> None:
    private_events_send([(org_id, _event(allocation, type_, **fields)) for org_id in (to or _parties(allocation))])


def _check_unsettled(allocation: Allocation) -> None:
    if allocation.settled_at is not None:
        raise AppError("allocation_settled", f"Allocation {allocation.pk} is already settled.", status_code=409)


# --- delivery --------------------------------------------------------------------------------

@transaction.atomic
def delivery_start(*, actor: Actor, allocation_id: int, endpoint: str, credentials: str = "") -> Delivery:
    """The provider starts delivery and gives the holder its access details (again, to change them)."""
    allocation = allocation_get(actor=actor, allocation_id=allocation_id, for_update=True)
    check_provider(actor, allocation)
    _check_unsettled(allocation)
    endpoint = (endpoint or "").strip()
    if not endpoint or len(endpoint) > 300:
        raise AppError("invalid", "Give the endpoint the holder connects to (at most 300 characters).",
                       fields={"endpoint": "Required, at most 300 characters."})
    if len(credentials or "") > 4000:
        raise AppError("invalid", "Credentials are at most 4,000 characters.", fields={"credentials": "Too long."})
    window = allocation_window(allocation)
    now = timezone.now()
    if now >= window.end:
        raise AppError("outside_window", f"The delivery window of allocation {allocation.pk} ended at "
                       f"{timezone.localtime(window.end):%Y-%m-%d %H:%M}.", status_code=409)
    delivery = Delivery.objects.filter(pk=allocation.pk).first() or Delivery(allocation=allocation)
    delivery.state = Delivery.State.STARTED
    delivery.endpoint = endpoint
    delivery.credentials_encrypted = secrets.encrypt(credentials or "")
    delivery.started_at, delivery.started_by = now, actor.user
    delivery.answered_at, delivery.answered_by, delivery.holder_note = None, None, ""
    delivery.save()
    from marketplace.services import provenance_append

    listing = allocation.listing_period.listing
    provenance_append(asset=listing.asset, device_type=listing.device_type, kind="capacity_delivered",
                      payload={"allocation": allocation.pk, "trade": allocation.trade_id, "holder": allocation.holder_id,
                               "scu_h": allocation.scu_h, "instrument": allocation.trade.instrument.code,
                               "started_at": now})
    _send(allocation, "delivery.started")
    return delivery


@transaction.atomic
def delivery_answer(*, actor: Actor, allocation_id: int, working: bool, note: str = "") -> Delivery:
    """The holder confirms access works, or reports it missing (also before delivery started)."""
    allocation = allocation_get(actor=actor, allocation_id=allocation_id, for_update=True)
    check_holder(actor, allocation)
    _check_unsettled(allocation)
    if len(note or "") > 500:
        raise AppError("invalid", "A note is at most 500 characters.", fields={"note": "Too long."})
    delivery = Delivery.objects.filter(pk=allocation.pk).first()
    if working and (delivery is None or delivery.started_at is None):
        raise AppError("delivery_not_started", f"The provider has not started delivering allocation {allocation.pk}; "
                       "report access missing instead.", status_code=409)
    delivery = delivery or Delivery(allocation=allocation)
    delivery.state = Delivery.State.CONFIRMED if working else Delivery.State.MISSING
    delivery.answered_at, delivery.answered_by, delivery.holder_note = timezone.now(), actor.user, note or ""
    delivery.save()
    _send(allocation, "delivery.confirmed" if working else "delivery.missing", note=delivery.holder_note)
    return delivery


# --- metering --------------------------------------------------------------------------------

def deliverable_device_hours(allocation: Allocation) -> tuple[int, Decimal]:
    """What the allocation delivers where it is (what it did not resell): SCU·h, and device-hours
    to four places as the allocation's own device-hours are rounded. Metering is bounded by the
    device-hours: SCU·h are rounded, so a bound in SCU·h would let up to half an SCU·h more through."""
    deliverable = allocation.scu_h - allocation.resold_scu_h
    factor = allocation.listing_period.listing.factor
    return deliverable, (Decimal(deliverable) / factor).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def _meter_checks(allocation: Allocation, device_hours: Decimal, *, now, metered: Decimal | None = None) -> None:
    """Refuse a report outside the window or beyond the allocation (``metered``: what its
    reports already add up to, when the caller has read it)."""
    window = allocation_window(allocation)
    if now < window.start or now > window.dispute_until:
        raise AppError(
            "outside_window",
            f"Metering for allocation {allocation.pk} is taken from {timezone.localtime(window.start):%Y-%m-%d %H:%M} "
            f"to {timezone.localtime(window.dispute_until):%Y-%m-%d %H:%M} (China time).", status_code=409)
    deliverable, most = deliverable_device_hours(allocation)
    total = (metered_device_hours(allocation.pk) if metered is None else metered) + device_hours
    if total > most:
        raise AppError(
            "beyond_allocation",
            f"Allocation {allocation.pk} delivers at most {deliverable} SCU·h ({most} device-hours) here; with this "
            f"report {total} device-hours would be metered.", status_code=422)


@transaction.atomic
def metering_report(*, actor: Actor, allocation_id: int, device_hours, source: str = MeterReport.Source.API,
                    note: str = "", now=None) -> MeterReport:
    """Add delivered device-hours to an allocation (the provider, within the window and the allocation)."""
    amount = device_hours_parse(device_hours)
    if len(note or "") > 200:
        raise AppError("invalid", "A note is at most 200 characters.", fields={"note": "Too long."})
    allocation = allocation_get(actor=actor, allocation_id=allocation_id, for_update=True)
    check_provider(actor, allocation)
    _check_unsettled(allocation)
    _meter_checks(allocation, amount, now=now or timezone.now())
    report = MeterReport.objects.create(allocation=allocation, device_hours=amount, source=source, note=note or "",
                                        reported_by=actor.user)
    total = metered_device_hours(allocation.pk)
    _send(allocation, "metering.reported", report_id=report.pk, device_hours=str(amount),
          metered_device_hours=str(total),
          metered_scu_h=scu_h_of(total, allocation.listing_period.listing.factor), scu_h=allocation.scu_h)
    return report


# --- disputes --------------------------------------------------------------------------------

@transaction.atomic
def dispute_open(*, actor: Actor, allocation_id: int, reason: str, report_id: int | None = None) -> Dispute:
    allocation = allocation_get(actor=actor, allocation_id=allocation_id, for_update=True)
    check_holder(actor, allocation)
    _check_unsettled(allocation)
    reason = (reason or "").strip()
    if not reason or len(reason) > 1000:
        raise AppError("invalid", "Say what is wrong with the metering (at most 1,000 characters).",
                       fields={"reason": "Required, at most 1,000 characters."})
    window = allocation_window(allocation)
    now = timezone.now()
    if now < window.start or now > window.dispute_until:
        raise AppError("outside_window", f"Disputes on allocation {allocation.pk} are taken until "
                       f"{timezone.localtime(window.dispute_until):%Y-%m-%d %H:%M} (China time).", status_code=409)
    report = None
    if report_id is not None:
        report = MeterReport.objects.filter(pk=report_id, allocation=allocation).first() if 0 < report_id < 2**63 else None
        if report is None:
            raise AppError("invalid", f"Allocation {allocation.pk} has no metering report {report_id}.",
                           fields={"report_id": "Not a report of this allocation."})
    try:
        with transaction.atomic():
            dispute = Dispute.objects.create(allocation=allocation, report=report, reason=reason, opened_by=actor.user)
    except IntegrityError:
        raise AppError("dispute_open", f"Allocation {allocation.pk} already has an open dispute.",
                       status_code=409) from None
    _send(allocation, "dispute.opened", dispute_id=dispute.pk, reason=reason)
    # The regulators' consoles hear of it too: a dispute waits for their decision.
    console_publish({"type": "dispute.opened", "dispute_id": dispute.pk, "allocation_id": allocation.pk,
                     "instrument": allocation.trade.instrument.code, "holder_id": allocation.holder_id,
                     "reason": reason, "at": dispute.opened_at.isoformat()})
    return dispute


@transaction.atomic
def dispute_resolve(*, actor: Actor, dispute_id: int, outcome: str, note: str,
                    delivered_device_hours=None) -> Dispute:
    """A regulator decides: ``uphold`` (the metering stands) or ``adjust`` (to what was delivered)."""
    check_supervisor(actor)
    dispute = (Dispute.objects.select_for_update().filter(pk=dispute_id).first() if 0 < dispute_id < 2**63 else None)
    if dispute is None:
        raise NotFound(f"No dispute {dispute_id}.", code="dispute_not_found")
    if dispute.state != Dispute.State.OPEN:
        raise AppError("dispute_resolved", f"Dispute {dispute.pk} was already resolved ({dispute.state}).",
                       status_code=409)
    if outcome not in ("uphold", "adjust"):
        raise AppError("invalid", "The outcome is \"uphold\" or \"adjust\".", fields={"outcome": "Unknown outcome."})
    note = (note or "").strip()
    if not note or len(note) > 1000:
        raise AppError("invalid", "Give the reason for the decision (at most 1,000 characters).",
                       fields={"note": "Required, at most 1,000 characters."})
    allocation = (Allocation.objects.select_for_update(of=("self",))
                  .select_related("trade__instrument", "listing_period__listing").get(pk=dispute.allocation_id))
    if outcome == "adjust":
        if delivered_device_hours in (None, ""):
            raise AppError("invalid", "An adjustment says how many device-hours were delivered.",
                           fields={"delivered_device_hours": "Required to adjust."})
        amount = device_hours_parse(delivered_device_hours, field="delivered_device_hours", zero=True)
        deliverable, most = deliverable_device_hours(allocation)
        if amount > most:
            raise AppError("beyond_allocation", f"Allocation {allocation.pk} delivers at most {deliverable} SCU·h "
                           f"({most} device-hours) here.", status_code=422)
        dispute.delivered_device_hours = amount
    dispute.state = Dispute.State.ADJUSTED if outcome == "adjust" else Dispute.State.UPHELD
    dispute.resolution_note, dispute.resolved_by, dispute.resolved_at = note, actor.user, timezone.now()
    dispute.save()
    _send(allocation, "dispute.resolved", dispute_id=dispute.pk, outcome=dispute.state,
          delivered_device_hours=None if dispute.delivered_device_hours is None else str(dispute.delivered_device_hours),
          note=note)
    return dispute


# --- metering from a CSV file ----------------------------------------------------------------

CSV_MAX_ROWS = 10_000
CSV_COLUMNS = ("allocation_id", "device_hours")


def metering_import(*, actor: Actor, text: str, source: str = MeterReport.Source.CSV, first_row: int = 1,
                    progress=None, now=None) -> list[dict]:
    """Report metering from CSV text (header ``allocation_id,device_hours[,note]``): each row
    is reported or refused on its own, with its reason; none is skipped silently. The rules
    are metering_report's, applied in file order to the rows' allocations locked at once,
    so a file costs a few statements, not a few per row. ``first_row`` numbers the rows of
    a file sent in parts; ``progress(done, total)`` is called as rows are checked. Returns
    one result per data row: ``{"row", "allocation_id", "ok", "report_id" | "code" and "detail"}``."""
    import csv
    import io

    check_actor(actor, scope="provide", acting=True)
    try:
        reader = csv.reader(io.StringIO(text))
        header = [h.strip().lower() for h in next(reader, [])]
        if header[:2] != list(CSV_COLUMNS):
            raise AppError("invalid", "The first line must be the header allocation_id,device_hours (and optionally "
                           ",note).", fields={"file": f"Header is {','.join(header)[:80] or 'empty'}."})
        rows = [row for row in reader if any(cell.strip() for cell in row)]
    except csv.Error as exc:
        raise AppError("invalid", f"The file is not readable as CSV ({exc}).", fields={"file": "Not CSV."}) from None
    if len(rows) > CSV_MAX_ROWS:
        raise AppError("invalid", f"At most {CSV_MAX_ROWS:,} rows per upload; this one has {len(rows):,}. "
                       "Split the file.", fields={"file": "Too many rows."})
    has_note = len(header) > 2 and header[2] == "note"
    parsed = []  # (result, allocation id, device-hours, note); the id is None for a row refused already
    results = []
    for n, row in enumerate(rows):
        cells = [c.strip() for c in row]
        result: dict = {"row": first_row + n, "allocation_id": cells[0] if cells else ""}
        results.append(result)
        try:
            if len(cells) < 2:
                raise AppError("invalid", "A row needs an allocation id and device-hours.")
            if any("\x00" in cell for cell in cells):
                raise AppError("invalid", "The row contains a NUL character.")
            try:
                allocation_id = int(cells[0])
            except ValueError:
                raise AppError("invalid", f"{cells[0][:20]!r} is not an allocation id.") from None
            result["allocation_id"] = allocation_id
            note = cells[2] if has_note and len(cells) > 2 else ""
            if len(note) > 200:
                raise AppError("invalid", "A note is at most 200 characters.")
            parsed.append((result, allocation_id, device_hours_parse(cells[1]), note))
        except AppError as exc:
            result.update(ok=False, code=exc.code, detail=exc.detail)
            parsed.append((result, None, None, ""))
    with transaction.atomic():
        _metering_rows(actor, parsed, source=source, now=now or timezone.now(), total=len(rows), progress=progress)
    return results


def _metering_rows(actor: Actor, parsed: list, *, source: str, now, total: int, progress) -> None:
    from django.db.models import Sum

    from settlement.selectors import allocations_visible

    ids = sorted({allocation_id for _, allocation_id, _, _ in parsed if allocation_id and 0 < allocation_id < 2**63})
    allocations = {a.pk: a for a in allocations_visible(actor).filter(pk__in=ids).order_by("pk")
                   .select_for_update(of=("self",))}
    metered = {row["allocation_id"]: row["s"] for row in MeterReport.objects.filter(allocation_id__in=ids)
               .values("allocation_id").annotate(s=Sum("device_hours"))}
    running = dict(metered)  # as each accepted report leaves it, for its event
    accepted = []
    for n, (result, allocation_id, amount, note) in enumerate(parsed):
        if allocation_id is None:
            if progress is not None:
                progress(n + 1, total)
            continue
        try:
            allocation = allocations.get(allocation_id)
            if allocation is None:
                raise NotFound(f"No allocation {allocation_id} of yours.", code="allocation_not_found")
            check_provider(actor, allocation)
            _check_unsettled(allocation)
            _meter_checks(allocation, amount, now=now, metered=metered.get(allocation_id, Decimal(0)))
            metered[allocation_id] = metered.get(allocation_id, Decimal(0)) + amount
            accepted.append((result, MeterReport(allocation=allocation, device_hours=amount, source=source, note=note,
                                                 reported_by=actor.user)))
        except AppError as exc:
            result.update(ok=False, code=exc.code, detail=exc.detail)
        if progress is not None:
            progress(n + 1, total)
    MeterReport.objects.bulk_create([report for _, report in accepted])
    events = []
    for result, report in accepted:
        result.update(ok=True, report_id=report.pk)
        allocation = report.allocation
        running[allocation.pk] = running.get(allocation.pk, Decimal(0)) + report.device_hours
        events += [(org_id, _event(allocation, "metering.reported", report_id=report.pk,
                                   device_hours=str(report.device_hours),
                                   metered_device_hours=str(running[allocation.pk]),
                                   metered_scu_h=scu_h_of(running[allocation.pk], allocation.listing_period.listing.factor),
                                   scu_h=allocation.scu_h))
                   for org_id in _parties(allocation)]
    private_events_send(events)
