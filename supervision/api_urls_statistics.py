"""``/api/v1/supervision/statistics/``: each statistic as JSON (``<name>/``) and CSV (``<name>.csv``)."""

from django.urls import path

from supervision.api_statistics import VIEWS

urlpatterns = [
    route
    for name, (json_view, csv_view) in VIEWS.items()
    for route in (path(f"{name}/", json_view.as_view(), name=f"statistics-{name}"),
                  path(f"{name}.csv", csv_view.as_view(), name=f"statistics-{name}-csv"))
]
