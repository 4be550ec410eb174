"""API routes of the participants area (``/api/v1/supervision/``)."""

from django.urls import path

from supervision import api_participants as api

urlpatterns = [
    path("participants/", api.ParticipantListApi.as_view(), name="supervision-participants"),
    path("participants/<int:organisation_id>/", api.ParticipantDetailApi.as_view(), name="supervision-participant"),
    path("participants/<int:organisation_id>/kyc/", api.KycApi.as_view(), name="supervision-kyc"),
    path("participants/<int:organisation_id>/owner/", api.OwnerAssignApi.as_view(), name="supervision-owner-assign"),
    path("participants/<int:organisation_id>/tier/", api.TierAssignApi.as_view(), name="supervision-tier-assign"),
    path("owners/", api.OwnerListApi.as_view(), name="supervision-owners"),
    path("fee-tiers/", api.FeeTierListApi.as_view(), name="supervision-fee-tiers"),
    path("attestors/", api.AttestorListApi.as_view(), name="supervision-attestors"),
]
