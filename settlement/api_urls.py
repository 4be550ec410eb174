from django.urls import path

from settlement.api import allocations, disputes, settlements

urlpatterns = [
    path("allocations/", allocations.AllocationListApi.as_view(), name="settlement-allocations"),
    path("allocations/<int:allocation_id>/", allocations.AllocationDetailApi.as_view(), name="settlement-allocation"),
    path("allocations/<int:allocation_id>/delivery/", allocations.DeliveryApi.as_view(), name="settlement-delivery"),
    path("allocations/<int:allocation_id>/delivery/answer/", allocations.DeliveryAnswerApi.as_view(),
         name="settlement-delivery-answer"),
    path("allocations/<int:allocation_id>/metering/", allocations.MeteringApi.as_view(), name="settlement-metering"),
    path("allocations/<int:allocation_id>/disputes/", disputes.DisputeOpenApi.as_view(), name="settlement-dispute-open"),
    path("metering/csv/", allocations.MeteringCsvApi.as_view(), name="settlement-metering-csv"),
    path("disputes/", disputes.DisputeListApi.as_view(), name="settlement-disputes"),
    path("disputes/<int:dispute_id>/resolve/", disputes.DisputeResolveApi.as_view(), name="settlement-dispute-resolve"),
    path("sla-schedule/", settlements.SlaScheduleApi.as_view(), name="settlement-sla-schedule"),
    path("settlements/", settlements.SettlementListApi.as_view(), name="settlement-settlements"),
]
