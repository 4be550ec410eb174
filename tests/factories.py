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
