"""Admin for operators (superusers). Assets, listings and the log change only through services,
so that every change is a provenance event: here they are read-only."""

from django.contrib import admin

from marketplace.models import (
    Attestation,
    AttestorKey,
    Cluster,
    ComputeAsset,
    ComputeClass,
    DeviceType,
    Hub,
    Listing,
    ProvenanceEvent,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Hub)
class HubAdmin(admin.ModelAdmin):
    list_display = ["code", "name_en", "name_zh", "sort_order"]


@admin.register(Cluster)
class ClusterAdmin(admin.ModelAdmin):
    list_display = ["code", "hub", "name_en", "name_zh"]


@admin.register(ComputeClass)
class ComputeClassAdmin(admin.ModelAdmin):
    list_display = ["code", "category", "reference_precision", "min_memory_gb", "min_interconnect_gbps", "period_hours"]

    def get_readonly_fields(self, request, obj=None):
        # Instruments and listing periods are cut by the period: it is fixed once the class exists.
        return ["code", "period_hours"] if obj is not None else []


@admin.register(DeviceType, AttestorKey, Attestation, ComputeAsset, Listing)
class RecordAdmin(ReadOnlyAdmin):
    pass


@admin.register(ProvenanceEvent)
class ProvenanceEventAdmin(ReadOnlyAdmin):
    list_display = ["seq", "kind", "asset", "device_type", "recorded_at", "hash"]
    list_filter = ["kind"]
