from django.apps import AppConfig
from django.db.models.signals import post_migrate


def install_role_scopes(using: str = "default", **kwargs) -> None:
    """(Re)create ``cx_role_scopes`` after every migrate, so order entry reads the roles' scopes
    from ROLE_SCOPES itself."""
    from django.db import connections

    from accounts.access import role_scopes_sql

    with connections[using].cursor() as cursor:
        cursor.execute(role_scopes_sql())


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self):
        post_migrate.connect(install_role_scopes, sender=self)
