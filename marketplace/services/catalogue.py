"""The catalogue the regulator keeps: hubs, clusters, compute classes."""

from __future__ import annotations

from exchange.errors import AppError
from marketplace.models import Cluster, ComputeClass, Hub, Precision
from marketplace.services.common import UNPROCESSABLE


def hub_update(*, hub: Hub, name_en: str | None = None, name_zh: str | None = None,
               region_cities: list[str] | None = None) -> Hub:
    for field, value in (("name_en", name_en), ("name_zh", name_zh)):
        if value is not None:
            if not value.strip():
                raise AppError("invalid", "Names cannot be empty.", fields={field: "Required."})
            setattr(hub, field, value.strip())
    if region_cities is not None:
        hub.region_cities = [c.strip() for c in region_cities if c.strip()]
    hub.save()
    return hub


def cluster_update(*, cluster: Cluster, name_en: str | None = None, name_zh: str | None = None,
                   cities: list[str] | None = None) -> Cluster:
    for field, value in (("name_en", name_en), ("name_zh", name_zh)):
        if value is not None:
            if not value.strip():
                raise AppError("invalid", "Names cannot be empty.", fields={field: "Required."})
            setattr(cluster, field, value.strip())
    if cities is not None:
        cluster.cities = [c.strip() for c in cities if c.strip()]
    cluster.save()
    return cluster


CLASS_FIELDS = ("name_en", "name_zh", "category", "reference_precision", "min_memory_gb",
                "min_interconnect_gbps", "period_hours", "description_en", "description_zh")


def _check_class_values(values: dict) -> None:
    if "category" in values and values["category"] not in ComputeClass.Category.values:
        raise AppError("invalid", "Unknown category.", fields={"category": "general, ai or hpc."})
    if "reference_precision" in values and values["reference_precision"] not in Precision.values:
        raise AppError("invalid", "Unknown precision.", fields={"reference_precision": "fp32, fp16 or fp64."})
    if "period_hours" in values and (not isinstance(values["period_hours"], int) or 24 % values["period_hours"]):
        raise AppError("invalid", "A delivery period must divide the day.",
                       fields={"period_hours": "One of 1, 2, 3, 4, 6, 8, 12, 24."})


def compute_class_create(*, code: str, **values) -> ComputeClass:
    code = (code or "").strip().upper()
    if not code.isalnum() or not 2 <= len(code) <= 12:
        raise AppError("invalid", "A class code is 2 to 12 letters and digits.", fields={"code": "2–12 letters or digits."})
    if ComputeClass.objects.filter(code=code).exists():
        raise AppError("class_exists", f"Compute class {code} exists.", fields={"code": "Already exists."}, status_code=409)
    _check_class_values(values)
    return ComputeClass.objects.create(code=code, **{k: v for k, v in values.items() if k in CLASS_FIELDS})


def compute_class_update(*, compute_class: ComputeClass, **changes) -> ComputeClass:
    """Minimums apply to new listings; capacity already listed keeps its class."""
    _check_class_values(changes)
    if ("period_hours" in changes and changes["period_hours"] != compute_class.period_hours
            and compute_class.listings.exists()):
        raise AppError("class_in_use", "The delivery period of a class with listings cannot change.",
                       fields={"period_hours": "The class has listings."}, status_code=UNPROCESSABLE)
    for field in CLASS_FIELDS:
        if field in changes:
            setattr(compute_class, field, changes[field])
    compute_class.save()
    return compute_class
