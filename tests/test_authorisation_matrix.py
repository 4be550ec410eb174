"""Who may call what: every page and every API operation × every kind of caller.

The endpoints are enumerated from Django's URL resolver and from the OpenAPI document, so
an endpoint added without a row in TABLE fails ``test_every_endpoint_has_a_row``: each
operation the document describes has a row of its own, and every other resolved route (the
pages, and routes under /api/ such as the schema and its readers) a page row. Each
request is sent in a savepoint that is rolled back, so one caller's write (a cancel, a
revocation) does not change what the next caller sees. WS_TABLE does the same for every
WebSocket route of ``exchange/routing.py``, opened through the ASGI application.

Callers: ``anon`` (nobody), ``buyer`` (a trader of a verified buyer, token ``read trade``,
or signed in), ``provider`` (a provider's admin, ``read trade provide``), ``attestor`` (an
attestor's admin, ``read provide``), ``regulator`` (``read``), ``viewer`` (a viewer of the
exchange operator, ``read``), ``other`` (a trader of another buyer: none of the objects
named in the URL are its own). API operations are called with the caller's token; pages
(every row that is not an operation) with its session. Writes send an empty body: a caller
who may write gets 400 (or a business refusal), one who may not gets 401/403/404 before the
body is looked at.
"""

from __future__ import annotations

import re

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from accounts.models import Membership, Organisation
from accounts.services import token_create
from exchange.asgi import application, order_entry
from exchange.funds import funds_request_create
from exchange import fastpath, ledger, services
from tests.asgi import asgi_request
from tests.exchange.conftest import list_capacity, make_instrument
from tests.factories import MembershipFactory
from tests.settlement.parties import allocation_make, dispute_make

pytestmark = pytest.mark.django_db

ACTORS = ("anon", "buyer", "provider", "attestor", "regulator", "viewer", "other")
SCOPES = {"buyer": ("read", "trade"), "provider": ("read", "trade", "provide"), "attestor": ("read", "provide"),
          "regulator": ("read",), "viewer": ("read",), "other": ("read", "trade")}


def _row(anon, buyer, provider, attestor, regulator, viewer, other):
    return dict(zip(ACTORS, (anon, buyer, provider, attestor, regulator, viewer, other)))


def everyone(status):
    return _row(*(status,) * 7)


TABLE: dict[str, dict[str, int]] = {
    # ---- API operations (with the caller's token)
    "DELETE /api/v1/orders/{order_id}/": _row(401, 202, 404, 403, 403, 403, 404),
    "DELETE /api/v1/tokens/{token_id}/": _row(401, 200, 404, 404, 404, 404, 404),
    "GET /api/v1/allocations/": _row(401, 200, 200, 200, 200, 200, 200),
    "GET /api/v1/assets/": _row(401, 200, 200, 200, 200, 200, 200),
    "GET /api/v1/assets/{id}/": _row(401, 404, 200, 404, 200, 404, 404),
    "GET /api/v1/assets/{id}/inventory/": _row(401, 404, 200, 404, 200, 404, 404),
    "GET /api/v1/assets/{id}/owners/": _row(401, 404, 200, 404, 200, 404, 404),
    "GET /api/v1/assets/{id}/provenance/": everyone(200),
    "GET /api/v1/attestations/": everyone(200),
    "GET /api/v1/attestations/{id}/": everyone(200),
    "GET /api/v1/attestations/{id}/verify/": everyone(200),
    "GET /api/v1/attestor-keys/": everyone(200),
    "GET /api/v1/balances/": _row(401, 200, 200, 200, 200, 200, 200),
    "GET /api/v1/classes/": everyone(200),
    "GET /api/v1/classes/{code}/": everyone(200),
    "GET /api/v1/clusters/{code}/": everyone(200),
    "GET /api/v1/device-types/": everyone(200),
    "GET /api/v1/device-types/{id}/": everyone(200),
    "GET /api/v1/fills/": _row(401, 200, 200, 200, 200, 200, 200),
    "GET /api/v1/hubs/": everyone(200),
    "GET /api/v1/hubs/{code}/": everyone(200),
    "GET /api/v1/instruments/": everyone(200),
    "GET /api/v1/instruments/{code}/": everyone(200),
    "GET /api/v1/instruments/{code}/candles/": everyone(200),
    "GET /api/v1/instruments/{code}/depth/": everyone(200),
    "GET /api/v1/instruments/{code}/trades/": everyone(200),
    "GET /api/v1/listings/": everyone(200),
    "GET /api/v1/listings/{id}/": everyone(200),
    "GET /api/v1/me/": _row(401, 200, 200, 200, 200, 200, 200),
    "GET /api/v1/orders/": _row(401, 200, 200, 200, 200, 200, 200),
    "GET /api/v1/orders/{order_id}/": _row(401, 200, 404, 404, 404, 404, 404),
    "GET /api/v1/price-index/": everyone(200),
    "GET /api/v1/provenance/verify/": everyone(200),
    "GET /api/v1/tokens/": _row(401, 200, 200, 200, 200, 200, 200),
    "PATCH /api/v1/assets/{id}/": _row(401, 403, 200, 403, 403, 403, 403),
    "PATCH /api/v1/classes/{code}/": _row(401, 403, 403, 403, 200, 403, 403),
    "PATCH /api/v1/clusters/{code}/": _row(401, 403, 403, 403, 200, 403, 403),
    "PATCH /api/v1/device-types/{id}/": _row(401, 403, 403, 403, 403, 403, 403),
    "PATCH /api/v1/hubs/{code}/": _row(401, 403, 403, 403, 200, 403, 403),
    "PATCH /api/v1/listings/{id}/": _row(401, 403, 200, 403, 403, 403, 403),
    "PATCH /api/v1/orders/{order_id}/": _row(401, 202, 404, 403, 403, 403, 404),
    "POST /api/v1/assets/": _row(401, 403, 400, 403, 403, 403, 403),
    "POST /api/v1/assets/{id}/inventory/": _row(401, 403, 400, 403, 403, 403, 403),
    "POST /api/v1/assets/{id}/owners/": _row(401, 403, 400, 403, 403, 403, 403),
    "POST /api/v1/attestations/": _row(401, 403, 403, 400, 403, 403, 403),
    "POST /api/v1/attestor-keys/": _row(401, 403, 403, 400, 403, 403, 403),
    "POST /api/v1/classes/": _row(401, 403, 403, 403, 400, 403, 403),
    "POST /api/v1/device-types/": _row(401, 403, 400, 400, 403, 403, 403),
    # Only the operator records funds, and never with a read token: its viewer is refused (issue 16, item 5).
    "POST /api/v1/funds/": _row(401, 403, 403, 403, 403, 403, 403),
    # Deposit and withdrawal requests: members who may trade ask (and cancel their own); the
    # treasury (a treasurer, scope funds) completes or refuses. The request named is the buyer's.
    "GET /api/v1/funds/requests/": _row(401, 200, 200, 200, 200, 200, 200),
    "POST /api/v1/funds/requests/": _row(401, 400, 400, 403, 403, 403, 400),
    "POST /api/v1/funds/requests/{request_id}/cancel/": _row(401, 200, 404, 403, 403, 403, 404),
    "POST /api/v1/funds/requests/{request_id}/complete/": _row(401, 403, 403, 403, 403, 403, 403),
    "POST /api/v1/funds/requests/{request_id}/refuse/": _row(401, 403, 403, 403, 403, 403, 403),
    "POST /api/v1/listings/": _row(401, 403, 400, 403, 403, 403, 403),
    "POST /api/v1/listings/{id}/withdraw/": _row(401, 403, 200, 403, 403, 403, 403),
    "POST /api/v1/orders/": _row(401, 400, 400, 403, 403, 403, 400),
    "POST /api/v1/orders/batch/": _row(401, 400, 400, 403, 403, 403, 400),
    # A token mints at most its own scopes: the attestor's token lacks trade though its role has it, so
    # it may not mint a trading token (403; issue 16, item 5); trade is beyond the regulator's and the
    # viewer's roles, which makes it invalid input (400).
    "POST /api/v1/tokens/": _row(401, 201, 201, 403, 400, 400, 201),
    # ---- settlement: the buyer holds the allocation the provider delivers. Provider actions need
    # `provide`, the holder's `trade`, a decision `supervise` (which the matrix's read-only regulator
    # token lacks); a caller with the scope who is not a party gets 404, a party in the wrong role 403.
    "GET /api/v1/settlement/allocations/": _row(401, 200, 200, 200, 200, 200, 200),
    "GET /api/v1/settlement/allocations/{allocation_id}/": _row(401, 200, 200, 404, 404, 404, 404),
    "POST /api/v1/settlement/allocations/{allocation_id}/delivery/": _row(401, 403, 400, 404, 403, 403, 403),
    "POST /api/v1/settlement/allocations/{allocation_id}/delivery/answer/": _row(401, 400, 403, 403, 403, 403, 404),
    "POST /api/v1/settlement/allocations/{allocation_id}/disputes/": _row(401, 400, 403, 403, 403, 403, 404),
    "POST /api/v1/settlement/allocations/{allocation_id}/metering/": _row(401, 403, 400, 404, 403, 403, 403),
    # Rows name their allocations: a caller with `provide` may send a file, each row is checked.
    "POST /api/v1/settlement/metering/csv/": _row(401, 403, 400, 400, 403, 403, 403),
    "GET /api/v1/settlement/disputes/": _row(401, 200, 200, 200, 200, 200, 200),
    "POST /api/v1/settlement/disputes/{dispute_id}/resolve/": _row(401, 403, 403, 403, 403, 403, 403),
    "GET /api/v1/settlement/settlements/": _row(401, 200, 200, 200, 200, 200, 200),
    "GET /api/v1/settlement/sla-schedule/": everyone(200),
    # ---- supervision: market statistics, for the regulator (read) only; JSON and CSV.
    "GET /api/v1/supervision/statistics/volume/": _row(401, 403, 403, 403, 200, 403, 403),
    "GET /api/v1/supervision/statistics/volume.csv": _row(401, 403, 403, 403, 200, 403, 403),
    "GET /api/v1/supervision/statistics/price-index/": _row(401, 403, 403, 403, 200, 403, 403),
    "GET /api/v1/supervision/statistics/price-index.csv": _row(401, 403, 403, 403, 200, 403, 403),
    "GET /api/v1/supervision/statistics/utilisation/": _row(401, 403, 403, 403, 200, 403, 403),
    "GET /api/v1/supervision/statistics/utilisation.csv": _row(401, 403, 403, 403, 200, 403, 403),
    "GET /api/v1/supervision/statistics/green-share/": _row(401, 403, 403, 403, 200, 403, 403),
    "GET /api/v1/supervision/statistics/green-share.csv": _row(401, 403, 403, 403, 200, 403, 403),
    "GET /api/v1/supervision/statistics/providers/": _row(401, 403, 403, 403, 200, 403, 403),
    "GET /api/v1/supervision/statistics/providers.csv": _row(401, 403, 403, 403, 200, 403, 403),
    # ---- supervision: instruments. The console reads for regulators only; every action needs
    # `supervise`, which the matrix's read-only regulator token lacks (403; tests/supervision cover it).
    "GET /api/v1/supervision/classes/": _row(401, 403, 403, 403, 200, 403, 403),
    "GET /api/v1/supervision/hubs/": _row(401, 403, 403, 403, 200, 403, 403),
    "GET /api/v1/supervision/instruments/": _row(401, 403, 403, 403, 200, 403, 403),
    "GET /api/v1/supervision/instruments/{code}/": _row(401, 403, 403, 403, 200, 403, 403),
    "POST /api/v1/supervision/instruments/{code}/halt/": _row(401, 403, 403, 403, 403, 403, 403),
    "POST /api/v1/supervision/instruments/{code}/resume/": _row(401, 403, 403, 403, 403, 403, 403),
    "POST /api/v1/supervision/instruments/{code}/open/": _row(401, 403, 403, 403, 403, 403, 403),
    "POST /api/v1/supervision/instruments/{code}/band/": _row(401, 403, 403, 403, 403, 403, 403),
    "POST /api/v1/supervision/classes/{code}/halt/": _row(401, 403, 403, 403, 403, 403, 403),
    "POST /api/v1/supervision/classes/{code}/resume/": _row(401, 403, 403, 403, 403, 403, 403),
    "POST /api/v1/supervision/hubs/{code}/halt/": _row(401, 403, 403, 403, 403, 403, 403),
    "POST /api/v1/supervision/hubs/{code}/resume/": _row(401, 403, 403, 403, 403, 403, 403),
    "POST /api/v1/supervision/market/halt/": _row(401, 403, 403, 403, 403, 403, 403),
    "POST /api/v1/supervision/market/resume/": _row(401, 403, 403, 403, 403, 403, 403),
    # ---- supervision: participants and disputes. Reads need a regulator's member, actions `supervise`
    # (which the matrix's read-only regulator token lacks; tests/supervision cover the regulator deciding).
    "GET /api/v1/supervision/participants/": _row(401, 403, 403, 403, 200, 403, 403),
    "GET /api/v1/supervision/participants/{organisation_id}/": _row(401, 403, 403, 403, 200, 403, 403),
    "POST /api/v1/supervision/participants/{organisation_id}/kyc/": _row(401, 403, 403, 403, 403, 403, 403),
    "POST /api/v1/supervision/participants/{organisation_id}/owner/": _row(401, 403, 403, 403, 403, 403, 403),
    "POST /api/v1/supervision/participants/{organisation_id}/tier/": _row(401, 403, 403, 403, 403, 403, 403),
    "GET /api/v1/supervision/owners/": _row(401, 403, 403, 403, 200, 403, 403),
    "POST /api/v1/supervision/owners/": _row(401, 403, 403, 403, 403, 403, 403),
    "GET /api/v1/supervision/fee-tiers/": _row(401, 403, 403, 403, 200, 403, 403),
    "GET /api/v1/supervision/attestors/": _row(401, 403, 403, 403, 200, 403, 403),
    "GET /api/v1/supervision/disputes/": _row(401, 403, 403, 403, 200, 403, 403),
    "POST /api/v1/supervision/disputes/{dispute_id}/decision/": _row(401, 403, 403, 403, 403, 403, 403),
    # ---- supervision: regulators read the audit trail, replays and provenance checks (a read token is enough).
    "GET /api/v1/supervision/audit/": _row(401, 403, 403, 403, 200, 403, 403),
    "GET /api/v1/supervision/audit.csv": _row(401, 403, 403, 403, 200, 403, 403),
    "GET /api/v1/supervision/replay/{code}/": _row(401, 403, 403, 403, 200, 403, 403),
    "GET /api/v1/supervision/provenance/": _row(401, 403, 403, 403, 200, 403, 403),
    "GET /api/v1/supervision/provenance/assets/{asset_id}/": _row(401, 403, 403, 403, 200, 403, 403),
    # ---- supervision: surveillance alerts and rules. Reads for the regulator only; the workflow and the
    # rules' settings need `supervise` (tests/supervision/test_surveillance_console.py covers the regulator acting).
    "GET /api/v1/supervision/alerts/": _row(401, 403, 403, 403, 200, 403, 403),
    "GET /api/v1/supervision/alerts/{alert_id}/": _row(401, 403, 403, 403, 200, 403, 403),
    "POST /api/v1/supervision/alerts/{alert_id}/review/": _row(401, 403, 403, 403, 403, 403, 403),
    "POST /api/v1/supervision/alerts/{alert_id}/close/": _row(401, 403, 403, 403, 403, 403, 403),
    "GET /api/v1/supervision/rules/": _row(401, 403, 403, 403, 200, 403, 403),
    "GET /api/v1/supervision/rules/{code}/": _row(401, 403, 403, 403, 200, 403, 403),
    "PATCH /api/v1/supervision/rules/{code}/": _row(401, 403, 403, 403, 403, 403, 403),
    # ---- pages (with the caller's session)
    "GET /": everyone(200),
    "GET /accounts/sign-in/": _row(200, 302, 302, 302, 302, 302, 302),
    "POST /accounts/sign-in/": _row(200, 302, 302, 302, 302, 302, 302),
    "GET /accounts/sign-out/": everyone(405),  # signing out is a POST
    "POST /accounts/sign-out/": everyone(302),
    "GET /accounts/sign-up/": _row(200, 302, 302, 302, 302, 302, 302),
    "POST /accounts/sign-up/": _row(400, 302, 302, 302, 302, 302, 302),
    "GET /accounts/tokens/": _row(302, 200, 200, 200, 200, 200, 200),
    "POST /accounts/tokens/": _row(302, 400, 400, 400, 400, 400, 400),
    "GET /accounts/tokens/<int:token_id>/revoke/": _row(302, 405, 405, 405, 405, 405, 405),
    "POST /accounts/tokens/<int:token_id>/revoke/": _row(302, 302, 404, 404, 404, 404, 404),
    "GET /admin/": everyone(302),
    # Under /api/ but not API operations: the OpenAPI document and its two readers, for anyone.
    "GET /api/schema/": everyone(200),
    "GET /api/docs/": everyone(200),
    "GET /api/redoc/": everyone(200),
    "GET /capacity/": everyone(200),
    "GET /capacity/assets/<int:asset_id>/": everyone(200),
    "GET /capacity/assets/<int:asset_id>/inventory/": _row(302, 405, 405, 405, 405, 405, 405),
    "POST /capacity/assets/<int:asset_id>/inventory/": _row(302, 403, 302, 403, 403, 403, 403),
    "GET /capacity/assets/<int:asset_id>/owners/": _row(302, 405, 405, 405, 405, 405, 405),
    "POST /capacity/assets/<int:asset_id>/owners/": _row(302, 403, 302, 403, 403, 403, 403),
    "GET /capacity/catalogue/": everyone(200),
    "GET /capacity/provider/": _row(302, 403, 200, 403, 403, 403, 403),
    "GET /capacity/provider/assets/": _row(302, 405, 405, 405, 405, 405, 405),
    "POST /capacity/provider/assets/": _row(302, 403, 400, 403, 403, 403, 403),
    "GET /capacity/provider/listings/": _row(302, 405, 405, 405, 405, 405, 405),
    "POST /capacity/provider/listings/": _row(302, 403, 400, 403, 403, 403, 403),
    "GET /capacity/provider/listings/<int:listing_id>/withdraw/": _row(302, 405, 405, 405, 405, 405, 405),
    "POST /capacity/provider/listings/<int:listing_id>/withdraw/": _row(302, 403, 302, 403, 403, 403, 403),
    "GET /funds/": _row(302, 200, 200, 200, 200, 200, 200),
    "GET /funds/request/": _row(302, 405, 405, 405, 405, 405, 405),
    # (The attestor's admin signed in holds its role's every scope, trade included: as a member.)
    "POST /funds/request/": _row(302, 400, 400, 400, 403, 403, 400),
    "GET /funds/<int:request_id>/cancel/": _row(302, 405, 405, 405, 405, 405, 405),
    "POST /funds/<int:request_id>/cancel/": _row(302, 302, 404, 404, 403, 403, 404),
    "GET /funds/<int:request_id>/complete/": _row(302, 405, 405, 405, 405, 405, 405),
    "POST /funds/<int:request_id>/complete/": _row(302, 403, 403, 403, 403, 403, 403),
    "GET /funds/<int:request_id>/refuse/": _row(302, 405, 405, 405, 405, 405, 405),
    "POST /funds/<int:request_id>/refuse/": _row(302, 403, 403, 403, 403, 403, 403),
    "GET /funds/demo-top-up/": everyone(404),
    "POST /funds/demo-top-up/": everyone(404),
    "GET /healthz": everyone(200),
    "GET /i18n/setlang/": everyone(302),
    "POST /i18n/setlang/": everyone(302),
    "GET /markets/": everyone(200),
    "GET /markets/<str:code>/": everyone(200),
    # Each member reads its own organisation's portfolio.
    "GET /portfolio/": _row(302, 200, 200, 200, 200, 200, 200),
    # Each member reads its own organisation's statement (a regulator reads others' with ?organisation=).
    "GET /settlement/statements/": _row(302, 200, 200, 200, 200, 200, 200),
    "GET /settlement/statements.csv": _row(302, 200, 200, 200, 200, 200, 200),
    # Settlement pages. Their rows name an allocation that does not exist, so whoever passes the access
    # checks on an allocation's form finds none (404), unless the empty body is refused first (metering, 400);
    # tests/settlement/test_pages.py covers real allocations.
    "GET /settlement/deliveries/": _row(302, 403, 200, 403, 403, 403, 403),
    "GET /settlement/deliveries/<int:allocation_id>/start/": _row(302, 405, 405, 405, 405, 405, 405),
    "POST /settlement/deliveries/<int:allocation_id>/start/": _row(302, 403, 404, 403, 403, 403, 403),
    "GET /settlement/deliveries/<int:allocation_id>/metering/": _row(302, 405, 405, 405, 405, 405, 405),
    "POST /settlement/deliveries/<int:allocation_id>/metering/": _row(302, 403, 400, 403, 403, 403, 403),
    "GET /settlement/metering/upload/": _row(302, 403, 200, 403, 403, 403, 403),
    "POST /settlement/metering/upload/": _row(302, 403, 400, 403, 403, 403, 403),
    "GET /settlement/metering/upload/chunk/": everyone(405),
    "POST /settlement/metering/upload/chunk/": _row(401, 403, 400, 403, 403, 403, 403),
    "GET /settlement/capacity/": _row(302, 200, 200, 200, 200, 200, 200),
    "GET /settlement/capacity/<int:allocation_id>/access/": _row(302, 405, 405, 405, 405, 405, 405),
    "POST /settlement/capacity/<int:allocation_id>/access/": _row(302, 404, 404, 404, 404, 404, 404),
    "GET /settlement/capacity/<int:allocation_id>/dispute/": _row(302, 405, 405, 405, 405, 405, 405),
    "POST /settlement/capacity/<int:allocation_id>/dispute/": _row(302, 404, 404, 404, 404, 404, 404),
    "GET /settlement/sla/": everyone(200),
    # The supervision console: regulators only.
    "GET /supervision/": _row(302, 403, 403, 403, 200, 403, 403),
    "GET /supervision/statistics/": _row(302, 403, 403, 403, 200, 403, 403),
    # Instruments; the regulator's session has `supervise`: an empty action form is invalid (400).
    "GET /supervision/instruments/": _row(302, 403, 403, 403, 200, 403, 403),
    "GET /supervision/instruments/classes/": _row(302, 403, 403, 403, 200, 403, 403),
    "GET /supervision/instruments/hubs/": _row(302, 403, 403, 403, 200, 403, 403),
    "GET /supervision/instruments/actions/": _row(302, 405, 405, 405, 405, 405, 405),
    "POST /supervision/instruments/actions/": _row(302, 403, 403, 403, 400, 403, 403),
    "GET /supervision/instruments/<str:code>/": _row(302, 403, 403, 403, 200, 403, 403),
    # The regulator's session may decide: an empty form is refused as invalid (400).
    "GET /supervision/participants/": _row(302, 403, 403, 403, 200, 403, 403),
    "GET /supervision/participants/<int:organisation_id>/": _row(302, 403, 403, 403, 200, 403, 403),
    "GET /supervision/participants/<int:organisation_id>/kyc/": _row(302, 405, 405, 405, 405, 405, 405),
    "POST /supervision/participants/<int:organisation_id>/kyc/": _row(302, 403, 403, 403, 400, 403, 403),
    "GET /supervision/participants/<int:organisation_id>/owner/": _row(302, 405, 405, 405, 405, 405, 405),
    "POST /supervision/participants/<int:organisation_id>/owner/": _row(302, 403, 403, 403, 400, 403, 403),
    "GET /supervision/participants/<int:organisation_id>/tier/": _row(302, 405, 405, 405, 405, 405, 405),
    "POST /supervision/participants/<int:organisation_id>/tier/": _row(302, 403, 403, 403, 400, 403, 403),
    "GET /supervision/participants/owners/": _row(302, 403, 403, 403, 200, 403, 403),
    "POST /supervision/participants/owners/": _row(302, 403, 403, 403, 400, 403, 403),
    "GET /supervision/participants/tiers/": _row(302, 403, 403, 403, 200, 403, 403),
    "GET /supervision/participants/attestors/": _row(302, 403, 403, 403, 200, 403, 403),
    "GET /supervision/disputes/": _row(302, 403, 403, 403, 200, 403, 403),
    "GET /supervision/disputes/<int:dispute_id>/resolve/": _row(302, 405, 405, 405, 405, 405, 405),
    "POST /supervision/disputes/<int:dispute_id>/resolve/": _row(302, 403, 403, 403, 400, 403, 403),
    "GET /supervision/audit/": _row(302, 403, 403, 403, 200, 403, 403),
    "GET /supervision/audit.csv": _row(302, 403, 403, 403, 200, 403, 403),
    "GET /supervision/replay/": _row(302, 403, 403, 403, 200, 403, 403),
    "GET /supervision/provenance/": _row(302, 403, 403, 403, 200, 403, 403),
    # Surveillance: the signed-in regulator may act (its role has `supervise`): an empty review takes the
    # alert under review (302 back to it); closing without a note and a rule change without a reason are 400.
    "GET /supervision/alerts/": _row(302, 403, 403, 403, 200, 403, 403),
    "GET /supervision/alerts/<int:alert_id>/": _row(302, 403, 403, 403, 200, 403, 403),
    "GET /supervision/alerts/<int:alert_id>/review/": _row(302, 405, 405, 405, 405, 405, 405),
    "POST /supervision/alerts/<int:alert_id>/review/": _row(302, 403, 403, 403, 302, 403, 403),
    "GET /supervision/alerts/<int:alert_id>/close/": _row(302, 405, 405, 405, 405, 405, 405),
    "POST /supervision/alerts/<int:alert_id>/close/": _row(302, 403, 403, 403, 400, 403, 403),
    "GET /supervision/rules/": _row(302, 403, 403, 403, 200, 403, 403),
    "GET /supervision/rules/<slug:code>/": _row(302, 405, 405, 405, 405, 405, 405),
    "POST /supervision/rules/<slug:code>/": _row(302, 403, 403, 403, 400, 403, 403),
}


OPEN, REFUSED = "open", "refused"

# ---- WebSockets (every route of exchange/routing.py), each caller two ways: "session" as the site's
# own page opens it (its Origin and the caller's session cookie; anon has none) and "token" as a program
# does (no Origin, ?token= with the caller's token; anon none). Then a token nobody issued, the buyer's
# and the regulator's tokens without `read` (`trade`; `supervise`), and the regulator's session cookie
# sent by another site's page. OPEN: accepted and kept open; 4401/4403: accepted, told why, then
# closed; REFUSED: closed before the handshake (the server answers 403), as the Origin rule has it.
WS_TABLE: dict[str, dict] = {
    # The caller's own organisation's stream: whoever may read it.
    "/ws/events/": {"session": _row(4401, OPEN, OPEN, OPEN, OPEN, OPEN, OPEN),
                    "token": _row(4401, OPEN, OPEN, OPEN, OPEN, OPEN, OPEN),
                    "bad token": 4401, "buyer without read": 4403, "regulator without read": 4403,
                    "cross-site": REFUSED},
    # Public market data: no credentials are read.
    "/ws/market/": {"session": everyone(OPEN), "token": everyone(OPEN),
                    "bad token": OPEN, "buyer without read": OPEN, "regulator without read": OPEN,
                    "cross-site": REFUSED},
    # The supervision console's stream: the regulator only.
    "/ws/supervision/": {"session": _row(4401, 4403, 4403, 4403, OPEN, 4403, 4403),
                         "token": _row(4401, 4403, 4403, 4403, OPEN, 4403, 4403),
                         "bad token": 4401, "buyer without read": 4403, "regulator without read": 4403,
                         "cross-site": REFUSED},
}

# ---- The fast order route (exchange/fastpath.py): a POST to these paths with a token is answered by
# the lean ASGI handler, not Django (without a token it falls back to Django). Each caller sends its
# token and one complete buy order, so the order statement's own checks are reached too; then a
# token nobody issued, the buyer's read-only token and its token without `read`, and the attestor's
# admin's token with `trade` (its role allows it). Who may trade is funded: "201" means placed. The
# outcome is the route that answered, the status and the refusal's code (a batch: each order's
# status); the DRF view, given the same token and order, must agree.
FAST_CALLERS = (*ACTORS, "bad token", "buyer read-only", "buyer without read", "attestor trading")
FAST_TABLE: dict[str, dict[str, str]] = {
    "/api/v1/orders/": {
        "anon": "django 401 not_authenticated", "buyer": "fast 201", "provider": "fast 201",
        "attestor": "fast 403 scope_missing", "regulator": "fast 403 scope_missing",
        "viewer": "fast 403 scope_missing", "other": "fast 201", "bad token": "fast 401 token_invalid",
        "buyer read-only": "fast 403 scope_missing", "buyer without read": "fast 201",
        "attestor trading": "fast 201"},
    "/api/v1/orders/batch/": {
        "anon": "django 401 not_authenticated", "buyer": "fast 200 accepted", "provider": "fast 200 accepted",
        "attestor": "fast 403 scope_missing", "regulator": "fast 403 scope_missing",
        "viewer": "fast 403 scope_missing", "other": "fast 200 accepted", "bad token": "fast 401 token_invalid",
        "buyer read-only": "fast 403 scope_missing", "buyer without read": "fast 200 accepted",
        "attestor trading": "fast 200 accepted"},
}


# --------------------------------------------------------------------------- enumeration


def _patterns(resolvers, prefix=""):
    for entry in resolvers:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            if route == "admin/":
                yield route  # Django's own admin: one row for its front door
                continue
            yield from _patterns(entry.url_patterns, route)
        elif isinstance(entry, URLPattern):
            yield route


def openapi_path(route: str) -> str:
    """``/api/v1/assets/<int:pk>/`` as the OpenAPI document names it: ``/api/v1/assets/{id}/``
    (drf-spectacular calls a ``pk`` ``id``). A route it cannot translate is left to the page rows."""
    def name(match):
        return "{id}" if match.group(1) == "pk" else "{%s}" % match.group(1)

    return re.sub(r"<(?:\w+:)?(\w+)>", name, route)


def page_routes(schema) -> set[str]:
    """Every URL pattern the OpenAPI document does not describe, as ``/route/`` with its
    converters (``<int:asset_id>``): the pages, and routes under /api/ such as the schema and
    the API reference. Only documented operations are left to the operation rows."""
    routes = {"/" + route.lstrip("^").rstrip("$") for route in _patterns(get_resolver().url_patterns)}
    return {route for route in routes if openapi_path(route) not in schema["paths"]}


def websocket_routes() -> set[str]:
    from exchange.routing import websocket_urlpatterns

    return {"/" + str(entry.pattern) for entry in websocket_urlpatterns}


def api_operations(schema) -> set[str]:
    return {f"{method.upper()} {path}" for path, operations in schema["paths"].items() for method in operations}


def openapi_document() -> dict:
    import json

    from drf_spectacular.generators import SchemaGenerator

    return json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True), default=str))


@pytest.fixture(scope="module")
def schema():
    return openapi_document()


# --------------------------------------------------------------------------- the world


def members_make(*, attestor: Membership) -> dict[str, Membership]:
    """One membership per caller but ``anon``; ``attestor`` is the attestor's admin."""
    return {
        "buyer": MembershipFactory(organisation__kind=Organisation.Kind.BUYER, role=Membership.Role.TRADER),
        "provider": MembershipFactory(organisation__kind=Organisation.Kind.PROVIDER, role=Membership.Role.PROVIDER_ADMIN),
        "attestor": attestor,
        "regulator": MembershipFactory(organisation__kind=Organisation.Kind.REGULATOR, role=Membership.Role.REGULATOR),
        "viewer": MembershipFactory(organisation__kind=Organisation.Kind.OPERATOR, role=Membership.Role.VIEWER),
        "other": MembershipFactory(organisation__kind=Organisation.Kind.BUYER, role=Membership.Role.TRADER),
    }


@pytest.fixture
def world(catalogue, device_type, attestor_key):
    """One of each caller, and one object of each kind owned by the buyer or the provider."""
    from exchange.models import FeeTier
    from marketplace.models import Attestation

    FeeTier.objects.get_or_create(code="standard", defaults=dict(name="Standard", maker_bps=2, taker_bps=5, is_default=True))
    members = members_make(attestor=attestor_key[0].organisation.memberships.get())
    instrument = make_instrument()
    period = list_capacity(organisation=members["provider"].organisation, instrument=instrument, scu_h=1000)
    ledger.deposit(organisation=members["buyer"].organisation, amount_fen=1_000_000_00)
    tokens = {name: token_create(membership=m, name="matrix", scopes=list(SCOPES[name]))[1] for name, m in members.items()}
    from accounts.access import actor_from_token

    order, _ = services.order_place(actor=actor_from_token(tokens["buyer"]), data={
        "instrument": instrument.code, "side": "buy", "price": "19.00", "qty": 10, "client_order_id": "matrix"})
    spare_token = token_create(membership=members["buyer"], name="spare", scopes=["read"])[0]
    # The buyer buys 5 SCU·h of the provider's capacity on another day (the listing and the order
    # other rows name stay as they are), and disputes it.
    allocation = allocation_make(provider=members["provider"], buyer=members["buyer"])
    dispute = dispute_make(allocation, by=members["buyer"])
    listing = period.listing
    asset = listing.asset
    ids = {
        "instrument": instrument.code, "hub": "NX", "class": "AI80", "cluster": "NX-ZW",
        "asset": asset.id, "listing": listing.id, "device_type": device_type.id,
        "attestation": Attestation.objects.filter(device_type=device_type).first().id,
        "order": order.id, "token": spare_token.id, "allocation": allocation.id, "dispute": dispute.id,
        "organisation": members["buyer"].organisation_id, "alert": _alert(members).id, "rule": "spoofing",
        "funds_request": funds_request_create(actor=actor_from_token(tokens["buyer"]), direction="deposit",
                                              amount="100.00").id,
    }
    return members, tokens, ids


def _alert(members):
    """A surveillance alert naming the buyer."""
    from supervision.models import Alert, Rule
    from supervision.surveillance.params import rules_ensure

    rules_ensure()
    return Alert.objects.create(rule=Rule.objects.get(code="hoarding"), key="matrix", severity="medium",
                                evidence={"figures": {}, "orders": [], "trades": []},
                                organisation_ids=[members["buyer"].organisation_id])


def fill(route: str, ids: dict) -> str:
    """A concrete URL for ``route`` naming the buyer's or the provider's objects."""
    by_prefix = [("instruments/", "instrument"), ("markets/", "instrument"), ("replay/", "instrument"),
                 ("hubs/", "hub"), ("classes/", "class"),
                 ("clusters/", "cluster"), ("assets/", "asset"), ("listings/", "listing"),
                 ("device-types/", "device_type"), ("attestations/", "attestation"), ("orders/", "order"),
                 ("tokens/", "token"), ("rules/", "rule")]

    def value(match):
        name = match.group(1).split(":")[-1]
        if name in ("asset_id",):
            return str(ids["asset"])
        if name == "listing_id":
            return str(ids["listing"])
        if name == "order_id":
            return str(ids["order"])
        if name == "token_id":
            return str(ids["token"])
        if name == "allocation_id" and not route.startswith("/api/"):
            return "2000000000"  # pages: none exists (see the settlement page rows)
        if name == "organisation_id":
            return str(ids["organisation"])
        if name == "alert_id":
            return str(ids["alert"])
        if name == "request_id":
            return str(ids["funds_request"])
        if name in ("allocation_id", "dispute_id"):
            return str(ids[name.removesuffix("_id")])
        before = route[: match.start()]
        for prefix, key in by_prefix:
            if before.endswith(prefix):
                return str(ids[key])
        raise AssertionError(f"no object for {match.group(0)} in {route}")

    return re.sub(r"[<{]([^>}]+)[>}]", value, route)


def bodies(members) -> dict[str, dict]:
    """Writes whose refusal must not hide behind validation: a complete, valid body."""
    return {
        # Minting a trading token: only with a token that may trade itself.
        "POST /api/v1/tokens/": {"name": "minted", "scopes": ["read", "trade"]},
        # Moving money: only the operator, and never with a read token.
        "POST /api/v1/funds/": {"organisation_id": members["buyer"].organisation_id, "direction": "deposit",
                                "amount": "10.00"},
        "PATCH /api/v1/orders/{order_id}/": {"qty": 5},
    }


def call(world, actor: str, key: str, *, api: bool) -> int:
    """``key`` as ``actor``: an API operation (``api``) with its token, anything else with its session."""
    members, tokens, ids = world
    method, route = key.split(" ", 1)
    url = fill(route, ids)
    if api:
        client = APIClient()
        if actor != "anon":
            client.credentials(HTTP_AUTHORIZATION=f"Token {tokens[actor]}")
        body = bodies(members).get(key, {})
        kwargs = {"data": body, "format": "json"} if method in ("POST", "PATCH", "PUT") else {}
    else:
        client = Client()
        if actor != "anon":
            client.force_login(members[actor].user)
        kwargs = {"data": {}} if method == "POST" else {}
    with transaction.atomic():
        response = getattr(client, method.lower())(url, **kwargs)
        transaction.set_rollback(True)
    return response.status_code


@pytest.fixture
def edge_world(attestor):
    """For requests through the ASGI application, whose sockets read the database on connections
    of their own: each caller committed (the test is transactional), with a token and a session.
    ``tokens`` also holds the buyer's and the regulator's tokens ``without read`` (``trade``; ``supervise``)."""
    members = members_make(attestor=attestor)
    tokens = {name: token_create(membership=m, name="matrix", scopes=list(SCOPES[name]))[1] for name, m in members.items()}
    for name, scope in (("buyer", "trade"), ("regulator", "supervise")):
        tokens[f"{name} without read"] = token_create(membership=members[name], name="no read", scopes=[scope])[1]
    sessions = {}
    for name, member in members.items():
        client = Client()
        client.force_login(member.user)
        sessions[name] = client.cookies[settings.SESSION_COOKIE_NAME].value
    return members, tokens, sessions


SAME_SITE, CROSS_SITE = (b"origin", b"http://127.0.0.1"), (b"origin", b"http://evil.example")


def ws_attempts(world, expected: dict):
    """(who, query string, headers, expected outcome) for one WebSocket row."""
    _, tokens, sessions = world

    def cookie(actor):
        return (b"cookie", f"{settings.SESSION_COOKIE_NAME}={sessions[actor]}".encode())

    for actor in ACTORS:
        yield (f"{actor} (session)", "", [SAME_SITE] + ([cookie(actor)] if actor != "anon" else []),
               expected["session"][actor])
        yield f"{actor} (token)", f"?token={tokens[actor]}" if actor != "anon" else "", [], expected["token"][actor]
    yield "bad token", "?token=cx_nobody_issued", [], expected["bad token"]
    for who in ("buyer without read", "regulator without read"):
        yield who, f"?token={tokens[who]}", [], expected[who]
    yield "cross-site", "", [CROSS_SITE, cookie("regulator")], expected["cross-site"]


async def ws_open(route: str, query: str, headers: list):
    """OPEN, REFUSED or the close code a WebSocket to ``route`` gets as it opens."""
    socket = WebsocketCommunicator(application, route + query, headers=headers)
    connected, _ = await socket.connect(timeout=5)
    if not connected:
        return REFUSED
    # A consumer takes one message at a time: by the time it has taken the client's disconnect,
    # whatever its connect decided (a close and its code) is in the output.
    await socket.disconnect(timeout=5)
    while not socket.output_queue.empty():
        message = socket.output_queue.get_nowait()
        if message["type"] == "websocket.close":
            return message.get("code", 1000)
    return OPEN


@pytest.fixture
def order_world(edge_world):
    """``edge_world`` with an instrument, funds for every organisation that may trade, and the
    fast route's extra tokens."""
    from exchange.models import FeeTier

    members, tokens, _ = edge_world
    FeeTier.objects.get_or_create(code="standard", defaults=dict(name="Standard", maker_bps=2, taker_bps=5, is_default=True))
    instrument = make_instrument()
    for name in ("buyer", "provider", "attestor", "other"):
        ledger.deposit(organisation=members[name].organisation, amount_fen=1_000_000_00)
    tokens = {**tokens, "bad token": "cx_nobody_issued",
              "buyer read-only": token_create(membership=members["buyer"], name="read", scopes=["read"])[1],
              "attestor trading": token_create(membership=members["attestor"], name="trade", scopes=["read", "trade"])[1]}
    return instrument, tokens


def order_body(path: str, instrument, client_order_id: str) -> dict:
    """One buy order the caller can pay for, alone or as a batch of one, as ``path`` takes it."""
    order = {"instrument": instrument.code, "side": "buy", "price": "19.00", "qty": 1, "client_order_id": client_order_id}
    return {"orders": [order]} if fastpath.PATHS[path] == "batch" else order


def order_outcome(status: int, body: dict) -> str:
    """``201``, ``403 scope_missing``, or for a batch ``200`` and each order's status or refusal."""
    if status >= 400:
        return f"{status} {body.get('code')}"
    if "results" in body:
        return f"{status} " + ",".join(r["code"] if r["status"] == "rejected" else r["status"] for r in body["results"])
    return str(status)


def drf_order(path: str, body: dict, token: str | None) -> str:
    client = APIClient()
    if token is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    response = client.post(path, body, format="json")
    return order_outcome(response.status_code, response.json())


# --------------------------------------------------------------------------- the tests


def test_every_endpoint_has_a_row(schema):
    """An endpoint without a row is an endpoint nobody decided access for."""
    operations = api_operations(schema)
    assert operations - TABLE.keys() == set(), "API operations without a row"
    page_rows = {key.split(" ", 1)[1] for key in TABLE if key not in operations}
    assert page_routes(schema) - page_rows == set(), "pages without a row"
    assert page_rows - page_routes(schema) == set(), "rows for pages or API operations that no longer exist"
    assert websocket_routes() - WS_TABLE.keys() == set(), "WebSocket routes without a row"
    assert WS_TABLE.keys() - websocket_routes() == set(), "rows for WebSocket routes that no longer exist"
    assert FAST_TABLE.keys() == fastpath.PATHS.keys(), "the fast order route's paths and FAST_TABLE differ"


def test_who_may_call_what(world, schema):
    operations = api_operations(schema)
    wrong = []
    for key, expected in TABLE.items():
        for actor in ACTORS:
            status = call(world, actor, key, api=key in operations)
            if status != expected[actor]:
                wrong.append(f"{key} as {actor}: {status}, expected {expected[actor]}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_who_may_open_which_websocket(edge_world, asgi_closed):
    wrong = []
    for route, expected in WS_TABLE.items():
        for who, query, headers, outcome in ws_attempts(edge_world, expected):
            got = await ws_open(route, query, headers)
            if got != outcome:
                wrong.append(f"{route} as {who}: {got}, expected {outcome}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_who_may_place_orders_on_the_fast_route(order_world, asgi_closed, monkeypatch):
    instrument, tokens = order_world
    to_django = order_entry.fallback
    served = []

    async def fallback(scope, receive, send):
        served.append("django")
        return await to_django(scope, receive, send)

    monkeypatch.setattr(order_entry, "fallback", fallback)
    wrong = []
    for path, expected in FAST_TABLE.items():
        for who in FAST_CALLERS:
            served.clear()
            status, reply = await asgi_request("POST", path, order_body(path, instrument, f"{who}, asgi, {path}"),
                                               tokens.get(who))
            got = f"{served[0] if served else 'fast'} {order_outcome(status, reply)}"
            drf = await sync_to_async(drf_order)(path, order_body(path, instrument, f"{who}, drf, {path}"), tokens.get(who))
            if got != expected[who]:
                wrong.append(f"{path} as {who}: {got}, expected {expected[who]}")
            if drf != got.split(" ", 1)[1]:
                wrong.append(f"{path} as {who}: {got} but {drf} from the DRF view")
    assert not wrong, "\n".join(wrong)
