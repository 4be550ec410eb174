"""Statements: the page and its CSV (included under ``settlement/`` by exchange/urls.py)."""

from django.urls import path

from settlement import statement_views

app_name = "statements"
urlpatterns = [
    path("statements/", statement_views.statement_page, name="page"),
    path("statements.csv", statement_views.statement_csv, name="csv"),
]
