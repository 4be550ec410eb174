"""Writes for the marketplace. Every change of an asset is also a provenance event.

Services trust their caller for *who* acts (``marketplace.access``) and check everything
about *what* is done. Business refusals raise ``AppError``; nothing is written then.
"""

from marketplace.services.assets import asset_owners_set, asset_register, asset_update, inventory_set
from marketplace.services.catalogue import cluster_update, compute_class_create, compute_class_update, hub_update
from marketplace.services.hardware import (
    attestation_add,
    attestor_key_register,
    device_type_register,
    device_type_update,
)
from marketplace.services.listings import listing_change, listing_create, listing_period_floor, listing_withdraw
from marketplace.services.provenance import provenance_append, provenance_append_many

__all__ = [
    "asset_owners_set", "asset_register", "asset_update", "attestation_add", "attestor_key_register",
    "cluster_update", "compute_class_create", "compute_class_update", "device_type_register", "device_type_update",
    "hub_update", "inventory_set", "listing_change", "listing_create", "listing_period_floor", "listing_withdraw",
    "provenance_append", "provenance_append_many",
]
