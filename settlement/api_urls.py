from django.urls import path

from settlement import api

urlpatterns = [
    path("allocations/", api.AllocationListApi.as_view(), name="settlement-allocations"),
    path("allocations/<int:allocation_id>/", api.AllocationDetailApi.as_view(), name="settlement-allocation"),
    path("allocations/<int:allocation_id>/delivery/", api.DeliveryApi.as_view(), name="settlement-delivery"),
    path("allocations/<int:allocation_id>/delivery/answer/", api.DeliveryAnswerApi.as_view(),
         name="settlement-delivery-answer"),
    path("allocations/<int:allocation_id>/metering/", api.MeteringApi.as_view(), name="settlement-metering"),
    path("allocations/<int:allocation_id>/disputes/", api.DisputeOpenApi.as_view(), name="settlement-dispute-open"),
    path("metering/csv/", api.MeteringCsvApi.as_view(), name="settlement-metering-csv"),
    path("disputes/", api.DisputeListApi.as_view(), name="settlement-disputes"),
    path("disputes/<int:dispute_id>/resolve/", api.DisputeResolveApi.as_view(), name="settlement-dispute-resolve"),
    path("sla-schedule/", api.SlaScheduleApi.as_view(), name="settlement-sla-schedule"),
    path("settlements/", api.SettlementListApi.as_view(), name="settlement-settlements"),
]
