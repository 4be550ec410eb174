"""``/ws/supervision/``: the console's live stream, for regulators only."""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from accounts.access import actor_from_token, actor_from_user
from exchange.errors import AppError
from supervision.access import check_console_reader
from supervision.events import CONSOLE_GROUP


@database_sync_to_async
def _regulator(scope):
    query = dict(p.split("=", 1) for p in scope.get("query_string", b"").decode().split("&") if "=" in p)
    if token := query.get("token"):
        actor = actor_from_token(token)
    else:
        user = scope.get("user")
        if user is None or not user.is_authenticated:
            raise AppError("not_authenticated", "Sign in, or pass ?token=<API token>.", status_code=401)
        actor = actor_from_user(user)
    check_console_reader(actor)
    return actor


class ConsoleConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        await self.accept()
        try:
            await _regulator(self.scope)
        except AppError as exc:
            # As /ws/events/ does: say why, then close.
            await self.send_json({"type": "error", **exc.as_dict()})
            await self.close(code=4403 if exc.status_code == 403 else 4401)
            return
        await self.channel_layer.group_add(CONSOLE_GROUP, self.channel_name)
        await self.send_json({"type": "hello", "stream": "supervision"})

    async def disconnect(self, code):
        await self.channel_layer.group_discard(CONSOLE_GROUP, self.channel_name)

    async def receive_json(self, content, **kwargs):
        await self.send_json({"type": "error", "code": "read_only", "detail": "The console stream only sends."})

    async def relay(self, message):
        for event in message["events"]:
            await self.send_json(event)
