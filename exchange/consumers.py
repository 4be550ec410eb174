"""WebSocket edges. They authenticate, join groups, relay ready-made events, and pass
commands to the same order services the REST API uses."""

from __future__ import annotations

import logging
import time

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from accounts.access import actor_from_token, actor_from_user, actor_refresh, check_actor
from exchange import ratelimit, services
from exchange.errors import AppError
from exchange.events import organisation_group
from exchange.fanout import direct_connection, hub
from exchange.gateway import CREDENTIAL_REFUSALS
from exchange.market_data import depth_snapshot
from exchange.models import Instrument
from exchange.wire import UnstorableValue, json_parse, text_problem

log = logging.getLogger("exchange.consumers")


# Command refusals after which the socket's credentials are gone for good: the socket closes.
# (A missing scope leaves the socket open: it may still read.)
CREDENTIALS_GONE = CREDENTIAL_REFUSALS - {"scope_missing"}


def _query(scope) -> dict[str, str]:
    return dict(part.split("=", 1) for part in scope.get("query_string", b"").decode().split("&") if "=" in part)


def _actor_recheck(actor):
    """``actor`` as it is now, if it may still read its organisation's stream."""
    actor = actor_refresh(actor)
    check_actor(actor, scope="read", acting=False)
    return actor


@database_sync_to_async
def _actor_for_scope(scope):
    if token := _query(scope).get("token"):
        actor = actor_from_token(token)
    else:
        user = scope.get("user")
        if user is None or not user.is_authenticated:
            raise AppError("not_authenticated", "Sign in, or pass ?token=<API token>.", status_code=401)
        actor = actor_from_user(user)
    check_actor(actor, scope="read", acting=False)
    return actor


class JsonCommandConsumer(AsyncJsonWebsocketConsumer):
    """Frames read by the one JSON reader every edge uses. A frame that is not a JSON value
    the exchange can take gets an error reply; the socket stays open (Channels' own
    decoding raised, which dropped the socket without a close frame)."""

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        try:
            content = json_parse(text_data if text_data is not None else bytes_data or b"", what="The message")
        except AppError as exc:
            await self.send_json({"type": "error", **exc.as_dict(), "request_id": _request_id(exc)})
            return
        await self.receive_json(content, **kwargs)


def _request_id(exc: AppError):
    """The request id of a refused frame that was JSON but held an unstorable value."""
    content = exc.value if isinstance(exc, UnstorableValue) else None
    request_id = content.get("request_id") if isinstance(content, dict) else None
    return None if isinstance(request_id, str) and text_problem(request_id) else request_id


def _order_json(order) -> dict:
    from exchange.api import OrderOut

    return dict(OrderOut(order).data)


class EventsConsumer(JsonCommandConsumer):
    """The private stream of one organisation (its orders, trades, holds, allocations), and
    a command channel: ``{"action": "place" | "cancel" | "amend", "request_id": …, …}``."""

    async def connect(self):
        try:
            self.actor = await _actor_for_scope(self.scope)
        except AppError as exc:
            await self.accept()
            await self.send_json({"type": "error", "code": exc.code, "detail": exc.detail})
            await self.close(code=4401 if exc.status_code == 401 else 4403)
            return
        self.checked_at = time.monotonic()
        self.group = organisation_group(self.actor.membership.organisation_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "hello", "organisation": self.actor.organisation.name})

    async def disconnect(self, code):
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def relay(self, message):
        if not await self._may_still_read(message["events"]):
            return
        for event in message["events"]:
            await self.send_json(event)

    async def _may_still_read(self, events=()) -> bool:
        """Whether the socket's credentials still read this organisation's events.

        The stream outlives the check made when it opened: a revoked token, a deactivated
        user, a membership moved away or a suspension ends it (an error, then a close). The
        facts are read again at most once per EVENTS_ACCESS_RECHECK_SECONDS, so a busy stream
        costs one query per interval, not one per event.
        """
        if not hasattr(self, "checked_at"):  # closed
            return False
        now = time.monotonic()
        if now - self.checked_at < settings.EVENTS_ACCESS_RECHECK_SECONDS:
            return True
        try:
            self.actor = await database_sync_to_async(_actor_recheck)(self.actor)
        except AppError as exc:
            del self.checked_at
            if exc.code == "organisation_suspended":
                # The regulator's own word on the suspension (its reason) goes out before the close.
                for event in events:
                    if event.get("type") == "kyc.changed":
                        await self.send_json(event)
            await self.send_json({"type": "error", **exc.as_dict()})
            await self.close(code=4401 if exc.status_code == 401 else 4403)
            return False
        self.checked_at = now
        return True

    async def receive_json(self, content, **kwargs):
        request_id = content.get("request_id") if isinstance(content, dict) else None
        try:
            ratelimit.take_orders(self.actor, None)
            reply = await self._command(content)
        except AppError as exc:
            reply = {"type": "error", **exc.as_dict(), "request_id": request_id}
            await self.send_json(reply)
            if exc.code in CREDENTIALS_GONE:
                await self.close(code=4401 if exc.status_code == 401 else 4403)
            return
        except Exception:  # a fault of ours: answer it, and keep the socket for the next command
            log.exception("websocket command failed")
            reply = {"type": "error", "code": "server_error", "detail": "The command could not be processed; try again.",
                     "fields": {}}
        reply["request_id"] = request_id
        await self.send_json(reply)

    @database_sync_to_async
    def _command(self, content) -> dict:
        # The socket outlives any check made when it opened: the order services act as the
        # token, user, membership and organisation are now (actor_refresh), and a refusal
        # that the credentials are gone closes the socket.
        if not isinstance(content, dict):
            raise AppError("invalid", "Send a JSON object with an action.")
        action = content.get("action")
        body = {k: v for k, v in content.items() if k not in ("action", "request_id", "order_id")}
        if action == "place":
            order, created = services.order_place(actor=self.actor, data=body)
            return {"type": "ack", "result": "accepted" if created else "duplicate", "order": _order_json(order)}
        if action in ("cancel", "amend"):
            order_id = content.get("order_id")
            if not isinstance(order_id, int):
                raise AppError("invalid", "order_id is required.", fields={"order_id": "An integer."})
            if action == "cancel":
                order = services.order_cancel(actor=self.actor, order_id=order_id)
            else:
                order = services.order_amend(actor=self.actor, order_id=order_id, data=body)
            return {"type": "ack", "result": f"{action}_requested", "order": _order_json(order)}
        raise AppError("invalid", "action must be place, cancel or amend.", fields={"action": "Unknown action."})


class MarketDataConsumer(JsonCommandConsumer):
    """Public market data: ``{"action": "subscribe", "instrument": CODE}`` (or unsubscribe).

    After subscribing, the socket gets a ``md.snapshot`` and then ``md.update`` messages
    with consecutive ``seq``; a gap means updates were skipped for a slow reader — fetch
    the depth snapshot again (or resubscribe) and continue from its ``seq``.
    """

    async def connect(self):
        self.subscriptions: dict[int, object] = {}
        await self.accept()

    async def disconnect(self, code):
        for instrument_id, subscriber in self.subscriptions.items():
            hub.unsubscribe(instrument_id, subscriber)
        self.subscriptions.clear()

    async def _send_raw(self, text: str) -> None:
        # Straight to the socket: no channel-layer hop for public data.
        await self.base_send({"type": "websocket.send", "text": text})

    async def receive_json(self, content, **kwargs):
        if not isinstance(content, dict) or content.get("action") not in ("subscribe", "unsubscribe"):
            await self.send_json({"type": "error", "code": "invalid", "detail": "Send {\"action\": \"subscribe\", \"instrument\": CODE}."})
            return
        instrument = await Instrument.objects.filter(code=str(content.get("instrument"))).afirst()
        if instrument is None:
            await self.send_json({"type": "error", "code": "not_found", "detail": f"Unknown instrument {content.get('instrument')!r}."})
            return
        if content["action"] == "unsubscribe":
            if subscriber := self.subscriptions.pop(instrument.id, None):
                hub.unsubscribe(instrument.id, subscriber)
            await self.send_json({"type": "unsubscribed", "instrument": instrument.code})
            return
        if instrument.id not in self.subscriptions:
            # Subscribe before the snapshot so nothing published in between is lost.
            self.subscriptions[instrument.id] = hub.subscribe(instrument.id, self._send_raw,
                                                              direct_connection(self.base_send))
            await hub.listening()
        snapshot = await database_sync_to_async(depth_snapshot)(instrument)
        await self.send_json({"type": "md.snapshot", **snapshot})
