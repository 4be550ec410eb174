"""Device types, attestor keys and attestations: attestors post, everyone verifies."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import request_actor
from exchange.errors import NotFound
from exchange.idempotency import idempotent
from marketplace.access import check_attestor, check_device_registrar
from marketplace.api.common import THROTTLES, Pagination, PublicReadPermission, errors, paginated
from marketplace.models import Attestation, AttestorKey, DeviceType
from marketplace.selectors import (
    attestation_check,
    attestations_for,
    compute_class_list,
    device_type_factors,
    device_type_list,
)
from marketplace.services import attestation_add, attestor_key_register, device_type_register, device_type_update
from marketplace.signing import canonical_json

TAG = ["Device types and attestations"]
PEAK = {"max_digits": 10, "decimal_places": 4, "min_value": 0, "required": False, "allow_null": True}


class FactorOut(serializers.Serializer):
    compute_class = serializers.CharField(source="compute_class.code")
    qualifies = serializers.BooleanField(help_text="Meets the class minimums and has a valid attestation at its precision.")
    factor = serializers.DecimalField(max_digits=10, decimal_places=4, allow_null=True,
                                      help_text="SCU per device: attested sustained PFLOP/s at the class precision.")
    attestation = serializers.IntegerField(source="attestation.id", allow_null=True)
    gaps = serializers.DictField(child=serializers.CharField(), help_text="Class minimums the device misses.")


class DeviceTypeOut(serializers.ModelSerializer):
    registered_by = serializers.IntegerField(source="registered_by_id")
    factors = serializers.SerializerMethodField()

    class Meta:
        model = DeviceType
        fields = ["id", "vendor", "model", "memory_gb", "interconnect_gbps", "peak_fp32_pflops", "peak_fp16_pflops",
                  "peak_fp64_pflops", "registered_by", "factors"]

    @staticmethod
    def context_for(device_types) -> dict:
        """Classes and attestations for a page of device types, in two queries."""
        ids = [d.id for d in device_types]
        return {"classes": list(compute_class_list()), "attestations": list(attestations_for(device_type_ids=ids))}

    def get_factors(self, device_type) -> FactorOut(many=True):
        factors = device_type_factors(device_type=device_type, classes=self.context["classes"],
                                      attestations=self.context["attestations"])
        return FactorOut(factors, many=True).data


DEVICE_EXAMPLE = {
    "id": 2, "vendor": "Hanxin Semiconductor", "model": "HX-910", "memory_gb": 96, "interconnect_gbps": 200,
    "peak_fp32_pflops": "0.1000", "peak_fp16_pflops": "1.0000", "peak_fp64_pflops": None, "registered_by": 6,
    "factors": [{"compute_class": "AI80", "qualifies": True, "factor": "0.6000", "attestation": 2, "gaps": {}},
                {"compute_class": "HPC64", "qualifies": False, "factor": None, "attestation": None, "gaps": {}}],
}


class DeviceTypeFields(serializers.Serializer):
    vendor = serializers.CharField(max_length=100)
    model = serializers.CharField(max_length=100)
    memory_gb = serializers.IntegerField(min_value=1, max_value=100_000, help_text="Device memory, GB.")
    interconnect_gbps = serializers.IntegerField(min_value=1, max_value=100_000, help_text="Scale-out bandwidth per device, Gbit/s.")
    peak_fp32_pflops = serializers.DecimalField(**PEAK)
    peak_fp16_pflops = serializers.DecimalField(**PEAK, help_text="Vendor peak, dense. For reference only.")
    peak_fp64_pflops = serializers.DecimalField(**PEAK)


def _device_type(pk: int) -> DeviceType:
    device_type = device_type_list().filter(pk=pk).first()
    if device_type is None:
        raise NotFound("No device type with that id.")
    return device_type


class DeviceTypeListApi(APIView):
    permission_classes = [PublicReadPermission]
    pagination_class = Pagination
    throttle_classes = THROTTLES
    write_scope = "provide"
    ordering = ("id",)

    @extend_schema_serializer(component_name="DeviceTypeCreate")
    class InputSerializer(DeviceTypeFields):
        pass

    @extend_schema(tags=TAG, summary="Device types with their attested factor per class",
                   responses={200: DeviceTypeOut(many=True), **errors(429)},
                   examples=[OpenApiExample("Domestic accelerator", value=DEVICE_EXAMPLE, response_only=True)])
    def get(self, request):
        return paginated(self, request, device_type_list(), DeviceTypeOut, DeviceTypeOut.context_for)

    @extend_schema(
        tags=TAG, summary="Register a device type (providers and attestors)", request=InputSerializer,
        responses={201: DeviceTypeOut, **errors(400, 401, 403, 409, 429, example=("invalid", "The request is not valid. memory_gb: A valid integer is required.", {"memory_gb": "A valid integer is required."}))},
        examples=[OpenApiExample("An accelerator", request_only=True, value={
            "vendor": "Hanxin Semiconductor", "model": "HX-910", "memory_gb": 96, "interconnect_gbps": 200,
            "peak_fp16_pflops": "1.0000", "peak_fp32_pflops": "0.1000"})],
    )
    @idempotent()
    def post(self, request):
        actor = request_actor(request)
        check_device_registrar(actor)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        device_type = device_type_register(organisation=actor.organisation, **data.validated_data)
        return Response(DeviceTypeOut(device_type, context=DeviceTypeOut.context_for([device_type])).data,
                        status=status.HTTP_201_CREATED)


class DeviceTypeDetailApi(APIView):
    permission_classes = [PublicReadPermission]
    throttle_classes = THROTTLES
    write_scope = "provide"

    @extend_schema_serializer(component_name="DeviceTypeUpdate")
    class InputSerializer(DeviceTypeFields):
        pass

    @extend_schema(tags=TAG, summary="One device type", responses={200: DeviceTypeOut, **errors(404, 429)},
                   examples=[OpenApiExample("Domestic accelerator", value=DEVICE_EXAMPLE, response_only=True)])
    def get(self, request, pk: int):
        device_type = _device_type(pk)
        return Response(DeviceTypeOut(device_type, context=DeviceTypeOut.context_for([device_type])).data)

    @extend_schema(
        tags=TAG, summary="Correct a device type (its registrant). Changing hardware facts voids its attestations",
        request=InputSerializer, responses={200: DeviceTypeOut, **errors(400, 401, 403, 404, 409, 429)},
        examples=[OpenApiExample("Memory corrected", value={"memory_gb": 64}, request_only=True)],
    )
    def patch(self, request, pk: int):
        actor = request_actor(request)
        check_device_registrar(actor)
        data = self.InputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        device_type = device_type_update(device_type=_device_type(pk), organisation=actor.organisation,
                                         **data.validated_data)
        return Response(DeviceTypeOut(device_type, context=DeviceTypeOut.context_for([device_type])).data)


class AttestorKeyOut(serializers.ModelSerializer):
    organisation = serializers.IntegerField(source="organisation_id")
    organisation_name = serializers.CharField(source="organisation.name")

    class Meta:
        model = AttestorKey
        fields = ["key_id", "organisation", "organisation_name", "public_key", "created_at"]


KEY_EXAMPLE = {"key_id": "3f0c1a9d2b7e4c55", "organisation": 3, "organisation_name": "China Compute Benchmark Centre",
               "public_key": "q2Bq1cQ0m3Zr9c7Yb0sW3m3l2y0O3m8l6Vw4qS8fX1E=", "created_at": "2026-11-25T08:00:00Z"}


class AttestorKeyListApi(APIView):
    permission_classes = [PublicReadPermission]
    pagination_class = Pagination
    throttle_classes = THROTTLES
    write_scope = "provide"
    ordering = ("id",)

    @extend_schema_serializer(component_name="AttestorKeyCreate")
    class InputSerializer(serializers.Serializer):
        public_key = serializers.CharField(
            max_length=1000, help_text="Ed25519 public key: PEM (`openssl pkey -pubout`) or base64 of the 32 raw bytes.")

    @extend_schema(tags=TAG, summary="Attestors' public keys (verify signatures offline with them)",
                   responses={200: AttestorKeyOut(many=True), **errors(429)},
                   examples=[OpenApiExample("A key", value=KEY_EXAMPLE, response_only=True)])
    def get(self, request):
        return paginated(self, request, AttestorKey.objects.select_related("organisation"), AttestorKeyOut)

    @extend_schema(
        tags=TAG, summary="Register your attestor organisation's Ed25519 public key", request=InputSerializer,
        responses={201: AttestorKeyOut, **errors(400, 401, 403, 409, 429, example=("invalid", "The public key is not usable: an Ed25519 public key is 32 bytes.", {"public_key": "An Ed25519 public key: PEM, or base64 of the 32 raw bytes."}))},
        examples=[OpenApiExample("PEM", request_only=True, value={
            "public_key": "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAq2Bq1cQ0m3Zr9c7Yb0sW3m3l2y0O3m8l6Vw4qS8fX1E=\n-----END PUBLIC KEY-----\n"})],
    )
    @idempotent()
    def post(self, request):
        actor = request_actor(request)
        check_attestor(actor, verified=False)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        key = attestor_key_register(organisation=actor.organisation, public_key=data.validated_data["public_key"])
        return Response(AttestorKeyOut(key).data, status=status.HTTP_201_CREATED)


class AttestationOut(serializers.ModelSerializer):
    attestor_name = serializers.CharField(source="attestor.name")
    key_id = serializers.CharField(source="key.key_id")
    public_key = serializers.CharField(source="key.public_key")
    sustained_pflops = serializers.SerializerMethodField()
    canonical_payload = serializers.SerializerMethodField(
        help_text="The exact signed bytes (UTF-8): canonical JSON of `payload`.")
    payload_sha256 = serializers.SerializerMethodField()
    valid = serializers.SerializerMethodField(help_text="Signature verifies and the hardware facts still match.")

    class Meta:
        model = Attestation
        fields = ["id", "device_type", "attestor", "attestor_name", "key_id", "public_key", "method", "measured_on",
                  "sustained_pflops", "payload", "canonical_payload", "payload_sha256", "signature", "valid",
                  "created_at"]

    def get_sustained_pflops(self, attestation) -> dict[str, str | None]:
        return {p: (str(v) if (v := attestation.sustained(p)) is not None else None) for p in ("fp32", "fp16", "fp64")}

    def get_canonical_payload(self, attestation) -> str:
        return canonical_json(attestation.payload).decode()

    def get_payload_sha256(self, attestation) -> str:
        return attestation_check(attestation).payload_sha256

    def get_valid(self, attestation) -> bool:
        return attestation_check(attestation).valid


PAYLOAD_EXAMPLE = {
    "key_id": "3f0c1a9d2b7e4c55",
    "device_type": {"id": 2, "vendor": "Hanxin Semiconductor", "model": "HX-910", "memory_gb": 96, "interconnect_gbps": 200},
    "method": "Dense BF16 GEMM sustained over 30 min, 8-device node",
    "measured_on": "2026-11-20",
    "sustained_pflops": {"fp16": "0.6000", "fp32": "0.0700", "fp64": None},
}


def _attestation(pk: int) -> Attestation:
    attestation = Attestation.objects.select_related("key", "attestor", "device_type").filter(pk=pk).first()
    if attestation is None:
        raise NotFound("No attestation with that id.")
    return attestation


class AttestationListApi(APIView):
    permission_classes = [PublicReadPermission]
    pagination_class = Pagination
    throttle_classes = THROTTLES
    write_scope = "provide"
    ordering = ("-id",)

    class FilterSerializer(serializers.Serializer):
        device_type = serializers.IntegerField(required=False, min_value=1)

    @extend_schema_serializer(component_name="AttestationCreate")
    class InputSerializer(serializers.Serializer):
        payload = serializers.JSONField(help_text=(
            "Exactly the signed document: key_id, device_type (the device type's id, vendor, model, memory_gb and "
            "interconnect_gbps as registered), method, measured_on (YYYY-MM-DD) and sustained_pflops "
            "(fp32/fp16/fp64 → decimal string or null)."))
        signature = serializers.CharField(max_length=128, help_text=(
            "base64 Ed25519 signature over the canonical JSON of payload: UTF-8, keys sorted, no whitespace "
            "(`jq -cjS .payload`)."))

    @extend_schema(tags=TAG, summary="Attestations, newest first", parameters=[FilterSerializer],
                   responses={200: AttestationOut(many=True), **errors(400, 429)})
    def get(self, request):
        params = self.FilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        attestations = Attestation.objects.select_related("key", "attestor", "device_type")
        if device_type := params.validated_data.get("device_type"):
            attestations = attestations.filter(device_type_id=device_type)
        return paginated(self, request, attestations, AttestationOut)

    @extend_schema(
        tags=TAG, summary="Post a signed attestation (attestors)", request=InputSerializer,
        description=("The exchange verifies the signature with the key named by `payload.key_id` (which must be "
                     "yours) and that the hardware facts match the device type; the factor of a device type in a "
                     "class is the newest valid attestation's sustained figure at the class precision."),
        responses={201: AttestationOut, **errors(400, 401, 403, 409, 422, 429, example=(
            "signature_invalid", "The signature does not verify with this key over the canonical JSON of the payload "
            "(UTF-8, keys sorted, no whitespace).", {"signature": "Does not verify."}))},
        examples=[OpenApiExample("Signed result", request_only=True, value={
            "payload": PAYLOAD_EXAMPLE, "signature": "0vZr…base64…Ag=="})],
    )
    @idempotent()
    def post(self, request):
        actor = request_actor(request)
        check_attestor(actor)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        attestation = attestation_add(attestor=actor.organisation, **data.validated_data)
        return Response(AttestationOut(_attestation(attestation.id)).data, status=status.HTTP_201_CREATED)


class AttestationDetailApi(APIView):
    permission_classes = [PublicReadPermission]
    throttle_classes = THROTTLES

    @extend_schema(tags=TAG, summary="One attestation with what is needed to verify it offline",
                   responses={200: AttestationOut, **errors(404, 429)})
    def get(self, request, pk: int):
        return Response(AttestationOut(_attestation(pk)).data)


class VerificationOut(serializers.Serializer):
    attestation = serializers.IntegerField()
    valid = serializers.BooleanField()
    signature_ok = serializers.BooleanField(help_text="Ed25519 signature over canonical_payload verifies with public_key.")
    hardware_ok = serializers.BooleanField(help_text="The signed hardware facts equal the device type's current facts.")
    key_id = serializers.CharField()
    public_key = serializers.CharField()
    payload_sha256 = serializers.CharField()


class AttestationVerifyApi(APIView):
    permission_classes = [PublicReadPermission]
    throttle_classes = THROTTLES

    @extend_schema(
        tags=TAG, summary="Verify an attestation now", responses={200: VerificationOut, **errors(404, 429)},
        examples=[OpenApiExample("Valid", response_only=True, value={
            "attestation": 2, "valid": True, "signature_ok": True, "hardware_ok": True, "key_id": "3f0c1a9d2b7e4c55",
            "public_key": "q2Bq1cQ0m3Zr9c7Yb0sW3m3l2y0O3m8l6Vw4qS8fX1E=",
            "payload_sha256": "9c1e…"})],
    )
    def get(self, request, pk: int):
        attestation = _attestation(pk)
        check = attestation_check(attestation)
        return Response(VerificationOut({
            "attestation": attestation.id, "valid": check.valid, "signature_ok": check.signature_ok,
            "hardware_ok": check.hardware_ok, "key_id": attestation.key.key_id, "public_key": attestation.key.public_key,
            "payload_sha256": check.payload_sha256,
        }).data)
