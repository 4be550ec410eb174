from django.contrib import admin

from exchange.models import FeeTier, Instrument, MemberTier


@admin.register(FeeTier)
class FeeTierAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "maker_bps", "taker_bps", "is_default"]


@admin.register(MemberTier)
class MemberTierAdmin(admin.ModelAdmin):
    list_display = ["organisation", "tier"]


@admin.register(Instrument)
class InstrumentAdmin(admin.ModelAdmin):
    list_display = ["code", "state", "delivery_start", "gate_closure_at", "reference_price_fen", "last_price_fen"]
    list_filter = ["state", "compute_class", "hub"]
    readonly_fields = ["md_seq", "last_price_fen", "best_bid_fen", "best_ask_fen"]
