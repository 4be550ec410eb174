"""What of a provider's listed capacity is committed to the market: sold, or held by open asks."""

from __future__ import annotations

from django.db import connection

from exchange.models import CapacityPosition, Instrument


def committed_floor(*, periods) -> dict[int, int]:
    """For each listing period, the SCU·h a change or withdrawal may not take away.

    A period never goes below what it sold. Open asks hold capacity of the provider's whole
    window (class × hub × period, all its listings together, plus capacity it bought), so a
    period may shrink only by what that window has free. The window's capacity position is
    locked, as order entry locks it, so an ask and a withdrawal cannot both take the same SCU·h.
    """
    floors = {period.id: period.sold_scu_h for period in periods}
    windows = {(p.provider_id, p.compute_class_id, p.hub_id, p.period_start) for p in periods}
    instruments = {
        (i.compute_class_id, i.hub_id, i.delivery_start): i.id
        for i in Instrument.objects.filter(
            compute_class_id__in={w[1] for w in windows}, hub_id__in={w[2] for w in windows},
            delivery_start__in={w[3] for w in windows},
        )
    }
    keys = {(w[0], instruments[w[1:]]) for w in windows if w[1:] in instruments}
    if not keys:
        return floors
    positions = {
        (p.organisation_id, p.instrument_id): p
        for p in CapacityPosition.objects.select_for_update().filter(
            organisation_id__in={k[0] for k in keys}, instrument_id__in={k[1] for k in keys}).order_by("id")
    }
    free: dict[tuple, int] = {}
    for window in windows:
        position = positions.get((window[0], instruments.get(window[1:])))
        if position is None:
            continue
        with connection.cursor() as cursor:
            cursor.execute("SELECT cx_listed_scu_h(%s, %s, %s, %s)", list(window))
            listed = cursor.fetchone()[0]
        free[window] = max(0, listed + position.bought - position.sold - position.held)
    for period in periods:
        window = (period.provider_id, period.compute_class_id, period.hub_id, period.period_start)
        if window in free:
            floors[period.id] = max(floors[period.id], period.scu_h - free[window])
    return floors
