"""Settlement in the admin: read-only, except the SLA credit schedule the operator publishes.

Deliveries never show their credentials, not even encrypted: the field is excluded from
every form and list, and nothing here decrypts (only ``selectors.delivery_credentials``
does, for the holder's members).
"""

from django.contrib import admin

from settlement.models import Debt, Delivery, Dispute, MeterReport, Payout, Settlement, SlaCreditStep


class ReadOnlyAdmin(admin.ModelAdmin):
    """Written by the services and the runner alone, with their events and journals."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    exclude = ["credentials_encrypted"]
    fields = ["allocation", "state", "endpoint", "started_at", "started_by", "answered_at", "answered_by", "holder_note"]
    list_display = ["allocation_id", "state", "endpoint", "started_at", "answered_at"]
    list_filter = ["state"]
    search_fields = ["=allocation__id", "endpoint"]
    raw_id_fields = ["allocation", "started_by", "answered_by"]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("credentials_encrypted")


@admin.register(MeterReport)
class MeterReportAdmin(ReadOnlyAdmin):
    list_display = ["id", "allocation_id", "device_hours", "source", "note", "created_at"]
    list_filter = ["source"]
    search_fields = ["=allocation__id"]
    raw_id_fields = ["allocation", "reported_by"]


@admin.register(Dispute)
class DisputeAdmin(ReadOnlyAdmin):
    list_display = ["id", "allocation_id", "state", "opened_at", "delivered_device_hours", "resolved_at"]
    list_filter = ["state"]
    search_fields = ["=allocation__id"]
    raw_id_fields = ["allocation", "report", "opened_by", "resolved_by"]


@admin.register(SlaCreditStep)
class SlaCreditStepAdmin(admin.ModelAdmin):
    list_display = ["__str__", "below_bp", "credit_bp"]


@admin.register(Settlement)
class SettlementAdmin(ReadOnlyAdmin):
    list_display = ["allocation_id", "holder", "seller", "delivered_scu_h", "refunded_scu_h", "sla_credit_fen",
                    "payout_fen", "settled_at"]
    search_fields = ["=allocation__id"]
    raw_id_fields = ["allocation", "trade", "holder", "seller"]


@admin.register(Payout)
class PayoutAdmin(ReadOnlyAdmin):
    list_display = ["settlement_id", "organisation", "share_bp", "amount_fen"]
    raw_id_fields = ["settlement", "organisation"]


@admin.register(Debt)
class DebtAdmin(ReadOnlyAdmin):
    list_display = ["id", "debtor", "creditor", "amount_fen", "repaid_fen", "created_at"]
    raw_id_fields = ["debtor", "creditor", "settlement"]
