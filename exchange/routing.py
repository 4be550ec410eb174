from django.urls import path

from exchange import consumers

websocket_urlpatterns = [
    path("ws/events/", consumers.EventsConsumer.as_asgi()),
    path("ws/market/", consumers.MarketDataConsumer.as_asgi()),
]
