"""``/api/v1/supervision/``: everything the console does, for programs."""

urlpatterns: list = []
