from channels.auth import AuthMiddlewareStack
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.urls import path

from exchange import consumers
from supervision.consumers import ConsoleConsumer


class BrowserOriginValidator(OriginValidator):
    """Refuses a WebSocket opened by a page of another site, which would ride the browser's
    session cookie (cross-site WebSocket hijacking); allows one with no Origin at all.

    Browsers always send Origin on a WebSocket, so a connection without one comes from a
    program: it has no victim's cookies to ride and authenticates itself (``?token=``).
    """

    async def __call__(self, scope, receive, send):
        if not any(name == b"origin" for name, _ in scope.get("headers", ())):
            return await self.application(scope, receive, send)
        return await super().__call__(scope, receive, send)

    def valid_origin(self, parsed_origin):
        return parsed_origin is not None and super().valid_origin(parsed_origin)


def browser_origin_validator(application):
    """channels' AllowedHostsOriginValidator, except for connections without an Origin."""
    allowed_hosts = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = ["localhost", "127.0.0.1", "[::1]"]
    return BrowserOriginValidator(application, allowed_hosts)

websocket_urlpatterns = [
    path("ws/events/", AuthMiddlewareStack(consumers.EventsConsumer.as_asgi())),
    # Public data: no session or user to load per connection, and the socket's own `send`
    # reaches the consumer unwrapped, so the fan-out can write frames to it.
    path("ws/market/", consumers.MarketDataConsumer.as_asgi()),
    # The supervision console's live stream (regulators only).
    path("ws/supervision/", AuthMiddlewareStack(ConsoleConsumer.as_asgi())),
]
