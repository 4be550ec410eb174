import pytest

from marketplace.models import ComputeClass, Hub
from tests.conftest import token_client
from tests.marketplace.helpers import assert_error, provide_client

pytestmark = pytest.mark.django_db


def test_anyone_reads_hubs_with_latency_circles_from_a_city(api, catalogue):
    response = api.get("/api/v1/hubs/", {"city": "Zhongwei"})
    assert response.status_code == 200
    by_code = {hub["code"]: hub for hub in response.json()["results"]}
    assert len(by_code) == 8
    assert by_code["NX"]["latency_ms"] == 1 and by_code["NX"]["name_zh"] == "宁夏"
    assert by_code["GS"]["latency_ms"] == 20
    assert [c["code"] for c in by_code["YRD"]["clusters"]] == ["YRD-EGZ", "YRD-WH"]
    assert api.get("/api/v1/hubs/", {"city": "银川"}).json()["results"][-1]["latency_ms"] == 5


def test_a_signed_in_buyer_gets_circles_from_its_head_office_city(buyer_api, catalogue):
    hubs = {h["code"]: h["latency_ms"] for h in buyer_api.get("/api/v1/hubs/").json()["results"]}
    assert hubs == {"JJJ": 20, "YRD": 1, "GBA": 20, "CY": 20, "NM": 20, "GZ": 20, "GS": 20, "NX": 20}


def test_hub_and_class_reads_and_their_404s(api, catalogue):
    assert api.get("/api/v1/hubs/nx/").json()["code"] == "NX"
    assert api.get("/api/v1/clusters/GZ-GA/").json()["hub"] == "GZ"
    assert api.get("/api/v1/classes/AI80/").json()["min_memory_gb"] == 80
    codes = [c["code"] for c in api.get("/api/v1/classes/").json()["results"]]
    assert {"CPU", "AI80", "AI24", "HPC64"} <= set(codes)
    assert_error(api.get("/api/v1/hubs/XX/"), 404, "not_found")
    assert_error(api.get("/api/v1/clusters/XX/"), 404, "not_found")
    assert_error(api.get("/api/v1/classes/XX/"), 404, "not_found")
    assert_error(api.get("/api/v1/hubs/", {"city": "x" * 61}), 400, "invalid")


def test_the_regulator_edits_hubs_clusters_and_classes(regulator, catalogue):
    client = token_client(regulator, scopes=("read",))
    response = client.patch("/api/v1/hubs/NX/", {"region_cities": ["Yinchuan", "Wuzhong", "Lingwu"]}, format="json")
    assert response.status_code == 200 and "Lingwu" in response.json()["region_cities"]
    assert client.patch("/api/v1/clusters/NX-ZW/", {"cities": ["Zhongwei", "中卫", "Shapotou"]}, format="json").status_code == 200
    assert client.patch("/api/v1/classes/AI24/", {"min_interconnect_gbps": 50}, format="json").json()["min_interconnect_gbps"] == 50
    body = {"code": "AI48", "name_en": "AI inference 48 GB+", "name_zh": "AI 推理 48 GB", "category": "ai",
            "reference_precision": "fp16", "min_memory_gb": 48, "min_interconnect_gbps": 100}
    first = client.post("/api/v1/classes/", body, format="json", HTTP_IDEMPOTENCY_KEY="class-1")
    again = client.post("/api/v1/classes/", body, format="json", HTTP_IDEMPOTENCY_KEY="class-1")
    assert first.status_code == again.status_code == 201 and again["Idempotent-Replay"] == "true"
    assert ComputeClass.objects.filter(code="AI48").count() == 1
    assert_error(client.post("/api/v1/classes/", {**body, "name_en": "other"}, format="json", HTTP_IDEMPOTENCY_KEY="class-1"),
                 409, "idempotency_key_reused")
    assert_error(client.post("/api/v1/classes/", body, format="json"), 409, "class_exists")


@pytest.mark.parametrize(
    "method, url, body",
    [
        ("patch", "/api/v1/hubs/NX/", {"name_en": "Mine now"}),
        ("patch", "/api/v1/clusters/NX-ZW/", {"cities": []}),
        ("patch", "/api/v1/classes/AI80/", {"min_memory_gb": 1}),
        ("post", "/api/v1/classes/", {"code": "X1", "name_en": "x", "name_zh": "x", "category": "ai",
                                      "reference_precision": "fp16", "min_memory_gb": 1, "min_interconnect_gbps": 1}),
    ],
)
def test_only_the_regulator_edits_the_catalogue(api, provider, catalogue, method, url, body):
    before = (list(Hub.objects.values_list("name_en", "region_cities")), list(ComputeClass.objects.values_list("code", "min_memory_gb")))
    assert_error(getattr(provide_client(provider), method)(url, body, format="json"), 403, "not_regulator")
    assert_error(getattr(api, method)(url, body, format="json"), 401)
    assert (list(Hub.objects.values_list("name_en", "region_cities")), list(ComputeClass.objects.values_list("code", "min_memory_gb"))) == before


@pytest.mark.parametrize(
    "method, url, body, field",
    [
        ("patch", "/api/v1/hubs/NX/", {"name_en": ""}, "name_en"),
        ("patch", "/api/v1/hubs/NX/", {"region_cities": "Yinchuan"}, "region_cities"),
        ("patch", "/api/v1/clusters/NX-ZW/", {"name_zh": "x" * 200}, "name_zh"),
        ("patch", "/api/v1/classes/AI80/", {"period_hours": 5}, "period_hours"),
        ("patch", "/api/v1/classes/AI80/", {"category": "quantum"}, "category"),
        ("post", "/api/v1/classes/", {"code": "A.B", "name_en": "x", "name_zh": "x", "category": "ai",
                                      "reference_precision": "fp16", "min_memory_gb": 1, "min_interconnect_gbps": 1}, "code"),
        ("post", "/api/v1/classes/", {"code": "AB1"}, "name_en"),
    ],
)
def test_bad_catalogue_edits_are_400_and_change_nothing(regulator, catalogue, method, url, body, field):
    client = token_client(regulator, scopes=("read",))
    before = list(ComputeClass.objects.order_by("code").values()), list(Hub.objects.order_by("code").values())
    error = assert_error(getattr(client, method)(url, body, format="json"), 400, "invalid")
    assert field in error["fields"], error
    assert (list(ComputeClass.objects.order_by("code").values()), list(Hub.objects.order_by("code").values())) == before
