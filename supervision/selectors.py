"""What the console's overview shows: the work waiting for the regulator, in a few queries."""

from __future__ import annotations

from django.db.models import Count, Q

from accounts.models import Organisation
from exchange.models import Instrument
from settlement.models import Dispute
from supervision.models import Alert
from supervision.surveillance import selectors as surveillance

LATEST_ALERTS = 8


def console_overview() -> dict:
    """Counts of pending KYC applications, alerts by state and severity, open disputes and
    instruments by state; the latest alerts not yet closed."""
    alerts = Alert.objects.aggregate(
        open=Count("id", filter=Q(state=Alert.State.OPEN)),
        under_review=Count("id", filter=Q(state=Alert.State.UNDER_REVIEW)),
        high=Count("id", filter=Q(state=Alert.State.OPEN, severity=Alert.Severity.HIGH)),
        medium=Count("id", filter=Q(state=Alert.State.OPEN, severity=Alert.Severity.MEDIUM)),
    )
    states = dict(Instrument.objects.exclude(state=Instrument.State.CLOSED).values_list("state")
                  .annotate(n=Count("id")).order_by())
    latest = list(surveillance.alert_list().exclude(state=Alert.State.CLOSED)[:LATEST_ALERTS])
    names = surveillance.organisation_names(latest)
    return {
        "pending_kyc": Organisation.objects.filter(kyc_status=Organisation.Kyc.PENDING).count(),
        "alerts": alerts,
        "open_disputes": Dispute.objects.filter(state=Dispute.State.OPEN).count(),
        "instruments": {"trading": states.get(Instrument.State.CONTINUOUS, 0),
                        "auction": states.get(Instrument.State.PRE_OPEN, 0) + states.get(Instrument.State.AUCTION, 0),
                        "halted": states.get(Instrument.State.HALTED, 0)},
        "latest": [{"alert": a, "title": surveillance.rule_title(a.rule.code), "summary": surveillance.alert_summary(a),
                    "organisations": [names.get(org, "") for org in a.organisation_ids]} for a in latest],
    }
