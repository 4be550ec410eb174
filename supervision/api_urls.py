"""``/api/v1/supervision/``: everything the console does, for programs."""

from django.urls import include, path

urlpatterns: list = [
    path("statistics/", include("supervision.api_urls_statistics")),
    path("", include("supervision.api_urls_instruments")),
    path("", include("supervision.api_urls_participants")),
    path("", include("supervision.api_urls_disputes")),
    path("", include("supervision.api_urls_audit")),
    path("", include("supervision.api_surveillance")),
]
