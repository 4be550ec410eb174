from channels.auth import AuthMiddlewareStack
from django.urls import path

from exchange import consumers

websocket_urlpatterns = [
    path("ws/events/", AuthMiddlewareStack(consumers.EventsConsumer.as_asgi())),
    # Public data: no session or user to load per connection, and the socket's own `send`
    # reaches the consumer unwrapped, so the fan-out can write frames to it.
    path("ws/market/", consumers.MarketDataConsumer.as_asgi()),
]
