"""``/api/v1/supervision/``: the audit trail, replay and provenance (issue 18, items 4 and 5)."""

from django.urls import path

from supervision import api_audit

urlpatterns = [
    path("audit/", api_audit.AuditApi.as_view(), name="supervision-audit"),
    path("audit.csv", api_audit.AuditCsvApi.as_view(), name="supervision-audit-csv"),
    path("replay/<str:code>/", api_audit.ReplayApi.as_view(), name="supervision-replay"),
    path("provenance/", api_audit.ProvenanceChainApi.as_view(), name="supervision-provenance"),
    path("provenance/assets/<int:asset_id>/", api_audit.ProvenanceAssetApi.as_view(),
         name="supervision-provenance-asset"),
]
