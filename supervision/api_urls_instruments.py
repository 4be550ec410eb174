"""``/api/v1/supervision/``: classes, hubs and instruments, and the actions on them."""

from django.urls import path

from supervision import api_instruments as api

urlpatterns = [
    path("classes/", api.ClassListApi.as_view(), name="supervision-classes"),
    path("classes/<str:code>/halt/", api.ClassHaltApi.as_view(), name="supervision-class-halt"),
    path("classes/<str:code>/resume/", api.ClassResumeApi.as_view(), name="supervision-class-resume"),
    path("hubs/", api.HubListApi.as_view(), name="supervision-hubs"),
    path("hubs/<str:code>/halt/", api.HubHaltApi.as_view(), name="supervision-hub-halt"),
    path("hubs/<str:code>/resume/", api.HubResumeApi.as_view(), name="supervision-hub-resume"),
    path("market/halt/", api.MarketHaltApi.as_view(), name="supervision-market-halt"),
    path("market/resume/", api.MarketResumeApi.as_view(), name="supervision-market-resume"),
    path("instruments/", api.InstrumentListApi.as_view(), name="supervision-instruments"),
    path("instruments/<str:code>/", api.InstrumentDetailApi.as_view(), name="supervision-instrument"),
    path("instruments/<str:code>/halt/", api.InstrumentHaltApi.as_view(), name="supervision-instrument-halt"),
    path("instruments/<str:code>/resume/", api.InstrumentResumeApi.as_view(), name="supervision-instrument-resume"),
    path("instruments/<str:code>/open/", api.InstrumentOpenApi.as_view(), name="supervision-instrument-open"),
    path("instruments/<str:code>/band/", api.InstrumentBandApi.as_view(), name="supervision-instrument-band"),
]
