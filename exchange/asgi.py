"""ASGI entry point: HTTP to Django, WebSocket to Channels consumers."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exchange.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from django.conf import settings  # noqa: E402

from exchange.fastpath import OrderEntryRouter  # noqa: E402
from exchange.routing import browser_origin_validator, websocket_urlpatterns  # noqa: E402
from exchange.static_asgi import StaticFiles  # noqa: E402

order_entry = OrderEntryRouter(django_asgi)
# Collected static files before anything else; in DEBUG the finders' live files (through Django).
http = order_entry if settings.DEBUG else StaticFiles(order_entry, root=settings.STATIC_ROOT, prefix=settings.STATIC_URL)

application = ProtocolTypeRouter(
    {
        "http": http,
        "websocket": browser_origin_validator(URLRouter(websocket_urlpatterns)),
    }
)
