from django.urls import path

from marketplace import views

app_name = "marketplace"
urlpatterns = [
    path("", views.market, name="market"),
    path("catalogue/", views.catalogue, name="catalogue"),
    path("assets/<int:asset_id>/", views.asset_page, name="asset"),
    path("assets/<int:asset_id>/inventory/", views.inventory_update, name="inventory"),
    path("assets/<int:asset_id>/owners/", views.owners_update, name="owners"),
    path("provider/", views.dashboard, name="dashboard"),
    path("provider/assets/", views.asset_create, name="asset_create"),
    path("provider/listings/", views.listing_new, name="listing_create"),
    path("provider/listings/<int:listing_id>/withdraw/", views.listing_withdraw_view, name="listing_withdraw"),
]
