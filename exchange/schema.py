"""The OpenAPI document says what the views do: which operations need no credentials, and
which lists come in pages."""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from rest_framework.permissions import SAFE_METHODS, AllowAny


class AutoSchema(SpectacularAutoSchema):
    def _is_public(self) -> bool:
        """Anyone may call it: every permission lets an anonymous caller through."""
        return all(
            isinstance(permission, AllowAny)
            or (getattr(permission, "anonymous_reads", False) and self.method in SAFE_METHODS)
            for permission in self.view.get_permissions()
        )

    def get_operation(self, *args, **kwargs):
        operation = super().get_operation(*args, **kwargs)
        if operation is not None and self._is_public():
            # No credentials needed (a token or session is still accepted, and gives the
            # caller's own rate limit).
            operation["security"] = []
        return operation

    def _get_paginator(self):
        # Only GET lists come in pages: a POST answering a list (an asset's new owners,
        # say) answers all of it.
        return super()._get_paginator() if self.method == "GET" else None
