"""Pages of the participants area (``/supervision/participants/``)."""

from django.urls import path

from supervision import views_participants as views

urlpatterns = [
    path("participants/", views.participants, name="participants"),
    path("participants/<int:organisation_id>/", views.participant, name="participant"),
    path("participants/<int:organisation_id>/kyc/", views.kyc_decide, name="kyc_decide"),
    path("participants/<int:organisation_id>/owner/", views.owner_assign, name="owner_assign"),
    path("participants/<int:organisation_id>/tier/", views.tier_assign, name="tier_assign"),
    path("participants/owners/", views.owners, name="owners"),
    path("participants/tiers/", views.tiers, name="tiers"),
    path("participants/attestors/", views.attestors, name="attestors"),
]
