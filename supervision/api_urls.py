"""``/api/v1/supervision/``: everything the console does, for programs."""

from django.urls import include, path

urlpatterns: list = [
    path("", include("supervision.api_surveillance")),
]
