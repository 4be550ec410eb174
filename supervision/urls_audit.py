"""The console's audit trail, replay and provenance pages (issue 18, items 4 and 5)."""

from django.urls import path

from supervision import views_audit

urlpatterns = [
    path("audit/", views_audit.audit, name="audit"),
    path("audit.csv", views_audit.audit_csv, name="audit-csv"),
    path("replay/", views_audit.replay, name="replay"),
    path("provenance/", views_audit.provenance, name="provenance"),
]
