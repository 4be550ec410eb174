from decimal import Decimal

import factory

from accounts.models import BeneficialOwner, Membership, Organisation, User

PASSWORD = "correct-horse-battery-9"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"person{n}@example.com")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class BeneficialOwnerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BeneficialOwner

    name = factory.Sequence(lambda n: f"Owner group {n}")


class OrganisationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organisation

    name = factory.Sequence(lambda n: f"Organisation {n}")
    kind = Organisation.Kind.BUYER
    kyc_status = Organisation.Kyc.VERIFIED
    city = "Shanghai"
    beneficial_owner = factory.SubFactory(BeneficialOwnerFactory)


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    organisation = factory.SubFactory(OrganisationFactory)
    role = Membership.Role.TRADER


# --------------------------------------------------------------------------- marketplace


class DeviceTypeFactory(factory.django.DjangoModelFactory):
    """Hardware facts only; attest it with ``tests.factories.attest`` to make it listable."""

    class Meta:
        model = "marketplace.DeviceType"

    vendor = "Aurora Silicon"
    model = factory.Sequence(lambda n: f"A80-{n}")
    memory_gb = 80
    interconnect_gbps = 400
    peak_fp16_pflops = Decimal("1.2500")
    peak_fp64_pflops = Decimal("0.0670")
    registered_by = factory.SubFactory(OrganisationFactory, kind=Organisation.Kind.PROVIDER)


def attestor_private_key(seed: int = 1):
    """A fixed Ed25519 test key (never a real attestor's)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)


def attestation_payload(*, key_id: str, device_type, fp16="0.8000", fp32=None, fp64="0.0520",
                        measured_on="2026-01-15", method="Dense BF16 GEMM, 30 min sustained") -> dict:
    return {
        "key_id": key_id,
        "device_type": device_type.hardware_facts(),
        "method": method,
        "measured_on": measured_on,
        "sustained_pflops": {"fp16": fp16, "fp32": fp32, "fp64": fp64},
    }


def attest(*, device_type, attestor_key, private_key, **figures):
    """A signed attestation recorded through the service, as an attestor would post it."""
    from marketplace.services import attestation_add
    from marketplace.signing import sign

    payload = attestation_payload(key_id=attestor_key.key_id, device_type=device_type, **figures)
    return attestation_add(attestor=attestor_key.organisation, payload=payload, signature=sign(private_key, payload))
