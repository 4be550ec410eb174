"""``/supervision/instruments/``: the console's instrument pages."""

from django.urls import path

from supervision import views_instruments as views

urlpatterns = [
    path("", views.instruments_page, name="instruments"),
    # Before <code>: no instrument code is one of these words (codes are CLASS.HUB.DATE).
    path("classes/", views.classes_page, name="instrument-classes"),
    path("hubs/", views.hubs_page, name="instrument-hubs"),
    path("actions/", views.action_post, name="instrument-action"),
    path("<str:code>/", views.instrument_page, name="instrument"),
]
