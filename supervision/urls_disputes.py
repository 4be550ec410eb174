"""Pages of the disputes area (``/supervision/disputes/``)."""

from django.urls import path

from supervision import views_disputes as views

urlpatterns = [
    path("disputes/", views.disputes, name="disputes"),
    path("disputes/<int:dispute_id>/resolve/", views.dispute_decide_view, name="dispute_decide"),
]
