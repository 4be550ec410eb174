"""Deposit and withdrawal requests: a member asks, the operator's treasury completes or refuses.

A member who may trade asks to pay in (and gets a reference for its bank transfer) or out
(to a bank account). Nothing moves until the treasury, having seen the money arrive or sent
it, completes the request: that writes the deposit or withdrawal journal in the same
transaction. A withdrawal is checked against the available balance when asked for and again
when completed (the money may have been spent on bids meanwhile). Each change reaches the
organisation's private stream as a ``funds`` event.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from accounts.access import Actor, actor_refresh, check_actor, check_funds_recorder
from accounts.models import Organisation
from exchange import ledger
from exchange.errors import AppError, NotFound
from exchange.events import private_events_send
from exchange.models import FundsRequest
from exchange.money import cny, fen_from_cny
from exchange.wire import text_problem

MAX_AMOUNT_FEN = 10**12  # 10,000,000,000.00 CNY: beyond it, a typing error
MAX_PENDING = 5

State = FundsRequest.State


def _event(request: FundsRequest) -> tuple[int, dict]:
    return request.organisation_id, {
        "type": "funds", "request_id": request.id, "direction": request.direction, "state": request.state,
        "amount": cny(request.amount_fen), "reference": request.reference, "note": request.note,
    }


def _amount(raw) -> int:
    try:
        amount = fen_from_cny(raw)
    except ValueError as exc:
        raise AppError("invalid", f"The amount is not valid: {exc}.", fields={"amount": str(exc).capitalize() + "."})
    if amount <= 0 or amount > MAX_AMOUNT_FEN:
        raise AppError("invalid", "The amount is not valid.",
                       fields={"amount": f"Greater than zero and at most {cny(MAX_AMOUNT_FEN)} CNY."})
    return amount


def funds_request_create(*, actor: Actor, direction, amount, bank_account="") -> FundsRequest:
    actor = actor_refresh(actor)
    check_actor(actor, scope="trade", acting=True)
    fields = {}
    if direction not in FundsRequest.Direction.values:
        fields["direction"] = "Must be 'deposit' or 'withdrawal'."
    if not isinstance(bank_account, str):
        bank_account = ""
        fields["bank_account"] = "Must be text."
    bank_account = bank_account.strip()
    if direction == FundsRequest.Direction.WITHDRAWAL:
        if not 4 <= len(bank_account) <= 64:
            fields["bank_account"] = "The account to pay into: 4 to 64 characters."
        elif problem := text_problem(bank_account):
            fields["bank_account"] = problem
    elif bank_account:
        fields["bank_account"] = "Only a withdrawal names a bank account."
    if fields:
        raise AppError("invalid", "The request is not valid.", fields=fields)
    amount_fen = _amount(amount)
    with transaction.atomic():
        # One request at a time per organisation: the pending count and the balance stay true.
        Organisation.objects.select_for_update().filter(pk=actor.organisation.pk).first()
        pending = FundsRequest.objects.filter(organisation=actor.organisation, state=State.PENDING).count()
        if pending >= MAX_PENDING:
            raise AppError("too_many_pending", f"{pending} requests are still pending; cancel one or wait for the "
                           "treasury.", status_code=409)
        if direction == FundsRequest.Direction.WITHDRAWAL:
            available = ledger.balances(organisation=actor.organisation)["available"]
            if amount_fen > available:
                raise AppError("insufficient_funds", f"Only {cny(available)} CNY is available to withdraw.",
                               status_code=422, fields={"amount": f"At most {cny(available)} CNY."})
        request = FundsRequest.objects.create(organisation=actor.organisation, requested_by=actor.user,
                                              direction=direction, amount_fen=amount_fen, bank_account=bank_account)
        private_events_send([_event(request)])
    return request


def _pending(request_id: int, **filters) -> FundsRequest:
    """The request, locked; 404 unless it exists (within ``filters``), 409 unless pending."""
    request = (FundsRequest.objects.select_for_update().filter(pk=request_id, **filters).first()
               if isinstance(request_id, int) and 0 < request_id < 2**63 else None)
    if request is None:
        raise NotFound(f"No funds request {request_id}.", code="funds_request_not_found")
    if request.state != State.PENDING:
        raise AppError("not_pending", f"The request is already {request.state}.", status_code=409)
    return request


def _decide(request: FundsRequest, *, state: str, actor: Actor, note: str = "", journal=None) -> FundsRequest:
    request.state, request.note, request.journal = state, note, journal
    request.decided_by, request.decided_at = actor.user, timezone.now()
    request.save(update_fields=["state", "note", "journal", "decided_by", "decided_at"])
    private_events_send([_event(request)])
    return request


def funds_request_cancel(*, actor: Actor, request_id: int) -> FundsRequest:
    actor = actor_refresh(actor)
    check_actor(actor, scope="trade", acting=True)
    with transaction.atomic():
        request = _pending(request_id, organisation=actor.organisation)
        return _decide(request, state=State.CANCELLED, actor=actor)


def _note(note) -> str:
    if not isinstance(note, str) or len(note) > 500 or text_problem(note):
        raise AppError("invalid", "The note is not valid.", fields={"note": "Text of at most 500 characters."})
    return note.strip()


def funds_request_complete(*, actor: Actor, request_id: int, note="") -> FundsRequest:
    """The money has arrived (deposit) or been sent (withdrawal): write the journal."""
    check_funds_recorder(actor)
    note = _note(note)
    with transaction.atomic():
        request = _pending(request_id)
        move = ledger.deposit if request.direction == FundsRequest.Direction.DEPOSIT else ledger.withdraw
        try:
            with transaction.atomic():
                journal = move(organisation=request.organisation, amount_fen=request.amount_fen,
                               memo=f"{request.reference} {note}".strip())
        except AppError as exc:
            if exc.code == "insufficient_funds":
                raise AppError("insufficient_funds", "The organisation no longer has this much available; refuse "
                               "the request or wait.", status_code=409) from None
            raise
        return _decide(request, state=State.COMPLETED, actor=actor, note=note, journal=journal)


def funds_request_refuse(*, actor: Actor, request_id: int, note) -> FundsRequest:
    check_funds_recorder(actor)
    note = _note(note)
    if not note:
        raise AppError("invalid", "Say why the request is refused.", fields={"note": "Required."})
    with transaction.atomic():
        return _decide(_pending(request_id), state=State.REFUSED, actor=actor, note=note)


def funds_request_list(*, actor: Actor):
    """The organisation's requests, newest first; every organisation's for the treasury."""
    queryset = FundsRequest.objects.select_related("organisation").order_by("-id")
    try:
        check_funds_recorder(actor)
    except AppError:
        return queryset.filter(organisation_id=actor.membership.organisation_id)
    return queryset
