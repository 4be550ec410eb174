"""Settlement API (``/api/v1/settlement/``): allocations after the trade, delivery, metering,
disputes, settlements and the SLA schedule.

Thin views: each reads its input with a nested serializer and calls one service or
selector. Writes ask the access check before reading the body (a caller who may not act
learns nothing from its body's errors); the service checks again under the allocation's
lock. Delivery credentials appear only in ``GET allocations/{id}/``, to the holder's members.
"""
