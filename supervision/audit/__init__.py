"""The audit trail: every order, amendment, cancel, trade, regulator action (halts, KYC),
delivery, metering report, dispute, settlement and payout, searched where each is kept.

``branches`` holds one query per kind of record, ``windows`` turns time windows into id
ranges for the trading tables, ``trail`` pages and streams across the branches, ``text``
says what each record was and writes the CSV.
"""

from supervision.audit.branches import KINDS
from supervision.audit.text import KIND_LABELS, audit_csv_chunks, describe
from supervision.audit.trail import (
    MAX_PAGE_SIZE, PAGE_SIZE, AuditFilters, AuditPage, AuditRow, audit_filters_parse, audit_page, audit_rows,
    page_size_parse,
)

__all__ = [
    "KINDS", "KIND_LABELS", "MAX_PAGE_SIZE", "PAGE_SIZE", "AuditFilters", "AuditPage", "AuditRow", "audit_csv_chunks",
    "audit_filters_parse", "audit_page", "audit_rows", "describe", "page_size_parse",
]
