"""``/supervision/statistics/``: the market statistics page (its CSVs come from the API)."""

from django.urls import path

from supervision import views_statistics

urlpatterns = [
    path("", views_statistics.statistics_page, name="statistics"),
]
