"""The provider REST API (DRF), one module per resource family; routes in ``marketplace.api_urls``."""
