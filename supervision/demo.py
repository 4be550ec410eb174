"""Demo KYC applications: organisations that signed up and wait for the demo regulator.

Idempotent: an application is created once, with its people; one the regulator has since
decided keeps its decision when the demo is seeded again.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from accounts.demo import DEMO_PASSWORD
from accounts.models import BeneficialOwner, Membership, Organisation, User

# (organisation, kind, city, beneficial owner (None: its own), days since it applied, [(e-mail, role)])
APPLICATIONS = [
    ("Hohhot Grassland Data Centre", "provider", "Hohhot", None, 4,
     [("ops@grassland-dc.example", "provider_admin"), ("finance@grassland-dc.example", "viewer")]),
    ("Chengdu Tianfu Render Studio", "buyer", "Chengdu", None, 3,
     [("producer@tianfu-render.example", "trader"), ("cfo@tianfu-render.example", "viewer")]),
    # In the group of two verified providers: the regulator sees the relation in the queue.
    ("Zhongwei Cloud Annex", "provider", "Zhongwei", "Xibu Digital Infrastructure Group", 2,
     [("ops@zw-annex.example", "provider_admin")]),
    ("Suzhou Genome Computing Institute", "buyer", "Suzhou", None, 1,
     [("hpc@suzhou-genome.example", "trader")]),
    ("Wuhan Optoelectronics Benchmark Laboratory", "attestor", "Wuhan", None, 0,
     [("lab@wuhan-optolab.example", "provider_admin")]),
]


def seed() -> int:
    """Create the applications not there yet; the number waiting for a decision."""
    now = timezone.now()
    for name, kind, city, owner_name, days_ago, people in APPLICATIONS:
        owner, _ = BeneficialOwner.objects.get_or_create(name=owner_name or name)
        organisation, created = Organisation.objects.get_or_create(
            name=name, defaults={"kind": kind, "city": city, "kyc_status": Organisation.Kyc.PENDING,
                                 "beneficial_owner": owner})
        if created:
            # Applied on different days, so the queue's oldest-first order shows.
            Organisation.objects.filter(pk=organisation.pk).update(created_at=now - timedelta(days=days_ago, hours=3))
        for email, role in people:
            user = User.objects.filter(email=email).first() or User.objects.create_user(email=email,
                                                                                         password=DEMO_PASSWORD)
            Membership.objects.get_or_create(user=user, organisation=organisation, defaults={"role": role})
    return Organisation.objects.filter(name__in=[a[0] for a in APPLICATIONS],
                                       kyc_status=Organisation.Kyc.PENDING).count()
