"""WebSocket edges. They authenticate, join groups and relay ready-made events."""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from accounts.access import actor_from_token, actor_from_user, check_actor
from exchange.errors import AppError
from exchange.events import organisation_group


@database_sync_to_async
def _actor_for_scope(scope):
    query = dict(part.split("=", 1) for part in scope.get("query_string", b"").decode().split("&") if "=" in part)
    if token := query.get("token"):
        actor = actor_from_token(token)
    else:
        user = scope.get("user")
        if user is None or not user.is_authenticated:
            raise AppError("not_authenticated", "Sign in, or pass ?token=<API token>.", status_code=401)
        actor = actor_from_user(user)
    check_actor(actor, scope="read", acting=False)
    return actor


class EventsConsumer(AsyncJsonWebsocketConsumer):
    """The private stream of one organisation: its orders, trades, holds, allocations."""

    async def connect(self):
        try:
            self.actor = await _actor_for_scope(self.scope)
        except AppError as exc:
            await self.accept()
            await self.send_json({"type": "error", "code": exc.code, "detail": exc.detail})
            await self.close(code=4401 if exc.status_code == 401 else 4403)
            return
        self.group = organisation_group(self.actor.membership.organisation_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "hello", "organisation": self.actor.organisation.name})

    async def disconnect(self, code):
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def relay(self, message):
        await self.send_json(message["event"])
