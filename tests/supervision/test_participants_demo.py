"""After `make run` the demo regulator has work: seed_demo leaves KYC applications pending,
each with its people, oldest first in the queue; seeding again changes nothing and keeps
the regulator's decisions."""

import io

import pytest
from django.core.management import call_command
from django.test import Client

from accounts.demo import DEMO_PASSWORD
from accounts.models import Membership, Organisation
from supervision.demo import APPLICATIONS

pytestmark = pytest.mark.django_db


def test_the_demo_regulator_finds_pending_applications_and_decides_one():
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    assert f"KYC queue: {len(APPLICATIONS)} applications waiting" in out.getvalue()
    pending = Organisation.objects.filter(kyc_status=Organisation.Kyc.PENDING)
    assert sorted(pending.values_list("name", flat=True)) == sorted(a[0] for a in APPLICATIONS)
    assert all(org.memberships.exists() for org in pending)
    annex = Organisation.objects.get(name="Zhongwei Cloud Annex")
    assert annex.beneficial_owner.organisations.count() == 3  # with the two verified Xibu providers

    regulator = Client()
    assert regulator.login(email="supervisor@regulator.example", password=DEMO_PASSWORD)
    page = regulator.get("/supervision/participants/").content.decode()
    names = [a[0] for a in sorted(APPLICATIONS, key=lambda a: -a[4])]  # oldest application first
    assert [page.index(name) for name in names] == sorted(page.index(name) for name in names)
    assert "ops@grassland-dc.example" in page
    annex_card = page[page.index('id="application-%d"' % annex.pk):]
    annex_card = annex_card[:annex_card.index("</article>")]
    assert "Same beneficial owner as" in annex_card and "West Hub Computing (Ningxia)" in annex_card
    first = Organisation.objects.get(name=names[0])
    response = regulator.post(f"/supervision/participants/{first.pk}/kyc/", {"action": "approve", "next": "queue"})
    assert response.status_code == 302

    counts = [Organisation.objects.count(), Membership.objects.count()]
    call_command("seed_demo", stdout=io.StringIO())
    assert [Organisation.objects.count(), Membership.objects.count()] == counts
    first.refresh_from_db()
    assert first.kyc_status == Organisation.Kyc.VERIFIED
    assert Organisation.objects.filter(kyc_status=Organisation.Kyc.PENDING).count() == len(APPLICATIONS) - 1
