from django.contrib import admin
from django.urls import include, path
from django.views.i18n import set_language
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from accounts import api as accounts_api
from exchange import views, views_funds, views_portfolio

api_v1 = [
    path("me/", accounts_api.MeApi.as_view(), name="me"),
    path("tokens/", accounts_api.TokenListApi.as_view(), name="tokens"),
    path("tokens/<int:token_id>/", accounts_api.TokenDetailApi.as_view(), name="token-detail"),
    path("", include("exchange.api_urls")),
    path("", include("marketplace.api_urls")),
    path("settlement/", include("settlement.api_urls")),
    path("supervision/", include("supervision.api_urls")),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("markets/", views.markets, name="markets"),
    path("markets/<str:code>/", views.market_detail, name="market-detail"),
    path("portfolio/", views_portfolio.portfolio, name="portfolio"),
    path("funds/", views_funds.funds_page, name="funds"),
    path("funds/request/", views_funds.funds_request_view, name="funds-request"),
    path("funds/<int:request_id>/cancel/", views_funds.funds_cancel_view, name="funds-cancel"),
    path("funds/<int:request_id>/complete/", views_funds.funds_complete_view, name="funds-complete"),
    path("funds/<int:request_id>/refuse/", views_funds.funds_refuse_view, name="funds-refuse"),
    path("funds/demo-top-up/", views.funds_topup, name="funds-topup"),
    path("i18n/setlang/", set_language, name="set_language"),
    path("accounts/", include("accounts.urls")),
    path("capacity/", include("marketplace.urls")),
    path("settlement/", include("settlement.statement_urls")),
    path("settlement/", include("settlement.urls")),
    path("supervision/", include("supervision.urls")),
    path("api/v1/", include((api_v1, "api"), namespace="api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema", template_name="api/redoc.html"), name="redoc"),
    path("admin/", admin.site.urls),
]

handler404 = "exchange.views.page_not_found"
handler500 = "exchange.views.server_error"
