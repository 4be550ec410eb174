from django.urls import path

from marketplace.api import assets, catalogue, hardware, listings, provenance

urlpatterns = [
    path("hubs/", catalogue.HubListApi.as_view(), name="hubs"),
    path("hubs/<str:code>/", catalogue.HubDetailApi.as_view(), name="hub-detail"),
    path("clusters/<str:code>/", catalogue.ClusterDetailApi.as_view(), name="cluster-detail"),
    path("classes/", catalogue.ClassListApi.as_view(), name="classes"),
    path("classes/<str:code>/", catalogue.ClassDetailApi.as_view(), name="class-detail"),
    path("device-types/", hardware.DeviceTypeListApi.as_view(), name="device-types"),
    path("device-types/<int:pk>/", hardware.DeviceTypeDetailApi.as_view(), name="device-type-detail"),
    path("attestor-keys/", hardware.AttestorKeyListApi.as_view(), name="attestor-keys"),
    path("attestations/", hardware.AttestationListApi.as_view(), name="attestations"),
    path("attestations/<int:pk>/", hardware.AttestationDetailApi.as_view(), name="attestation-detail"),
    path("attestations/<int:pk>/verify/", hardware.AttestationVerifyApi.as_view(), name="attestation-verify"),
    path("assets/", assets.AssetListApi.as_view(), name="assets"),
    path("assets/<int:pk>/", assets.AssetDetailApi.as_view(), name="asset-detail"),
    path("assets/<int:pk>/owners/", assets.AssetOwnersApi.as_view(), name="asset-owners"),
    path("assets/<int:pk>/inventory/", assets.AssetInventoryApi.as_view(), name="asset-inventory"),
    path("assets/<int:pk>/provenance/", provenance.AssetProvenanceApi.as_view(), name="asset-provenance"),
    path("listings/", listings.ListingListApi.as_view(), name="listings"),
    path("listings/<int:pk>/", listings.ListingDetailApi.as_view(), name="listing-detail"),
    path("listings/<int:pk>/withdraw/", listings.ListingWithdrawApi.as_view(), name="listing-withdraw"),
    path("provenance/verify/", provenance.ProvenanceVerifyApi.as_view(), name="provenance-verify"),
]
