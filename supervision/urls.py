from django.urls import include, path

from supervision import views

app_name = "supervision"
urlpatterns = [
    path("", views.console_home, name="home"),
    path("", include("supervision.urls_surveillance")),
]
