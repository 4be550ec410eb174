"""``/api/v1/supervision/statistics/…``: the console's market statistics, as JSON and as CSV.

Each statistic answers at ``<name>/`` (JSON) and ``<name>.csv`` (the same rows, streamed),
for members of the regulator with ``read``. The figures are computed in
supervision/statistics.py.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import ScopedPermission, request_actor
from marketplace.periods import china_today
from supervision.access import check_console_reader
from supervision.statistics import (
    AUTO_HOUR_DAYS, DEFAULT_DAYS, MAX_DAYS, MAX_HOUR_DAYS, STATISTICS, filter_from_params, statistic_build,
    statistic_csv_rows,
)

TAG = ["Supervision: statistics"]
PARAMETERS = [
    OpenApiParameter("from", OpenApiTypes.DATE, description=f"First day (China time), included; by default "
                     f"{DEFAULT_DAYS - 1} days before `to`. At most {MAX_DAYS} days in all."),
    OpenApiParameter("to", OpenApiTypes.DATE, description="Last day (China time), included; by default today."),
    OpenApiParameter("compute_class", OpenApiTypes.STR, description="A compute class code, e.g. AI80."),
    OpenApiParameter("hub", OpenApiTypes.STR, description="A hub code, e.g. NX."),
    OpenApiParameter("interval", OpenApiTypes.STR, enum=["day", "hour"],
                     description=f"Volume's buckets: by the hour for ranges of {AUTO_HOUR_DAYS} days or less unless "
                                 f"asked; hourly for at most {MAX_HOUR_DAYS} days."),
]


@extend_schema_field({"type": "string", "format": "decimal", "pattern": r"^\d+\.\d{2}$", "example": "18.50"})
class Cny(serializers.CharField):
    """CNY as a decimal string (exact; never a float)."""


@extend_schema_field({"type": "string", "format": "decimal", "pattern": r"^\d+\.\d{2}$", "example": "62.50",
                      "nullable": True, "description": "Per cent, two decimals, half up; null where nothing "
                                                       "to divide by."})
class Share(serializers.CharField):
    def __init__(self, **kwargs):
        super().__init__(allow_null=True, **kwargs)


class StatisticsFilterOut(serializers.Serializer):
    def get_fields(self):
        # "from" is a Python keyword: the fields are named here.
        return {"from": serializers.DateField(), "to": serializers.DateField(),
                "compute_class": serializers.CharField(allow_null=True), "hub": serializers.CharField(allow_null=True),
                "interval": serializers.ChoiceField(choices=["day", "hour"])}


class VolumeRowOut(serializers.Serializer):
    bucket = serializers.CharField(help_text="The China-time day (2026-05-01) or hour (2026-05-01T13:00+08:00).")
    compute_class = serializers.CharField()
    hub = serializers.CharField()
    volume_scu_h = serializers.IntegerField()
    value = Cny(help_text="Sum of price × quantity.")
    trades = serializers.IntegerField()


class VolumeOut(serializers.Serializer):
    filter = StatisticsFilterOut()
    rows = VolumeRowOut(many=True)


class PriceIndexRowOut(serializers.Serializer):
    day = serializers.DateField()
    compute_class = serializers.CharField()
    hub = serializers.CharField()
    index = Cny(help_text="CNY per SCU·h.")
    volume_scu_h = serializers.IntegerField()
    trades = serializers.IntegerField()


class PriceIndexOut(serializers.Serializer):
    filter = StatisticsFilterOut()
    method = serializers.CharField()
    rows = PriceIndexRowOut(many=True)


class UtilisationRowOut(serializers.Serializer):
    day = serializers.DateField(help_text="Delivery day.")
    compute_class = serializers.CharField()
    hub = serializers.CharField()
    listed_scu_h = serializers.IntegerField()
    sold_scu_h = serializers.IntegerField()
    utilisation = Share(help_text="sold ÷ listed, per cent.")


class UtilisationOut(serializers.Serializer):
    filter = StatisticsFilterOut()
    rows = UtilisationRowOut(many=True)


class GreenShareTotalOut(serializers.Serializer):
    day = serializers.DateField(help_text="Delivery day.")
    sold_scu_h = serializers.IntegerField()
    sold_green_share = Share()
    delivered_scu_h = serializers.IntegerField()
    delivered_green_share = Share()


class GreenShareRowOut(GreenShareTotalOut):
    compute_class = serializers.CharField()
    hub = serializers.CharField()


class GreenShareOut(serializers.Serializer):
    filter = StatisticsFilterOut()
    rows = GreenShareRowOut(many=True)
    totals = GreenShareTotalOut(many=True, help_text="Per day over every class and hub of the filter.")


class ProviderRatesRowOut(serializers.Serializer):
    provider_id = serializers.IntegerField()
    provider = serializers.CharField()
    allocated_scu_h = serializers.IntegerField(help_text="Settled first sales of its capacity.")
    delivered_scu_h = serializers.IntegerField()
    delivery_rate = Share(help_text="delivered ÷ allocated, per cent.")
    settled_allocations = serializers.IntegerField()
    disputed_allocations = serializers.IntegerField()
    dispute_rate = Share(help_text="disputed ÷ settled allocations, per cent.")


class ProviderRatesOut(serializers.Serializer):
    filter = StatisticsFilterOut()
    rows = ProviderRatesRowOut(many=True)


OUTPUTS = {"volume": (VolumeOut, "Volume (SCU·h) and value (CNY) traded per compute class, hub and day or hour"),
           "price-index": (PriceIndexOut, "The daily price index (VWAP) per compute class and hub"),
           "utilisation": (UtilisationOut, "Utilisation of listed capacity (sold ÷ listed) per class, hub and "
                                           "delivery day"),
           "green-share": (GreenShareOut, "Green-power share of sold and delivered capacity per class, hub and "
                                          "delivery day"),
           "providers": (ProviderRatesOut, "Delivery rate and dispute rate per provider")}


def _filter(request):
    """The regulator's filter; refusals first, so nobody else learns what a filter would do."""
    check_console_reader(request_actor(request))
    return filter_from_params(request.query_params, today=china_today(timezone.now()))


class _Echo:
    def write(self, value):
        return value


def csv_chunks(*, name: str, f, rows_per_chunk: int = 500) -> Iterator[bytes]:
    writer = csv.writer(_Echo())
    chunk = ["\ufeff"]  # the mark tells spreadsheets it is UTF-8
    for cells in statistic_csv_rows(name=name, f=f):
        chunk.append(writer.writerow(cells))
        if len(chunk) >= rows_per_chunk:
            yield "".join(chunk).encode()
            chunk = []
    yield "".join(chunk).encode()


async def _served_async(chunks: Iterator[bytes]):
    # Under ASGI Django would read a synchronous iterator whole before sending any of it;
    # each piece is made on the request's own thread, where its database connection lives.
    take = sync_to_async(lambda: next(chunks, None), thread_sensitive=True)
    while (chunk := await take()) is not None:
        yield chunk


class FirstRenderer(BaseContentNegotiation):
    """The CSV operations answer CSV, or an error as JSON, whatever the Accept header says."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def _views(name: str) -> tuple[type[APIView], type[APIView]]:
    out, summary = OUTPUTS[name]

    class StatisticApi(APIView):
        permission_classes = [ScopedPermission]

        @extend_schema(tags=TAG, summary=summary, parameters=PARAMETERS, responses=out,
                       operation_id=f"supervision_statistics_{name.replace('-', '_')}")
        def get(self, request):
            return Response(out(statistic_build(name=name, f=_filter(request))).data)

    class StatisticCsvApi(APIView):
        permission_classes = [ScopedPermission]
        content_negotiation_class = FirstRenderer

        @extend_schema(tags=TAG, summary=f"{summary}: CSV", parameters=PARAMETERS,
                       operation_id=f"supervision_statistics_{name.replace('-', '_')}_csv",
                       responses={(200, "text/csv"): OpenApiResponse(
                           OpenApiTypes.STR, description="UTF-8 with a byte-order mark; the header names the "
                                                         f"columns: {', '.join(STATISTICS[name].columns)}.")})
        def get(self, request):
            f = _filter(request)
            chunks = csv_chunks(name=name, f=f)
            response = StreamingHttpResponse(_served_async(chunks) if isinstance(request._request, ASGIRequest)
                                             else chunks, content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="{name}-{f.first_day}-{f.last_day}.csv"'
            return response

    StatisticApi.__name__ = StatisticApi.__qualname__ = f"Statistic{name.title().replace('-', '')}Api"
    StatisticCsvApi.__name__ = StatisticCsvApi.__qualname__ = f"Statistic{name.title().replace('-', '')}CsvApi"
    return StatisticApi, StatisticCsvApi


VIEWS = {name: _views(name) for name in STATISTICS}
