from django.contrib import admin

from accounts.forms import AdminSignInForm
from accounts.models import ApiToken, BeneficialOwner, Membership, Organisation, User

# The admin's sign-in counts wrong passwords and locks as the site's does.
admin.site.login_form = AdminSignInForm


@admin.register(User)
class UserAdmin(admin.ModelAdmin):
    list_display = ["email", "is_active", "is_staff", "date_joined"]
    search_fields = ["email"]


@admin.register(Organisation)
class OrganisationAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "kyc_status", "beneficial_owner", "city"]
    list_filter = ["kind", "kyc_status"]


admin.site.register(BeneficialOwner)
admin.site.register(Membership)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "membership", "scopes", "expires_at", "revoked_at"]
    readonly_fields = ["prefix", "token_hash"]
