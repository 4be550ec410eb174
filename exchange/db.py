"""Direct psycopg connections beside Django's (LISTEN, the group-commit batcher), and array
literals for the statements that send thousands of values."""

from django.db import connections
from psycopg.conninfo import make_conninfo


def conninfo(alias: str = "default") -> str:
    """The connection string of Django's database — the test database under tests."""
    settings = connections[alias].settings_dict
    params = {"dbname": settings["NAME"], "user": settings.get("USER"), "password": settings.get("PASSWORD"),
              "host": settings.get("HOST"), "port": settings.get("PORT")}
    params.update(settings.get("OPTIONS", {}) and {k: v for k, v in settings["OPTIONS"].items() if isinstance(v, (str, int))})
    return make_conninfo(**{k: str(v) for k, v in params.items() if v})


def pg_array(values) -> str:
    """A list of ints or None as a PostgreSQL array literal (cast it in the query): far
    cheaper to send than a list the driver adapts element by element."""
    return "{" + ",".join(["NULL" if v is None else str(v) for v in values]) + "}"


def pg_text_array(values) -> str:
    """A list of strings or None as a PostgreSQL array literal."""
    return "{" + ",".join(["NULL" if v is None else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
                           for v in values]) + "}"


def pg_bool_array(values) -> str:
    return "{" + ",".join(["NULL" if v is None else ("t" if v else "f") for v in values]) + "}"
