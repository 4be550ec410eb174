"""Surveillance pages of the console (under /supervision/)."""

from django.urls import path

from supervision import views_surveillance as views

urlpatterns = [
    path("alerts/", views.alerts, name="alerts"),
    path("alerts/<int:alert_id>/", views.alert_detail, name="alert"),
    path("alerts/<int:alert_id>/review/", views.alert_review, name="alert_review"),
    path("alerts/<int:alert_id>/close/", views.alert_close, name="alert_close"),
    path("rules/", views.rules, name="rules"),
    path("rules/<slug:code>/", views.rule_edit, name="rule_edit"),
]
