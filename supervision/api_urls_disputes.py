"""API routes of the disputes area (``/api/v1/supervision/``)."""

from django.urls import path

from supervision import api_disputes as api

urlpatterns = [
    path("disputes/", api.ConsoleDisputeListApi.as_view(), name="supervision-disputes"),
    path("disputes/<int:dispute_id>/decision/", api.ConsoleDisputeDecisionApi.as_view(),
         name="supervision-dispute-decision"),
]
