from pathlib import Path

from django.apps import AppConfig
from django.db.models.signals import post_migrate

SQL_DIR = Path(__file__).resolve().parent / "sql"


def install_sql_functions(using: str = "default", **kwargs) -> None:
    """(Re)create the PL/pgSQL functions after every migrate, so they always match the code."""
    from django.db import connections

    with connections[using].cursor() as cursor:
        for path in sorted(SQL_DIR.glob("*.sql")):
            cursor.execute(path.read_text())


class ExchangeConfig(AppConfig):
    name = "exchange"
    verbose_name = "Exchange"

    def ready(self):
        post_migrate.connect(install_sql_functions, sender=self)
