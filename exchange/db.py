"""Direct psycopg connections beside Django's (LISTEN, the group-commit batcher)."""

from django.db import connections
from psycopg.conninfo import make_conninfo


def conninfo(alias: str = "default") -> str:
    """The connection string of Django's database — the test database under tests."""
    settings = connections[alias].settings_dict
    params = {"dbname": settings["NAME"], "user": settings.get("USER"), "password": settings.get("PASSWORD"),
              "host": settings.get("HOST"), "port": settings.get("PORT")}
    params.update(settings.get("OPTIONS", {}) and {k: v for k, v in settings["OPTIONS"].items() if isinstance(v, (str, int))})
    return make_conninfo(**{k: str(v) for k, v in params.items() if v})
