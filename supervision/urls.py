from django.urls import include, path

from supervision import views

app_name = "supervision"
urlpatterns = [
    path("", views.console_home, name="home"),
    path("statistics/", include("supervision.urls_statistics")),
    path("instruments/", include("supervision.urls_instruments")),
    path("", include("supervision.urls_participants")),
    path("", include("supervision.urls_disputes")),
    path("", include("supervision.urls_audit")),
    path("", include("supervision.urls_surveillance")),
]
