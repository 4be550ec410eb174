"""Demo organisations and people. Idempotent: a second run changes nothing."""

from __future__ import annotations

from accounts.models import BeneficialOwner, Membership, Organisation, User

DEMO_PASSWORD = "demo-pass-2026"

# (organisation, kind, city, beneficial owner, [(e-mail, role)])
ORGANISATIONS = [
    ("National Compute Exchange Operations", "operator", "Beijing", None,
     [("operator@exchange.example", "viewer"), ("treasury@exchange.example", "treasurer")]),
    ("Compute Market Supervision Office", "regulator", "Beijing", None, [("supervisor@regulator.example", "regulator")]),
    ("China Compute Benchmark Centre", "attestor", "Beijing", None, [("lab@benchmark.example", "provider_admin")]),
    ("Lingyun AI Labs", "buyer", "Shanghai", None, [("buyer@lingyun.example", "trader")]),
    ("Huaxin Biotech Research", "buyer", "Shenzhen", None, [("buyer@huaxin.example", "trader")]),
    ("West Hub Computing (Ningxia)", "provider", "Zhongwei", "Xibu Digital Infrastructure Group", [("ops@westhub.example", "provider_admin")]),
    ("Qingyang Green Compute", "provider", "Qingyang", "Xibu Digital Infrastructure Group", [("ops@qingyang-green.example", "provider_admin")]),
    ("Gui'an Cloud Valley Data Centre", "provider", "Guiyang", None, [("ops@guian-cloud.example", "provider_admin")]),
]


def seed() -> dict[str, Organisation]:
    organisations: dict[str, Organisation] = {}
    for name, kind, city, owner_name, people in ORGANISATIONS:
        owner, _ = BeneficialOwner.objects.get_or_create(name=owner_name or name)
        organisation, _ = Organisation.objects.get_or_create(
            name=name,
            defaults={"kind": kind, "city": city, "kyc_status": Organisation.Kyc.VERIFIED, "beneficial_owner": owner},
        )
        organisations[name] = organisation
        for email, role in people:
            user = User.objects.filter(email=email).first()
            if user is None:
                user = User.objects.create_user(email=email, password=DEMO_PASSWORD)
            Membership.objects.get_or_create(user=user, organisation=organisation, defaults={"role": role})
    return organisations
