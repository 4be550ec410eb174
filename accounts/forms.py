from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from accounts import lockout
from accounts.models import ApiToken, Organisation


class LockoutMixin:
    """Sign-in that counts wrong passwords and refuses every attempt while the account or the
    address is locked (accounts.lockout): the site's sign-in and the admin's."""

    locked = False

    def clean(self):
        email = (self.data.get("username") or "").strip().lower()
        address = lockout.client_address(self.request)
        # Checked before the password: while locked, even the right password gets no answer.
        if wait := lockout.locked_for(email=email, address=address):
            self.locked = True
            raise ValidationError(
                _("Too many wrong passwords. Sign-in is locked for %(minutes)d more minute(s); try again later "
                  "or reset your password.") % {"minutes": max(1, -(-wait // 60))}, code="locked")
        try:
            return super().clean()
        except ValidationError:
            if self.cleaned_data.get("username") and self.data.get("password"):
                lockout.failed(email=email, address=address)
            raise


class SignInForm(LockoutMixin, AuthenticationForm):
    username = forms.EmailField(label=_("E-mail"), widget=forms.EmailInput(attrs={"autofocus": True}))


class AdminSignInForm(LockoutMixin, AdminAuthenticationForm):
    """The Django admin's sign-in, under the same lockout as the site's."""


class SignUpForm(forms.Form):
    email = forms.EmailField(label=_("E-mail"))
    password = forms.CharField(label=_("Password"), widget=forms.PasswordInput, help_text=_("At least 10 characters."))
    organisation_name = forms.CharField(label=_("Organisation"), max_length=200)
    kind = forms.ChoiceField(
        label=_("I want to"),
        choices=[(Organisation.Kind.BUYER, _("Buy compute")), (Organisation.Kind.PROVIDER, _("Provide compute"))],
    )
    city = forms.CharField(label=_("City"), max_length=100, required=False, help_text=_("Sets latency circles to the hubs."))


class TokenCreateForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    scopes = forms.MultipleChoiceField(
        label=_("Scopes"), choices=ApiToken.Scope.choices, widget=forms.CheckboxSelectMultiple
    )
    expires_at = forms.DateTimeField(label=_("Expires"), required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
