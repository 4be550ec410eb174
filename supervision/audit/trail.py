"""The audit trail: filters, keyset pages across the branches, and the streamed export.

A page asks every wanted branch for at most ``limit`` rows after its own position, merges
them newest first and keeps ``limit``; the next page's cursor holds each branch's position
(signed, and bound to the filters), so no row is skipped or shown twice however the
branches interleave, and no page costs more than ``limit`` rows per branch, however deep.
The export reads every branch through a server-side cursor in one read-only snapshot and
merges them as they come, so a day of the busiest market never sits in memory at once.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from datetime import timezone as dt_timezone
from itertools import islice
from zoneinfo import ZoneInfo

from django.core import signing
from django.db import connection, transaction

from accounts.models import Organisation, User
from exchange.errors import AppError
from exchange.models import Instrument
from exchange.wire import whole_number
from supervision.audit.branches import BRANCHES, KINDS, WINDOWED, Branch, Scope
from supervision.audit.windows import id_windows

CHINA = ZoneInfo("Asia/Shanghai")
PAGE_SIZE, MAX_PAGE_SIZE = 50, 200
CURSOR_SALT = "supervision.audit.cursor"
# Times a search may name: any the exchange can hold, and none whose window arithmetic overflows.
EARLIEST, LATEST = datetime(2000, 1, 1, tzinfo=dt_timezone.utc), datetime(3000, 1, 1, tzinfo=dt_timezone.utc)


@dataclass(frozen=True)
class AuditFilters:
    organisation_id: int | None = None
    instrument_id: int | None = None
    start: datetime | None = None  # aware; inclusive
    end: datetime | None = None  # aware; exclusive
    kinds: frozenset[str] = frozenset(KINDS)

    def digest(self) -> str:
        text = repr((self.organisation_id, self.instrument_id, self.start and self.start.isoformat(),
                     self.end and self.end.isoformat(), sorted(self.kinds)))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class AuditRow:
    at: datetime
    kind: str
    branch: str
    key: tuple  # (time or None, id): the branch's keyset position
    organisation_id: int | None
    counterparty_id: int | None
    instrument_id: int | None
    user_id: int | None
    detail: dict  # the record's fields; amounts are CNY strings already (the branches convert them)
    detail_text: str = ""  # as PostgreSQL wrote it (the CSV takes it as it is)
    organisation: str | None = None
    counterparty: str | None = None
    instrument: str | None = None
    user: str | None = None

    @property
    def record(self) -> tuple[str, int]:
        """What the row is about, whichever plan read it: (kind, its id; an order's is the order's)."""
        return self.kind, self.detail["order"] if self.kind == "order" else self.key[1]


@dataclass
class AuditPage:
    rows: list[AuditRow]
    next_cursor: str | None  # None: the last page
    has_previous: bool = False
    previous_cursor: str | None = None  # None with has_previous: the previous page is the first


# --------------------------------------------------------------------------- input


def _invalid(name: str, message: str) -> AppError:
    return AppError("invalid", message, fields={name: message})


def _moment(raw: str, name: str, *, local: bool) -> datetime | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        if len(raw) > 40:
            raise ValueError
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise _invalid(name, "A date and time in ISO 8601, e.g. 2026-12-07T09:30:00Z.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=CHINA if local else dt_timezone.utc)
    if not EARLIEST <= moment < LATEST:
        raise _invalid(name, "A time between the years 2000 and 2999.")
    return moment


def audit_filters_parse(params, *, local: bool = False) -> AuditFilters:
    """Filters from a query: ``organisation`` (id), ``instrument`` (code), ``from`` and ``to``
    (ISO 8601; without an offset, UTC — or China time when ``local``, as the page's inputs
    send them) and ``kind`` (one or more, repeated or comma-separated)."""
    organisation_id = instrument_id = None
    raw = (params.get("organisation") or "").strip()
    if raw:
        organisation_id = whole_number(raw)
        if organisation_id is None or not Organisation.objects.filter(pk=organisation_id).exists():
            raise _invalid("organisation", "No organisation with that id.")
    raw = (params.get("instrument") or "").strip()
    if raw:
        instrument_id = Instrument.objects.filter(code=raw[:40]).values_list("id", flat=True).first()
        if instrument_id is None:
            raise _invalid("instrument", "No instrument with that code.")
    start, end = _moment(params.get("from"), "from", local=local), _moment(params.get("to"), "to", local=local)
    if start and end and start >= end:
        raise _invalid("to", "The end of the period must come after its start.")
    values = params.getlist("kind") if hasattr(params, "getlist") else [params.get("kind") or ""]
    kinds = {kind.strip() for value in values for kind in str(value).split(",") if kind.strip()}
    if unknown := sorted(kinds - set(KINDS)):
        raise _invalid("kind", f"Unknown kind {unknown[0][:40]!r}; kinds are {', '.join(KINDS)}.")
    return AuditFilters(organisation_id, instrument_id, start, end, frozenset(kinds or KINDS))


def page_size_parse(raw) -> int:
    raw = str(raw or "").strip()
    if not raw:
        return PAGE_SIZE
    size = whole_number(raw, digits=6)
    if size is None or not 1 <= size <= MAX_PAGE_SIZE:
        raise _invalid("page_size", f"A whole number from 1 to {MAX_PAGE_SIZE}.")
    return size


# --------------------------------------------------------------------------- reading


def _scope(filters: AuditFilters) -> Scope:
    return Scope(filters.organisation_id, filters.instrument_id, filters.start, filters.end, filters.kinds,
                 id_windows(WINDOWED, start=filters.start, end=filters.end))


def _row(branch: Branch, values) -> AuditRow:
    at, kind, k_at, k_id, org, other, ins, usr, detail = values
    # Django has psycopg hand JSON over as text (its JSONField decodes it).
    if isinstance(detail, str):
        return AuditRow(at, kind, branch.name, (k_at, k_id), org, other, ins, usr, json.loads(detail), detail)
    return AuditRow(at, kind, branch.name, (k_at, k_id), org, other, ins, usr, detail, json.dumps(detail))


def _cursor_decode(cursor: str | None, filters: AuditFilters) -> dict:
    if not cursor:
        return {"b": {}, "d": []}
    try:
        state = signing.loads(cursor, salt=CURSOR_SALT)
    except signing.BadSignature:
        raise AppError("invalid_cursor", "This cursor was not given by the audit trail.") from None
    if state.get("f") != filters.digest():
        raise AppError("invalid_cursor", "This cursor belongs to a search with other filters.")
    return state


def _position(raw) -> tuple | None:
    if raw is None:
        return None
    return (datetime.fromisoformat(raw[0]) if raw[0] else None, raw[1])


RANK = {branch.name: rank for rank, branch in enumerate(BRANCHES)}


def _order(row: AuditRow) -> tuple:
    """Newest first across branches; records of one moment in the branches' order, so that a
    page back shows them as the page forward did."""
    return row.at, RANK[row.branch]


def _encode(filters: AuditFilters, positions: dict, done) -> str:
    return signing.dumps({"f": filters.digest(), "b": positions, "d": sorted(done)}, salt=CURSOR_SALT, compress=True)


def _key_text(row: AuditRow, *, step: int = 0) -> list:
    return [row.key[0].isoformat() if row.key[0] else None, row.key[1] + step]


def audit_page(*, filters: AuditFilters, cursor: str | None = None, limit: int = PAGE_SIZE) -> AuditPage:
    """The ``limit`` newest records after ``cursor`` (None: the newest of all), with names, and
    the cursors of the pages after and before it."""
    state = _cursor_decode(cursor, filters)
    positions, done = dict(state["b"]), set(state["d"])
    scope = _scope(filters)
    fetched: dict[str, list[AuditRow]] = {}
    with connection.cursor() as db:
        for branch in BRANCHES:
            if branch.wanted(scope) and branch.name not in done:
                sql, params = branch.query(scope, after=_position(positions.get(branch.name)), limit=limit + 1)
                db.execute(sql, {**params, "limit": limit + 1})  # one more: is there more?
                fetched[branch.name] = [_row(branch, values) for values in db.fetchall()]
    # Each branch's rows are in its own key order; merging keeps that order within a branch.
    rows = list(islice(heapq.merge(*fetched.values(), key=_order, reverse=True), limit))
    taken: dict[str, int] = {}
    after = dict(positions)
    for row in rows:
        taken[row.branch] = taken.get(row.branch, 0) + 1
        after[row.branch] = _key_text(row)
    ended = set(done)
    for name, branch_rows in fetched.items():
        if taken.get(name, 0) == len(branch_rows):
            ended.add(name)
    more = any(name not in ended for name in fetched)
    page = AuditPage(rows, _encode(filters, after, ended) if more else None)
    if cursor:
        page.has_previous, page.previous_cursor = _previous(filters, scope, positions, done, limit)
    Names().fill(rows)
    return page


def _previous(filters: AuditFilters, scope: Scope, positions: dict, done: set,
              limit: int) -> tuple[bool, str | None]:
    """The page before one that starts at ``positions``: the ``limit`` oldest records newer than
    its start, each branch read back towards the newest. Answers whether there is one, and
    its cursor (None: it is the first page)."""
    fetched: dict[str, list[AuditRow]] = {}
    with connection.cursor() as db:
        for branch in BRANCHES:
            if branch.wanted(scope) and positions.get(branch.name) is not None:
                sql, params = branch.query(scope, after=_position(positions[branch.name]), limit=limit + 1,
                                           newer=True)
                db.execute(sql, {**params, "limit": limit + 1})
                fetched[branch.name] = [_row(branch, values) for values in db.fetchall()]
    rows = list(islice(heapq.merge(*fetched.values(), key=_order), limit))
    if not rows:
        return False, None
    if sum(len(branch_rows) for branch_rows in fetched.values()) <= limit:
        return True, None  # everything newer fits on one page: the first
    start, ended = dict(positions), set(done)
    for row in rows:  # oldest first: each branch's last is its newest on that page
        # The page starts at this row: "older than" the key just above it.
        start[row.branch] = _key_text(row, step=1)
        ended.discard(row.branch)
    return True, _encode(filters, start, ended)


def _stream(db, branch: Branch, chunk: int) -> Iterator[AuditRow]:
    while batch := db.fetchmany(chunk):
        for values in batch:
            yield _row(branch, values)


def audit_rows(*, filters: AuditFilters, chunk: int = 2000) -> Iterator[list[AuditRow]]:
    """Every record the filters select, newest first, in named lists of up to ``chunk``.

    One read-only snapshot (when it starts the transaction), one server-side cursor per
    branch: PostgreSQL hands each branch's rows over ``chunk`` at a time as the merge
    needs them."""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost:  # (inside a caller's transaction, the caller's snapshot it is)
            with connection.cursor() as db:
                db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        scope = _scope(filters)
        cursors, streams = [], []
        try:
            for branch in BRANCHES:
                if branch.wanted(scope):
                    sql, params = branch.query(scope, after=None, limit=None)
                    db = connection.chunked_cursor()
                    cursors.append(db)
                    db.execute(sql, params)
                    streams.append(_stream(db, branch, chunk))
            merged = heapq.merge(*streams, key=_order, reverse=True)
            names = Names()
            while rows := list(islice(merged, chunk)):
                names.fill(rows)
                yield rows
        finally:
            for db in cursors:
                db.close()


# --------------------------------------------------------------------------- names


@dataclass
class Names:
    """Organisation names, instrument codes and users' e-mail addresses, read once each."""

    organisations: dict[int, str] = field(default_factory=dict)
    instruments: dict[int, str] = field(default_factory=dict)
    users: dict[int, str] = field(default_factory=dict)

    def fill(self, rows: list[AuditRow]) -> None:
        self._load(self.organisations, Organisation, "name",
                   {row.organisation_id for row in rows} | {row.counterparty_id for row in rows})
        self._load(self.instruments, Instrument, "code", {row.instrument_id for row in rows})
        self._load(self.users, User, "email", {row.user_id for row in rows})
        for row in rows:
            row.organisation = self.organisations.get(row.organisation_id)
            row.counterparty = self.organisations.get(row.counterparty_id)
            row.instrument = self.instruments.get(row.instrument_id)
            row.user = self.users.get(row.user_id)

    @staticmethod
    def _load(cache: dict, model, field_name: str, ids: set) -> None:
        missing = [i for i in ids if i is not None and i not in cache]
        if missing:
            cache.update(model.objects.filter(pk__in=missing).values_list("pk", field_name))
