"""What the settlement API answers: allocations with their delivery, metering and
settlement; metering reports; disputes; settlements; the SLA schedule."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from exchange.api import Money
from exchange.money import cny
from settlement import selectors
from settlement.api.common import DEVICE_HOURS, SELLER_MONEY, related_or_none
from settlement.models import Delivery, Dispute


class WindowOut(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    dispute_until = serializers.DateTimeField(help_text="Metering and disputes are taken until then.")


class DeliveryOut(serializers.Serializer):
    state = serializers.ChoiceField(choices=Delivery.State.values)
    endpoint = serializers.CharField()
    started_at = serializers.DateTimeField(allow_null=True)
    answered_at = serializers.DateTimeField(allow_null=True)
    holder_note = serializers.CharField()


class SettlementSummaryOut(serializers.Serializer):
    settled_at = serializers.DateTimeField()
    delivered_scu_h = serializers.IntegerField()
    refunded_scu_h = serializers.IntegerField()
    paid = Money(source="paid_fen", help_text="Paid out of escrow for the delivered SCU·h.")
    refund = Money(source="refund_fen")
    sla_credit_bp = serializers.IntegerField(help_text="Of the allocation's value, in basis points.")
    sla_credit = Money(source="sla_credit_fen")
    payout = serializers.SerializerMethodField()

    @extend_schema_field(SELLER_MONEY)
    def get_payout(self, settlement) -> str | None:
        return cny(settlement.payout_fen) if settlement.seller_id == self.context["organisation_id"] else None


class AllocationStatusOut(serializers.Serializer):
    id = serializers.IntegerField()
    trade_id = serializers.IntegerField()
    instrument = serializers.CharField(source="trade.instrument.code")
    window = serializers.SerializerMethodField()
    price = Money(source="trade.price_fen", help_text="The trade's price, CNY per SCU·h.")
    asset_id = serializers.IntegerField(source="listing_period.listing.asset_id")
    asset = serializers.CharField(source="listing_period.listing.asset.name")
    device_type = serializers.CharField(source="listing_period.listing.device_type.__str__")
    factor = serializers.DecimalField(source="listing_period.listing.factor", max_digits=10, decimal_places=4,
                                      help_text="Attested SCU per device-hour.")
    scu_h = serializers.IntegerField()
    device_hours = serializers.DecimalField(**DEVICE_HOURS)
    resold_scu_h = serializers.IntegerField()
    source_id = serializers.IntegerField(allow_null=True, help_text="The allocation this one was resold from.")
    roles = serializers.SerializerMethodField()
    delivery = serializers.SerializerMethodField()
    metered_device_hours = serializers.DecimalField(**DEVICE_HOURS)
    metered_scu_h = serializers.SerializerMethodField()
    open_dispute_id = serializers.IntegerField(allow_null=True)
    settled_at = serializers.DateTimeField(allow_null=True)
    settlement = serializers.SerializerMethodField()

    @extend_schema_field(WindowOut)
    def get_window(self, allocation) -> dict:
        return WindowOut(selectors.allocation_window(allocation)).data

    @extend_schema_field(serializers.ListField(child=serializers.ChoiceField(choices=["holder", "seller", "provider"])))
    def get_roles(self, allocation) -> list[str]:
        return selectors.allocation_roles(allocation, self.context["organisation_id"])

    @extend_schema_field(DeliveryOut(allow_null=True))
    def get_delivery(self, allocation) -> dict | None:
        delivery = related_or_none(allocation, "delivery")
        return None if delivery is None else DeliveryOut(delivery).data

    def get_metered_scu_h(self, allocation) -> int:
        return selectors.scu_h_of(allocation.metered_device_hours, allocation.listing_period.listing.factor)

    @extend_schema_field(SettlementSummaryOut(allow_null=True))
    def get_settlement(self, allocation) -> dict | None:
        settlement = related_or_none(allocation, "settlement")
        return None if settlement is None else SettlementSummaryOut(settlement, context=self.context).data


class AllocationStatusDetailOut(AllocationStatusOut):
    """An allocation; to members of the holding organisation, with its access credentials."""

    credentials = serializers.CharField(
        required=False, allow_null=True,
        help_text="Only for members of the holding organisation (absent for anyone else): the access details the "
                  "provider gave, empty if none; null before delivery started or if they can no longer be read.")


class MeterReportOut(serializers.Serializer):
    id = serializers.IntegerField()
    allocation_id = serializers.IntegerField()
    device_hours = serializers.DecimalField(**DEVICE_HOURS)
    source = serializers.CharField()
    note = serializers.CharField()
    created_at = serializers.DateTimeField()


class MeteringOut(serializers.Serializer):
    report = MeterReportOut()
    allocation = AllocationStatusOut()


class MeteringRowOut(serializers.Serializer):
    row = serializers.IntegerField()
    allocation_id = serializers.JSONField(help_text="The id, or the text of the row when it is not one.")
    ok = serializers.BooleanField()
    report_id = serializers.IntegerField(required=False)
    code = serializers.CharField(required=False, help_text="Why the row was refused.")
    detail = serializers.CharField(required=False)


class MeteringImportOut(serializers.Serializer):
    rows = serializers.IntegerField()
    reported = serializers.IntegerField()
    refused = serializers.IntegerField()
    results = MeteringRowOut(many=True)


class DisputeOut(serializers.Serializer):
    id = serializers.IntegerField()
    allocation_id = serializers.IntegerField()
    instrument = serializers.CharField(source="allocation.trade.instrument.code")
    report_id = serializers.IntegerField(allow_null=True)
    reason = serializers.CharField()
    state = serializers.ChoiceField(choices=Dispute.State.values)
    opened_at = serializers.DateTimeField()
    delivered_device_hours = serializers.DecimalField(**DEVICE_HOURS, allow_null=True,
                                                      help_text="Set by an adjustment.")
    resolution_note = serializers.CharField()
    resolved_at = serializers.DateTimeField(allow_null=True)


class PayoutOut(serializers.Serializer):
    share_bp = serializers.IntegerField()
    amount = Money(source="amount_fen")


class SettlementOut(serializers.Serializer):
    allocation_id = serializers.IntegerField()
    trade_id = serializers.IntegerField()
    instrument = serializers.CharField(source="trade.instrument.code")
    roles = serializers.SerializerMethodField()
    price = Money(source="price_fen")
    scu_h = serializers.IntegerField()
    delivered_scu_h = serializers.IntegerField()
    refunded_scu_h = serializers.IntegerField()
    paid = Money(source="paid_fen")
    refund = Money(source="refund_fen")
    sla_credit_bp = serializers.IntegerField()
    sla_credit = Money(source="sla_credit_fen")
    credit_debt = Money(source="credit_debt_fen", help_text="Of the credit, what the seller owes the holder.")
    fee = serializers.SerializerMethodField()
    fee_debt = serializers.SerializerMethodField()
    debt_repaid = serializers.SerializerMethodField()
    payout = serializers.SerializerMethodField()
    payouts = PayoutOut(many=True, source="payouts_to_caller", help_text="Parts of the proceeds paid to you.")
    settled_at = serializers.DateTimeField()

    @extend_schema_field(serializers.ListField(child=serializers.ChoiceField(choices=["holder", "seller", "owner"])))
    def get_roles(self, settlement) -> list[str]:
        org_id = self.context["organisation_id"]
        return [role for role, yes in (("holder", settlement.holder_id == org_id),
                                       ("seller", settlement.seller_id == org_id),
                                       ("owner", bool(settlement.payouts_to_caller))) if yes]

    def _sellers(self, settlement, fen: int) -> str | None:
        return cny(fen) if settlement.seller_id == self.context["organisation_id"] else None

    @extend_schema_field(SELLER_MONEY)
    def get_fee(self, settlement) -> str | None:
        return self._sellers(settlement, settlement.fee_fen)

    @extend_schema_field(SELLER_MONEY)
    def get_fee_debt(self, settlement) -> str | None:
        return self._sellers(settlement, settlement.fee_debt_fen)

    @extend_schema_field(SELLER_MONEY)
    def get_debt_repaid(self, settlement) -> str | None:
        return self._sellers(settlement, settlement.debt_repaid_fen)

    @extend_schema_field(SELLER_MONEY)
    def get_payout(self, settlement) -> str | None:
        return self._sellers(settlement, settlement.payout_fen)


class SlaStepOut(serializers.Serializer):
    below_bp = serializers.IntegerField()
    credit_bp = serializers.IntegerField()
    below_percent = serializers.SerializerMethodField()
    credit_percent = serializers.SerializerMethodField()

    def get_below_percent(self, step) -> str:
        return f"{step.below_bp / 100:.2f}"

    def get_credit_percent(self, step) -> str:
        return f"{step.credit_bp / 100:.2f}"


class SlaScheduleOut(serializers.Serializer):
    rule = serializers.CharField()
    steps = SlaStepOut(many=True)
